"""Argument types: every value a command takes is checked here, while parsing, before any network call.

Theory: a typo must never reach the chain. Each converter either returns a value the ledger will accept in
form (a checksummed address, a 32-byte id, a positive integer within the ledger's bound, a readable and valid
key file) or raises `argparse.ArgumentTypeError` with a message naming the value, which the parser turns into
one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nacl.bindings

from ledger.errors import InvalidKey
from ledger.hashing import HASH_BYTES
from ledger.keys import PrivateKey, PublicKey, parse_address
from ledger.limits import MAX_SEALED_GRANT_BYTES, MAX_TEXT_CHARS
from ledger.tx import MAX_NAME_CHARS, MAX_TIME_S, X25519_KEY_BYTES
from node.commands.durations import DurationError, parse_duration

MAX_KEY_FILE_BYTES = 64 * 1024
MAX_CREDENTIALS_BYTES = MAX_SEALED_GRANT_BYTES - nacl.bindings.crypto_box_SEALBYTES
_DIGITS = re.compile(r"[0-9]{1,20}")
_HEX = re.compile(r"[0-9a-fA-F]*")


@dataclass(frozen=True)
class KeyFile:
    path: str
    key: PrivateKey


def integer_in(low: int, high: int, what: str) -> Callable[[str], int]:
    """A converter for plain decimal integers in [low, high] (no sign, no exponent, no separators)."""

    def convert(text: str) -> int:
        if not _DIGITS.fullmatch(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} in [{low}, {high}]")
        return value

    convert.__name__ = what
    return convert


def duration(text: str) -> int:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def start_time(text: str) -> int:
    """Unix seconds from `now`, a duration from now (`30m`), or an ISO 8601 time (UTC unless it says)."""
    now = int(time.time())
    if text == "now":
        return now
    if text[:1].isdigit() and text[-1:] in "smhd":
        return now + duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 'now', a duration from now (30m) or an ISO time (2026-12-01T09:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    if not 0 <= seconds <= MAX_TIME_S:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return seconds


def address(text: str) -> bytes:
    """The 32 bytes of a checksummed `fm1...` address."""
    try:
        return parse_address(text)
    except InvalidKey as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def hex_bytes(length: int, what: str) -> Callable[[str], bytes]:
    """A converter for exactly `length` bytes written as 2 * `length` hex digits."""

    def convert(text: str) -> bytes:
        if len(text) != 2 * length or not _HEX.fullmatch(text):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {what}: expected {2 * length} hex digits, got {len(text)} characters"
            )
        return bytes.fromhex(text)

    convert.__name__ = what
    return convert


order_id = hex_bytes(HASH_BYTES, "an order id")
lease_id = hex_bytes(HASH_BYTES, "a lease id")
tx_hash = hex_bytes(HASH_BYTES, "a transaction hash")


def access_key(text: str) -> bytes:
    """An X25519 public key: 64 hex digits, or an `fm1...` address whose key is converted."""
    if text.startswith("fm1"):
        return PublicKey(address(text)).x25519()
    return hex_bytes(X25519_KEY_BYTES, "an access key (64 hex digits or an fm1 address)")(text)


def name(text: str) -> str:
    """A resource class or region name (checked against the chain's list by the ledger)."""
    if not text or len(text) > MAX_NAME_CHARS or not text.isprintable() or text != text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a name of 1 to {MAX_NAME_CHARS} printable characters"
        )
    return text


def reason(text: str) -> str:
    if not text.strip() or len(text) > MAX_TEXT_CHARS or not text.isprintable():
        raise argparse.ArgumentTypeError(f"a reason is 1 to {MAX_TEXT_CHARS} printable characters")
    return text


def _read_file(path: str, what: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise argparse.ArgumentTypeError(f"{what} {path!r} is larger than {max_bytes} bytes")
    return data


def key_file(path: str) -> KeyFile:
    """A readable, valid key file (see `fedmarket keys new`)."""
    data = _read_file(path, "key file", MAX_KEY_FILE_BYTES)
    try:
        return KeyFile(path, PrivateKey.from_key_file(data.decode("utf-8")))
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"key file {path!r} is not text") from None
    except InvalidKey as exc:
        raise argparse.ArgumentTypeError(f"invalid key file {path!r} ({exc})") from None


def credentials_file(path: str) -> bytes:
    """The bytes to seal into an access grant: non-empty and small enough to fit a grant once sealed."""
    data = _read_file(path, "credentials file", MAX_CREDENTIALS_BYTES)
    if not data:
        raise argparse.ArgumentTypeError(f"credentials file {path!r} is empty")
    return data


def new_file(path: str) -> Path:
    """A path to write: its directory must exist (whether it may be replaced is the command's call)."""
    target = Path(path)
    if not path or target.is_dir():
        raise argparse.ArgumentTypeError(f"{path!r} is a directory, not a file name")
    if not target.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(target.parent)!r} does not exist")
    return target
