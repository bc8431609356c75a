"""`fedmarket keys`: make and show ed25519 key files.

Theory: a key file holds the seed, so it is created with mode 0600 from the start (never written first and
restricted after) and never replaces an existing file unless asked: losing a funded key is worse than an
error. Randomness comes from the OS (`os.urandom`), here in the node, never in the ledger.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path
from typing import Any

from ledger.keys import SEED_BYTES, PrivateKey
from node.commands import inputs
from node.commands.base import CliError, Subcommands, UsageError, add_command, add_group
from node.commands.output import print_json, print_text, render_fields

KEY_FILE_MODE = 0o600


def register(commands: Subcommands) -> None:
    keys = add_group(commands, "keys", "make and show key files")
    new = add_command(
        keys,
        "new",
        "make a new key file (mode 0600) and print its address",
        new_key,
        uses_rpc=False,
        example="fedmarket keys new --out alice.key",
    )
    new.add_argument("--out", metavar="FILE", required=True, type=inputs.new_file, help="key file to write")
    new.add_argument("--force", action="store_true", help="replace FILE if it exists")
    show = add_command(
        keys,
        "show",
        "show a key file's address, public key and access key",
        show_key,
        uses_rpc=False,
        example="fedmarket keys show alice.key --json",
    )
    show.add_argument("file", metavar="FILE", type=inputs.key_file, help="key file to read")


def write_key_file(path: Path, key: PrivateKey, *, force: bool) -> None:
    """Write `key` to `path` with mode 0600; an existing file is replaced (atomically) only if `force`."""
    text = (key.to_key_file() + "\n").encode()
    if not force:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        except FileExistsError:
            raise UsageError(f"{path} exists; pass --force to replace it") from None
        except OSError as exc:
            raise CliError(f"cannot create {path}: {exc.strerror or exc}") from None
        try:
            _write_all(descriptor, text)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        _write_all(descriptor, text)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_all(descriptor: int, data: bytes) -> None:
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def key_summary(key: PrivateKey) -> dict[str, Any]:
    return {
        "address": key.address,
        "public_key": key.public.raw.hex(),
        "access_key": key.public.x25519().hex(),
    }


def new_key(args: argparse.Namespace) -> None:
    key = PrivateKey(os.urandom(SEED_BYTES))
    write_key_file(args.out, key, force=args.force)
    if args.json:
        print_json({"file": str(args.out), **key_summary(key)})
    else:
        print_text(key.address)


def show_key(args: argparse.Namespace) -> None:
    key_file: inputs.KeyFile = args.file
    mode = stat.S_IMODE(os.stat(key_file.path).st_mode)
    if mode & 0o077:
        sys.stderr.write(f"warning: key file {key_file.path} is readable by others (mode {mode:04o})\n")
    summary = key_summary(key_file.key)
    if args.json:
        print_json({"file": key_file.path, **summary})
    else:
        print_text(render_fields(summary))
