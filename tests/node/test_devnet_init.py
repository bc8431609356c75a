"""`devnet.init`: the default layout, and the extra funded load accounts a load generator may ask for."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ledger.genesis import Genesis
from node import devnet


def balances(directory: Path) -> dict[str, int]:
    genesis = Genesis.from_json((directory / "node-0" / "genesis.json").read_text())
    return {address.hex(): amount for address, amount in genesis.balances}


def test_default_init_has_no_load_accounts(tmp_path: Path) -> None:
    document = devnet.init(tmp_path / "dn", 4)
    assert "load_accounts" not in document and devnet.load_account_keys(document) == []
    assert len(balances(tmp_path / "dn")) == 4 + devnet.CONSUMERS
    assert not (tmp_path / "dn" / "accounts" / devnet.LOAD_DIR).exists()


def test_load_accounts_are_funded_and_their_keys_written(tmp_path: Path) -> None:
    document = devnet.init(tmp_path / "dn", 4, load_accounts=5)
    assert document["load_accounts"]["count"] == 5
    assert devnet.load(tmp_path / "dn")["load_accounts"] == document["load_accounts"]
    keys = devnet.load_account_keys(document)
    funded = balances(tmp_path / "dn")
    assert len(funded) == 4 + devnet.CONSUMERS + 5
    assert [funded[key.public.raw.hex()] for key in keys] == [devnet.LOAD_ACCOUNT_FUNDS] * 5
    for path in Path(document["load_accounts"]["directory"]).iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_too_many_load_accounts_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(devnet.DevnetError, match="load accounts"):
        devnet.init(tmp_path / "dn", 4, load_accounts=10_000)
    assert not (tmp_path / "dn" / devnet.DEVNET_FILE).exists()
