"""`fedmarket lease access`: the buyer opens the access grant of a lease; and the sealing both sides use.

Theory: a grant is the provider's credentials sealed (`nacl.public.SealedBox`: an ephemeral X25519 key and an
authenticated cipher) to the lease's access key, the X25519 key the buyer named in the bid (by default derived
from the buyer's ed25519 key). The chain stores only the sealed bytes, proving that access was given without
revealing it; only the holder of the matching private key can open them, and any tampering fails the open.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.public

from ledger.keys import PrivateKey
from ledger.leases import LIVE_STATUSES, LeaseStatus
from node.commands import inputs
from node.commands.base import CliError, Subcommands, UsageError, add_command, add_group
from node.commands.keys import KEY_FILE_MODE
from node.commands.output import print_json
from node.commands.rpc_client import connect

REVOKED_STATUSES = frozenset(status.name for status in LeaseStatus if status not in LIVE_STATUSES)


def register(commands: Subcommands) -> None:
    lease = add_group(commands, "lease", "use leases")
    access = add_command(
        lease,
        "access",
        "open the sealed access grant of a lease (buyer)",
        open_access,
        example="fedmarket lease access --key alice.key --lease ID --out access.txt",
    )
    access.add_argument(
        "--key", metavar="F", type=inputs.key_file, required=True, help="the buyer's key file"
    )
    access.add_argument(
        "--lease", metavar="ID", type=inputs.lease_id, required=True, help="lease id (64 hex)"
    )
    access.add_argument(
        "--out",
        metavar="FILE",
        type=inputs.new_file,
        help="write the credentials here (mode 0600) not to stdout",
    )
    access.add_argument("--force", action="store_true", help="replace --out FILE if it exists")


def seal_credentials(access_key: bytes, credentials: bytes) -> bytes:
    """`credentials` sealed to the X25519 public key `access_key` (anyone can seal; one key can open)."""
    return bytes(nacl.public.SealedBox(nacl.public.PublicKey(access_key)).encrypt(credentials))


def open_grant(key: PrivateKey, sealed: bytes) -> bytes:
    """The credentials in `sealed`; raises `CliError` if `key` cannot open them (another key, or tampered)."""
    try:
        return bytes(nacl.public.SealedBox(key.x25519_private()).decrypt(sealed))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise CliError(f"key {key.address} cannot open this grant: it is sealed to another key") from None


def open_access(args: argparse.Namespace) -> None:
    key: PrivateKey = args.key.key
    lease_hex = args.lease.hex()
    if args.out is not None and args.out.exists() and not args.force:
        raise UsageError(f"{args.out} exists; pass --force to replace it", args.prog)
    lease = connect(args).call("lease_get", {"id": lease_hex})
    if not isinstance(lease, dict):
        raise CliError(f"node answered lease_get for {lease_hex} with an unexpected result")
    sealed_hex = lease.get("sealed_grant")
    if not sealed_hex:
        raise CliError(f"lease {lease_hex} has no access grant yet (status {lease.get('status')})")
    if lease.get("access_key") != key.public.x25519().hex():
        raise CliError(
            f"lease {lease_hex} is sealed to access key {lease.get('access_key')}, not to {key.address}"
        )
    try:
        sealed = bytes.fromhex(sealed_hex)
    except (TypeError, ValueError):
        raise CliError(f"node answered lease_get for {lease_hex} with a grant that is not hex") from None
    credentials = open_grant(key, sealed)
    if str(lease.get("status")).upper() in REVOKED_STATUSES:
        sys.stderr.write(f"warning: access to lease {lease_hex} was revoked (status {lease['status']})\n")
    if args.out is not None:
        _write_private(args.out, credentials, force=args.force)
    if args.json:
        print_json({"lease_id": lease_hex, "status": lease.get("status"), **_credentials_json(credentials)})
    elif args.out is None:
        sys.stdout.buffer.write(credentials)
        sys.stdout.flush()


def _credentials_json(credentials: bytes) -> dict[str, Any]:
    try:
        return {"credentials": credentials.decode("utf-8")}
    except UnicodeDecodeError:
        return {"credentials_base64": base64.b64encode(credentials).decode()}


def _write_private(path: Path, data: bytes, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, KEY_FILE_MODE)
    except FileExistsError:
        raise UsageError(f"{path} exists; pass --force to replace it") from None
    except OSError as exc:
        raise CliError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(stream.fileno(), KEY_FILE_MODE)
            stream.write(data)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
