"""Helpers the method benchmarks share: the commit they ran on and one process per cell."""

from __future__ import annotations

import json
import subprocess
import sys


def head_commit() -> str:
    """The commit the numbers come from (empty outside a git checkout)."""
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip()


def run_cells(script: str, methods: str, adapters: str) -> list[dict]:
    """Run `script --only METHOD ADAPTER` for every method × adapter, each in its own process
    so its peak RSS is its own; a cell prints its row as JSON on its last line."""
    rows = []
    for method in methods.split(","):
        for adapter in adapters.split(","):
            command = [sys.executable, script, "--only", method, adapter, *sys.argv[1:]]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows
