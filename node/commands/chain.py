"""`fedmarket chain verify`: check a chain from the genesis file alone.

Light (`--rpc`): fetch every block with its certificate over JSON-RPC and check hash links, heights,
timestamps and commit certificates against the genesis validator set. Full (`--home`): re-execute every
block of a data directory from genesis and compare every state root, receipt and index.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.block import Block
from ledger.chain import VerifyReport, verify_chain_full, verify_links_and_certificates
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.votes import Certificate
from node.commands.base import CliError, Subcommands, UsageError, add_command, add_group
from node.commands.output import print_json, print_text, render_fields
from node.commands.rpc_client import connect


def register(commands: Subcommands) -> None:
    chain = add_group(commands, "chain", "verify the chain")
    verify = add_command(
        chain,
        "verify",
        "verify links and certificates over RPC (light) or re-execute a data directory (full)",
        verify_chain,
        example="fedmarket chain verify --genesis .devnet/node-0/genesis.json --rpc http://127.0.0.1:26657",
    )
    verify.add_argument(
        "--genesis", metavar="FILE", type=Path, help="the genesis file (default: HOME/genesis.json)"
    )
    verify.add_argument("--home", metavar="DIR", type=Path, help="a node home: full re-execution of its data")


def _genesis(path: Path) -> Genesis:
    try:
        return Genesis.from_json(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except LedgerError as exc:
        raise UsageError(f"{path}: {exc}") from None


def verify_chain(args: argparse.Namespace) -> None:
    if args.home is not None:
        genesis = _genesis(args.genesis or args.home / "genesis.json")
        data = args.home / "data"
        if not data.is_dir():
            raise UsageError(f"{data} is not a data directory")
        try:
            report = verify_chain_full(data, genesis)
        except LedgerError as exc:
            raise CliError(f"verification failed: {exc}") from None
        _print(args, report, "full")
        return
    if args.genesis is None:
        raise UsageError("give --genesis FILE with --rpc URL, or --home DIR")
    genesis = _genesis(args.genesis)
    client = connect(args)
    head = client.call("chain_head", {})["height"]
    blocks: list[tuple[Block, Certificate]] = []
    for height in range(1, head + 1):
        result = client.call("chain_block", {"height": height})
        certificate = result.get("certificate")
        if certificate is None:
            raise CliError(f"verification failed: block {height} has no certificate")
        try:
            blocks.append(
                (
                    Block.decode(bytes.fromhex(result["encoded"])),
                    Certificate.decode(bytes.fromhex(certificate["encoded"])),
                )
            )
        except (LedgerError, ValueError, KeyError) as exc:
            raise CliError(f"verification failed: block {height} is malformed: {exc}") from None
    try:
        report = verify_links_and_certificates(genesis, blocks)
    except LedgerError as exc:
        raise CliError(f"verification failed: {exc}") from None
    _print(args, report, "light")


def _print(args: argparse.Namespace, report: VerifyReport, mode: str) -> None:
    data = {
        "mode": mode,
        "verified_height": report.height,
        "head_hash": report.head_hash.hex(),
        "transactions": report.transactions,
        "state_root": None if report.state_root is None else report.state_root.hex(),
    }
    if args.json:
        print_json(data)
    else:
        print_text(render_fields(data))
