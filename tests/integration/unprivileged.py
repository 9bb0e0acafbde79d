"""`python -m malabot …` bound by file modes, for tests of folders the operator may not read or write.

Root reads and writes every folder whatever its mode. When the suite runs as root (as in a container),
the command runs as root without the two capabilities that override modes (CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH), via util-linux's `setpriv`; then a folder of mode 0311 cannot be listed and
one of 0555 cannot be written, as for any other user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_OVERRIDES = "-dac_override,-dac_read_search"


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file modes cannot be made to apply")
    return [setpriv, f"--inh-caps={_OVERRIDES}", f"--bounding-set={_OVERRIDES}"]


def run_malabot(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m malabot ARGS` in this checkout, bound by file modes even when run by root."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALABOT_")}
    return subprocess.run([*_prefix(), sys.executable, "-m", "malabot", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
