"""Client calls waiting for their transactions to commit (`tx_submit` with `wait: "commit"`).

Theory: each call waits on events of its own, registered under the hashes it waits for, and a commit sets
every event of each committed hash. A call that gives up removes only its own events, so a second call for
the same transaction (a client retrying after its own timeout) is still woken when it commits; nothing is
left behind for a transaction that never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import trio


class CommitWaiters:
    def __init__(self) -> None:
        self._events: dict[bytes, list[trio.Event]] = {}

    def __len__(self) -> int:
        """Hashes that some call waits for."""
        return len(self._events)

    async def wait(self, tx_hashes: Sequence[bytes], timeout_s: float) -> bool:
        """Wait until every hash is committed (`committed` names it); False after `timeout_s`. The caller
        leaves out hashes already committed."""
        mine = {tx_hash: trio.Event() for tx_hash in tx_hashes}
        for tx_hash, event in mine.items():
            self._events.setdefault(tx_hash, []).append(event)
        with trio.move_on_after(timeout_s):
            for event in mine.values():
                await event.wait()
            return True
        for tx_hash, event in mine.items():
            others = self._events.get(tx_hash)
            if others is not None and event in others:
                others.remove(event)
                if not others:
                    del self._events[tx_hash]
        return False

    def committed(self, tx_hashes: Iterable[bytes]) -> None:
        for tx_hash in tx_hashes:
            for event in self._events.pop(tx_hash, ()):
                event.set()
