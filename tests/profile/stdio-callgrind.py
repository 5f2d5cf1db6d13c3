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
import json, os, sys
from lightningd import Lightningd

host, plugin, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = os.environ.get("OUT", "callgrind.out")
node = Lightningd(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, host, plugin])
node.handshake(json.loads(os.environ.get("INIT_OPTIONS", "{}")))
window = int(os.environ.get("INFLIGHT", "16"))
method = os.environ.get("METHOD", "bench-pid")
inflight = sent = got = 0
while got < n:
    while inflight < window and sent < n:
        node.send({"jsonrpc": "2.0", "id": "c%d" % sent, "method": method, "params": {}})
        sent += 1
        inflight += 1
    if "id" in node.read():
        got += 1
        inflight -= 1
node.close()
print("done", got)
