"""Transaction signature checks in worker threads, each transaction once per node.

Theory: ed25519 verification is a node's largest cost per transaction, and pynacl releases the GIL while it
runs, so checks run in worker threads while the trio loop keeps serving the network and the replica. A
transaction often reaches a member twice at about the same moment: relayed by the member its client used,
and inside the proposer's block. The verifier remembers which hashes are being checked; a second request for
one of them waits for that check instead of repeating it. Results go to the chain's verified cache (which
block validation consults), written from the trio thread only: the chain is not thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ledger.chain import Chain
from ledger.errors import InvalidSignature
from ledger.tx import Transaction


def _valid_signatures(txs: Sequence[Transaction], chain_id: str) -> list[bool]:
    """Runs in a worker thread: touches nothing shared."""
    results = []
    for tx in txs:
        try:
            tx.verify_signature(chain_id)
        except InvalidSignature:
            results.append(False)
            continue
        results.append(True)
    return results


class TxVerifier:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.checks = 0  # signatures this verifier checked (the chain counts those it checks itself)
        self._in_flight: dict[bytes, trio.Event] = {}

    async def verify(self, txs: Sequence[Transaction]) -> list[bool]:
        """For each transaction, whether its signature is valid for this chain: known from the cache, checked
        now in a worker thread, or checked by a concurrent call this one waits for."""
        chain = self.chain
        mine: list[Transaction] = []
        others: list[trio.Event] = []
        for tx in txs:
            if chain.is_verified(tx.hash):
                continue
            event = self._in_flight.get(tx.hash)
            if event is not None:
                others.append(event)
            else:
                self._in_flight[tx.hash] = trio.Event()
                mine.append(tx)
        if mine:
            try:
                results = await trio.to_thread.run_sync(_valid_signatures, mine, chain.chain_id)
                self.checks += len(mine)
                for tx, valid in zip(mine, results, strict=True):
                    if valid:
                        chain.mark_verified(tx)
            finally:  # also on cancellation: a waiter must never hang on a check that will not finish
                for tx in mine:
                    self._in_flight.pop(tx.hash).set()
        for event in others:
            await event.wait()
        return [chain.is_verified(tx.hash) for tx in txs]
