#!/usr/bin/env python3
"""A plugin that mirrors lightningd's database the way the community
`backup` plugin does (stdlib only), for cln-autoreload's tests.

Every `db_write` is appended to $DBMIRROR_DIR/mirror.jsonl (one
`{"data_version", "writes"}` per line, flushed before the answer), checked
the way `backup` checks it:

- the first write a process sees continues the mirror: its data_version is
  the last one kept or the next (lightningd repeats data_versions: the
  traced schema writes go 1, 1, 2, 2, 3, ...); a write identical to the
  last one kept is the one a process died with before answering, delivered
  again: `backup` rewinds it and applies it anew, so it is kept once;
- every later write likewise, but it may not repeat the last one.

Anything else is a violation: appended to $DBMIRROR_DIR/violations (the
test fails on it; `backup` would kill lightningd).

Faults: when $DBMIRROR_DIR/crash-next exists, the next db_write removes it
and, if it says `after`, keeps the write first; then the process exits
without answering.
"""
import json
import os

DIR = os.environ["DBMIRROR_DIR"]
MIRROR = os.path.join(DIR, "mirror.jsonl")
VIOLATIONS = os.path.join(DIR, "violations")
CRASH = os.path.join(DIR, "crash-next")

MANIFEST = {
    "options": [],
    "rpcmethods": [],
    "hooks": [{"name": "db_write"}],
    "subscriptions": [],
    "dynamic": True,
    "nonnumericids": True,
}


def send(obj):
    b = json.dumps(obj).encode() + b"\n\n"
    while b:
        b = b[os.write(1, b):]


def last_kept():
    last = None
    try:
        with open(MIRROR) as f:
            for line in f:
                if line.strip():
                    last = json.loads(line)
    except FileNotFoundError:
        pass
    return last


class Mirror:
    def __init__(self):
        self.last = last_kept()
        self.first = True

    def violation(self, why):
        with open(VIOLATIONS, "a") as f:
            f.write(why + "\n")

    def keep(self, entry):
        with open(MIRROR, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.last = entry

    def write(self, entry):
        crash = None
        try:
            with open(CRASH) as f:
                crash = f.read().strip()
            os.unlink(CRASH)
        except FileNotFoundError:
            pass
        if crash == "before":
            os._exit(3)
        first, self.first = self.first, False
        last = self.last
        if last is None:
            if entry["data_version"] != 1:
                self.violation("a fresh mirror began at %r" % entry["data_version"])
            self.keep(entry)
        elif entry == last:
            if not first:
                self.violation("delivered twice to one process: %r" % entry["data_version"])
        elif entry["data_version"] in (last["data_version"], last["data_version"] + 1):
            self.keep(entry)
        else:
            self.violation("data_version %r after %r" % (entry["data_version"], last["data_version"]))
            self.keep(entry)
        if crash == "after":
            os._exit(3)


def main():
    mirror = Mirror()
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
                send({"jsonrpc": "2.0", "id": rid, "result": {}})
            elif method == "db_write":
                p = msg["params"]
                mirror.write({"data_version": p["data_version"], "writes": p["writes"]})
                send({"jsonrpc": "2.0", "id": rid, "result": {"result": "continue"}})
            else:
                send({"jsonrpc": "2.0", "id": rid,
                      "error": {"code": -32601, "message": "unknown method " + str(method)}})


if __name__ == "__main__":
    main()
