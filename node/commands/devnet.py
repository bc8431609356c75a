"""`fedmarket devnet`: a local federation on 127.0.0.1 (init, up, down, status, demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from node import devnet
from node.commands import inputs
from node.commands.base import CliError, Subcommands, add_command, add_group
from node.commands.output import print_json, print_text, render_records
from node.commands.rpc_client import RpcClient, RpcError

DEFAULT_DIR = Path(".devnet")


def register(commands: Subcommands) -> None:
    group = add_group(commands, "devnet", "a local federation on 127.0.0.1")
    init = add_command(
        group,
        "init",
        "create a devnet: keys, genesis, configs",
        init_devnet,
        uses_rpc=False,
        example="fedmarket devnet init --nodes 4",
    )
    init.add_argument("--nodes", type=inputs.integer_in(4, 64, "a member count (4 to 64)"), default=4)
    for name, handler, summary in (
        ("up", up_devnet, "start every node that is not running"),
        ("down", down_devnet, "stop every node"),
        ("status", status_devnet, "height, view and peers of every node"),
        ("demo", demo_devnet, "play a market round on the running devnet, step by step"),
    ):
        parser = add_command(
            group, name, summary, handler, uses_rpc=False, example=f"fedmarket devnet {name}"
        )
        _dir(parser)
    _dir(init)


def _dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", metavar="D", type=Path, default=DEFAULT_DIR, help="devnet directory (default .devnet)"
    )


def init_devnet(args: argparse.Namespace) -> None:
    try:
        document = devnet.init(args.dir, args.nodes)
    except devnet.DevnetError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json(document)
        return
    print_text(f"devnet of {args.nodes} members created in {args.dir}")
    print_text(render_records(document["nodes"], ("name", "home", "rpc_url")))


def up_devnet(args: argparse.Namespace) -> None:
    try:
        document = devnet.up(args.dir)
    except devnet.DevnetError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json(document["nodes"])
        return
    print_text(render_records(document["nodes"], ("name", "pid", "rpc_url")))


def down_devnet(args: argparse.Namespace) -> None:
    try:
        stopped = devnet.down(args.dir)
    except devnet.DevnetError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json({"stopped": stopped})
    else:
        print_text(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def status_devnet(args: argparse.Namespace) -> None:
    try:
        document = devnet.load(args.dir)
    except devnet.DevnetError as exc:
        raise CliError(str(exc)) from None
    rows = []
    for node in document["nodes"]:
        row = {"name": node["name"], "pid": node.get("pid"), "running": devnet.alive(node.get("pid"))}
        try:
            status = RpcClient(node["rpc_url"], timeout=3.0).call("node_status")
            row |= {
                "height": status["height"],
                "view": status["view"],
                "peers": status["peers"],
                "mempool": status["mempool_size"],
            }
        except RpcError as exc:
            row |= {"error": exc.message}
        rows.append(row)
    if args.json:
        print_json(rows)
    else:
        print_text(render_records(rows))


def demo_devnet(args: argparse.Namespace) -> None:
    from node.demo import run_demo

    try:
        run_demo(args.dir)
    except devnet.DevnetError as exc:
        raise CliError(str(exc)) from None
