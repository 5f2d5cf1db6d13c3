#!/usr/bin/env python3
VERSION = "v1" if "VERSION" not in globals() else VERSION  # noqa: F821
"""A test plugin that holds a fixed TCP port (Python 3 standard library only).

At start-up, before reading anything from stdin (so before answering
getmanifest), it binds 127.0.0.1:$PORTBIND_PORT with SO_REUSEADDR off and
listens on it, for as long as it runs. If the port is taken, the bind's
OSError is not caught: Python prints its traceback on stderr, ending in
``OSError: [Errno 98] Address already in use``, and exits 1. This is what a
new version meets when the old one still holds the port.

PORTBIND_PORT         (environment, required) the port; missing or not a
                      number: a message on stderr and exit 2
VERSION               (first line after the shebang) returned by portbind;
                      change the text ``VERSION = "v1"`` or put a line
                      ``VERSION = "v2"`` right after the shebang

Methods: portbind -> {"version": VERSION, "pid": its pid}.
Also getmanifest, init, setconfig ({}); a hook call is answered
{"result": "continue"}; anything else: error -32601. Notifications are
ignored but "shutdown" (exit 0); stdin EOF exits 0.
"""
# --- body ---
import codecs
import json
import os
import re
import socket
import sys

try:
    PORT = int(os.environ["PORTBIND_PORT"])
except (KeyError, ValueError):
    sys.stderr.write("portbind: set PORTBIND_PORT to a TCP port number (got %r)\n"
                     % (os.environ.get("PORTBIND_PORT"),))
    sys.exit(2)

# Bound before anything else; kept open (in this global) until exit.
LISTENER = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
LISTENER.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
LISTENER.bind(("127.0.0.1", PORT))  # OSError if taken: traceback, exit 1
LISTENER.listen(16)

KNOWN_HOOKS = {
    "peer_connected", "commitment_revocation", "db_write", "invoice_payment",
    "openchannel", "openchannel2", "openchannel2_changed", "openchannel2_sign",
    "rbf_channel", "htlc_accepted", "rpc_command", "custommsg",
    "onion_message_recv", "onion_message_recv_secret", "recover",
}


def send(obj):
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    try:
        while data:
            data = data[os.write(1, data):]
    except OSError:  # nobody reads any more
        os._exit(0)


def respond(req_id, result):
    send({"jsonrpc": "2.0", "id": req_id, "result": result})


def manifest():
    return {
        "options": [],
        "rpcmethods": [{"name": "portbind", "usage": "",
                        "description": "version and pid of the port holder"}],
        "subscriptions": [],
        "hooks": [],
        "dynamic": True,
        "nonnumericids": True,
    }


def handle(msg):
    if not isinstance(msg, dict):
        return
    method = msg.get("method")
    if "id" not in msg:
        if method == "shutdown":
            sys.exit(0)
        return
    req_id = msg["id"]
    if method == "getmanifest":
        respond(req_id, manifest())
    elif method in ("init", "setconfig"):
        respond(req_id, {})
    elif method == "portbind":
        respond(req_id, {"version": VERSION, "pid": os.getpid()})
    elif method in KNOWN_HOOKS:
        respond(req_id, {"result": "continue"})
    else:
        send({"jsonrpc": "2.0", "id": req_id,
              "error": {"code": -32601, "message": "unknown method %s" % (method,)}})


WS = re.compile(r"\s*")


def main():
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")
    decoder = json.JSONDecoder()
    buf = ""
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            sys.exit(0)
        buf += utf8.decode(chunk)
        pos = 0
        while True:
            pos = WS.match(buf, pos).end()
            if pos == len(buf):
                break
            if buf[pos] != "{":  # not JSON: skip to the next object
                nxt = buf.find("{", pos)
                pos = len(buf) if nxt < 0 else nxt
                continue
            try:
                msg, pos = decoder.raw_decode(buf, pos)
            except ValueError:  # incomplete
                break
            handle(msg)
        buf = buf[pos:]


main()
