"""Tests for {{name}}.py, without a node: each runs the plugin under
`cln-autoreload dev`, which plays lightningd, and calls its method.

    pip install pytest
    python3 -m pytest

cln-autoreload is taken from CLN_AUTORELOAD, or else from PATH.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parent / "{{name}}.py"


def dev(*calls, opts=()):
    """Runs the plugin under `cln-autoreload dev` and makes `calls`, each
    [METHOD, PARAM...]; returns their results."""
    host = os.environ.get("CLN_AUTORELOAD") or shutil.which("cln-autoreload")
    if not host:
        pytest.fail("cln-autoreload not found: put it on PATH, or set "
                    "CLN_AUTORELOAD=/path/to/cln-autoreload")
    args = [host, "dev", str(PLUGIN)]
    for opt in opts:
        args += ["--opt", opt]
    for call in calls:
        args += ["--call", *call]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return [json.loads(line) for line in run.stdout.splitlines() if line]


def test_hello_greets_and_counts():
    alice, world = dev(["{{name}}-hello", "Alice"], ["{{name}}-hello"])
    assert alice["greeting"] == "Hello, Alice!"
    assert world["greeting"] == "Hello, world!"
    assert world["calls"] == alice["calls"] + 1


def test_the_greeting_option():
    (bob,) = dev(["{{name}}-hello", "Bob"], opts=["{{name}}-greeting=Hi"])
    assert bob["greeting"] == "Hi, Bob!"
