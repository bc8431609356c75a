"""`fedmarket capacity plan|publish`: consolidate an inventory, then offer the freed capacity.

`plan` prints the action plan (ordered migrations, hosts to disable, efficacy indicators, spare capacity per
class and region after the reserve). `publish` makes the same plan and signs one offer per (class, region)
with spare capacity, each carrying the plan's hash and indicators as its on-chain plan reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ledger.tx import OfferBody, PlanReference, sign_transaction
from node.capacity import (
    STRATEGY_NAMES,
    ActionPlan,
    CapacityError,
    PlanOptions,
    format_plan,
    load_inventory_file,
    make_plan,
    offer_specs,
    parse_reserve,
    plan_to_json,
)
from node.commands import inputs
from node.commands.base import CliError, Subcommands, UsageError, add_command, add_group
from node.commands.output import print_json, print_text, render_records
from node.commands.rpc_client import connect
from node.commands.tx import chain_id_of, next_nonce_of

MAX_PRICES_FILE_BYTES = 64 * 1024


def register(commands: Subcommands) -> None:
    group = add_group(commands, "capacity", "plan consolidation and offer the freed capacity")
    plan = add_command(
        group,
        "plan",
        "make a consolidation plan for an inventory file and show the spare capacity",
        plan_command,
        uses_rpc=False,
        example="fedmarket capacity plan --inventory dc.yaml --strategy exact --reserve 10%",
    )
    _plan_options(plan)
    publish = add_command(
        group,
        "publish",
        "make the plan, then sign and submit one offer per class and region of spare capacity",
        publish_command,
        example="fedmarket capacity publish --inventory dc.yaml --key provider.key --prices prices.yaml "
        "--duration 1d",
    )
    _plan_options(publish)
    publish.add_argument("--key", metavar="F", required=True, type=inputs.key_file, help="provider key file")
    publish.add_argument(
        "--prices",
        metavar="FILE",
        required=True,
        type=Path,
        help="price floors: a JSON or YAML mapping of resource class to micro-credits per unit-hour",
    )
    publish.add_argument(
        "--duration", metavar="D", required=True, type=inputs.duration, help="offer window length"
    )
    publish.add_argument(
        "--from", dest="start", metavar="T", type=inputs.start_time, help="window start (default now)"
    )
    publish.add_argument("--wait", action="store_true", help="wait until the offers commit")


def _plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory", metavar="FILE", required=True, type=Path, help="inventory (JSON or YAML)"
    )
    parser.add_argument("--strategy", choices=STRATEGY_NAMES, default="heuristic", help="planning strategy")
    parser.add_argument(
        "--reserve", metavar="R", default="10%", help="kept back: `10%%` or `vcpus=10%%,gpus=1`"
    )
    parser.add_argument(
        "--max-migrations", metavar="N", type=inputs.integer_in(0, 10**7, "a migration budget"), help="budget"
    )
    parser.add_argument(
        "--time-limit",
        metavar="S",
        type=inputs.integer_in(1, 3600, "seconds"),
        default=60,
        help="exact: seconds",
    )
    parser.add_argument("--regions", metavar="R,R", help="the market's regions (default: the file's own)")


def _make_plan(args: argparse.Namespace) -> ActionPlan:
    try:
        regions = None if args.regions is None else [r for r in args.regions.split(",") if r]
        inventory = load_inventory_file(args.inventory, regions=regions)
        options = PlanOptions(
            max_migrations=args.max_migrations,
            reserve=parse_reserve(args.reserve),
            exact_time_limit_s=float(args.time_limit),
        )
    except CapacityError as exc:
        raise UsageError(str(exc), args.prog) from None
    except OSError as exc:
        raise UsageError(f"cannot read {args.inventory}: {exc.strerror or exc}", args.prog) from None
    last: dict[str, int] = {}

    def progress(phase: str, done: int, total: int) -> None:
        """A live percentage on a terminal; one line per tenth otherwise (logs stay readable)."""
        percent = 100 * done // max(1, total)
        tty = sys.stderr.isatty()
        if tty or percent >= last.get(phase, -10) + 10:
            last[phase] = percent
            end = "\n" if not tty or done >= total else ""
            sys.stderr.write(("\r" if tty else "") + f"{phase}: {percent:3d}%{end}")

    try:
        return make_plan(inventory, args.strategy, options, progress=progress)
    except CapacityError as exc:
        raise CliError(str(exc), args.prog) from None


def plan_command(args: argparse.Namespace) -> None:
    plan = _make_plan(args)
    if args.json:
        print_json(plan_to_json(plan))
    else:
        print_text(format_plan(plan))


def _price_floors(path: Path, prog: str) -> dict[str, int]:
    try:
        text = path.read_bytes()[: MAX_PRICES_FILE_BYTES + 1]
        data: Any = yaml.safe_load(text) if len(text) <= MAX_PRICES_FILE_BYTES else None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}", prog) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not JSON or YAML: {exc}", prog) from None
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path}: expected a mapping of resource class to price (at most 64 KiB)", prog)
    floors = {}
    for name, price in data.items():
        if not isinstance(name, str) or isinstance(price, bool) or not isinstance(price, int) or price < 1:
            raise UsageError(
                f"{path}: {name!r}: a price is a positive integer (micro-credits per unit-hour)", prog
            )
        floors[name] = price
    return floors


def publish_command(args: argparse.Namespace) -> None:
    floors = _price_floors(args.prices, args.prog)
    plan = _make_plan(args)
    start = args.start if args.start is not None else int(time.time())
    try:
        specs = offer_specs(plan, floors, start, start + args.duration)
    except CapacityError as exc:
        raise UsageError(str(exc), args.prog) from None
    if not specs:
        raise CliError("the plan frees no capacity beyond the reserve: nothing to offer", args.prog)
    client = connect(args)
    key = args.key.key
    chain_id = chain_id_of(client)
    nonce = next_nonce_of(client, key.address)
    txs = []
    for spec in specs:
        body = OfferBody(
            spec.resource_class,
            spec.region,
            spec.quantity,
            spec.min_price,
            spec.available_from,
            spec.available_until,
            PlanReference(spec.plan_hash, spec.indicators),
        )
        txs.append(sign_transaction(key, chain_id, nonce + len(txs), body))
    result = client.call(
        "tx_submit", {"txs": [tx.encoded.hex() for tx in txs], "wait": "commit" if args.wait else "none"}
    )
    rows = []
    for spec, tx, outcome in zip(specs, txs, result["results"], strict=True):
        rows.append(
            {
                "order_id": tx.hash.hex(),
                "class": spec.resource_class,
                "region": spec.region,
                "quantity": spec.quantity,
                "min_price": spec.min_price,
                "status": outcome.get("error", {}).get("message")
                if outcome.get("error")
                else outcome.get("status"),
                "height": outcome.get("height"),
            }
        )
    if args.json:
        print_json({"plan_hash": specs[0].plan_hash.hex(), "offers": rows})
    else:
        print_text(f"plan {specs[0].plan_hash.hex()}: {len(rows)} offers")
        print_text(render_records(rows))
    if any(outcome.get("error") for outcome in result["results"]):
        raise CliError("some offers were refused (see the table)", args.prog)
