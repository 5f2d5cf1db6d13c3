#!/usr/bin/env python3
"""A plugin (stdlib only) that tries things a sandbox may forbid, for
cln-autoreload's sandbox tests. Every method answers with a result, never
an error: `{"ok": true, ...}` or `{"ok": false, "errno": N, "error": ...}`.

- probe-read path: read a file (relative paths: from the cwd)
- probe-write path: write a file
- probe-spawn-read path: a child process (`cat`) reads the file
- probe-connect host port: a TCP connection
- probe-rpc: `getinfo` over lightningd's `lightning-rpc`
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
        {"name": "probe-rpc", "usage": "", "description": "getinfo over lightning-rpc"},
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
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(RPC_FILE)
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": "probe", "method": "getinfo", "params": {}}).encode())
            dec, buf = json.JSONDecoder(), ""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return {"ok": False, "error": "lightning-rpc closed"}
                buf += chunk.decode()
                try:
                    msg, _ = dec.raw_decode(buf.lstrip())
                    s.close()
                    return {"ok": "result" in msg, "answer": msg}
                except ValueError:
                    continue
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
