#!/usr/bin/env python3
CONFIG = {} if "CONFIG" not in globals() else CONFIG  # noqa: F821
"""A configurable Core Lightning test plugin (Python 3 standard library only).

It speaks lightningd v26.06's plugin protocol on stdin/stdout and is meant to be
run as the *child* of cln-autoreload by the end-to-end tests.

How the tests make "a version of the plugin"
--------------------------------------------
Everything after the line ``# --- body ---`` (below) is the *body*. A test writes
a plugin file as::

    #!/usr/bin/env python3
    CONFIG = <config>
    <body>

and makes it executable; changing ``<config>`` makes a new version of the plugin.
``<config>`` is either

* a Python dict literal, or
* a Python ``str`` literal holding the config as JSON text.

Careful: JSON is *not* a Python literal as soon as it contains ``true``,
``false`` or ``null`` (``NameError`` before the body even runs). The safe form
from Rust is the JSON text quoted once more as a JSON string, which is also a
valid Python string literal::

    format!("#!/usr/bin/env python3\\nCONFIG = {}\\n{}",
            serde_json::to_string(&config.to_string())?, body)

For convenience the other obvious recipes work as well: this file minus its
first (shebang) line after a prepended ``CONFIG = ...`` line (the default line
below keeps an earlier definition), or replacing the text ``CONFIG = {}`` of
that default line. Run as is, the plugin uses the defaults. Unknown config keys
are reported on stderr.

CONFIG keys (all optional, defaults in brackets)
------------------------------------------------
version ["v1"]           returned by methods, to tell generations apart
methods_prefix ["tp"]    methods are <prefix>-echo, <prefix>-sleep, ...
options                  manifest options, verbatim [one string option
                         "<prefix>-greeting", default "hi"]
hooks [[]]               manifest hooks, verbatim (strings or objects)
hook_delay_ms [0]        delay before answering a hook {"result":"continue"};
                         a number, or an object {hook name: ms} (missing: 0)
subscriptions [[]]       manifest subscriptions, verbatim
notifications [[]]       declared custom notifications, e.g. [{"method":"x"}]
manifest_extra [{}]      merged (shallow) into the manifest last
crash_at [null]          "start" | "getmanifest" | "init": exit(3) there
print_at_start [null]    string written raw to stdout before anything else
stderr_at_start [null]   string written to stderr at start (first of all)
ignore_shutdown [false]  ignore the shutdown notification and SIGTERM
ignore_eof [=ignore_shutdown]
                         on stdin EOF keep running (sleep) instead of exit(0),
                         so a supervisor really has to SIGKILL the process
init_disable [null]      if a string, answer init with {"disable": it}
hook_result [null]       answer every hook with this result object instead of
                         {"result":"continue"}
hook_error [false]       answer every hook with an error (which makes lightningd
                         abort, unless something in between stops it)
record_stdin [null]      a file to which every byte read from stdin is appended,
                         as read (to compare with lightningd's recorded traces)

Methods (prefix "tp")
---------------------
tp-echo               {"version","pid","params","id"} (params and id as received)
tp-sleep [ms]         sleeps, then {"version","slept":ms}; {"ms":N} or [N]
tp-never              never answers
tp-crash              os._exit(7) without answering
tp-crash-half         writes the first half of its answer to stdout, then
                      os._exit(7)
tp-print [text]       writes text raw to stdout (stray print), then {"printed":true}
tp-big [bytes]        {"data": "x" * bytes}
tp-stderr [text]      writes text + "\\n" to stderr, then {}
tp-log [level] [message]     sends a "log" notification, then {}
tp-notify [method] [payload] sends {"method":method,"params":payload}, then {}
tp-progress           sends a "message" notification with params.id, then {}
tp-error              error {"code":1234,"message":"nope","data":{"x":1}}
tp-state              {"version","pid","init","getmanifest","notifications"
                      (each {"method","params"}), "notifications_raw" (whole
                      messages), "hooks" (each {"method","id","params"}),
                      "setconfig" (params of each), "check" (params of each),
                      "argv","cwd","env" (LIGHTNINGD_* and PWD)}
tp-rpc method [params]  one JSON-RPC call on the init's rpc-file socket
                      (relative to cwd); returns its result, or its error
tp-spawn-grandchild   starts `sleep 1000` (stdin/stdout on /dev/null, same
                      process group) and returns {"pid": its pid}
tp-raw hex [answer]   writes the bytes hex encodes raw to stdout, each "@ID@" in
                      them replaced by this request's id as JSON (so they can
                      hold answers to it: twice, with invalid UTF-8, ...); then
                      answers {"raw": bytes written} unless answer is false
tp-spew bytes [prefix] [then]
                      writes prefix, then bytes x's in 1 MiB writes, no newline;
                      then "answer" (default: {"spewed": bytes}) or "exit"
                      (os._exit(9) without answering)
tp-flood [method] [count]
                      starts a thread sending notifications as fast as it can
                      until it sent count (if given) or tp-flood-stop: "log" (default) {"level":"info",
                      "message":"flood N"}, or method with {"n": N}, or, for
                      "stderr", lines "stderr flood N" on stderr; {"started":true}
tp-close-stdout       closes its stdout and goes on running (never answers)
tp-flood-status       {"sent": notifications sent so far}
tp-flood-stop         stops the flood thread; {"sent": notifications sent}

Other requests: getmanifest, init, setconfig (recorded, answers {}), check
(answers {"checked": params}), any request whose method is a hook name (in the
manifest or a known lightningd hook: recorded, answers {"result":"continue"}),
anything else: error {"code":-32601,"message":"unknown method M"}.
Notifications are recorded; "shutdown" exits 0 unless ignore_shutdown.
Each request runs in its own thread; stdin EOF exits 0 (unless ignore_eof).
"""
# --- body ---
import codecs
import json
import os
import re
import signal
import socket
import sys
import threading
import time

if isinstance(CONFIG, str):  # noqa: F821 (CONFIG is defined above the body)
    CONFIG = json.loads(CONFIG)
CFG = dict(CONFIG)  # noqa: F821

KNOWN_KEYS = {
    "version", "methods_prefix", "options", "hooks", "hook_delay_ms",
    "subscriptions", "notifications", "manifest_extra", "crash_at",
    "print_at_start", "stderr_at_start", "ignore_shutdown", "ignore_eof",
    "init_disable", "hook_error", "hook_result", "record_stdin",
}

VERSION = CFG.get("version", "v1")
PREFIX = CFG.get("methods_prefix", "tp")
IGNORE_SHUTDOWN = bool(CFG.get("ignore_shutdown", False))
IGNORE_EOF = bool(CFG.get("ignore_eof", IGNORE_SHUTDOWN))
CRASH_AT = CFG.get("crash_at")

# Hooks lightningd v26.06 knows: a request with one of these names is a hook
# call even when the manifest did not register it (answering an error to a hook
# would abort lightningd).
KNOWN_HOOKS = {
    "peer_connected", "commitment_revocation", "db_write", "invoice_payment",
    "openchannel", "openchannel2", "openchannel2_changed", "openchannel2_sign",
    "rbf_channel", "htlc_accepted", "rpc_command", "custommsg",
    "onion_message_recv", "onion_message_recv_secret", "recover",
}

STDOUT_LOCK = threading.Lock()
STATE_LOCK = threading.Lock()
STATE = {
    "init": None,
    "getmanifest": None,
    "notifications": [],
    "notifications_raw": [],
    "hooks": [],
    "setconfig": [],
    "check": [],
}
GRANDCHILDREN = []


def write_raw(data):
    """Write bytes to stdout (fd 1), all of them, under the stdout lock."""
    with STDOUT_LOCK:
        try:
            while data:
                n = os.write(1, data)
                data = data[n:]
        except OSError as e:  # BrokenPipe: nobody listens any more
            sys.stderr.write("testplugin: stdout: %s\n" % e)
            os._exit(0)


def send(obj):
    # ensure_ascii=False: lightningd matches a response id byte for byte,
    # so a non-ASCII id must come back as it was sent, not \u-escaped.
    write_raw(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n")


def respond(req_id, result):
    send({"jsonrpc": "2.0", "id": req_id, "result": result})


def respond_error(req_id, error):
    send({"jsonrpc": "2.0", "id": req_id, "error": error})


def exit_now(code):
    # Take the stdout lock so a response being written is not cut in half
    # (but do not wait forever on a reader that stopped reading).
    STDOUT_LOCK.acquire(timeout=2)
    os._exit(code)


def param(params, name, index, default=None):
    """A parameter given by name ({"name": v}) or by position ([v, ...])."""
    if isinstance(params, dict):
        return params.get(name, default)
    if isinstance(params, list) and len(params) > index:
        return params[index]
    return default


def m(name):
    return "%s-%s" % (PREFIX, name)


def manifest():
    def method(name, usage, description):
        return {"name": m(name), "usage": usage, "description": description}

    man = {
        "options": CFG.get("options", [{
            "name": m("greeting"),
            "type": "string",
            "default": "hi",
            "description": "greeting",
        }]),
        "rpcmethods": [
            method("echo", "[params]", "returns its params, id, pid and version"),
            method("sleep", "[ms]", "sleeps ms milliseconds, then answers"),
            method("never", "", "never answers"),
            method("crash", "", "exits with status 7 without answering"),
            method("crash-half", "", "writes half an answer, then exits with status 7"),
            method("print", "[text]", "writes text raw to stdout"),
            method("big", "[bytes]", "returns a string of bytes x's"),
            method("stderr", "[text]", "writes text to stderr"),
            method("log", "[level] [message]", "sends a log notification"),
            method("notify", "[method] [payload]", "sends a custom notification"),
            method("progress", "", "sends a message notification"),
            method("error", "", "answers an error"),
            method("state", "", "returns everything the plugin has received"),
            method("rpc", "method [params]", "calls lightningd over its socket"),
            method("spawn-grandchild", "", "starts a sleep 1000 child process"),
            method("raw", "hex [answer]", "writes raw bytes to stdout"),
            method("spew", "bytes [prefix] [then]", "writes a huge output without a newline"),
            method("flood", "[method] [count]", "starts sending notifications as fast as it can"),
            method("flood-status", "", "how many notifications the flood sent"),
            method("flood-stop", "", "stops the flood"),
            method("close-stdout", "", "closes stdout and goes on running"),
        ],
        "subscriptions": CFG.get("subscriptions", []),
        "hooks": CFG.get("hooks", []),
        "notifications": CFG.get("notifications", []),
    }
    man.update(CFG.get("manifest_extra", {}))
    return man


def hook_names():
    names = set(KNOWN_HOOKS)
    for h in CFG.get("hooks", []) + list(manifest().get("hooks") or []):
        if isinstance(h, str):
            names.add(h)
        elif isinstance(h, dict) and isinstance(h.get("name"), str):
            names.add(h["name"])
    return names


HOOK_NAMES = hook_names()


def hook_delay(name):
    d = CFG.get("hook_delay_ms", 0)
    if isinstance(d, dict):
        d = d.get(name, 0)
    return (d or 0) / 1000.0


# ---- methods -------------------------------------------------------------
# Each takes (id, params) and returns a result, or raises MethodError, or
# returns NO_ANSWER when it answers by itself (or never).

NO_ANSWER = object()


class MethodError(Exception):
    def __init__(self, error):
        Exception.__init__(self, error.get("message"))
        self.error = error


def do_echo(req_id, params):
    return {"version": VERSION, "pid": os.getpid(), "params": params, "id": req_id}


def do_sleep(req_id, params):
    ms = param(params, "ms", 0, 0)
    time.sleep(ms / 1000.0)
    return {"version": VERSION, "slept": ms}


def do_never(req_id, params):
    return NO_ANSWER


def do_crash(req_id, params):
    os._exit(7)


def do_crash_half(req_id, params):
    whole = json.dumps({"jsonrpc": "2.0", "id": req_id,
                        "result": {"version": VERSION, "half": True}}).encode()
    write_raw(whole[: len(whole) // 2])
    os._exit(7)


def do_print(req_id, params):
    text = param(params, "text", 0, "")
    write_raw(text.encode())
    return {"printed": True}


def do_big(req_id, params):
    return {"data": "x" * int(param(params, "bytes", 0, 0))}


def do_stderr(req_id, params):
    sys.stderr.write(str(param(params, "text", 0, "")) + "\n")
    sys.stderr.flush()
    return {}


def do_log(req_id, params):
    send({"jsonrpc": "2.0", "method": "log", "params": {
        "level": param(params, "level", 0, "info"),
        "message": param(params, "message", 1, ""),
    }})
    return {}


def do_notify(req_id, params):
    send({"jsonrpc": "2.0", "method": param(params, "method", 0),
          "params": param(params, "payload", 1, {})})
    return {}


def do_progress(req_id, params):
    send({"jsonrpc": "2.0", "method": "message", "params": {
        "id": req_id, "level": "info", "message": "working"}})
    return {}


def do_error(req_id, params):
    raise MethodError({"code": 1234, "message": "nope", "data": {"x": 1}})


def do_state(req_id, params):
    with STATE_LOCK:
        state = json.loads(json.dumps(STATE))  # a deep copy
    state.update({
        "version": VERSION,
        "pid": os.getpid(),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith("LIGHTNINGD_") or k == "PWD"},
    })
    return state


RPC_COUNTER = [0]


def do_rpc(req_id, params):
    method = param(params, "method", 0)
    call_params = param(params, "params", 1, {})
    with STATE_LOCK:
        init = STATE["init"]
        RPC_COUNTER[0] += 1
        n = RPC_COUNTER[0]
    if not init:
        raise MethodError({"code": -32000, "message": "tp-rpc: no init yet"})
    path = init.get("configuration", {}).get("rpc-file", "lightning-rpc")
    request = {"jsonrpc": "2.0", "id": "%s:rpc#%d" % (m("rpc"), n),
               "method": method, "params": call_params}
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode())
        decoder = json.JSONDecoder()
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("connection closed before a response")
            buf += chunk
            try:
                resp, _ = decoder.raw_decode(buf.decode().lstrip())
                break
            except ValueError:  # incomplete (JSON or UTF-8)
                continue
        sock.close()
    except OSError as e:
        raise MethodError({"code": -32000, "message": "tp-rpc: %s: %s" % (path, e)})
    if "error" in resp:
        raise MethodError(resp["error"])
    return resp.get("result")


def do_raw(req_id, params):
    data = bytes.fromhex(param(params, "hex", 0, ""))
    data = data.replace(b"@ID@", json.dumps(req_id, ensure_ascii=False).encode())
    write_raw(data)
    if param(params, "answer", 1, True) is False:
        return NO_ANSWER
    return {"raw": len(data)}


def do_spew(req_id, params):
    left = int(param(params, "bytes", 0, 0))
    write_raw(str(param(params, "prefix", 1, "")).encode())
    chunk = b"x" * (1 << 20)
    while left > 0:
        write_raw(chunk[:left])
        left -= len(chunk)
    if param(params, "then", 2, "answer") == "exit":
        exit_now(9)
    return {"spewed": int(param(params, "bytes", 0, 0))}


FLOOD = {"sent": 0, "stop": threading.Event(), "thread": None}


def flood(method, count):
    n = 0
    while not FLOOD["stop"].is_set() and (count is None or n < count):
        batch = []
        for _ in range(100 if count is None else min(100, count - n)):
            if method == "log":
                msg = {"jsonrpc": "2.0", "method": "log",
                       "params": {"level": "info", "message": "flood %d" % n}}
            else:
                msg = {"jsonrpc": "2.0", "method": method, "params": {"n": n}}
            if method == "stderr":
                batch.append(b"stderr flood %d\n" % n)
            else:
                batch.append(json.dumps(msg, separators=(",", ":")).encode() + b"\n\n")
            n += 1
        if method == "stderr":
            os.write(2, b"".join(batch))
        else:
            write_raw(b"".join(batch))
        FLOOD["sent"] = n
        # Python's locks are not fair: without a pause with the stdout lock
        # released, the answers of other requests would starve.
        time.sleep(0.0002)


def do_flood(req_id, params):
    FLOOD["stop"].clear()
    FLOOD["sent"] = 0
    args = (param(params, "method", 0, "log"), param(params, "count", 1))
    t = threading.Thread(target=flood, args=args, daemon=True)
    FLOOD["thread"] = t
    t.start()
    return {"started": True}


def do_close_stdout(req_id, params):
    with STDOUT_LOCK:
        os.close(1)
    return NO_ANSWER


def do_flood_status(req_id, params):
    return {"sent": FLOOD["sent"]}


def do_flood_stop(req_id, params):
    FLOOD["stop"].set()
    if FLOOD["thread"] is not None:
        FLOOD["thread"].join()
    return {"sent": FLOOD["sent"]}


def do_spawn_grandchild(req_id, params):
    # posix_spawn rather than subprocess so that SIGTERM (ignored by us when
    # ignore_shutdown) and SIGPIPE (ignored by Python) are back to default in
    # the grandchild. It stays in our process group; stdout must not be our
    # stdout pipe, or it would hide our death from the reader.
    pid = os.posix_spawnp("sleep", ["sleep", "1000"], dict(os.environ), file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
    ], setsigdef=(signal.SIGTERM, signal.SIGPIPE))
    GRANDCHILDREN.append(pid)
    # Reap it if it dies before us, so it does not linger as a zombie.
    threading.Thread(target=os.waitpid, args=(pid, 0), daemon=True).start()
    return {"pid": pid}


METHODS = {m(name): fn for name, fn in [
    ("echo", do_echo), ("sleep", do_sleep), ("never", do_never),
    ("crash", do_crash), ("crash-half", do_crash_half), ("print", do_print), ("big", do_big),
    ("stderr", do_stderr), ("log", do_log), ("notify", do_notify),
    ("progress", do_progress), ("error", do_error), ("state", do_state),
    ("rpc", do_rpc), ("spawn-grandchild", do_spawn_grandchild),
    ("raw", do_raw), ("spew", do_spew), ("flood", do_flood),
    ("flood-status", do_flood_status), ("flood-stop", do_flood_stop),
    ("close-stdout", do_close_stdout),
]}


def run_method(method, fn, req_id, params):
    try:
        result = fn(req_id, params)
    except MethodError as e:
        respond_error(req_id, e.error)
        return
    except Exception as e:  # bad params and the like
        respond_error(req_id, {"code": -32602, "message": "%s: %s: %s" % (
            method, type(e).__name__, e)})
        return
    if result is not NO_ANSWER:
        respond(req_id, result)


def run_hook(req_id, method):
    time.sleep(hook_delay(method))
    if CFG.get("hook_error"):
        respond_error(req_id, {"code": 1, "message": "hook failed on purpose"})
    else:
        respond(req_id, CFG.get("hook_result") or {"result": "continue"})


def spawn(target, *args):
    threading.Thread(target=target, args=args, daemon=True).start()


# ---- dispatch ------------------------------------------------------------

def handle(msg):
    if not isinstance(msg, dict):
        sys.stderr.write("testplugin: ignoring non-object %r\n" % (msg,))
        return
    method = msg.get("method")
    params = msg.get("params")
    if "id" not in msg:
        with STATE_LOCK:
            STATE["notifications"].append({"method": method, "params": params})
            STATE["notifications_raw"].append(msg)
        if method == "shutdown" and not IGNORE_SHUTDOWN:
            exit_now(0)
        return
    req_id = msg["id"]
    if method == "getmanifest":
        if CRASH_AT == "getmanifest":
            exit_now(3)
        with STATE_LOCK:
            STATE["getmanifest"] = params
        respond(req_id, manifest())
    elif method == "init":
        if CRASH_AT == "init":
            exit_now(3)
        with STATE_LOCK:
            STATE["init"] = params
        disable = CFG.get("init_disable")
        respond(req_id, {"disable": disable} if isinstance(disable, str) else {})
    elif method == "setconfig":
        with STATE_LOCK:
            STATE["setconfig"].append(params)
        respond(req_id, {})
    elif method == "check":
        with STATE_LOCK:
            STATE["check"].append(params)
        respond(req_id, {"checked": params})
    elif method in METHODS:
        spawn(run_method, method, METHODS[method], req_id, params)
    elif method in HOOK_NAMES:
        with STATE_LOCK:
            STATE["hooks"].append({"method": method, "id": req_id, "params": params})
        spawn(run_hook, req_id, method)
    else:
        respond_error(req_id, {"code": -32601, "message": "unknown method %s" % (method,)})


WS = re.compile(r"\s*")


def main():
    unknown = sorted(set(CFG) - KNOWN_KEYS)
    if unknown:
        sys.stderr.write("testplugin: unknown CONFIG keys %s\n" % unknown)
    if CFG.get("stderr_at_start") is not None:
        sys.stderr.write(CFG["stderr_at_start"])
        sys.stderr.flush()
    if CFG.get("print_at_start") is not None:
        write_raw(CFG["print_at_start"].encode())
    if CRASH_AT == "start":
        exit_now(3)
    if IGNORE_SHUTDOWN:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    record = None
    if CFG.get("record_stdin"):
        record = open(CFG["record_stdin"], "ab", buffering=0)
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")
    decoder = json.JSONDecoder()
    buf = ""
    stalled = False  # the buffer holds an incomplete message
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        if record is not None:
            record.write(chunk)
        text = utf8.decode(chunk)
        buf += text
        # A message can only have been completed by a chunk holding a '}':
        # this keeps a huge message arriving in many reads from being parsed
        # again and again.
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
                sys.stderr.write("testplugin: skipping garbage %r\n" % buf[pos:nxt])
                pos = nxt
                continue
            try:
                msg, pos = decoder.raw_decode(buf, pos)
            except ValueError:
                stalled = True
                break
            handle(msg)
        buf = buf[pos:]

    # stdin EOF
    if IGNORE_EOF:
        while True:
            time.sleep(3600)
    exit_now(0)


main()
