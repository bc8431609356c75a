"""`fedmarket node run`: the federation node daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from node.commands.base import CliError, Subcommands, UsageError, add_command, add_group
from node.config import ConfigError


def register(commands: Subcommands) -> None:
    node = add_group(commands, "node", "run the federation node daemon")
    run = add_command(
        node,
        "run",
        "run a node from its home directory until SIGINT or SIGTERM",
        run_node,
        uses_rpc=False,
        example="fedmarket node run --home .devnet/node-0",
    )
    run.add_argument("--home", metavar="DIR", required=True, type=Path, help="the node's home directory")
    run.add_argument("--observer", action="store_true", help="follow and verify the chain without voting")


def run_node(args: argparse.Namespace) -> None:
    from node import daemon  # trio and libp2p load only for the daemon

    if not args.home.is_dir():
        raise UsageError(f"{args.home} is not a directory (create one with `fedmarket devnet init`)")
    try:
        daemon.main(args.home, args.observer)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot run the node: {exc}") from None
