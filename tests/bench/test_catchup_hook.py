"""The suite calls `bench.catchup.run` when that module exists, and says "not available" otherwise."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bench.suite.options import Options
from bench.suite.runner import run_catchup


def test_catchup_runs_when_the_module_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def run(members: int, blocks: int, txs_per_block: int, workdir: Path) -> dict[str, float]:
        calls.append((members, blocks, txs_per_block, workdir.is_dir()))
        return {"blocks": 10, "txs": 2_000, "seconds": 0.5, "tx_per_s": 4_000, "blocks_per_s": 20}

    monkeypatch.setitem(sys.modules, "bench.catchup", types.SimpleNamespace(run=run))
    result = run_catchup(Options(members=7, catchup_blocks=10, catchup_txs_per_block=200), tmp_path)
    assert calls == [(7, 10, 200, True)]
    assert result == {"status": "ok", "blocks": 10, "txs": 2_000, "seconds": 0.5, "tx_per_s": 4_000,
                      "blocks_per_s": 20}  # fmt: skip


def test_catchup_not_available_or_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bench.catchup", None)  # import fails as for a missing module
    assert run_catchup(Options(), tmp_path) == {"status": "not available"}
    monkeypatch.setitem(sys.modules, "bench.catchup", types.SimpleNamespace())
    assert run_catchup(Options(), tmp_path) == {"status": "not available"}
    assert run_catchup(Options(skip_catchup=True), tmp_path) == {"status": "skipped"}


def test_a_failing_catchup_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(*args: object) -> dict[str, float]:
        raise RuntimeError("no blocks")

    monkeypatch.setitem(sys.modules, "bench.catchup", types.SimpleNamespace(run=run))
    assert run_catchup(Options(), tmp_path) == {"status": "failed", "error": "RuntimeError('no blocks')"}
