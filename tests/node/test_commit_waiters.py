"""Calls waiting for commits (node/commit_waiters.py), on trio's virtual clock."""

from __future__ import annotations

import trio

from node.commit_waiters import CommitWaiters

TX, OTHER = b"\x01" * 32, b"\x02" * 32


async def test_a_retry_waiting_for_the_same_transaction_is_woken_after_the_first_call_gave_up(
    autojump_clock: trio.abc.Clock,
) -> None:
    waiters, outcomes = CommitWaiters(), {}

    async def call(name: str, timeout_s: float) -> None:
        outcomes[name] = await waiters.wait([TX], timeout_s)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "first", 30.0)
        await trio.sleep(20)
        nursery.start_soon(call, "retry", 30.0)
        await trio.sleep(15)  # the first call gave up at 30 s
        assert outcomes == {"first": False}
        waiters.committed([TX])
    assert outcomes == {"first": False, "retry": True}
    assert len(waiters) == 0


async def test_a_call_returns_once_all_its_transactions_committed_and_leaves_nothing_behind(
    autojump_clock: trio.abc.Clock,
) -> None:
    waiters, outcomes = CommitWaiters(), []

    async def call() -> None:
        outcomes.append(await waiters.wait([TX, OTHER], 10.0))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.sleep(1)
        waiters.committed([TX])
        await trio.sleep(1)
        assert outcomes == []
        waiters.committed([OTHER])
    assert outcomes == [True]
    assert len(waiters) == 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
    assert outcomes == [True, False], "a transaction that never commits: a timeout"
    assert len(waiters) == 0, "and nothing is left waiting for it"
