"""The genesis document: everything every member must agree on before block 1.

Theory: genesis fixes the chain id, the validator set, the market's resource classes and regions, the initial
balances (the only minting there ever is) and the block and market parameters. Its hash (tagged, over its
canonical encoding) is block 1's previous hash, so a chain cannot be replayed under a different genesis. The
JSON form is for people; it is parsed strictly (unknown fields are errors) and every defect raises
`GenesisError` naming the field. Network addresses are deliberately absent: a member can move without a new
chain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from ledger.codec import Value, encode
from ledger.errors import GenesisError, LedgerError
from ledger.hashing import tagged_hash
from ledger.keys import PublicKey, address_text, parse_address
from ledger.limits import (
    MAX_BLOCK_TXS,
    MAX_CLASSES,
    MAX_GENESIS_BYTES,
    MAX_REGIONS,
    MAX_SUPPLY,
    MAX_VALIDATORS,
)
from ledger.tx import MAX_CHAIN_ID_CHARS, MAX_NAME_CHARS, MAX_TIME_S
from ledger.validators import Validator, ValidatorSet

GENESIS_HASH_TAG = b"fedmarket/genesis"
MAX_BALANCES = 100_000
MAX_PARAM = 2**40


@dataclass(frozen=True, slots=True)
class BlockParams:
    max_block_txs: int = 2_000
    empty_block_interval_ms: int = 2_000
    clock_bound_ms: int = 5_000
    view_timeout_ms: int = 4_000  # PBFT view timer at view 0, doubling per view; > empty_block_interval_ms


@dataclass(frozen=True, slots=True)
class MarketParams:
    auction_period_blocks: int = 1  # K: books clear at heights that are multiples of K
    grant_deadline_s: int = 300  # a lease with no access grant this long after its start is cancelled
    max_matches_per_block: int = 2_000  # fills are about 0.1 ms each: bounds clearing near 200 ms
    max_clearing_steps: int = 2_000  # a hostile book costs about 40 ms per 1,000 steps (docs/market.md)
    max_expiries_per_block: int = 1_000


ParamsT = TypeVar("ParamsT", BlockParams, MarketParams)

_PARAM_UPPER_BOUNDS = {"max_block_txs": MAX_BLOCK_TXS}


def _param_values(params: BlockParams | MarketParams) -> list[Value]:
    return [getattr(params, f.name) for f in fields(params)]


def _check_params(params: BlockParams | MarketParams, section: str) -> None:
    for f in fields(params):
        amount = getattr(params, f.name)
        upper = _PARAM_UPPER_BOUNDS.get(f.name, MAX_PARAM)
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= upper:
            raise GenesisError(f"{section}.{f.name}: expected an integer in [1, {upper}], got {amount!r}")


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validators: ValidatorSet
    resource_classes: tuple[str, ...]
    regions: tuple[str, ...]
    balances: tuple[tuple[bytes, int], ...]
    block_params: BlockParams = BlockParams()
    market_params: MarketParams = MarketParams()

    def __post_init__(self) -> None:
        if not isinstance(self.chain_id, str) or not 1 <= len(self.chain_id) <= MAX_CHAIN_ID_CHARS:
            raise GenesisError(f"chain_id: expected 1 to {MAX_CHAIN_ID_CHARS} characters")
        if not isinstance(self.genesis_time_ms, int) or not 0 <= self.genesis_time_ms <= MAX_TIME_S * 1000:
            raise GenesisError("genesis_time_ms: expected a non-negative integer (unix milliseconds)")
        _check_names(self.resource_classes, "resource_classes", MAX_CLASSES)
        _check_names(self.regions, "regions", MAX_REGIONS)
        if len(self.balances) > MAX_BALANCES:
            raise GenesisError(f"balances: at most {MAX_BALANCES} accounts")
        seen: set[bytes] = set()
        total = 0
        for position, (address, amount) in enumerate(self.balances):
            if not isinstance(address, bytes) or len(address) != 32:
                raise GenesisError(f"balances[{position}].address: expected a 32-byte address")
            if address in seen:
                raise GenesisError(f"balances[{position}].address: {address_text(address)} appears twice")
            seen.add(address)
            if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_SUPPLY:
                raise GenesisError(f"balances[{position}].amount: expected an integer in [1, {MAX_SUPPLY}]")
            total += amount
        if total > MAX_SUPPLY:
            raise GenesisError(f"balances: total supply {total} exceeds {MAX_SUPPLY} micro-credits")
        _check_params(self.block_params, "block")
        _check_params(self.market_params, "market")
        block = self.block_params
        if block.view_timeout_ms <= block.empty_block_interval_ms:
            raise GenesisError(
                f"block.view_timeout_ms: {block.view_timeout_ms} must exceed block.empty_block_interval_ms "
                f"({block.empty_block_interval_ms}), or an idle proposer would be replaced before it proposes"
            )

    @property
    def total_supply(self) -> int:
        return sum(amount for _, amount in self.balances)

    def to_value(self) -> Value:
        return [
            self.chain_id,
            self.genesis_time_ms,
            [[m.name, m.public_key.raw] for m in self.validators],
            list(self.resource_classes),
            list(self.regions),
            [[address, amount] for address, amount in self.balances],
            _param_values(self.block_params),
            _param_values(self.market_params),
        ]

    def encode(self) -> bytes:
        return encode(self.to_value())

    def hash(self) -> bytes:
        """Tagged hash of the canonical encoding: block 1's previous hash."""
        return tagged_hash(GENESIS_HASH_TAG, self.encode())

    def to_json(self) -> str:
        document = {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "validators": [{"name": m.name, "public_key": m.public_key.raw.hex()} for m in self.validators],
            "resource_classes": list(self.resource_classes),
            "regions": list(self.regions),
            "balances": [{"address": address_text(a), "amount": amount} for a, amount in self.balances],
            "block": {f.name: getattr(self.block_params, f.name) for f in fields(self.block_params)},
            "market": {f.name: getattr(self.market_params, f.name) for f in fields(self.market_params)},
        }
        return json.dumps(document, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Genesis:
        """Parse and check a genesis document; every defect raises `GenesisError` naming the field."""
        if isinstance(text, bytes):
            try:
                text = text.decode()
            except UnicodeDecodeError:
                raise GenesisError("genesis is not UTF-8 text") from None
        if not isinstance(text, str):
            raise GenesisError("genesis must be text")
        if len(text) > MAX_GENESIS_BYTES:
            raise GenesisError(f"genesis is larger than {MAX_GENESIS_BYTES} bytes")
        try:
            document = json.loads(text, parse_float=_reject_float, parse_constant=_reject_float)
        except GenesisError:
            raise
        except (ValueError, RecursionError) as exc:
            raise GenesisError(f"genesis is not valid JSON: {exc}") from None
        try:
            return _from_document(document)
        except GenesisError:
            raise
        except LedgerError as exc:
            raise GenesisError(f"genesis: {exc}") from None


def _reject_float(literal: str) -> Any:
    raise GenesisError(f"genesis: numbers must be integers, got {literal}")


def _check_names(names: tuple[str, ...], what: str, limit: int) -> None:
    if not isinstance(names, tuple) or not 1 <= len(names) <= limit:
        raise GenesisError(f"{what}: expected 1 to {limit} names")
    for position, name in enumerate(names):
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
            raise GenesisError(f"{what}[{position}]: expected a name of 1 to {MAX_NAME_CHARS} characters")
    if len(set(names)) != len(names):
        raise GenesisError(f"{what}: names must be unique")


def _object(
    value: object, what: str, required: AbstractSet[str], optional: AbstractSet[str] = frozenset()
) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise GenesisError(f"{what}: expected an object")
    missing = sorted(required - value.keys())
    if missing:
        raise GenesisError(f"{what}: missing field {missing[0]!r}")
    unknown = sorted(value.keys() - required - optional)
    if unknown:
        raise GenesisError(f"{what}: unknown field {unknown[0]!r}")
    return value


def _list(value: object, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise GenesisError(f"{what}: expected a list of at most {limit} items")
    return value


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise GenesisError(f"{what}: expected an integer")
    return value


def _params(value: object, what: str, kind: type[ParamsT]) -> ParamsT:
    names = {f.name for f in fields(kind)}
    section = _object(value if value is not None else {}, what, set(), names)
    return kind(**{name: _int(section[name], f"{what}.{name}") for name in section})


def _from_document(document: object) -> Genesis:
    top = _object(
        document,
        "genesis",
        {"chain_id", "genesis_time_ms", "validators", "resource_classes", "regions", "balances"},
        {"block", "market"},
    )
    members = []
    for position, item in enumerate(_list(top["validators"], "validators", MAX_VALIDATORS)):
        member = _object(item, f"validators[{position}]", {"name", "public_key"})
        name, key_hex = member["name"], member["public_key"]
        if not isinstance(name, str) or not isinstance(key_hex, str):
            raise GenesisError(f"validators[{position}]: name and public_key must be text")
        try:
            members.append(Validator(name, PublicKey(bytes.fromhex(key_hex))))
        except (ValueError, LedgerError) as exc:
            raise GenesisError(f"validators[{position}].public_key: {exc}") from None
    balances = []
    for position, item in enumerate(_list(top["balances"], "balances", MAX_BALANCES)):
        entry = _object(item, f"balances[{position}]", {"address", "amount"})
        try:
            address = parse_address(entry["address"])
        except LedgerError as exc:
            raise GenesisError(f"balances[{position}].address: {exc}") from None
        balances.append((address, _int(entry["amount"], f"balances[{position}].amount")))
    for what, limit in (("resource_classes", MAX_CLASSES), ("regions", MAX_REGIONS)):
        if not all(isinstance(name, str) for name in _list(top[what], what, limit)):
            raise GenesisError(f"{what}: expected a list of names")
    return Genesis(
        chain_id=top["chain_id"],
        genesis_time_ms=_int(top["genesis_time_ms"], "genesis_time_ms"),
        validators=ValidatorSet(tuple(members)),
        resource_classes=tuple(top["resource_classes"]),
        regions=tuple(top["regions"]),
        balances=tuple(balances),
        block_params=_params(top.get("block"), "block", BlockParams),
        market_params=_params(top.get("market"), "market", MarketParams),
    )
