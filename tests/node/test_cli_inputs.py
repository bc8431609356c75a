"""Every command: `--help` works, and every bad input is one line on stderr with the documented exit code.

The bad-input table runs each command with a valid command line in which exactly one value is replaced by a
bad one; a valid command line itself is shown to pass validation (it fails only at the network, exit 1).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.keys import PrivateKey
from ledger.tx import MAX_DURATION_S
from node.cli import build_parser, main
from node.commands.durations import UNIT_SECONDS, DurationError, format_duration, parse_duration

REPO = Path(__file__).resolve().parents[2]
ID = "ab" * 32
ACCESS_KEY = "cd" * 32


def _command_parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    def walk(
        parser: argparse.ArgumentParser, prefix: tuple[str, ...]
    ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subcommands:
            yield prefix, parser
            return
        for name, child in subcommands[0].choices.items():
            yield from walk(child, (*prefix, name))

    return dict(walk(build_parser(), ()))


PARSERS = _command_parsers()
COMMANDS = list(PARSERS)
OWN_GROUPS = ("keys", "tx", "query", "lease")
SHARED_DESTS = {"help", "json", "debug", "rpc", "timeout"}


def _uses_rpc(command: tuple[str, ...]) -> bool:
    return "rpc" in {action.dest for action in PARSERS[command]._actions}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp_path = tmp_path_factory.mktemp("cli-inputs")
    key = tmp_path / "signer.key"
    key.write_text(PrivateKey(bytes(range(32))).to_key_file())
    credentials = tmp_path / "credentials.txt"
    credentials.write_text("ssh admin@10.1.2.3 -i lease.pem")
    not_json = tmp_path / "not-json.key"
    not_json.write_text("hello")
    bad_seed = tmp_path / "bad-seed.key"
    bad_seed.write_text('{"type": "fedmarket-ed25519", "seed": "00"}')
    wrong_address = tmp_path / "wrong-address.key"
    wrong_address.write_text(PrivateKey(bytes(32)).to_key_file().replace("fm1", "fm1x", 1))
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe\x00" * 10)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    large = tmp_path / "large"
    large.write_bytes(b"x" * 5000)
    return {
        "key": str(key),
        "credentials": str(credentials),
        "not_json": str(not_json),
        "bad_seed": str(bad_seed),
        "wrong_address": str(wrong_address),
        "binary": str(binary),
        "empty": str(empty),
        "large": str(large),
        "dir": str(tmp_path),
        "missing": str(tmp_path / "missing"),
        "new": str(tmp_path / "new.key"),
        "new_out": str(tmp_path / "credentials.out"),
        "in_missing_dir": str(tmp_path / "no-such-dir" / "k.key"),
        "address": PrivateKey(bytes([9]) * 32).address,
    }


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# Each command's valid arguments: (option or None for a positional, value, kind of value).
VALID: dict[tuple[str, ...], list[tuple[str | None, str, str]]] = {
    ("keys", "new"): [("--out", "{new}", "new_file")],
    ("keys", "show"): [(None, "{key}", "key")],
    ("tx", "offer"): [
        ("--key", "{key}", "key"),
        ("--class", "vm.small", "name"),
        ("--region", "eu-west", "name"),
        ("--quantity", "3", "positive"),
        ("--price", "1500", "positive"),
        ("--duration", "3d", "duration"),
        ("--from", "2h", "start"),
    ],
    ("tx", "bid"): [
        ("--key", "{key}", "key"),
        ("--class", "vm.small", "name"),
        ("--region", "eu-west", "name"),
        ("--quantity", "3", "positive"),
        ("--max-price", "1500", "positive"),
        ("--duration", "2h", "duration"),
        ("--expires", "30m", "duration"),
        ("--access-key", ACCESS_KEY, "access_key"),
    ],
    ("tx", "transfer"): [
        ("--key", "{key}", "key"),
        ("--to", "{address}", "address"),
        ("--amount", "5", "positive"),
    ],
    ("tx", "cancel"): [("--key", "{key}", "key"), ("--order", ID, "id")],
    ("tx", "grant"): [
        ("--key", "{key}", "key"),
        ("--lease", ID, "id"),
        ("--credentials", "{credentials}", "credentials"),
    ],
    ("tx", "close"): [("--key", "{key}", "key"), ("--lease", ID, "id"), ("--reason", "job done", "reason")],
    ("lease", "access"): [
        ("--key", "{key}", "key"),
        ("--lease", ID, "id"),
        ("--out", "{new_out}", "new_file"),
    ],
    ("query", "block"): [(None, "12", "height")],
    ("query", "tx"): [(None, ID, "id")],
    ("query", "account"): [(None, "{address}", "address")],
    ("query", "offers"): [
        ("--class", "vm.small", "name"),
        ("--region", "eu-west", "name"),
        ("--owner", "{address}", "address"),
    ],
    ("query", "bids"): [
        ("--class", "vm.small", "name"),
        ("--region", "eu-west", "name"),
        ("--owner", "{address}", "address"),
    ],
    ("query", "book"): [("--class", "vm.small", "name"), ("--region", "eu-west", "name")],
    ("query", "price"): [("--class", "vm.small", "name"), ("--region", "eu-west", "name")],
    ("query", "quote"): [
        ("--class", "vm.small", "name"),
        ("--region", "eu-west", "name"),
        ("--quantity", "2", "positive"),
        ("--duration", "2h", "duration"),
    ],
    ("query", "trades"): [("--from-height", "0", "height"), ("--limit", "20", "positive")],
    ("query", "leases"): [("--owner", "{address}", "address")],
    ("query", "lease"): [(None, ID, "id")],
}

for _command, _args in VALID.items():
    if _command[0] == "tx":
        _args.append(("--nonce", "4", "nonce"))

A_VALID_ADDRESS = PrivateKey(bytes([9]) * 32).address
BAD_VALUES: dict[str, list[str]] = {
    "key": ["{missing}", "{dir}", "{not_json}", "{bad_seed}", "{wrong_address}", "{binary}", "{empty}"],
    "address": [
        "fm1abc",
        A_VALID_ADDRESS[:-1] + ("q" if A_VALID_ADDRESS[-1] != "q" else "p"),
        "bc1" + A_VALID_ADDRESS[3:],
        "",
        "fm1" + "q" * 52,
    ],
    "positive": ["0", "-1", "1.5", "abc", "1e3", "+4", "99999999999999999999", "", " 3"],
    "nonce": ["-1", "x", "1.0", "9007199254740992"],
    "height": ["-1", "abc", "1.5", "", "9007199254740992"],
    "duration": ["0", "0m", "0h0m", "-5m", "5", "5x", "m", "1.5h", "", "30m1h", "99999d", "1h 30m"],
    "start": ["yesterday", "2026-13-01", "", "-1h", "0s"],
    "id": ["", "zz" * 32, "ab" * 31, "ab" * 33, "0x" + "ab" * 31],
    "access_key": ["", "ab" * 31, "fm1abc", "xyz"],
    "name": ["", " padded", "a" * 65, "tab\there", "new\nline"],
    "reason": ["", "   ", "r" * 300, "bell\a"],
    "credentials": ["{missing}", "{empty}", "{large}", "{dir}"],
    "new_file": ["{in_missing_dir}", "{dir}", "{key}"],
}
SHARED_BAD = [("--rpc", "ftp://node"), ("--rpc", "http://"), ("--rpc", "localhost:26657"), ("--timeout", "0")]
SHARED_BAD += [("--timeout", "nan"), ("--timeout", "-3"), ("--bogus-option", "1")]


def _argv(
    command: tuple[str, ...], args: list[tuple[str | None, str, str]], files: dict[str, str]
) -> list[str]:
    argv = list(command)
    for option, value, _ in args:
        argv += [value.format(**files)] if option is None else [option, value.format(**files)]
    return argv


def _assert_one_line_error(
    capsys: pytest.CaptureFixture[str], code: int, expected: int, case: object = ""
) -> str:
    captured = capsys.readouterr()
    assert code == expected, (case, captured.err)
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, (case, captured.err)
    assert captured.err.startswith("fedmarket"), case
    assert "Traceback" not in captured.err, case
    assert captured.out == "", case
    return captured.err


def test_the_table_covers_every_argument_of_every_command() -> None:
    for command in COMMANDS:
        if command[0] not in OWN_GROUPS:
            continue
        listed = {option for option, _, _ in VALID.get(command, [])}
        for action in PARSERS[command]._actions:
            if action.dest in SHARED_DESTS or action.nargs == 0:
                continue
            name = action.option_strings[0] if action.option_strings else None
            assert name in listed, (command, action.dest)


def test_docs_show_every_command() -> None:
    docs = (REPO / "docs" / "cli.md").read_text()
    for command in COMMANDS:
        assert f"fedmarket {' '.join(command)}" in docs, command


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fedmarket {' '.join(command)}")
    assert "--json" in out and "--debug" in out


def test_groups_have_help_and_need_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    for group in {c[0] for c in COMMANDS}:
        assert main([group, "--help"]) == 0
        assert capsys.readouterr().out.startswith(f"usage: fedmarket {group}")
        _assert_one_line_error(capsys, main([group]), 2)
    _assert_one_line_error(capsys, main([]), 2)
    _assert_one_line_error(capsys, main(["nonsense"]), 2)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] in OWN_GROUPS], ids=" ".join)
def test_valid_arguments_pass_validation(
    command: tuple[str, ...], files: dict[str, str], closed_port_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(command, VALID.get(command, []), files)
    if not _uses_rpc(command):
        assert main(argv) == 0
        return
    error = _assert_one_line_error(capsys, main([*argv, "--rpc", closed_port_url]), 1)
    assert "connection refused" in error


@pytest.mark.parametrize("command", list(VALID), ids=" ".join)
def test_bad_input_is_one_line_and_exit_2(
    command: tuple[str, ...], files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    tried = 0
    for index, (option, _, kind) in enumerate(VALID[command]):
        for bad in BAD_VALUES[kind]:
            args = list(VALID[command])
            args[index] = (option, bad, kind)
            argv = _argv(command, args, files)
            if _uses_rpc(command):
                argv += ["--rpc", "http://192.0.2.1:9"]  # never reached: validation fails first
            _assert_one_line_error(capsys, main(argv), 2, argv)
            tried += 1
    assert tried >= 3


@pytest.mark.parametrize(("option", "bad"), SHARED_BAD)
@pytest.mark.parametrize("command", [c for c in COMMANDS if _uses_rpc(c)][::3], ids=" ".join)
def test_bad_shared_options_are_one_line_and_exit_2(
    command: tuple[str, ...], option: str, bad: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*_argv(command, VALID.get(command, []), files), option, bad]
    _assert_one_line_error(capsys, main(argv), 2)


def test_missing_required_options_are_named(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    error = _assert_one_line_error(capsys, main(["tx", "offer", "--key", files["key"]]), 2)
    assert "--class" in error and "--price" in error and "--duration" in error


def test_an_offer_window_in_the_past_is_refused(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(("tx", "offer"), VALID[("tx", "offer")], files)
    argv[argv.index("--from") + 1] = "2001-01-01T00:00:00Z"
    error = _assert_one_line_error(capsys, main([*argv, "--rpc", "http://192.0.2.1:9"]), 2)
    assert "already over" in error


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("FEDMARKET_RPC", None)
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_as_a_process_help_usage_and_runtime_errors(
    tmp_path: Path, files: dict[str, str], closed_port_url: str
) -> None:
    helped = _run("tx", "offer", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: fedmarket tx offer")
    for argv, code in [
        (["tx", "transfer", "--key", files["key"], "--to", "fm1abc", "--amount", "5"], 2),
        (["query", "status", "--rpc", closed_port_url], 1),
    ]:
        done = _run(*argv, cwd=tmp_path)
        assert done.returncode == code, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("fedmarket"), done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_debug_shows_the_traceback_of_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    devnet = tmp_path / ".devnet"
    devnet.mkdir()
    (devnet / "devnet.json").write_text('{"nodes": []}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDMARKET_RPC", raising=False)
    error = _assert_one_line_error(capsys, main(["query", "head"]), 1)
    assert "devnet.json lists no node" in error
    assert main(["query", "head", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


# Durations.

UNITS = st.sampled_from(sorted(UNIT_SECONDS))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, MAX_DURATION_S))
def test_format_then_parse_is_the_identity(seconds: int) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert text == text.strip() and text[-1] in UNIT_SECONDS


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), UNITS)
def test_one_part_is_count_times_unit(count: int, unit: str) -> None:
    seconds = count * UNIT_SECONDS[unit]
    if 1 <= seconds <= MAX_DURATION_S:
        assert parse_duration(f"{count}{unit}") == seconds
    else:
        with pytest.raises(DurationError):
            parse_duration(f"{count}{unit}")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=20) | st.from_regex(r"-?[0-9]{0,4}[dhmsx]?[0-9]{0,3}[dhms]?", fullmatch=True))
def test_any_text_is_a_positive_bounded_duration_or_a_duration_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        assert str(exc)
        return
    assert 1 <= seconds <= MAX_DURATION_S
    assert text[0].isdigit() and text[-1] in UNIT_SECONDS


@settings(max_examples=100, deadline=None)
@given(st.lists(UNITS, min_size=2, max_size=4, unique=True))
def test_parts_out_of_order_are_rejected(units: list[str]) -> None:
    order = list(UNIT_SECONDS)
    text = "".join(f"1{u}" for u in units)
    if units == sorted(units, key=order.index):
        assert parse_duration(text) == sum(UNIT_SECONDS[u] for u in units)
    else:
        with pytest.raises(DurationError):
            parse_duration(text)
