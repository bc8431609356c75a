"""Options shared by the whole suite."""

from __future__ import annotations

import pytest

DEFAULT_SIMULATION_SEEDS = 2000


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--seeds",
        type=int,
        default=DEFAULT_SIMULATION_SEEDS,
        help="seeds per consensus simulation scenario (CI runs the default; raise it for long runs)",
    )
    parser.addoption(
        "--seed-offset",
        type=int,
        default=0,
        help="first seed of the consensus simulation runs (to explore new seeds)",
    )


@pytest.fixture
def simulation_seeds(request: pytest.FixtureRequest) -> range:
    start = int(request.config.getoption("--seed-offset"))
    return range(start, start + int(request.config.getoption("--seeds")))
