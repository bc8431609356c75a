"""What every command shares: error types and exit codes, the parser, and how a command is declared.

Theory: the CLI is a thin shell over the node's JSON-RPC, used by people and by scripts. Scripts need stable
exit codes and one-line errors on stderr; people need `--help` everywhere and no tracebacks. So every failure
is a `CliError` carrying its exit code, argparse's own errors become `UsageError` (never a usage dump), and
one top-level handler in `node/cli.py` prints the single line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from enum import IntEnum
from typing import Any, NoReturn, TypeAlias

from node.config import DEFAULT_RPC_PORT

PROGRAM = "fedmarket"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RPC_URL = f"http://127.0.0.1:{DEFAULT_RPC_PORT}"


class ExitCode(IntEnum):
    OK = 0
    RUNTIME = 1  # the node is unreachable or answered an error, a file could not be written, ...
    USAGE = 2  # a bad option or argument, or an unusable input file named on the command line
    TX_FAILED = 3  # with --wait: the transaction committed but its receipt reports a failure
    INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """A failure reported to the user as one line on stderr, then exit with `exit_code`."""

    exit_code: ExitCode = ExitCode.RUNTIME

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog

    def line(self, default_prog: str = PROGRAM) -> str:
        """The one line printed on stderr (newlines in the message are folded)."""
        text = " ".join(self.message.split())
        return f"{self.prog or default_prog}: error: {text}"


class UsageError(CliError):
    """The command line, or an input file it names, is wrong; nothing was sent anywhere."""

    exit_code = ExitCode.USAGE


class TxFailed(CliError):
    """A transaction committed with a failure receipt."""

    exit_code = ExitCode.TX_FAILED


Handler: TypeAlias = Callable[[argparse.Namespace], None]


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise `UsageError` (one line) instead of printing usage and exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # option names are a contract: no prefix guessing
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)", self.prog)


Subcommands: TypeAlias = "argparse._SubParsersAction[CommandParser]"


def add_group(commands: Subcommands, name: str, summary: str) -> Subcommands:
    """A command group (`fedmarket NAME ...`); returns where its subcommands are added."""
    group = commands.add_parser(name, help=summary, description=summary)
    return group.add_subparsers(title="commands", dest=f"{name}_command", metavar="COMMAND", required=True)


def add_command(
    commands: Subcommands,
    name: str,
    summary: str,
    handler: Handler,
    *,
    uses_rpc: bool = True,
    example: str = "",
) -> CommandParser:
    """A command with the shared options (`--json`, `--debug`, and `--rpc`/`--timeout` if it talks to a node).

    The handler receives the parsed namespace; it prints its result or raises `CliError`.
    """
    epilog = f"example:\n  {example}" if example else None
    parser = commands.add_parser(name, help=summary, description=summary, epilog=epilog)
    shared = parser.add_argument_group("shared options")
    shared.add_argument("--json", action="store_true", help="print the result as JSON")
    shared.add_argument("--debug", action="store_true", help="show a traceback on an internal error")
    if uses_rpc:
        shared.add_argument(
            "--rpc",
            metavar="URL",
            type=rpc_url,
            help="the node's JSON-RPC URL (default: $FEDMARKET_RPC, else the first node of "
            f".devnet/devnet.json, else {DEFAULT_RPC_URL})",
        )
        shared.add_argument(
            "--timeout",
            metavar="SECONDS",
            type=timeout_seconds,
            default=DEFAULT_TIMEOUT_S,
            help=f"give up on the node after this long (default {DEFAULT_TIMEOUT_S:g})",
        )
    parser.set_defaults(handler=handler, prog=parser.prog)
    return parser


def rpc_url(text: str) -> str:
    if not (text.startswith("http://") or text.startswith("https://")) or len(text) > 2048:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    if not text.split("://", 1)[1].split("/", 1)[0]:
        raise argparse.ArgumentTypeError(f"{text!r} names no host")
    return text


def timeout_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 3600 seconds")
    return value
