"""The interpreter settings a node runs with."""

from __future__ import annotations

import gc
import sys

import pytest

from node.daemon import GC_THRESHOLDS, GIL_SWITCH_INTERVAL_S, tune_interpreter
from node.metrics import COLLECTOR, COLLECTOR_COUNTERS, CollectorPauses


def test_a_node_sets_its_switch_interval_and_collects_its_young_generation_rarely() -> None:
    saved_thresholds, saved_interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_interpreter()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] >= 10_000  # CPython's default of 700 cost catch-up about 13 % of its CPU
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
        assert COLLECTOR._on_collect in gc.callbacks
    finally:
        gc.set_threshold(*saved_thresholds)
        sys.setswitchinterval(saved_interval)
        COLLECTOR.uninstall()


def test_collector_pauses_are_counted_by_generation_until_uninstalled() -> None:
    pauses = CollectorPauses()
    pauses.install()
    pauses.install()  # once only
    try:
        assert gc.callbacks.count(pauses._on_collect) == 1
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        counted = dict(pauses.counters)
        assert set(counted) == set(COLLECTOR_COUNTERS)
        assert counted["collections_gen0"] >= 1 and counted["collections_gen2"] >= 2
        assert counted["pause_us_gen2"] > 0  # a full collection of the test process takes milliseconds
        long_ones = counted["pauses_10_to_100ms"] + counted["pauses_over_100ms"]
        assert long_ones <= sum(counted[f"collections_gen{g}"] for g in (0, 1, 2))
    finally:
        pauses.uninstall()
    assert pauses._on_collect not in gc.callbacks
    gc.collect(2)
    assert pauses.counters == counted, "nothing is counted once uninstalled"


def test_a_collection_already_running_at_install_time_is_not_counted() -> None:
    pauses = CollectorPauses()
    pauses._on_collect("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
    assert set(pauses.counters.values()) == {0}
    pauses._on_collect("start", {"generation": 1})
    pauses._on_collect("stop", {"generation": 1, "collected": 0, "uncollectable": 0})
    assert pauses.counters["collections_gen1"] == 1
