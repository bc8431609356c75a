"""The interpreter settings a node runs with."""

from __future__ import annotations

import gc
import sys

import pytest

from node.daemon import GC_THRESHOLDS, GIL_SWITCH_INTERVAL_S, tune_interpreter


def test_a_node_sets_its_switch_interval_and_collects_its_young_generation_rarely() -> None:
    saved_thresholds, saved_interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_interpreter()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] >= 10_000  # CPython's default of 700 cost catch-up about 13 % of its CPU
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
    finally:
        gc.set_threshold(*saved_thresholds)
        sys.setswitchinterval(saved_interval)
