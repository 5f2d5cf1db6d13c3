#!/usr/bin/env python3
"""The host's RSS across reloads of examples/hello-wasm's *debug* build,
renamed over with VERSION 1 and 2 in turn, through the lightningd stand-in
(the bench's "wasm: hello-wasm debug build, winch, renamed over" case, for
as many reloads as you like). Prints VmRSS, RssAnon, RssFile (MB = 10^6
bytes) after each reload has settled, and smaps_rollup at the end.

    cargo build --release -p cln-autoreload -p cln-autoreload-tests --bin cln-autoreload --bin lightningd-standin
    python3 tests/profile/rss-reloads.py 300 [winch|cranelift]

Builds the two modules itself (editing VERSION in the example's main.rs
and restoring it). Set MALLOC_ARENA_MAX=1 to see how much of the growth is
glibc's per-thread arenas.
"""
import json, os, shutil, socket, subprocess, sys, tempfile, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 60
COMPILER = sys.argv[2] if len(sys.argv) > 2 else "winch"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
MAIN_RS = os.path.join(ROOT, "examples/hello-wasm/src/main.rs")
MARKER = 'const VERSION: &str = "1";'


def build_versions():
    original = open(MAIN_RS).read()
    if MARKER not in original:
        sys.exit(f"{MAIN_RS} no longer has {MARKER!r} to edit")
    out = []
    try:
        for v in ("1", "2"):
            open(MAIN_RS, "w").write(original.replace(MARKER, f'const VERSION: &str = "{v}";'))
            subprocess.run(["cargo", "build", "-q", "--target", "wasm32-wasip1", "-p", "hello-wasm"],
                           cwd=ROOT, check=True)
            out.append(open(os.path.join(TARGET, "wasm32-wasip1/debug/hello-wasm.wasm"), "rb").read())
    finally:
        open(MAIN_RS, "w").write(original)
    return out


V = build_versions()

d = tempfile.mkdtemp(prefix="rss-")
plug = os.path.join(d, "hello-wasm.wasm")
open(plug, "wb").write(V[0])
node = subprocess.Popen(
    [os.path.join(TARGET, "release/lightningd-standin"), f"--lightning-dir={d}", "--network=regtest",
     "--plugin=" + os.path.join(TARGET, "release/cln-autoreload"), f"--autoreload-plugin={plug}",
     f"--autoreload-wasm-compiler={COMPILER}"],
    cwd=d, env={**os.environ, "PWD": d}, stdin=subprocess.DEVNULL,
    stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "stderr"), "w"))
rpc = os.path.join(d, "regtest/lightning-rpc")

def call(method, params={}):
    s = socket.socket(socket.AF_UNIX)
    s.connect(rpc)
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode())
    buf = b""
    dec = json.JSONDecoder()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed")
        buf += chunk
        try:
            obj, _ = dec.raw_decode(buf.decode().lstrip())
            s.close()
            return obj
        except ValueError:
            pass

def host_pid():
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                st = open(f"/proc/{p}/stat").read()
                ppid = int(st.rsplit(")", 1)[1].split()[1])
                if ppid == node.pid and os.readlink(f"/proc/{p}/exe").endswith("cln-autoreload"):
                    return int(p)
            except OSError:
                pass

def status(pid, keys=("VmRSS", "RssAnon", "RssFile", "VmHWM")):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, v = line.split(":", 1)
        if k in keys:
            out[k] = int(v.split()[0]) * 1024 / 1e6  # /proc says kB, meaning KiB
    return out

def version():
    r = call("hello", {})
    return json.dumps(r.get("result", r.get("error")))

deadline = time.time() + 60
while True:
    try:
        if os.path.exists(rpc) and "result" in call("hello"):
            break
    except Exception:
        pass
    if time.time() > deadline:
        sys.exit("node not ready: " + open(os.path.join(d, "stderr")).read()[-2000:])
    time.sleep(0.1)
pid = host_pid()
first = version()
print(f"host pid {pid}; hello says {first}", flush=True)
print("reloads VmRSS_MB RssAnon_MB RssFile_MB", flush=True)
s0 = status(pid)
print(f"0 {s0['VmRSS']:.1f} {s0['RssAnon']:.1f} {s0['RssFile']:.1f}", flush=True)
cur = 0
for i in range(1, N + 1):
    cur ^= 1
    tmp = plug + ".tmp"
    open(tmp, "wb").write(V[cur])
    os.rename(tmp, plug)
    want = str(cur + 1)
    t = time.time()
    while True:
        try:
            r = call("hello", {})
            if r.get("result", {}).get("version") == want:
                break
        except Exception:
            pass
        if time.time() - t > 30:
            sys.exit(f"reload {i} did not take")
        time.sleep(0.005)
    time.sleep(0.3)  # let the old instance retire
    s = status(pid)
    print(f"{i} {s['VmRSS']:.1f} {s['RssAnon']:.1f} {s['RssFile']:.1f}", flush=True)
try:
    print(open(f"/proc/{pid}/smaps_rollup").read(), flush=True)
except OSError:
    pass
node.terminate()
node.wait()
shutil.rmtree(d, ignore_errors=True)
