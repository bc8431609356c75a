"""The chain: the glue between blocks, the ledger state and the store that consensus and the node call.

Theory: a block is accepted only if it extends the head (height, previous hash), belongs to this federation
(chain id, validator set hash, a member as proposer), keeps time (later than its parent, near the checking
member's clock), commits to its transactions (Merkle root), carries only well-formed, correctly signed
transactions that were never committed before, and, executed on the parent state, yields the state root its
header claims. Validation executes the block in place and keeps the execution pending; `commit` makes it
durable with its certificate in one synced batch, `discard` rolls it back. Any failure leaves the state as it
was. Each transaction's signature is checked once per node: verified hashes are remembered in an LRU cache
(the transaction hash covers the signature, so a cached hash names exactly the verified bytes).
Catch-up (`apply_certified`) may rely on the commit certificate instead of the transaction signatures: 2f+1
members signed COMMIT, at least f+1 of them honest, and each of those validated the block, signatures
included, before committing it (the PBFT state-transfer argument). Links, certificate, execution and state
root are always checked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.block import BLOCK_VERSION, Block, BlockHeader, InvalidBlock, check_timestamp, tx_root
from ledger.block import MAX_HEADER_BYTES as _MAX_HEADER_BYTES
from ledger.errors import DecodeError, InvalidCertificate, InvalidSignature, LedgerError
from ledger.genesis import Genesis
from ledger.limits import MAX_BLOCK_BYTES, MAX_BLOCK_TXS
from ledger.merkle import MerkleProof, merkle_proof
from ledger.state import BlockContext, Execution, LedgerState
from ledger.store import BlockCommit, Head, Store, StoreError
from ledger.tx import Transaction
from ledger.tx import tx_hash_of as tx_hash_of  # re-exported: node and tests hash through the chain
from ledger.votes import Certificate

VERIFIED_CACHE_SIZE = 100_000
# Room for the header and the list framing: a block of txs within this budget always fits MAX_BLOCK_BYTES.
_TX_BYTES_BUDGET = MAX_BLOCK_BYTES - _MAX_HEADER_BYTES - 64
_TX_FRAMING_BYTES = 5  # msgpack bin32 header


class ChainVerificationError(LedgerError):
    """A stored or fetched chain fails verification; `height` names the first bad block."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"block {height}: {reason}")
        self.height = height
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifyReport:
    height: int
    head_hash: bytes
    transactions: int
    state_root: bytes | None  # None for the light verifier, which executes nothing


@dataclass(frozen=True, slots=True)
class AppliedBlock:
    """A block that `apply_certified` stored, with its decoded transactions."""

    block: Block
    txs: tuple[Transaction, ...]


@dataclass(frozen=True, slots=True)
class _Pending:
    block: Block
    execution: Execution
    txs: tuple[Transaction, ...]

    @property
    def tx_hashes(self) -> tuple[bytes, ...]:
        return tuple(tx.hash for tx in self.txs)


def _as_block(block: Block | bytes) -> Block:
    return block if isinstance(block, Block) else Block.decode(block)


def _check_link(genesis: Genesis, validators_hash: bytes, header: BlockHeader, parent: Head) -> None:
    """The header fields that need only the parent and genesis (clock rule excluded)."""
    if header.chain_id != genesis.chain_id:
        raise InvalidBlock(f"block is for chain {header.chain_id!r}, not {genesis.chain_id!r}")
    if header.height != parent.height + 1:
        raise InvalidBlock(f"block height {header.height} does not follow {parent.height}")
    if header.prev_hash != parent.block_hash:
        raise InvalidBlock(f"block {header.height} does not link to the block at height {parent.height}")
    if header.validators_hash != validators_hash:
        raise InvalidBlock(f"block {header.height} names another validator set")
    if header.proposer not in genesis.validators:
        raise InvalidBlock(f"block {header.height} was proposed by a non-member")
    if header.timestamp_ms <= parent.timestamp_ms:
        raise InvalidBlock(f"block {header.height} is not later than its parent")


def _decode(data: bytes) -> Transaction:
    return Transaction.decode(data)


def _decode_txs(block: Block, decoded: Callable[[bytes], Transaction] = _decode) -> list[Transaction]:
    """The block's transactions, decoded, with the tx root checked; duplicates within the block refused."""
    try:
        txs = [decoded(data) for data in block.txs]
    except DecodeError as exc:
        raise InvalidBlock(f"block {block.height} carries a malformed transaction: {exc}") from None
    hashes = [tx.hash for tx in txs]
    if tx_root(hashes) != block.header.tx_root:
        raise InvalidBlock(f"block {block.height}: the tx root does not match its transactions")
    if len(set(hashes)) != len(hashes):
        raise InvalidBlock(f"block {block.height} carries a transaction twice")
    return txs


def _head_of(header: BlockHeader) -> Head:
    return Head(header.height, header.hash, header.timestamp_ms, header.state_root)


class Chain:
    """One node's chain; not thread-safe: the node calls it (mark_verified included) from one thread."""

    def __init__(self, store: Store, state: LedgerState) -> None:
        self.store = store
        self.state = state
        self.genesis = store.genesis
        self.chain_id = self.genesis.chain_id
        self.validators_hash = self.genesis.validators.hash()
        self._verified: OrderedDict[bytes, Transaction | None] = OrderedDict()
        self._pending: _Pending | None = None
        self.signature_checks = 0  # transaction signatures this chain verified (cache misses)

    @classmethod
    def open(cls, path: str | Path, genesis: Genesis) -> Chain:
        """Open (or create) the data directory and load the state it holds at its head."""
        store = Store.open(path, genesis)
        try:
            state = LedgerState.load(genesis, store.state_items())
            head = store.head()
            if state.height != head.height or state.state_root != head.state_root:
                raise StoreError(f"{path}: the stored state does not match the head block {head.height}")
        except BaseException:
            store.close()
            raise
        return cls(store, state)

    def close(self) -> None:
        self.discard_pending()
        self.store.close()

    def head(self) -> Head:
        return self.store.head()

    def tx_inclusion(self, tx_hash: bytes) -> tuple[Block, int, MerkleProof] | None:
        """A committed transaction's block, its index there and its Merkle proof against the tx root."""
        location = self.store.tx_location(tx_hash)
        block = None if location is None else self.store.block(location[0])
        if location is None or block is None:
            return None
        index = location[1]
        return block, index, merkle_proof([tx_hash_of(data) for data in block.txs], index)

    # Signature cache.

    def mark_verified(self, tx: Transaction | bytes) -> None:
        """Remember that a transaction (or the one with this hash) has a valid signature; the mempool calls
        this. Given the decoded transaction, a block that carries it is not decoded again either."""
        known: Transaction | None
        if isinstance(tx, Transaction):
            tx_hash, known = tx.hash, tx
        else:
            tx_hash, known = tx, self._verified.get(tx)
        self._verified[tx_hash] = known
        self._verified.move_to_end(tx_hash)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)

    def is_verified(self, tx_hash: bytes) -> bool:
        return tx_hash in self._verified

    def verify_tx(self, tx: Transaction) -> None:
        """Raise `InvalidSignature` unless `tx` is signed for this chain; each hash is checked once."""
        if tx.hash in self._verified:
            self._verified.move_to_end(tx.hash)
            return
        self.signature_checks += 1
        tx.verify_signature(self.chain_id)
        self.mark_verified(tx)

    def _decoded(self, data: bytes) -> Transaction:
        """The transaction with these bytes: the verified object the cache holds, else a fresh decode."""
        tx_hash = tx_hash_of(data)
        known = self._verified.get(tx_hash)
        return known if known is not None else Transaction.decode_hashed(data, tx_hash)

    # Proposer side.

    def build_block(
        self, txs: Iterable[bytes | Transaction], timestamp_ms: int, proposer: bytes
    ) -> tuple[Block, Execution]:
        """Execute the valid transactions among `txs` (in order, up to the block limits) on the head state
        and return the block with its state root filled in; malformed, badly signed, repeated or already
        committed transactions are left out. The execution stays pending until `commit` or `discard`."""
        self.discard_pending()
        head = self.store.head()
        if timestamp_ms <= head.timestamp_ms:
            raise InvalidBlock(f"timestamp {timestamp_ms} is not later than the head's {head.timestamp_ms}")
        if proposer not in self.genesis.validators:
            raise InvalidBlock("the proposer is not a member of the validator set")
        limit = min(self.genesis.block_params.max_block_txs, MAX_BLOCK_TXS)
        chosen: list[Transaction] = []
        seen: set[bytes] = set()
        budget = _TX_BYTES_BUDGET
        for item in txs:
            if len(chosen) >= limit:
                break
            try:
                tx = item if isinstance(item, Transaction) else Transaction.decode(item)
                self.verify_tx(tx)
            except (DecodeError, InvalidSignature):
                continue
            cost = len(tx.encoded) + _TX_FRAMING_BYTES
            if tx.hash in seen or cost > budget or self.store.tx_location(tx.hash) is not None:
                continue
            seen.add(tx.hash)
            budget -= cost
            chosen.append(tx)
        height = head.height + 1
        execution = self.state.execute(BlockContext(height, timestamp_ms, proposer), chosen)
        hashes = tuple(tx.hash for tx in chosen)
        header = BlockHeader(
            BLOCK_VERSION,
            self.chain_id,
            height,
            head.block_hash,
            timestamp_ms,
            proposer,
            tx_root(hashes),
            execution.state_root,
            self.validators_hash,
        )
        try:
            block = Block(header, tuple(tx.encoded for tx in chosen))
        except DecodeError:
            self.state.rollback(execution)
            raise
        self._pending = _Pending(block, execution, tuple(chosen))
        return block, execution

    # Member side.

    def validate_block(self, block: Block | bytes, local_now_ms: int) -> Execution:
        """Check `block` against the head and the local clock, execute it and compare its state root.
        On success the execution is pending (a pending execution of another block is discarded first);
        on failure a `LedgerError` says why and the state is unchanged."""
        block = _as_block(block)
        pending = self._pending
        if pending is not None and pending.block.hash == block.hash:
            return pending.execution
        self.discard_pending()
        head = self.store.head()
        _check_link(self.genesis, self.validators_hash, block.header, head)
        check_timestamp(
            head.timestamp_ms,
            block.header.timestamp_ms,
            local_now_ms,
            self.genesis.block_params.clock_bound_ms,
        )
        txs = self._checked_txs(block, set())
        execution = self._execute(block, txs)
        self._pending = _Pending(block, execution, tuple(txs))
        return execution

    def _checked_txs(
        self, block: Block, committed_in_batch: set[bytes], verify_signatures: bool = True
    ) -> list[Transaction]:
        limit = min(self.genesis.block_params.max_block_txs, MAX_BLOCK_TXS)
        if len(block.txs) > limit:
            raise InvalidBlock(f"block {block.height} carries {len(block.txs)} transactions; at most {limit}")
        txs = _decode_txs(block, self._decoded)
        hashes = [tx.hash for tx in txs]
        repeated = next((h for h in hashes if h in committed_in_batch), None) if committed_in_batch else None
        if repeated is None:
            repeated = self.store.first_committed(hashes)
        if repeated is not None:
            raise InvalidBlock(f"block {block.height} repeats a committed transaction {repeated.hex()}")
        if verify_signatures:
            for tx in txs:
                try:
                    self.verify_tx(tx)
                except InvalidSignature as exc:
                    raise InvalidBlock(f"block {block.height}: transaction {tx.hash.hex()}: {exc}") from None
        return txs

    def _execute(self, block: Block, txs: Sequence[Transaction]) -> Execution:
        header = block.header
        execution = self.state.execute(BlockContext(header.height, header.timestamp_ms, header.proposer), txs)
        if execution.state_root != header.state_root:
            self.state.rollback(execution)
            raise InvalidBlock(f"block {header.height}: executing it gives another state root")
        return execution

    # Commit or discard.

    def commit(self, block: Block, certificate: Certificate, execution: Execution) -> tuple[Transaction, ...]:
        """Make the pending execution of `block` durable with its certificate (one synced batch) and return
        its transactions, decoded. A certificate that does not verify raises `InvalidCertificate`; the
        execution stays pending."""
        pending = self._pending
        if pending is None or pending.execution is not execution or pending.block.hash != block.hash:
            raise LedgerError(f"block {block.height} has no pending execution to commit")
        self.store.commit(
            BlockCommit(block, certificate, pending.tx_hashes, execution.encode_results(), execution.writes)
        )
        self._pending = None
        return pending.txs

    def discard(self, execution: Execution) -> None:
        """Roll back a pending execution that will not commit; a no-op if it is no longer pending."""
        if self._pending is not None and self._pending.execution is execution:
            self.discard_pending()

    def discard_pending(self) -> None:
        if self._pending is not None:
            self.state.rollback(self._pending.execution)
            self._pending = None

    # Catch-up.

    def apply_certified(
        self,
        blocks_with_certs: Iterable[tuple[Block | bytes, Certificate]],
        local_now_ms: int | None = None,
        *,
        verify_signatures: bool = True,
        applied: list[AppliedBlock] | None = None,
    ) -> int:
        """Verify, execute and store consecutive certified blocks after the head, in one synced batch, and
        return the new head height. The clock bound is not applied to certified blocks (2f+1 members
        accepted them when they were made) except that, given `local_now_ms`, none may lie in the future
        beyond the bound. With `verify_signatures` false the transaction signatures are not checked: the
        certificate vouches for them (see the module docstring); everything else is. Blocks already stored
        are skipped. If a block fails, the valid blocks before it are still stored, then the error is raised
        naming the height. Each block stored is appended to `applied`, if given (also when raising)."""
        self.discard_pending()
        parent = self.store.head()
        entries: list[BlockCommit] = []
        stored: list[AppliedBlock] = []
        in_batch: set[bytes] = set()
        bound = self.genesis.block_params.clock_bound_ms
        failure: LedgerError | None = None
        for raw, certificate in blocks_with_certs:
            try:
                block = _as_block(raw)
                header = block.header
                if header.height <= parent.height and self.store.height_of(header.hash) == header.height:
                    continue  # already stored: catch-up may overlap what we have
                self.store.verify_certificate(certificate, header.height, header.hash)
                _check_link(self.genesis, self.validators_hash, header, parent)
                if local_now_ms is not None and header.timestamp_ms > local_now_ms + bound:
                    raise InvalidBlock(f"block {header.height} lies in the future beyond the clock bound")
                txs = self._checked_txs(block, in_batch, verify_signatures)
                execution = self._execute(block, txs)
            except InvalidCertificate as exc:
                failure = InvalidCertificate(f"block {parent.height + 1}: {exc}")
                break
            except LedgerError as exc:
                failure = exc
                break
            hashes = tuple(tx.hash for tx in txs)
            in_batch.update(hashes)
            entries.append(
                BlockCommit(block, certificate, hashes, execution.encode_results(), execution.writes)
            )
            stored.append(AppliedBlock(block, tuple(txs)))
            parent = _head_of(header)
        try:
            self.store.commit_many(entries)
        except BaseException:
            self._reload_state()
            raise
        if applied is not None:
            applied.extend(stored)
        if failure is not None:
            raise failure
        return parent.height

    def _reload_state(self) -> None:
        """Bring the in-memory state back to the store's head (after a failed multi-block write)."""
        self.state = LedgerState.load(self.genesis, self.store.state_items())


def verify_chain_full(path: str | Path, genesis: Genesis) -> VerifyReport:
    """Re-execute every block of the data directory at `path` from genesis in a fresh in-memory state,
    checking links, certificates, transaction signatures, tx roots, results, the tx index and state roots,
    then compare the stored state with the replayed one. Raises `ChainVerificationError` at the first bad
    height (or `StoreError` if the directory cannot be opened)."""
    store = Store.open(path, genesis, create=False)
    try:
        return _replay(store, genesis)
    finally:
        store.close()


def _replay(store: Store, genesis: Genesis) -> VerifyReport:
    state, genesis_writes = LedgerState.from_genesis(genesis)
    replayed: dict[bytes, bytes] = dict(genesis_writes)
    validators_hash = genesis.validators.hash()
    parent = Head(0, genesis.hash(), genesis.genesis_time_ms, state.state_root)
    head = store.head()
    transactions = 0
    for height in range(1, head.height + 1):
        try:
            block, txs = _check_certified(store, genesis, validators_hash, parent, height)
            for tx in txs:
                tx.verify_signature(genesis.chain_id)
            for index, tx in enumerate(txs):
                if store.tx_location(tx.hash) != (height, index):
                    raise InvalidBlock(f"the tx index misplaces transaction {index}")
            header = block.header
            execution = state.execute(BlockContext(height, header.timestamp_ms, header.proposer), txs)
            if execution.state_root != header.state_root:
                raise InvalidBlock("executing it gives another state root")
            if store.results(height) != execution.encode_results():
                raise InvalidBlock("the stored receipts differ from the re-executed ones")
        except LedgerError as exc:
            raise ChainVerificationError(height, str(exc)) from None
        for key, value in execution.writes.items():
            if value is None:
                replayed.pop(key, None)
            else:
                replayed[key] = value
        transactions += len(txs)
        parent = _head_of(header)
    if parent != head:
        raise ChainVerificationError(head.height, "the head record does not match the last block")
    if dict(store.state_items()) != replayed:
        raise ChainVerificationError(head.height, "the stored state differs from the replayed state")
    return VerifyReport(head.height, head.block_hash, transactions, state.state_root)


def _check_certified(
    store: Store, genesis: Genesis, validators_hash: bytes, parent: Head, height: int
) -> tuple[Block, list[Transaction]]:
    raw = store.block_bytes(height)
    certificate = store.certificate(height)
    if raw is None or certificate is None:
        raise InvalidBlock("the block or its certificate is missing")
    block = Block.decode(raw)
    if store.height_of(block.hash) != height:
        raise InvalidBlock("the hash index does not point at this block")
    _check_link(genesis, validators_hash, block.header, parent)
    certificate.verify(genesis.validators, genesis.chain_id, height, block.hash)
    return block, _decode_txs(block)


def verify_links_and_certificates(
    genesis: Genesis, blocks_with_certs: Iterable[tuple[Block | bytes, Certificate]]
) -> VerifyReport:
    """Light verification (no state, no execution) of blocks from height 1 in order: hash links, chain id,
    validator set hash, proposer membership, increasing timestamps, tx roots and commit certificates.
    Raises `ChainVerificationError` naming the first bad height."""
    validators_hash = genesis.validators.hash()
    parent = Head(0, genesis.hash(), genesis.genesis_time_ms, b"\x00" * 32)
    transactions = 0
    for raw, certificate in blocks_with_certs:
        height = parent.height + 1
        try:
            block = _as_block(raw)
            _check_link(genesis, validators_hash, block.header, parent)
            certificate.verify(genesis.validators, genesis.chain_id, height, block.hash)
            transactions += len(_decode_txs(block))
        except LedgerError as exc:
            raise ChainVerificationError(height, str(exc)) from None
        parent = _head_of(block.header)
    return VerifyReport(parent.height, parent.block_hash, transactions, None)
