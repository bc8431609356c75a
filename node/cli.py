"""The `fedmarket` command line: a thin dispatcher over the command groups in `node/commands/`.

Theory: each group module (`node/commands/<name>.py`) declares its commands with `register(commands)`; this
file only builds the parser from the list below, runs the chosen command, and is the one place where failures
turn into one line on stderr and an exit code (see `node.commands.base.ExitCode`). No traceback reaches the
user unless `--debug` is given. To add a group, write its module and add its name to `COMMAND_GROUPS`.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from ledger.errors import LedgerError
from node.commands.base import PROGRAM, CliError, CommandParser, ExitCode

COMMAND_GROUPS: tuple[str, ...] = ("keys", "tx", "query", "lease", "chain", "node", "devnet", "capacity")


@functools.cache
def build_parser() -> CommandParser:
    """The whole command tree (built once per process: parsing leaves it unchanged)."""
    parser = CommandParser(
        prog=PROGRAM,
        description="fedmarket: a federated marketplace for spare datacenter capacity",
        epilog="run `fedmarket COMMAND --help` for the options of a command; exit codes: 0 ok, 1 runtime "
        "error, 2 usage error, 3 transaction committed but failed, 130 interrupted",
    )
    commands = parser.add_subparsers(title="command groups", dest="group", metavar="GROUP", required=True)
    for name in COMMAND_GROUPS:
        importlib.import_module(f"node.commands.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    prog = PROGRAM
    try:
        args = build_parser().parse_args(arguments)
        prog = args.prog
        args.handler(args)
    except SystemExit as exit_request:  # --help
        return exit_request.code if isinstance(exit_request.code, int) else ExitCode.OK
    except CliError as exc:
        _flush_stdout()
        _report(exc.line(prog), debug)
        return exc.exit_code
    except LedgerError as exc:
        _report(f"{prog}: error: {exc}", debug)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        _report(f"{prog}: interrupted", debug)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`| head`): not an error
        _silence_stdout()
        return ExitCode.OK
    except Exception as exc:
        _report(f"{prog}: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", debug)
        return ExitCode.RUNTIME
    return _flush_stdout()


def _report(line: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    sys.stderr.write(" ".join(line.split()) + "\n")


def _flush_stdout() -> int:
    """Flush stdout now, so a closed pipe (`| head`) is noticed here and is not an error."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return ExitCode.OK


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        return


if __name__ == "__main__":
    sys.exit(main())
