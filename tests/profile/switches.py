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
import glob, os, sys
from lightningd import Lightningd

proxy, n = sys.argv[1:-1], int(sys.argv[-1])
node = Lightningd(["taskset", "-c", "1"] + proxy)
os.sched_setaffinity(0, {1})
node.handshake()


def calls(k, tag):
    for i in range(k):
        node.send({"jsonrpc": "2.0", "id": "%s%d" % (tag, i), "method": "bench-pid", "params": []})
        while "id" not in node.read():
            pass


def stats():
    v = nv = run = 0
    for t in glob.glob("/proc/%d/task/*" % node.proc.pid):
        for line in open(t + "/status"):
            if line.startswith("voluntary_ctxt_switches"):
                v += int(line.split()[1])
            if line.startswith("nonvoluntary_ctxt_switches"):
                nv += int(line.split()[1])
        run += int(open(t + "/schedstat").read().split()[0])
    return v, nv, run


calls(500, "w")
a = stats()
calls(n, "c")
b = stats()
print("vol/call %.2f  invol/call %.2f  cpu us/call %.2f"
      % ((b[0] - a[0]) / n, (b[1] - a[1]) / n, (b[2] - a[2]) / n / 1000))
node.close()
