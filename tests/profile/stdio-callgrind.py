#!/usr/bin/env python3
"""Counts the host's instructions per stdio round trip: plays lightningd
towards `cln-autoreload PLUGIN` run under callgrind (getmanifest, init, then N
calls of bench-pid with 16 in flight; INFLIGHT=N, METHOD=M and
INIT_OPTIONS=JSON (init's options, e.g. {"autoreload-wasm-compiler": "cranelift"})
change that).

    cargo build --release -p cln-autoreload -p cln-autoreload-tests --bin bench-plugin
    python3 tests/profile/stdio-callgrind.py $PWD/target/release/cln-autoreload \\
        $PWD/target/release/bench-plugin 20000
    callgrind_annotate callgrind.out | head -40
"""
import json, os, subprocess, sys, tempfile, time
host, plugin, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = tempfile.mkdtemp(); os.makedirs(d + "/regtest")
env = dict(os.environ, LIGHTNINGD_PLUGIN="1", LIGHTNINGD_VERSION="v26.06.6")
cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.environ.get("OUT", "callgrind.out"), host, plugin]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=d + "/regtest", env=env)
dec = json.JSONDecoder(); buf = ""
def read():
    global buf
    while True:
        buf = buf.lstrip()
        if buf:
            try:
                v, i = dec.raw_decode(buf); buf = buf[i:]; return v
            except ValueError: pass
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk: raise SystemExit("eof")
        buf += chunk.decode()
def send(o): p.stdin.write((json.dumps(o) + "\n\n").encode()); p.stdin.flush()
send({"jsonrpc":"2.0","id":1,"method":"getmanifest","params":{"allow-deprecated-apis":False}})
while "result" not in (m := read()) or m.get("id") != 1: pass
send({"jsonrpc":"2.0","id":2,"method":"init","params":{"options":json.loads(os.environ.get("INIT_OPTIONS", "{}")),"configuration":{"lightning-dir":d,"rpc-file":"lightning-rpc","startup":True,"network":"regtest","feature_set":{}}}})
while (m := read()).get("id") != 2: pass
inflight = 0; sent = 0; got = 0
while got < n:
    while inflight < int(os.environ.get("INFLIGHT", "16")) and sent < n:
        send({"jsonrpc":"2.0","id":"c%d"%sent,"method":os.environ.get("METHOD", "bench-pid"),"params":{}}); sent += 1; inflight += 1
    m = read()
    if "id" in m: got += 1; inflight -= 1
p.stdin.close(); p.wait(); print("done", got)
