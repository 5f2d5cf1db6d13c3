#!/usr/bin/env python3
VERSION = "v1" if "VERSION" not in globals() else VERSION  # noqa: F821
CONFIG = {} if "CONFIG" not in globals() else CONFIG  # noqa: F821
"""A test plugin that hands its state over across reloads (stdlib only).

It speaks lightningd v26.06's plugin protocol on stdin/stdout, declares
``"autoreload": {"state": true}`` in its manifest and answers cln-autoreload's
``autoreload-save-state`` and ``autoreload-restore-state`` (see
notes/state-protocol.md), saving ``{"schema": SCHEMA, "data": {"calls": n,
"version": VERSION, "pad": "x" * STATE_SIZE}}``.

Making versions
---------------
``VERSION`` (first line after the shebang) is what ``count`` returns. Change
it to make a new version: replace the text ``VERSION = "v1"`` (say, by
``VERSION = "v2"``), or put a line ``VERSION = "v2"`` right after the shebang.

Knobs
-----
Each knob is read from ``CONFIG`` (in the file: per version) or else from the
environment variable of the same name (every version, every plugin of the
node), or else takes its default. ``CONFIG`` is a dict literal or a ``str``
holding JSON, set like ``VERSION`` (replace the text ``CONFIG = {}``, or put
``CONFIG = ...`` after the shebang), e.g. ``CONFIG = {"SCHEMA": 2}``. Values
in CONFIG may be strings as in the environment or JSON numbers / booleans.
CONFIG may also hold "VERSION", which then wins over the constant.

STATE_SIZE [0]        bytes of padding ("pad": "xxx...") in the saved state's
                      data; the state, as compact JSON, is STATE_SIZE + 55
                      bytes with VERSION "v1", SCHEMA and calls < 10 (one
                      more byte per extra character of those)
SAVE_MODE [ok]        ok: answer {"state": ...}
                      error: answer an error (code -32000, message
                        "stateful: save failed on purpose (SAVE_MODE=error)")
                      hang: never answer the save
                      garbage: answer with the result "garbage" (no "state")
                      garbage-bytes: write "garbage, not JSON\\n\\n" to stdout
                        instead of an answer (and never answer)
RESTORE_MODE [ok]     ok: take the state (see SCHEMA), answer {}
                      error: refuse it: error (code -32000, message
                        "stateful: restore refused on purpose
                        (RESTORE_MODE=error)"); calls stays 0
                      hang: never answer the restore
SCHEMA [1]            the schema number saved; a restored state with another
                      schema is not read: calls starts from 0, a "warn" log
                      "stateful VERSION: saved state has schema X, this
                      version has schema Y: starting from 0", answer {}
DECLARE_STATE [true]  false ("0", "false", "no", "off"): the manifest has no
                      "autoreload" field (the plugin still answers the two
                      requests if sent, and counts them in stateful-info)
SLOW_START_MS [0]     sleep this long before answering getmanifest
FAIL_START [""]       a broken version:
                      syntax: a SyntaxError at start-up (Python prints it on
                        stderr and exits 1; for a file that does not even
                        compile, write a line like "def (:" into it instead)
                      exit: exit 1 at start-up, before reading anything
                        ("stateful: FAIL_START=exit" on stderr)
                      hang-getmanifest: never answer getmanifest
                      hang-init: answer getmanifest, never answer init

Methods
-------
count          calls += 1, then {"calls": calls, "version": VERSION}
stateful-info  {"version", "pid", "schema", "calls", "knobs" (the effective
               values), "saves" (save requests received), "restores" (one
               object per restore request: "outcome" = "restored" |
               "other-schema" | "refused" | "hung" | "malformed", and
               when the state could be read "schema", "from_version",
               "calls", "pad" (its length))}

A restore whose params are not {"state": {"schema": <int>, "data":
{"calls": <int>, ...}}} (same schema) is answered an error (code -32602).
Other requests: getmanifest, init, setconfig ({}), any other method: error
-32601; a hook call is answered {"result": "continue"}. Notifications are
ignored but "shutdown" (exit 0); stdin EOF exits 0. One thread: requests are
answered in order.
"""
# --- body ---
import codecs
import json
import os
import re
import sys
import time

if isinstance(CONFIG, str):  # noqa: F821 (CONFIG is defined above)
    CONFIG = json.loads(CONFIG)
CFG = dict(CONFIG)  # noqa: F821

DEFAULTS = {
    "STATE_SIZE": "0",
    "SAVE_MODE": "ok",
    "RESTORE_MODE": "ok",
    "SCHEMA": "1",
    "DECLARE_STATE": "true",
    "SLOW_START_MS": "0",
    "FAIL_START": "",
}
CHOICES = {
    "SAVE_MODE": {"ok", "error", "hang", "garbage", "garbage-bytes"},
    "RESTORE_MODE": {"ok", "error", "hang"},
    "FAIL_START": {"", "syntax", "exit", "hang-getmanifest", "hang-init"},
}


def knob(name):
    if name in CFG:
        value = CFG[name]
    else:
        value = os.environ.get(name, DEFAULTS[name])
    if isinstance(value, bool):
        value = "true" if value else "false"
    value = str(value).strip()
    if name in CHOICES and value not in CHOICES[name]:
        sys.stderr.write("stateful: %s=%r is not one of %s\n"
                         % (name, value, sorted(CHOICES[name])))
        sys.exit(2)
    return value


def int_knob(name):
    try:
        return int(knob(name))
    except ValueError:
        sys.stderr.write("stateful: %s=%r is not an integer\n" % (name, knob(name)))
        sys.exit(2)


unknown = sorted(set(CFG) - set(DEFAULTS) - {"VERSION"})
if unknown:
    sys.stderr.write("stateful: unknown CONFIG keys %s\n" % unknown)

VERSION = CFG.get("VERSION", VERSION)
STATE_SIZE = int_knob("STATE_SIZE")
SAVE_MODE = knob("SAVE_MODE")
RESTORE_MODE = knob("RESTORE_MODE")
SCHEMA = int_knob("SCHEMA")
DECLARE_STATE = knob("DECLARE_STATE").lower() not in ("0", "false", "no", "off")
SLOW_START_MS = int_knob("SLOW_START_MS")
FAIL_START = knob("FAIL_START")
KNOBS = {
    "STATE_SIZE": STATE_SIZE, "SAVE_MODE": SAVE_MODE,
    "RESTORE_MODE": RESTORE_MODE, "SCHEMA": SCHEMA,
    "DECLARE_STATE": DECLARE_STATE, "SLOW_START_MS": SLOW_START_MS,
    "FAIL_START": FAIL_START,
}

CALLS = [0]
SAVES = [0]
RESTORES = []

KNOWN_HOOKS = {
    "peer_connected", "commitment_revocation", "db_write", "invoice_payment",
    "openchannel", "openchannel2", "openchannel2_changed", "openchannel2_sign",
    "rbf_channel", "htlc_accepted", "rpc_command", "custommsg",
    "onion_message_recv", "onion_message_recv_secret", "recover",
}


def write_raw(data):
    try:
        while data:
            data = data[os.write(1, data):]
    except OSError as e:  # nobody reads any more
        sys.stderr.write("stateful: stdout: %s\n" % e)
        os._exit(0)


def send(obj):
    write_raw(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
              + b"\n\n")


def respond(req_id, result):
    send({"jsonrpc": "2.0", "id": req_id, "result": result})


def respond_error(req_id, code, message):
    send({"jsonrpc": "2.0", "id": req_id,
          "error": {"code": code, "message": message}})


def log(level, message):
    send({"jsonrpc": "2.0", "method": "log",
          "params": {"level": level, "message": message}})


def manifest():
    man = {
        "options": [],
        "rpcmethods": [
            {"name": "count", "usage": "",
             "description": "counts calls, across reloads"},
            {"name": "stateful-info", "usage": "",
             "description": "what the plugin saved and restored"},
        ],
        "subscriptions": [],
        "hooks": [],
        "dynamic": True,
        "nonnumericids": True,
    }
    if DECLARE_STATE:
        man["autoreload"] = {"state": True}
    return man


def save(req_id):
    SAVES[0] += 1
    if SAVE_MODE == "hang":
        return
    if SAVE_MODE == "error":
        respond_error(req_id, -32000,
                      "stateful: save failed on purpose (SAVE_MODE=error)")
    elif SAVE_MODE == "garbage":
        respond(req_id, "garbage")
    elif SAVE_MODE == "garbage-bytes":
        write_raw(b"garbage, not JSON\n\n")
    else:
        respond(req_id, {"state": {"schema": SCHEMA, "data": {
            "calls": CALLS[0], "version": VERSION, "pad": "x" * STATE_SIZE}}})


def restore(req_id, params):
    state = params.get("state") if isinstance(params, dict) else None
    data = state.get("data") if isinstance(state, dict) else None
    schema = state.get("schema") if isinstance(state, dict) else None
    if isinstance(schema, bool) or not isinstance(schema, int):
        RESTORES.append({"outcome": "malformed"})
        respond_error(req_id, -32602, "stateful: restore params are not "
                      "{\"state\": {\"schema\": <int>, \"data\": ...}}")
        return
    seen = {"schema": schema}
    if isinstance(data, dict):
        seen.update({"from_version": data.get("version"), "calls": data.get("calls"),
                     "pad": len(data["pad"]) if isinstance(data.get("pad"), str) else None})
    if RESTORE_MODE == "hang":
        RESTORES.append(dict(seen, outcome="hung"))
        return
    if RESTORE_MODE == "error":
        RESTORES.append(dict(seen, outcome="refused"))
        respond_error(req_id, -32000,
                      "stateful: restore refused on purpose (RESTORE_MODE=error)")
        return
    if schema != SCHEMA:
        RESTORES.append(dict(seen, outcome="other-schema"))
        log("warn", "stateful %s: saved state has schema %d, this version has "
            "schema %d: starting from 0" % (VERSION, schema, SCHEMA))
        respond(req_id, {})
        return
    calls = data.get("calls") if isinstance(data, dict) else None
    if isinstance(calls, bool) or not isinstance(calls, int):
        RESTORES.append(dict(seen, outcome="malformed"))
        respond_error(req_id, -32602, "stateful: restore: data.calls is not an integer")
        return
    CALLS[0] = calls
    RESTORES.append(dict(seen, outcome="restored"))
    respond(req_id, {})


def handle(msg):
    if not isinstance(msg, dict):
        return
    method, params = msg.get("method"), msg.get("params")
    if "id" not in msg:
        if method == "shutdown":
            sys.exit(0)
        return
    req_id = msg["id"]
    if method == "getmanifest":
        if FAIL_START == "hang-getmanifest":
            return
        time.sleep(SLOW_START_MS / 1000.0)
        respond(req_id, manifest())
    elif method == "init":
        if FAIL_START == "hang-init":
            return
        respond(req_id, {})
    elif method == "setconfig":
        respond(req_id, {})
    elif method == "count":
        CALLS[0] += 1
        respond(req_id, {"calls": CALLS[0], "version": VERSION})
    elif method == "stateful-info":
        respond(req_id, {"version": VERSION, "pid": os.getpid(), "schema": SCHEMA,
                         "calls": CALLS[0], "knobs": KNOBS, "saves": SAVES[0],
                         "restores": RESTORES})
    elif method == "autoreload-save-state":
        save(req_id)
    elif method == "autoreload-restore-state":
        restore(req_id, params)
    elif method in KNOWN_HOOKS:
        respond(req_id, {"result": "continue"})
    else:
        respond_error(req_id, -32601, "unknown method %s" % (method,))


WS = re.compile(r"\s*")


def main():
    if FAIL_START == "syntax":
        # Raised here, uncaught: Python prints the SyntaxError and exits 1.
        compile("def broken(:\n", "stateful.py (FAIL_START=syntax)", "exec")
    if FAIL_START == "exit":
        sys.stderr.write("stateful: FAIL_START=exit\n")
        sys.stderr.flush()
        sys.exit(1)
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")
    decoder = json.JSONDecoder()
    buf = ""
    stalled = False  # the buffer holds an incomplete message
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            sys.exit(0)
        text = utf8.decode(chunk)
        buf += text
        # Only a chunk with a '}' can complete a message: a big state
        # arriving in many reads is not parsed again and again.
        if stalled and "}" not in text:
            continue
        stalled = False
        pos = 0
        while True:
            pos = WS.match(buf, pos).end()
            if pos == len(buf):
                break
            if buf[pos] != "{":
                nxt = buf.find("{", pos)
                nxt = len(buf) if nxt < 0 else nxt
                sys.stderr.write("stateful: skipping garbage %r\n" % buf[pos:nxt][:200])
                pos = nxt
                continue
            try:
                msg, pos = decoder.raw_decode(buf, pos)
            except ValueError:
                stalled = True
                break
            handle(msg)
        buf = buf[pos:]

main()
