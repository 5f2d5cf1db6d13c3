#!/usr/bin/env python3
"""Context switches and on-CPU time per call of a proxy (or a plugin) on
the stdio path, everything on CPU 1: plays lightningd towards
`PROXY... PLUGIN` (getmanifest, init, 500 calls of warm-up), then reads
/proc/PID/task/*/status and schedstat around N calls of bench-pid made one
at a time.

    R=$PWD/target/release
    python3 tests/profile/switches.py $R/pump $R/bench-plugin 20000
    python3 tests/profile/switches.py $R/cln-autoreload $R/bench-plugin 20000
"""
import json, os, subprocess, sys, tempfile, glob
proxy = sys.argv[1:-1]; n = int(sys.argv[-1])
d = tempfile.mkdtemp(); os.makedirs(d + "/regtest")
env = dict(os.environ, LIGHTNINGD_PLUGIN="1", LIGHTNINGD_VERSION="v26.06.6")
p = subprocess.Popen(["taskset", "-c", "1"] + proxy, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=d + "/regtest", env=env)
os.sched_setaffinity(0, {1})
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
while (m := read()).get("id") != 1: pass
send({"jsonrpc":"2.0","id":2,"method":"init","params":{"options":{},"configuration":{"lightning-dir":d,"rpc-file":"lightning-rpc","startup":True,"network":"regtest","feature_set":{}}}})
while (m := read()).get("id") != 2: pass
def calls(k, tag):
    for i in range(k):
        send({"jsonrpc":"2.0","id":"%s%d"%(tag,i),"method":"bench-pid","params":[]})
        while "id" not in (m := read()): pass
calls(500, "w")
def stats():
    v=nv=0; run=0
    for t in glob.glob("/proc/%d/task/*" % p.pid):
        for l in open(t + "/status"):
            if l.startswith("voluntary_ctxt_switches"): v += int(l.split()[1])
            if l.startswith("nonvoluntary_ctxt_switches"): nv += int(l.split()[1])
        run += int(open(t + "/schedstat").read().split()[0])
    return v, nv, run
a = stats(); calls(n, "c"); b = stats()
print("vol/call %.2f  invol/call %.2f  cpu us/call %.2f" % ((b[0]-a[0])/n, (b[1]-a[1])/n, (b[2]-a[2])/n/1000))
p.stdin.close(); p.wait()
