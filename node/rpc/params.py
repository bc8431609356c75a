"""Declarative schemas for JSON-RPC named params.

Theory: every method lists its params as data (name, type, required or default), and one binder checks a
request against that list before the handler runs: unknown names, missing required params, wrong JSON types,
integers out of range, hex of the wrong length, malformed addresses and values outside an enum are all
answered with -32602 naming the param, and the handler receives only values it can use as they are. JSON
`true`/`false` are never integers, `1.0` is not an integer, and `null` for an optional param means "absent".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger.errors import InvalidKey
from ledger.keys import parse_address
from node.rpc.api import Address
from node.rpc.limits import MAX_JSON_INT, MAX_PARAM_TEXT_CHARS

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class InvalidParams(Exception):
    """Params that do not match the method's schema; answered with -32602."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ParamError(ValueError):
    """Why one value does not fit its param type (the binder adds the param's name)."""


class ParamType(Protocol):
    def check(self, value: object) -> object: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Int:
    minimum: int = 0
    maximum: int = MAX_JSON_INT

    def check(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"must be an integer, got {json_type(value)}")
        if not self.minimum <= value <= self.maximum:
            raise ParamError(f"must be between {self.minimum} and {self.maximum}")
        return value

    def describe(self) -> str:
        return f"integer in [{self.minimum}, {self.maximum}]"


@dataclass(frozen=True, slots=True)
class Text:
    max_chars: int = MAX_PARAM_TEXT_CHARS
    choices: tuple[str, ...] = ()

    def check(self, value: object) -> str:
        if not isinstance(value, str):
            raise ParamError(f"must be a string, got {json_type(value)}")
        if self.choices and value not in self.choices:
            raise ParamError(f"must be one of {', '.join(map(repr, self.choices))}")
        if not 1 <= len(value) <= self.max_chars:
            raise ParamError(f"must be 1 to {self.max_chars} characters")
        return value

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(f'"{choice}"' for choice in self.choices)
        return f"string of 1 to {self.max_chars} characters"


@dataclass(frozen=True, slots=True)
class Hex:
    """Bytes as hex text: exactly `size` bytes, or 1 to `max_size` bytes when `size` is 0."""

    size: int = 0
    max_size: int = 0

    def check(self, value: object) -> bytes:
        if not isinstance(value, str):
            raise ParamError(f"must be a hex string, got {json_type(value)}")
        if self.size and len(value) != 2 * self.size:
            raise ParamError(f"must be {2 * self.size} hex digits ({self.size} bytes)")
        if not self.size and not 2 <= len(value) <= 2 * self.max_size:
            raise ParamError(f"must be 2 to {2 * self.max_size} hex digits")
        if len(value) % 2 or not _HEX_DIGITS.issuperset(value):
            raise ParamError("must be an even number of hex digits")
        return bytes.fromhex(value)

    def describe(self) -> str:
        if self.size:
            return f"hex string of {self.size} bytes"
        return f"hex string of 1 to {self.max_size} bytes"


@dataclass(frozen=True, slots=True)
class HexList:
    item: Hex
    max_items: int

    def check(self, value: object) -> list[bytes]:
        if not isinstance(value, list):
            raise ParamError(f"must be an array, got {json_type(value)}")
        if not 1 <= len(value) <= self.max_items:
            raise ParamError(f"must hold 1 to {self.max_items} items")
        checked = []
        for index, item in enumerate(value):
            try:
                checked.append(self.item.check(item))
            except ParamError as exc:
                raise ParamError(f"item {index} {exc}") from None
        return checked

    def describe(self) -> str:
        return f"array of 1 to {self.max_items} items, each a {self.item.describe()}"


@dataclass(frozen=True, slots=True)
class AddressText:
    def check(self, value: object) -> Address:
        if not isinstance(value, str):
            raise ParamError(f"must be an address string, got {json_type(value)}")
        try:
            return Address(parse_address(value))
        except InvalidKey as exc:
            raise ParamError(f"is not a valid address: {exc}") from None

    def describe(self) -> str:
        return "address (fm1... text)"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: ParamType
    required: bool = True
    default: object = None


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def bind_params(schema: Sequence[Param], params: object) -> dict[str, object]:
    """Check request `params` (absent = None) against `schema`; the checked values by name."""
    if params is None or params == []:
        given: Mapping[str, object] = {}
    elif isinstance(params, dict):
        given = params
    else:
        raise InvalidParams("params must be given by name (a JSON object)")
    known = {param.name for param in schema}
    unknown = sorted(name for name in given if name not in known)
    if unknown:
        raise InvalidParams(f"unknown param {unknown[0]!r}", unknown[0])
    bound: dict[str, object] = {}
    for param in schema:
        value = given.get(param.name)
        if value is None:
            if param.required:
                raise InvalidParams(f"missing param {param.name!r}", param.name)
            bound[param.name] = param.default
            continue
        try:
            bound[param.name] = param.type.check(value)
        except ParamError as exc:
            raise InvalidParams(f"param {param.name!r} {exc}", param.name) from None
    return bound
