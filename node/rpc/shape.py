"""Turning `NodeApi` views into JSON values, by one set of rules.

Theory: clients must read every value exactly, and the same way from every method. So the rules are fixed
here and nowhere else: a dataclass view becomes an object of its fields; an `Address` becomes its checksummed
`fm1...` text; other bytes (hashes, ids, encodings, signatures) become lowercase hex; integers stay JSON
integers and must lie within the range a double holds exactly; a float is refused (amounts are integers), as
is any type without a rule, so a runtime bug surfaces as an internal error instead of a silently wrong answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TypeAlias

from ledger.keys import address_text
from node.rpc.api import Address
from node.rpc.limits import MAX_JSON_INT

Json: TypeAlias = "bool | int | str | list[Json] | dict[str, Json] | None"

MAX_SHAPE_DEPTH = 32


class ShapeError(TypeError):
    """A view holds a value with no JSON rule (a float, an out-of-range integer, an unknown type)."""


def to_json(value: object, depth: int = 0) -> Json:
    """The JSON value of `value` by the rules above; raises `ShapeError` for anything without a rule."""
    if depth > MAX_SHAPE_DEPTH:
        raise ShapeError("view nests too deeply")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -MAX_JSON_INT <= value <= MAX_JSON_INT:
            raise ShapeError(f"integer {value} is outside the range JSON clients read exactly")
        return int(value)
    if isinstance(value, Address):
        return address_text(bytes(value))
    if isinstance(value, bytes):
        return value.hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        shaped: dict[str, Json] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ShapeError(f"object key {key!r} is not text")
            shaped[key] = to_json(item, depth + 1)
        return shaped
    if isinstance(value, list | tuple):
        return [to_json(item, depth + 1) for item in value]
    raise ShapeError(f"no JSON rule for a value of type {type(value).__name__}")
