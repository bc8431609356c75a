"""The mempool: transactions admitted by this node and not yet committed.

Admission runs the cheap stateless checks first (size, canonical decoding, chain id: `check_envelope`), then
the node checks the signature (once per transaction, in a worker thread: `node.verifier`; the verified hash
goes to the chain's cache, so block validation does not check it again), then the stateful check against the
committed state (nonce not used, funds: `admit`). A sender's transactions arrive in nonce order: a nonce above
the committed next one is admitted only after its predecessor, so every pending transaction can be proposed
once those before it are. Otherwise a client could fill the mempool with gapped transactions that no
proposal can take and that never leave. Admitted transactions are deduplicated by hash and by (sender,
nonce). Limits: `max_txs` in all, `max_per_account` per sender.
Eviction rule: none. A full mempool refuses new transactions (`MempoolFull`) instead of dropping admitted
ones, because a client told "admitted" must not see its transaction vanish silently; committed or stale
transactions leave on every commit. A transaction still pending after a while is gossiped once more.
Proposals select transactions in arrival order, keeping each sender's nonces contiguous from its next
committed nonce. Transactions of a proposal that did not commit were never
removed, so they are proposed again after a view change.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from ledger.errors import DecodeError
from ledger.limits import MAX_TX_BYTES
from ledger.receipts import TxRejected
from ledger.state import LedgerState
from ledger.tx import Transaction
from node.config import MempoolConfig


class MempoolRejected(Exception):
    """The transaction is not admitted; `code` is a short machine-readable reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class MempoolFull(MempoolRejected):
    def __init__(self, limit: int) -> None:
        super().__init__("MEMPOOL_FULL", f"the mempool holds its limit of {limit} transactions")


@dataclass(slots=True)
class _Entry:
    tx: Transaction
    arrival_ms: int
    seq: int
    regossiped: bool = False


@dataclass
class Mempool:
    chain_id: str
    config: MempoolConfig
    _entries: dict[bytes, _Entry] = field(default_factory=dict)
    _by_sender: dict[bytes, dict[int, bytes]] = field(default_factory=dict)
    _seq: int = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._entries

    def hashes(self) -> list[bytes]:
        return list(self._entries)

    def get(self, tx_hash: bytes) -> Transaction | None:
        entry = self._entries.get(tx_hash)
        return None if entry is None else entry.tx

    def check_envelope(self, raw: bytes) -> Transaction:
        """Stateless checks but the signature: size, canonical decoding, chain id."""
        if len(raw) > MAX_TX_BYTES:
            raise MempoolRejected("TOO_LARGE", f"transaction of {len(raw)} bytes exceeds {MAX_TX_BYTES}")
        try:
            tx = Transaction.decode(raw)
        except DecodeError as exc:
            raise MempoolRejected("MALFORMED", str(exc)) from None
        if tx.chain_id != self.chain_id:
            raise MempoolRejected("WRONG_CHAIN", f"transaction is for chain {tx.chain_id!r}")
        return tx

    def admit(self, tx: Transaction, state: LedgerState, now_ms: int, from_peer: bool = False) -> bool:
        """Admit a decoded, verified transaction; False if it was already here. One `from_peer` is never
        gossiped again by this node (its origin does that, and the pull fills gaps): if every node re-sent
        every transaction pending past the age, an overloaded federation would multiply its own load."""
        if tx.hash in self._entries:
            return False
        try:
            state.check(tx)
        except TxRejected as exc:
            raise MempoolRejected(exc.code.name, exc.detail) from None
        pending = self._by_sender.get(tx.sender, {})
        if tx.nonce in pending:
            raise MempoolRejected("NONCE_PENDING", f"another transaction with nonce {tx.nonce} is pending")
        if tx.nonce - 1 not in pending and tx.nonce != state.account(tx.sender).next_nonce:
            raise MempoolRejected(
                "NONCE_GAP", f"nonce {tx.nonce - 1} of the sender is neither committed nor pending"
            )
        if len(pending) >= self.config.max_per_account:
            raise MempoolRejected(
                "ACCOUNT_LIMIT", f"the sender has {len(pending)} pending transactions (the limit)"
            )
        if len(self._entries) >= self.config.max_txs:
            raise MempoolFull(self.config.max_txs)
        self._seq += 1
        self._entries[tx.hash] = _Entry(tx, now_ms, self._seq, regossiped=from_peer)
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = tx.hash
        return True

    def next_nonce(self, sender: bytes) -> int | None:
        """One past the sender's highest pending nonce, or None when nothing of the sender is pending."""
        pending = self._by_sender.get(sender)
        return None if not pending else max(pending) + 1

    def select(self, state: LedgerState, max_txs: int) -> list[Transaction]:
        """Up to `max_txs` transactions for a proposal: arrival order, contiguous nonces per sender."""
        queues: dict[bytes, list[_Entry]] = {}
        for sender, by_nonce in self._by_sender.items():
            expected = state.account(sender).next_nonce
            run: list[_Entry] = []
            while expected in by_nonce and len(run) < max_txs:
                run.append(self._entries[by_nonce[expected]])
                expected += 1
            if run:
                queues[sender] = run
        heads = [(run[0].seq, sender, 0) for sender, run in queues.items()]
        heapq.heapify(heads)
        chosen: list[Transaction] = []
        while heads and len(chosen) < max_txs:
            _, sender, position = heapq.heappop(heads)
            run = queues[sender]
            chosen.append(run[position].tx)
            if position + 1 < len(run):
                heapq.heappush(heads, (run[position + 1].seq, sender, position + 1))
        return chosen

    def remove_committed(self, txs: Iterable[Transaction], state: LedgerState) -> None:
        """Drop the committed transactions and every pending one whose nonce is now used."""
        senders = set()
        for tx in txs:
            self._drop(tx.hash)
            senders.add(tx.sender)
        for sender in senders:
            next_nonce = state.account(sender).next_nonce
            for nonce, tx_hash in list(self._by_sender.get(sender, {}).items()):
                if nonce < next_nonce:
                    self._drop(tx_hash)

    def overdue(self, state: LedgerState, now_ms: int) -> list[bytes]:
        """Hashes of proposable transactions (next in their sender's nonce order) that waited longer than
        the censorship bound, oldest first. Entries are kept in arrival order, so the scan stops early."""
        bound = now_ms - self.config.censorship_bound_ms
        late = []
        for tx_hash, entry in self._entries.items():
            if entry.arrival_ms > bound:
                break
            if entry.tx.nonce == state.account(entry.tx.sender).next_nonce:
                late.append(tx_hash)
        return late

    def to_regossip(self, now_ms: int, age_ms: int, limit: int) -> list[Transaction]:
        """Transactions pending longer than `age_ms` and not yet gossiped again (each one is, once), oldest
        first: a second chance for a gossip message that was silently lost."""
        chosen = []
        for entry in self._entries.values():
            if entry.arrival_ms > now_ms - age_ms or len(chosen) >= limit:
                break
            if not entry.regossiped:
                entry.regossiped = True
                chosen.append(entry.tx)
        return chosen

    def _drop(self, tx_hash: bytes) -> None:
        entry = self._entries.pop(tx_hash, None)
        if entry is None:
            return
        by_nonce = self._by_sender.get(entry.tx.sender)
        if by_nonce is not None:
            by_nonce.pop(entry.tx.nonce, None)
            if not by_nonce:
                del self._by_sender[entry.tx.sender]
