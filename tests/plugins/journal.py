#!/usr/bin/env python3
"""A pyln-client plugin that journals lightningd's database the way the
community `backup` plugin does, for cln-autoreload's tests.

It reads the last data_version kept in $JOURNAL_DIR/journal.jsonl when it
starts (in `init`, or at the first `db_write` if that comes before init, as
on a fresh node), keeps it in memory, and appends every `db_write` to the
file (one `{"data_version", "writes"}` per line, flushed before it
answers). Its first write is checked as `backup`'s `check_first_write`
checks it:

- data_version is the kept one + 1: it continues the journal;
- data_version is the kept one: lightningd sends again the write a process
  died with before answering: it is rewound (the last line replaced);
- anything else: the journal is behind lightningd (or ahead): `backup`
  shuts lightningd down; this plugin appends the reason to
  $JOURNAL_DIR/violations and answers the hook with an error, which makes
  lightningd abort.

A version that read the journal while another one was still appending to
it (its init running beside the old version) fails that check on its
first write.

VERSION (the line after the shebang) is answered by `journal-version`.
"""
VERSION = "v1"
import json
import os

from pyln.client import Plugin

plugin = Plugin()
DIR = os.environ["JOURNAL_DIR"]
JOURNAL = os.path.join(DIR, "journal.jsonl")
VIOLATIONS = os.path.join(DIR, "violations")


class Journal:
    def __init__(self):
        self.lines = None  # read from the file: the kept writes
        self.checked = False

    def load(self):
        self.lines = []
        try:
            with open(JOURNAL) as f:
                self.lines = [line for line in f if line.strip()]
        except FileNotFoundError:
            pass

    def version(self):
        return json.loads(self.lines[-1])["data_version"] if self.lines else 0

    def write_all(self):
        tmp = JOURNAL + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(self.lines)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, JOURNAL)


journal = Journal()


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    journal.load()
    plugin.log("journal at version {}".format(journal.version()))


@plugin.hook("db_write")
def on_db_write(writes, data_version, plugin, **kwargs):
    if journal.lines is None:
        journal.load()
    line = json.dumps({"data_version": data_version, "writes": writes}) + "\n"
    if not journal.checked:
        kept = journal.version()
        if kept == data_version:
            journal.lines.pop()
        elif kept != data_version - 1 and not (kept == 0 and not journal.lines):
            why = "journal at version {} but the first write is {}".format(kept, data_version)
            with open(VIOLATIONS, "a") as f:
                f.write(why + "\n")
            raise ValueError("Backup is out of date, we cannot continue safely: " + why)
        journal.checked = True
        journal.lines.append(line)
        journal.write_all()
    else:
        journal.lines.append(line)
        with open(JOURNAL, "a") as f:
            f.write(line)
            f.flush()
    return {"result": "continue"}


@plugin.method("journal-version")
def journal_version(plugin):
    return {"version": VERSION, "data_version": journal.version(), "pid": os.getpid()}


plugin.run()
