#!/usr/bin/env python3
"""The four steps of a warm start's hand-over for a pyln-client plugin,
timed one by one without the host: the old version's answer to
`autoreload-save-state`, its exit once its stdin is closed (the host waits
for the process to be gone), the new version's answer to `init`, and its
answer to `autoreload-restore-state`. The new version has answered
getmanifest beforehand, as in a warm start. Calls wait for the sum.

    python3 tests/profile/handover-steps.py [PLUGIN] [ROUNDS]

PLUGIN defaults to examples/hello-py/hello.py (it keeps its state with
python/cln_autoreload_state.py, found through PYTHONPATH).
"""
import json, os, statistics, subprocess, sys, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PLUGIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "examples/hello-py/hello.py")
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 8
# pyln-client checks that lightningd started it.
env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, 'python'), LIGHTNINGD_PLUGIN='1', LIGHTNINGD_VERSION='v26.06.6')
def start():
    p = subprocess.Popen(['python3', PLUGIN], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    return p
def req(p, id, method, params):
    p.stdin.write((json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}) + "\n\n").encode()); p.stdin.flush()
    buf = b""
    while True:
        line = p.stdout.readline()
        if not line: raise SystemExit("eof")
        if line.strip():
            buf += line; continue
        if not buf: continue
        m = json.loads(buf); buf = b""
        if m.get("id") == id: return m
INIT = {"options": {}, "configuration": {"lightning-dir": "/tmp", "rpc-file": "lightning-rpc", "startup": False}}
rows = []
for i in range(ROUNDS):
    a = start(); req(a, 1, "getmanifest", {}); req(a, 2, "init", INIT)
    b = start(); req(b, 1, "getmanifest", {})
    time.sleep(0.2)
    t0 = time.perf_counter(); st = req(a, "s", "autoreload-save-state", {})
    t1 = time.perf_counter(); a.stdin.close(); a.wait()
    t2 = time.perf_counter(); req(b, 2, "init", INIT)
    t3 = time.perf_counter(); req(b, "r", "autoreload-restore-state", {"state": st["result"]["state"]})
    t4 = time.perf_counter()
    rows.append([(t1-t0)*1e3, (t2-t1)*1e3, (t3-t2)*1e3, (t4-t3)*1e3])
    b.stdin.close(); b.wait()
for name, col in zip(["save", "exit", "init", "restore"], zip(*rows)):
    print(f"{name}: p50 {statistics.median(col):.1f} ms  (min {min(col):.1f}, max {max(col):.1f})")
print("load", os.getloadavg())
