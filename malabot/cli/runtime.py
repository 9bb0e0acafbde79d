"""CLI group: `malabot run` (the bot) and `malabot sandbox` (the offline demo)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from malabot.errors import MalabotError


def register(groups: Any) -> None:
    run = groups.add_parser("run", help="connect to Discord with MALABOT_TOKEN and serve every server")
    run.set_defaults(handler=run_command)

    sandbox = groups.add_parser(
        "sandbox", help="offline demo: a local Discord-compatible server, the real bot and a scripted day")
    sandbox.add_argument("--interactive", action="store_true",
                         help="after the script, type chat lines and /commands as a demo member")
    sandbox.add_argument("--tenants-dir", help="where the demo leaves its server files (default: MALABOT_TENANTS_DIR); "
                         "a folder with real servers' files is refused")
    sandbox.set_defaults(handler=sandbox_command)


def run_command(args: argparse.Namespace) -> int:
    from malabot.runtime import load_settings, serve

    settings = load_settings()
    problem = settings.token_problem()
    if problem is not None:
        raise MalabotError(f"{problem}; `malabot sandbox` runs offline without one")
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))
    return 0


def sandbox_command(args: argparse.Namespace) -> int:
    from malabot.sandbox.demo import run_demo

    return run_demo(tenants_dir=args.tenants_dir, interactive=args.interactive)
