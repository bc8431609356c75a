"""Genesis: JSON round trip, stable hash, and a clear GenesisError for every defect."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import GenesisError
from ledger.genesis import Genesis
from ledger.keys import PrivateKey, address_text
from ledger.limits import MAX_SUPPLY


def test_json_round_trip_keeps_the_hash(genesis: Genesis) -> None:
    text = genesis.to_json()
    again = Genesis.from_json(text)
    assert again == genesis
    assert again.hash() == genesis.hash() and len(genesis.hash()) == 32
    assert again.to_json() == text
    assert json.loads(text)["balances"][0]["address"].startswith("fm1")


def test_hash_depends_on_every_section(genesis: Genesis) -> None:
    document = json.loads(genesis.to_json())
    hashes = {genesis.hash()}
    for path, value in [
        (("chain_id",), "another"),
        (("genesis_time_ms",), 1),
        (("regions",), ["eu-west"]),
        (("market", "auction_period_blocks"), 2),
        (("block", "clock_bound_ms"), 7),
        (("block", "view_timeout_ms"), 9_000),
        (("balances", 0, "amount"), 3),
    ]:
        changed = json.loads(json.dumps(document))
        target: Any = changed
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        hashes.add(Genesis.from_json(json.dumps(changed)).hash())
    assert len(hashes) == 8


def _defect(genesis: Genesis, change: str) -> str:
    document = json.loads(genesis.to_json())
    if change == "three validators":
        document["validators"] = document["validators"][:3]
    elif change == "duplicate validator key":
        document["validators"][1]["public_key"] = document["validators"][0]["public_key"]
    elif change == "duplicate validator name":
        document["validators"][1]["name"] = document["validators"][0]["name"]
    elif change == "bad validator key":
        document["validators"][0]["public_key"] = "00" * 32
    elif change == "duplicate class":
        document["resource_classes"] = ["cpu", "cpu"]
    elif change == "no regions":
        document["regions"] = []
    elif change == "address typo":
        address = document["balances"][0]["address"]
        document["balances"][0]["address"] = address[:-1] + ("q" if address[-1] != "q" else "p")
    elif change == "supply too large":
        document["balances"][0]["amount"] = MAX_SUPPLY
    elif change == "zero amount":
        document["balances"][0]["amount"] = 0
    elif change == "duplicate account":
        document["balances"][1]["address"] = document["balances"][0]["address"]
    elif change == "zero auction period":
        document["market"]["auction_period_blocks"] = 0
    elif change == "float param":
        document["market"]["grant_deadline_s"] = 1.5
    elif change == "unknown field":
        document["network"] = ["/ip4/127.0.0.1/tcp/9000"]
    elif change == "unknown param":
        document["market"]["fee"] = 1
    elif change == "missing chain id":
        del document["chain_id"]
    elif change == "bool amount":
        document["balances"][0]["amount"] = True
    elif change == "view timeout below the empty-block interval":
        document["block"]["view_timeout_ms"] = document["block"]["empty_block_interval_ms"]
    elif change == "zero view timeout":
        document["block"]["view_timeout_ms"] = 0
    return json.dumps(document)


DEFECTS = [
    ("three validators", "validator set"),
    ("duplicate validator key", "repeats a public key"),
    ("duplicate validator name", "used twice"),
    ("bad validator key", "validators[0].public_key"),
    ("duplicate class", "resource_classes"),
    ("no regions", "regions"),
    ("address typo", "balances[0].address"),
    ("supply too large", "total supply"),
    ("zero amount", "balances[0].amount"),
    ("duplicate account", "appears twice"),
    ("zero auction period", "market.auction_period_blocks"),
    ("float param", "integers"),
    ("unknown field", "network"),
    ("unknown param", "fee"),
    ("missing chain id", "chain_id"),
    ("bool amount", "balances[0].amount"),
    ("view timeout below the empty-block interval", "block.view_timeout_ms: .* must exceed"),
    ("zero view timeout", "block.view_timeout_ms"),
]


@pytest.mark.parametrize(("change", "message"), DEFECTS, ids=[d[0] for d in DEFECTS])
def test_defects_raise_genesis_error_naming_the_field(genesis: Genesis, change: str, message: str) -> None:
    with pytest.raises(GenesisError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Genesis.from_json(_defect(genesis, change))


def test_parameters_default_when_absent(genesis: Genesis) -> None:
    document = json.loads(genesis.to_json())
    del document["block"], document["market"]
    parsed = Genesis.from_json(json.dumps(document))
    assert parsed.market_params.auction_period_blocks >= 1 and parsed.block_params.max_block_txs >= 1
    assert parsed.block_params.view_timeout_ms == 4_000


def test_view_timeout_is_configurable_and_round_trips(genesis: Genesis) -> None:
    document = json.loads(genesis.to_json())
    document["block"] = {"empty_block_interval_ms": 500, "view_timeout_ms": 1_500}
    parsed = Genesis.from_json(json.dumps(document))
    assert parsed.block_params.view_timeout_ms == 1_500
    assert Genesis.from_json(parsed.to_json()) == parsed


def test_supply_just_below_the_cap_is_accepted(genesis: Genesis) -> None:
    document = json.loads(genesis.to_json())
    document["balances"] = [
        {"address": address_text(PrivateKey(b"\x05" * 32).public.raw), "amount": MAX_SUPPLY}
    ]
    assert Genesis.from_json(json.dumps(document)).total_supply == MAX_SUPPLY


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_random_input_raises_only_genesis_error(text: str | bytes) -> None:
    with contextlib.suppress(GenesisError):
        Genesis.from_json(text)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_documents_raise_only_genesis_error(genesis: Genesis, data: st.DataObject) -> None:
    text = bytearray(genesis.to_json().encode())
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(text) - 1))
        if data.draw(st.booleans()):
            text[position] = data.draw(st.sampled_from(b'{}[]":,0123456789-.ex \\tfn'))
        else:
            del text[position : position + data.draw(st.integers(1, 8))]
    try:
        parsed = Genesis.from_json(bytes(text))
    except GenesisError:
        return
    assert Genesis.from_json(parsed.to_json()) == parsed
