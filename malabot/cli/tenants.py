"""CLI group: placeholder until its issue lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(groups: Any) -> None:
    """Add this group's sub-commands to the top-level parser."""
    del groups
