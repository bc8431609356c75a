"""Concurrent admissions: checked in parallel, admitted in the order they arrived (node/arrival_order.py)."""

from __future__ import annotations

import trio
import trio.testing

from node.arrival_order import ArrivalOrder


async def _admit(order: ArrivalOrder, name: str, checked: trio.Event, log: list[str]) -> None:
    async with order.place() as turn:
        await checked.wait()
        await turn()
        log.append(name)


async def test_a_later_arrival_that_finishes_its_checks_first_waits_for_the_earlier_one() -> None:
    order, log = ArrivalOrder(), []
    first_checked, second_checked = trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_admit, order, "first", first_checked, log)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(_admit, order, "second", second_checked, log)
        second_checked.set()
        await trio.testing.wait_all_tasks_blocked()
        assert log == []
        first_checked.set()
    assert log == ["first", "second"]


async def test_an_abandoned_place_passes_the_turn_on_only_after_the_places_before_it() -> None:
    order, log = ArrivalOrder(), []
    checks = [trio.Event() for _ in range(3)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_admit, order, "first", checks[0], log)
        await trio.testing.wait_all_tasks_blocked()
        abandoned = trio.CancelScope()
        nursery.start_soon(_abandoned_admit, order, abandoned, checks[1], log)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(_admit, order, "third", checks[2], log)
        await trio.testing.wait_all_tasks_blocked()
        abandoned.cancel()
        checks[2].set()
        await trio.testing.wait_all_tasks_blocked()
        assert log == [], "the third waits for the first even though the second gave up"
        checks[0].set()
    assert log == ["first", "third"]


async def _abandoned_admit(
    order: ArrivalOrder, scope: trio.CancelScope, checked: trio.Event, log: list[str]
) -> None:
    with scope:
        await _admit(order, "second", checked, log)
