"""The split's worker processes: when the main process is killed, they stop instead of hanging on
with the tenants lock they inherited."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from malabot.errors import TenantsLocked
from malabot.legacy.workers import in_workers
from malabot.tenancy.lock import TenantsLock

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# A parent holding the lock, two workers sending results faster than anyone reads them (the parent
# sleeps): the pipes fill up and the workers block in send, as when the real main process is killed.
PARENT = """
import sys, time
from pathlib import Path
from malabot.legacy.workers import in_workers
from malabot.tenancy.lock import TenantsLock

def work(job):
    return "x" * 65536

with TenantsLock(Path(sys.argv[1]), "test split"):
    results = in_workers(list(range(10_000)), work, 2)
    next(results)
    print("started", flush=True)
    time.sleep(600)
"""


def test_killing_the_parent_frees_the_lock(tmp_path: Path) -> None:
    lock_file = tmp_path / ".malabot.lock"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(lock_file)], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "started"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while True:  # bounded wait for the workers to notice, not a timing assertion
            try:
                TenantsLock(lock_file, "next run").acquire()
                break
            except TenantsLocked:
                assert time.monotonic() < deadline, "the orphaned workers still hold the lock"
                time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_results_come_back_from_every_worker() -> None:
    assert sorted(in_workers(list(range(50)), lambda job: job * job, 3)) == [n * n for n in range(50)]
