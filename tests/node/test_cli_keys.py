"""Key files (mode 0600, no silent overwrite, round trip) and sealed access grants (only the buyer opens)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.keys import PrivateKey
from node.cli import main
from node.commands.base import CliError
from node.commands.lease import open_grant, seal_credentials


def _new_key(path: Path, *extra: str) -> int:
    return main(["keys", "new", "--out", str(path), *extra])


def test_keys_new_writes_mode_0600_and_prints_the_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alice.key"
    assert _new_key(path) == 0
    address = capsys.readouterr().out.strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = PrivateKey.from_key_file(path.read_text())
    assert key.address == address
    assert address.startswith("fm1")


def test_keys_new_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert _new_key(tmp_path / "k") == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_keys_new_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "alice.key"
    assert _new_key(path) == 0
    first = path.read_text()
    capsys.readouterr()
    assert _new_key(path) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "--force" in captured.err
    assert path.read_text() == first
    path.chmod(0o644)
    assert _new_key(path, "--force") == 0
    assert path.read_text() != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["alice.key"]


def test_keys_show_round_trips_keys_new(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "alice.key"
    assert _new_key(path, "--json") == 0
    made = json.loads(capsys.readouterr().out)
    assert main(["keys", "show", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == made
    key = PrivateKey.from_key_file(path.read_text())
    assert shown["public_key"] == key.public.raw.hex()
    assert shown["access_key"] == key.public.x25519().hex()
    assert main(["keys", "show", str(path)]) == 0
    text = capsys.readouterr().out
    assert key.address in text and key.public.raw.hex() in text


def test_keys_show_warns_about_a_readable_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "k"
    path.write_text(PrivateKey(bytes(32)).to_key_file())
    path.chmod(0o644)
    assert main(["keys", "show", str(path)]) == 0
    assert "readable by others" in capsys.readouterr().err


def _key(n: int) -> PrivateKey:
    return PrivateKey(bytes([n]) * 32)


@settings(max_examples=25, deadline=None)
@given(credentials=st.binary(min_size=16, max_size=512), buyer_seed=st.integers(1, 200))
def test_sealed_grant_opens_only_with_the_buyer_key(credentials: bytes, buyer_seed: int) -> None:
    buyer, stranger = _key(buyer_seed), _key(buyer_seed + 1)
    sealed = seal_credentials(buyer.public.x25519(), credentials)
    assert credentials not in sealed
    assert open_grant(buyer, sealed) == credentials
    with pytest.raises(CliError, match="sealed to another key"):
        open_grant(stranger, sealed)


def test_a_tampered_grant_does_not_open() -> None:
    buyer = _key(7)
    sealed = bytearray(seal_credentials(buyer.public.x25519(), b"ssh root@10.0.0.7 password=hunter2"))
    sealed[-1] ^= 1
    with pytest.raises(CliError):
        open_grant(buyer, bytes(sealed))
    with pytest.raises(CliError):
        open_grant(buyer, b"short")
