"""Canonical encoding: one msgpack form for everything that is signed or hashed.

Theory: a signature or a hash is only meaningful if every honest party derives the same bytes from the same
value. We restrict msgpack to a small value language (integers in the 64-bit ranges, bytes, text, booleans,
nil and arrays: no maps, no floats, no extension types) where msgpack's shortest-form rule makes the encoding
a function of the value. Decoding is strict: the input must re-encode to exactly the same bytes, so a value
has one encoding and non-canonical input (a long form of a small integer, a map, a float, trailing bytes) is
rejected with `DecodeError`, the only exception that can escape `decode`.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgpack

from ledger.errors import DecodeError
from ledger.limits import MAX_INT, MAX_NESTING, MIN_INT

Value: TypeAlias = "int | bytes | str | bool | list[Value] | tuple[Value, ...] | None"


def _check(value: object, depth: int) -> None:
    if depth > MAX_NESTING:
        raise DecodeError("value nests too deeply")
    kind = type(value)
    if kind is bytes or kind is str or kind is bool or value is None:
        return
    if kind is list or kind is tuple:
        for item in value:  # type: ignore[attr-defined]
            item_kind = type(item)
            if item_kind is not bytes and item_kind is not str:  # the common leaves, checked inline
                _check(item, depth + 1)
        return
    # Integers, and subclasses of the allowed types (IntEnum, bytes subclasses).
    if isinstance(value, bool | bytes | str):
        return
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise DecodeError(f"integer out of the 64-bit range: {value}")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)
        return
    raise DecodeError(f"type not allowed in the canonical encoding: {type(value).__name__}")


def encode(value: Value) -> bytes:
    """The canonical bytes of `value`; raises `DecodeError` for values outside the value language."""
    _check(value, 0)
    return msgpack.packb(value, use_bin_type=True, strict_types=False)  # type: ignore[no-any-return]


def encode_shape(value: Value) -> bytes:
    """`encode` without the walk over the value: only for values whose every leaf a parser just checked."""
    return _packb(value)  # type: ignore[no-any-return]


_packb = msgpack.packb  # use_bin_type=True is msgpack's default
_unpackb = msgpack.unpackb  # max_*_len default to the input's length; raw=False, use_list=True as well


def _reject_map(pairs: object) -> object:
    raise DecodeError("maps are not allowed in the canonical encoding")


def decode(data: bytes, max_size: int) -> Value:
    """Decode canonical bytes of at most `max_size` bytes; anything else raises `DecodeError`."""
    value = decode_shape(data, max_size)
    _check(value, 0)
    return value


def _checked_input(data: bytes, max_size: int) -> bytes:
    """`data` as bytes, if it is bytes-like, not empty and at most `max_size` long; else `DecodeError`."""
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"input of {len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise DecodeError("empty input")
    return data


def unpack_raw(data: bytes, max_size: int) -> Any:
    """The msgpack value of at most `max_size` bytes, without any check of the value or of its form: maps,
    floats and extension types may come out. Only for parsers that check the exact type of every field they
    take (so anything else is refused) and then prove the form canonical with `encode_shape(value) == data`.
    Raises `DecodeError` only."""
    data = _checked_input(data, max_size)
    try:
        return _unpackb(data)
    except Exception as exc:  # msgpack raises many types for bad input; all are the peer's fault
        raise DecodeError(f"not valid msgpack: {exc.__class__.__name__}: {exc}") from None


def decode_shape(data: bytes, max_size: int) -> Value:
    """`decode` without the walk over the value that rejects floats and deep nesting: only for parsers that
    then check the type of every leaf themselves (through the `expect_*` functions below), which rejects a
    float where they expect anything else, and a nesting deeper than their fixed shape. Integers need no
    check: msgpack holds none outside [MIN_INT, MAX_INT]. Raises `DecodeError` only."""
    data = _checked_input(data, max_size)
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_reject_map,
            max_str_len=max_size,
            max_bin_len=max_size,
            max_array_len=max_size,
            max_map_len=0,
            max_ext_len=0,
        )
        canonical = msgpack.packb(value, use_bin_type=True) == data
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many types for bad input; all are the peer's fault
        raise DecodeError(f"not valid msgpack: {exc.__class__.__name__}: {exc}") from None
    if not canonical:
        raise DecodeError("input is not in canonical form")
    return value  # type: ignore[no-any-return]


def expect_list(value: Value, length: int, what: str) -> list[Value]:
    """`value` as a list of exactly `length` items, else `DecodeError` naming `what`."""
    if not isinstance(value, list) or len(value) != length:
        raise DecodeError(f"{what}: expected a list of {length} fields")
    return value


def expect_int(value: Value, what: str, low: int = 0, high: int = MAX_INT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DecodeError(f"{what}: expected an integer in [{low}, {high}]")
    return value


def expect_bytes(value: Value, what: str, length: int | None = None, max_len: int = 1 << 20) -> bytes:
    if not isinstance(value, bytes):
        raise DecodeError(f"{what}: expected bytes")
    if length is not None and len(value) != length:
        raise DecodeError(f"{what}: expected {length} bytes, got {len(value)}")
    if len(value) > max_len:
        raise DecodeError(f"{what}: longer than {max_len} bytes")
    return value


def expect_str(value: Value, what: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"{what}: expected text")
    if len(value) > max_len:
        raise DecodeError(f"{what}: longer than {max_len} characters")
    return value


def expect_bool(value: Value, what: str) -> bool:
    if not isinstance(value, bool):
        raise DecodeError(f"{what}: expected a boolean")
    return value
