#!/usr/bin/env python3
"""A plugin (stdlib only) that tries things a sandbox may forbid, for
cln-autoreload's sandbox tests. Every method answers with a result, never
an error: `{"ok": true, ...}` or `{"ok": false, "errno": N, "error": ...}`.

- probe-read path: read a file (relative paths: from the cwd)
- probe-write path: write a file
- probe-spawn-read path: a child process (`cat`) reads the file
- probe-connect host port: a TCP connection
- probe-rpc [method] [params] [path] [notify]: a call (`getinfo`) over
  lightningd's `lightning-rpc` (or the socket at `path`, where `{ppid}`
  is the host's pid); with `notify`, notifications enabled and counted
- probe-rpc-raw text: sends `text` over `lightning-rpc`; the first
  message back, and whether the connection was closed after it
- probe-rpc-many connections calls [method]: that many connections at
  once, each sending all its calls before reading the answers
- probe-env name: an environment variable, and TMPDIR
"""
import json
import os
import socket
import subprocess

MANIFEST = {
    "options": [],
    "rpcmethods": [
        {"name": "probe-read", "usage": "path", "description": "read a file"},
        {"name": "probe-write", "usage": "path", "description": "write a file"},
        {"name": "probe-spawn-read", "usage": "path", "description": "a child reads a file"},
        {"name": "probe-connect", "usage": "host port", "description": "TCP connect"},
        {"name": "probe-rpc", "usage": "[method] [params] [path] [notify]", "description": "a call over lightning-rpc"},
        {"name": "probe-rpc-raw", "usage": "text", "description": "raw bytes to lightning-rpc"},
        {"name": "probe-rpc-many", "usage": "connections calls [method]", "description": "many calls at once"},
        {"name": "probe-env", "usage": "name", "description": "an environment variable"},
    ],
    "hooks": [],
    "subscriptions": [],
    "dynamic": True,
}

RPC_FILE = "lightning-rpc"


def send(obj):
    b = json.dumps(obj).encode() + b"\n\n"
    while b:
        b = b[os.write(1, b):]


def param(params, name, i):
    if isinstance(params, dict):
        return params.get(name)
    return params[i] if len(params) > i else None


def failed(e):
    return {"ok": False, "errno": getattr(e, "errno", None), "error": str(e)}


def read_messages(s, buf, dec):
    """Yields the messages on socket `s`, read as they come."""
    while True:
        text = buf[0].lstrip()
        try:
            msg, end = dec.raw_decode(text)
            buf[0] = text[end:]
            yield msg
            continue
        except ValueError:
            pass
        chunk = s.recv(1 << 20)
        if not chunk:
            return
        buf[0] += chunk.decode()


def rpc_call(path, method, params, notify):
    """`method` over the socket at `path`; with `notify`, notifications
    are enabled first and counted."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    dec, buf = json.JSONDecoder(), [""]
    msgs = read_messages(s, buf, dec)
    if notify:
        s.sendall(json.dumps({"jsonrpc": "2.0", "id": "on", "method": "notifications",
                              "params": {"enable": True}}).encode())
        next(m for m in msgs if m.get("id") == "on")
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": "probe", "method": method, "params": params}).encode())
    seen = []
    for msg in msgs:
        if "id" in msg and msg.get("id") == "probe" and "method" not in msg:
            s.close()
            return {"ok": "result" in msg, "answer": msg,
                    "notifications": len(seen),
                    "notification_sizes": [len(n.get("params", {}).get("message", "")) for n in seen]}
        seen.append(msg)
    return {"ok": False, "error": "lightning-rpc closed", "errno": None}


def rpc_many(connections, calls, method):
    """`connections` connections at once, each with `calls` requests sent
    before any answer is read; counts the answers."""
    import threading
    counts = {"results": 0, "errors": 0, "failures": []}
    lock = threading.Lock()

    def one(c):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(RPC_FILE)
            reqs = b"".join(json.dumps({"jsonrpc": "2.0", "id": f"{c}/{i}", "method": method,
                                        "params": {}}).encode() for i in range(calls))
            s.sendall(reqs)
            want = {f"{c}/{i}" for i in range(calls)}
            dec, buf = json.JSONDecoder(), [""]
            for msg in read_messages(s, buf, dec):
                if msg.get("id") in want:
                    want.discard(msg["id"])
                    with lock:
                        counts["results" if "result" in msg else "errors"] += 1
                if not want:
                    break
            s.close()
            if want:
                raise RuntimeError(f"{len(want)} calls unanswered")
        except Exception as e:  # noqa: BLE001
            with lock:
                counts["failures"].append(str(e))

    threads = [threading.Thread(target=one, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"ok": not counts["failures"], **counts}


def handle(method, params):
    try:
        if method == "probe-read":
            with open(param(params, "path", 0), "rb") as f:
                return {"ok": True, "data": f.read().decode(errors="replace")}
        if method == "probe-write":
            with open(param(params, "path", 0), "w") as f:
                f.write("written")
            return {"ok": True}
        if method == "probe-spawn-read":
            p = subprocess.run(["cat", param(params, "path", 0)], capture_output=True)
            return {"ok": p.returncode == 0, "status": p.returncode,
                    "data": p.stdout.decode(errors="replace"),
                    "error": p.stderr.decode(errors="replace")}
        if method == "probe-connect":
            s = socket.create_connection((param(params, "host", 0), int(param(params, "port", 1))), timeout=10)
            s.close()
            return {"ok": True}
        if method == "probe-rpc":
            path = (param(params, "path", 2) or RPC_FILE).replace("{ppid}", str(os.getppid()))
            return rpc_call(path, param(params, "method", 0) or "getinfo",
                            param(params, "params", 1) or {}, bool(param(params, "notify", 3)))
        if method == "probe-rpc-raw":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(RPC_FILE)
            s.sendall(param(params, "text", 0).encode())
            msgs = read_messages(s, [""], json.JSONDecoder())
            first = next(msgs, None)
            closed = next(msgs, None) is None
            s.close()
            return {"ok": first is not None, "answer": first, "closed": closed}
        if method == "probe-rpc-many":
            return rpc_many(int(param(params, "connections", 0)), int(param(params, "calls", 1)),
                            param(params, "method", 2) or "getinfo")
        if method == "probe-env":
            return {"ok": True, "value": os.environ.get(param(params, "name", 0)),
                    "tmpdir": os.environ.get("TMPDIR")}
    except Exception as e:  # noqa: BLE001 (the point is to report it)
        return failed(e)
    return None


def main():
    global RPC_FILE
    dec = json.JSONDecoder()
    buf = ""
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return
        buf += chunk.decode()
        while True:
            s = buf.lstrip()
            if not s:
                buf = ""
                break
            try:
                msg, end = dec.raw_decode(s)
            except ValueError:
                buf = s
                break
            buf = s[end:]
            method, rid = msg.get("method"), msg.get("id")
            if rid is None:
                continue
            if method == "getmanifest":
                send({"jsonrpc": "2.0", "id": rid, "result": MANIFEST})
            elif method == "init":
                conf = msg["params"].get("configuration", {})
                RPC_FILE = conf.get("rpc-file", RPC_FILE)
                send({"jsonrpc": "2.0", "id": rid, "result": {}})
            else:
                result = handle(method, msg.get("params", {}))
                if result is None:
                    send({"jsonrpc": "2.0", "id": rid,
                          "error": {"code": -32601, "message": "unknown method " + str(method)}})
                else:
                    send({"jsonrpc": "2.0", "id": rid, "result": result})


if __name__ == "__main__":
    main()
