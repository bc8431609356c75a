"""Concurrent tasks that do their slow part in parallel and their last part in the order they arrived.

Theory: a node checks the signatures of each client request in a worker thread, so a small request that
arrives second can finish its checks first. The mempool admits a sender's nonces only in order (no gaps), so
admitting requests in the order their checks finish could refuse the second of two consecutive transactions
sent in quick succession. Each place in line holds an event that the next one waits on before its ordered
part; the event is set on every way out (also on cancellation, once the place before it is done), so a
request that is abandoned never stalls the line and never lets a later one overtake an earlier one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio


class ArrivalOrder:
    def __init__(self) -> None:
        self._last = trio.Event()
        self._last.set()

    @asynccontextmanager
    async def place(self) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Take the next place in line; the value is the wait for this place's turn, which the ordered part
        awaits first. The turn passes on when the block ends."""
        previous, mine = self._last, trio.Event()
        self._last = mine
        try:
            yield previous.wait
        finally:
            with trio.CancelScope(shield=True):
                await previous.wait()
            mine.set()
