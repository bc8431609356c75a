"""The node runtime: one trio task drives the PBFT replica and the chain; other tasks feed it events.

Theory: the replica and the chain are single-threaded state machines, so exactly one task (the driver) steps
the replica and writes the chain, consuming events from one bounded channel (messages, ticks, fetched blocks,
proposals). It executes the replica's actions in order and writes each `Persist` durably before any later
send (a restarted member never contradicts a vote it sent). Readers (JSON-RPC) run between the driver's awaits
and so never see a block half applied. Every task lives in the runtime's nursery; cancelling it stops all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from consensus.crypto import Ed25519Signer, Ed25519Verifier
from consensus.events import (
    Action,
    Applied,
    BlocksFetched,
    Broadcast,
    CensorshipAlarm,
    Deliver,
    Event,
    FetchBlocks,
    FetchedBlock,
    MessageReceived,
    PeerFault,
    Persist,
    ProposalAbandoned,
    ProposalReady,
    ReplicaConfig,
    ReportEvidence,
    RequestProposal,
    Send,
    SetTimer,
    Tick,
    ViewChanged,
)
from consensus.messages import Decided, NewView, PrePrepare, decode_message
from consensus.replica import Replica
from ledger.block import Block
from ledger.chain import AppliedBlock, Chain, tx_hash_of
from ledger.errors import DecodeError, LedgerError
from ledger.genesis import Genesis
from ledger.keys import PrivateKey
from ledger.tx import Transaction
from ledger.votes import Certificate
from node.arrival_order import ArrivalOrder
from node.commit_waiters import CommitWaiters
from node.config import NodeConfig
from node.mempool import Mempool, MempoolRejected
from node.metrics import NodeMetrics
from node.p2p import Network, NetworkError, RequestFailed
from node.sync import MAX_SYNC_BLOCKS, SYNC_PROTOCOL, decode_response, encode_request, serve_request
from node.txpull import (
    MAX_PULL_HASHES,
    TXPULL_PROTOCOL,
    decode_hashes,
    decode_transactions,
    fetch_request,
    hashes_request,
)
from node.txpull import serve as serve_txpull
from node.verifier import TxVerifier

logger = logging.getLogger("fedmarket.node")

EVENT_QUEUE = 4_096
TICK_INTERVAL_S = 0.05
GOSSIP_BATCH_S = 0.005  # after sending a batch of new transactions, gather the next one this long
SYNC_TIMEOUT_S = 10.0
FETCH_AHEAD_BLOCKS = 2 * MAX_SYNC_BLOCKS  # the fetcher runs at most this far beyond the applied head
FETCH_POLL_S = 0.01
# Catch-up applies certified blocks in groups, each in one synced write (about 1 ms), and lets other tasks run
# between groups: each of them moves one step per group, and a peer that hears nothing from us (not even a
# keepalive) for `read_timeout` drops the connection. A thousand transactions are some 30-100 ms of work.
CATCH_UP_GROUP_TXS = 1_000
CATCH_UP_GROUP_BLOCKS = 32
CATCH_UP_YIELD_S = 0.05  # after a group, other ready tasks run for up to this long (e.g. the next fetch)
CATCH_UP_FETCH_PAUSE_S = 0.010
OBSERVER_POLL_S = 0.5
TXPULL_INTERVAL_S = 2.0
CENSORSHIP_CHECK_MS = 1_000  # the mempool scan for overdue transactions runs at most this often
TXPULL_TIMEOUT_S = 5.0
COMMIT_WAIT_S = 30.0
MAX_GOSSIP_BUFFER = 20_000
REGOSSIP_AGE_MS = 5_000  # a transaction still pending this long is gossiped once more
REGOSSIP_SCAN_MS = 1_000  # how often the mempool is scanned for such transactions
# The score each kind of `PeerFault` (a drop only a faulty or malicious member causes) costs the member.
# A member's own messages are never garbage or badly signed, so a few of those are enough for a ban.
PEER_FAULTS = {
    "dropped_garbage": 40.0,
    "dropped_wrong_sender": 40.0,
    "dropped_bad_signature": 40.0,
    "dropped_wrong_digest": 20.0,
    "dropped_invalid_block": 40.0,
    "dropped_bad_new_view": 40.0,
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def replica_config(genesis: Genesis) -> ReplicaConfig:
    """The replica's configuration: members, signature checks and view timeout all come from genesis."""
    validators = genesis.validators
    return ReplicaConfig(
        genesis.chain_id,
        validators,
        Ed25519Verifier(validators),
        base_timeout_ms=genesis.block_params.view_timeout_ms,
    )


@dataclass
class NodeRuntime:
    config: NodeConfig
    genesis: Genesis
    key: PrivateKey
    chain: Chain
    network: Network
    mempool: Mempool = field(init=False)
    verifier: TxVerifier = field(init=False)
    metrics: NodeMetrics = field(init=False, default_factory=NodeMetrics)
    replica: Replica | None = field(init=False, default=None)
    syncing: bool = field(init=False, default=False)
    _events: trio.MemorySendChannel[Event] = field(init=False)
    _event_inbox: trio.MemoryReceiveChannel[Event] = field(init=False)
    _timer_at: int = field(init=False, default=0)
    _proposal_wanted: tuple[int, int] | None = field(init=False, default=None)
    _alarmed_view: tuple[int, int] | None = field(init=False, default=None)
    _next_censorship_check: int = field(init=False, default=0)
    _gossip_out: list[bytes] = field(init=False, default_factory=list)
    _gossip_ready: trio.Event = field(init=False, default_factory=trio.Event)
    _client_arrivals: ArrivalOrder = field(init=False, default_factory=ArrivalOrder)
    _proposer_poked: bool = field(init=False, default=False)
    _waiters: CommitWaiters = field(init=False, default_factory=CommitWaiters)
    _fetching: bool = field(init=False, default=False)
    _last_block: Block | None = field(init=False, default=None)
    _fetched: dict[int, Block] = field(init=False, default_factory=dict)  # decoded blocks awaiting delivery
    _sync_turn: int = field(init=False, default=0)
    _requesting: bool = field(init=False, default=False)  # a sync request is in flight
    _nursery: trio.Nursery | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._events, self._event_inbox = trio.open_memory_channel(EVENT_QUEUE)
        self.mempool = Mempool(self.genesis.chain_id, self.config.mempool)
        self.verifier = TxVerifier(self.chain)
        if not self.config.observer:
            self.replica = self._make_replica()

    @property
    def is_member(self) -> bool:
        return self.replica is not None

    def _make_replica(self) -> Replica:
        head = self.chain.head()
        store = self.chain.store
        last_decided = None
        if head.height > 0:
            block = store.block_bytes(head.height)
            certificate = store.certificate(head.height)
            if block is not None and certificate is not None:
                last_decided = Decided(block, certificate)
        return Replica(
            replica_config(self.genesis),
            Ed25519Signer(self.key),
            self._validate,
            next_height=head.height + 1,
            record=store.signer_record(),
            last_decided=last_decided,
            certified_digest=self._certified_digest,
        )

    # ---- the validity functions handed to the replica ---------------------------------------------------

    def _block(self, data: bytes) -> Block:
        """Decode a block, reusing the last one: a proposal is validated, then delivered (same bytes)."""
        last = self._last_block
        if last is None or last.encoded != data:
            last = self._last_block = Block.decode(data)
        return last

    def _validate(self, height: int, data: bytes, local_now_ms: int) -> bytes:
        try:
            block = self._block(data)
            if block.height != height:
                raise LedgerError(f"block for height {block.height} proposed at height {height}")
            self.chain.validate_block(block, local_now_ms)
        except LedgerError as exc:
            logger.info("proposal for height %d refused (head %d): %s", height, self.chain.head().height, exc)
            raise
        return block.hash

    def _certified_digest(self, height: int, data: bytes) -> bytes:
        """The digest of a block that arrives with a certificate (state transfer). It is not executed here:
        the replica checks the certificate over this digest, then delivers the blocks in order, and the node
        executes each one against its parent (a certified block that does not execute means this node
        diverged, which stops it loudly)."""
        block = self._decoded_fetched(height, data, keep=True)
        if block.height != height:
            raise LedgerError(f"block for height {block.height} delivered at height {height}")
        return block.hash

    # ---- tasks --------------------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.network.register_handler(SYNC_PROTOCOL, self._serve_sync)
        self.network.register_handler(TXPULL_PROTOCOL, self._serve_txpull)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._gossip_in)
            nursery.start_soon(self._pull_transactions)
            nursery.start_soon(self._gossip_flush)
            if self.replica is not None:
                nursery.start_soon(self._consensus_in)
                nursery.start_soon(self._ticker)
                nursery.start_soon(self._drive)
            else:
                nursery.start_soon(self._follow)
            task_status.started()

    async def _serve_sync(self, peer_id: str, request: bytes) -> bytes:
        return serve_request(self.chain.store, request)

    async def _serve_txpull(self, peer_id: str, request: bytes) -> bytes:
        def lookup(tx_hash: bytes) -> bytes | None:
            tx = self.mempool.get(tx_hash)
            return None if tx is None else tx.encoded

        return serve_txpull(request, lambda limit: self.mempool.hashes()[:limit], lookup)

    async def _consensus_in(self) -> None:
        async for sender, payload in self.network.inbound():
            await self._events.send(MessageReceived(sender, payload))

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(TICK_INTERVAL_S)
            await self._events.send(Tick(now_ms()))

    async def _drive(self) -> None:
        replica = self.replica
        assert replica is not None
        await self._execute(replica.tick(now_ms()))
        async for event in self._event_inbox:
            if isinstance(event, Tick):
                self._proposer_poked = False
                actions = replica.tick(event.now_ms) if event.now_ms >= self._timer_at else []
                actions += self._housekeeping(event.now_ms)
            elif isinstance(event, MessageReceived):
                await self._verify_proposed_txs(event)
                actions = replica.step(event)
            else:
                actions = replica.step(event)
            await self._execute(actions)

    async def _verify_proposed_txs(self, event: MessageReceived) -> None:
        """Check the signatures of the transactions a proposal brings that this member has not verified yet,
        in worker threads, before the replica validates it (which would check them one by one on the event
        loop). Only for a proposal of the current or the next height from its proposer (the next height's is
        held until this member applied the current one, and validated then): anyone else's costs nothing."""
        replica = self.replica
        assert replica is not None
        try:
            message = decode_message(event.data)
        except DecodeError:
            return  # the replica drops it and counts the fault
        if isinstance(message, NewView):
            message = message.pre_prepare
        if not isinstance(message, PrePrepare):
            return
        vote = message.vote
        proposer = self.genesis.validators.proposer(vote.height, vote.view).public_key.raw
        if not 0 <= vote.height - replica.height <= 1 or not vote.signer == event.sender == proposer:
            return
        try:
            block = self._block(message.block)
            unverified = [
                Transaction.decode(raw) for raw in block.txs if not self.chain.is_verified(tx_hash_of(raw))
            ]
        except DecodeError:
            return
        if unverified:
            await self.verifier.verify(unverified)

    def _poke_proposer(self) -> None:
        """New transactions while this member waits to propose: propose now, not at the next tick."""
        if self._proposal_wanted is None or self._proposer_poked:
            return
        try:
            self._events.send_nowait(Tick(now_ms()))
        except trio.WouldBlock:
            return  # the queue is full: the driver is busy and the next tick comes soon enough
        self._proposer_poked = True

    def _housekeeping(self, now: int) -> list[Action]:
        """Build a wanted proposal when it is time, and raise the censorship alarm."""
        replica = self.replica
        assert replica is not None
        actions: list[Action] = []
        if self._proposal_wanted is not None:
            actions += self._maybe_propose(now)
        current = (replica.height, replica.view)
        if self._alarmed_view == current or now < self._next_censorship_check:
            return actions
        self._next_censorship_check = now + CENSORSHIP_CHECK_MS
        if self.mempool.overdue(self.chain.state, now):
            self._alarmed_view = current
            logger.warning(
                "transactions waited past the censorship bound at %s; voting to change view", current
            )
            actions += replica.step(CensorshipAlarm(replica.height))
        return actions

    def _maybe_propose(self, now: int) -> list[Action]:
        assert self._proposal_wanted is not None and self.replica is not None
        height, view = self._proposal_wanted
        if (height, view) != (self.replica.height, self.replica.view):
            self._proposal_wanted = None
            return []
        head = self.chain.head()
        idle_ms = now - head.timestamp_ms
        if len(self.mempool) == 0 and idle_ms < self.genesis.block_params.empty_block_interval_ms:
            return []
        self._proposal_wanted = None
        txs = self.mempool.select(self.chain.state, self.genesis.block_params.max_block_txs)
        timestamp = max(now, head.timestamp_ms + 1)
        block, _ = self.chain.build_block(txs, timestamp, self.key.public.raw)
        self._last_block = block
        logger.debug("proposing block %d view %d with %d txs", height, view, len(block.txs))
        return self.replica.step(ProposalReady(height, view, block.encoded))

    async def _execute(self, actions: Sequence[Action]) -> None:
        """Execute a batch in order; after a delivery, report the applied height (the replica starts the next
        height only then)."""
        applied: int | None = None
        for action in _with_transfers(actions):
            if isinstance(action, Transferred):
                await self._deliver_transferred(action.deliveries)
                applied = action.deliveries[-1].height
            elif isinstance(action, Persist):
                self.chain.store.put_signer_record(action.record)
            elif isinstance(action, Send):
                self._send(action.to, action.data)
            elif isinstance(action, Broadcast):
                self.network.broadcast(action.data)
            elif isinstance(action, Deliver):
                self._deliver(action)
                applied = action.height
            elif isinstance(action, RequestProposal):
                self._proposal_wanted = (action.height, action.view)
                await self._execute(self._maybe_propose(now_ms()))
            elif isinstance(action, SetTimer):
                self._timer_at = action.at_ms
            elif isinstance(action, FetchBlocks):
                self._start_fetch(action)
            elif isinstance(action, PeerFault):
                points = PEER_FAULTS.get(action.cause)
                if points is not None:
                    self._penalize_member(action.member, action.cause.removeprefix("dropped_"), points)
            elif isinstance(action, ReportEvidence):
                logger.error("equivocation by member %s", action.offender.hex())
                self._penalize_member(action.offender, "equivocation", 100.0)
            elif isinstance(action, ViewChanged):
                logger.info(
                    "view change at height %d: view %d -> %d", action.height, action.old_view, action.new_view
                )
            elif isinstance(action, ProposalAbandoned):
                logger.info("proposal for height %d view %d abandoned", action.height, action.view)
        if applied is not None:
            assert self.replica is not None
            await self._execute(self.replica.step(Applied(applied)))

    def _send(self, to: bytes, data: bytes) -> None:
        try:
            self.network.send(to, data)
        except NetworkError as exc:
            logger.warning("cannot send to %s: %s", to.hex()[:16], exc)

    def _penalize_member(self, member: bytes, reason: str, points: float) -> None:
        try:
            self.network.penalize(self.network.peer_id_of(member), reason, points)
        except (NetworkError, KeyError):
            logger.warning("cannot penalize %s for %s", member.hex()[:16], reason)

    def _deliver(self, action: Deliver) -> None:
        block = self._block(action.block)
        if block.height <= self.chain.head().height:
            return
        execution = self.chain.validate_block(block, block.header.timestamp_ms)
        txs = self.chain.commit(block, action.certificate, execution)
        self._after_commit(block, txs)

    def _after_commit(self, block: Block, txs: Sequence[Transaction]) -> None:
        self.metrics.committed(block.height, len(block.txs), time.time_ns() // 1_000)
        self.mempool.remove_committed(txs, self.chain.state)
        self._waiters.committed(tx.hash for tx in txs)
        logger.info("committed block %d (%d txs)", block.height, len(txs))

    # ---- catch-up -------------------------------------------------------------------------------------

    def _start_fetch(self, action: FetchBlocks) -> None:
        assert self.replica is not None
        if self._fetching or action.from_height < self.replica.height:
            return  # a fetch runs, or the replica decided past this request while earlier blocks were applied
        self._fetching = True
        self.syncing = True
        assert self._nursery is not None
        self._nursery.start_soon(self._fetch, action)

    async def _fetch(self, action: FetchBlocks) -> None:
        """Fetch certified blocks from the members ahead, range after range, while the driver applies the
        ranges before (pipelined, at most FETCH_AHEAD_BLOCKS beyond the head). Stops at an empty answer,
        when no member answers, or when the head stops moving (the replica refused what came); the replica
        asks again while it is behind."""
        try:
            next_height = action.from_height
            while await self._room_to_fetch(next_height):
                blocks = await self._request_blocks(action.peers, next_height)
                if not blocks:
                    return
                for block, _ in blocks:
                    self._fetched[block.height] = block
                fetched = tuple(FetchedBlock(b.height, b.encoded, c) for b, c in blocks)
                await self._events.send(BlocksFetched(fetched))
                next_height = blocks[-1][0].height + 1
        finally:
            self._fetching = False
            self.syncing = False

    async def _room_to_fetch(self, next_height: int) -> bool:
        """Wait until `next_height` is within FETCH_AHEAD_BLOCKS of the head; False if the head stalls."""
        head = self.chain.head().height
        moved = trio.current_time()
        while next_height - head > FETCH_AHEAD_BLOCKS:
            await trio.sleep(FETCH_POLL_S)
            if self.chain.head().height != head:
                head, moved = self.chain.head().height, trio.current_time()
            elif trio.current_time() - moved > SYNC_TIMEOUT_S:
                return False
        return True

    async def _request_blocks(
        self, members: Sequence[bytes], from_height: int
    ) -> list[tuple[Block, Certificate]]:
        """Consecutive blocks from `from_height` with their certificates, asking the members in turn (each
        request goes to the next one, spreading the serving work); [] if none has any or none answers."""
        for _ in members:
            member = members[self._sync_turn % len(members)]
            self._sync_turn += 1
            try:
                self._requesting = True
                try:
                    answer = await self.network.request(
                        self.network.peer_id_of(member),
                        SYNC_PROTOCOL,
                        encode_request(from_height, MAX_SYNC_BLOCKS),
                        SYNC_TIMEOUT_S,
                    )
                finally:
                    self._requesting = False
                blocks = await trio.to_thread.run_sync(decode_response, answer)
            except (RequestFailed, NetworkError, LedgerError) as exc:
                logger.info("block sync from %s failed: %s", member.hex()[:16], exc)
                continue
            if [block.height for block, _ in blocks] != list(range(from_height, from_height + len(blocks))):
                logger.warning("block sync from %s: not the blocks asked for", member.hex()[:16])
                continue
            return blocks
        return []

    async def _let_others_run(self) -> None:
        """Between groups: let the other ready tasks run (for at most CATCH_UP_YIELD_S) and, while a sync
        request is in flight, pause CATCH_UP_FETCH_PAUSE_S for its answer. A checkpoint moves each ready task
        one step, and a request needs dozens of network round trips (stream set-up, yamux flow control):
        without the pause each round trip would wait for a whole group, so the next range would only
        arrive once the current one is applied, and nothing would overlap."""
        deadline = trio.current_time() + CATCH_UP_YIELD_S
        await trio.sleep(CATCH_UP_FETCH_PAUSE_S if self._requesting else 0)
        while trio.lowlevel.current_statistics().tasks_runnable and trio.current_time() < deadline:
            await trio.sleep(0)

    def _decoded_fetched(self, height: int, data: bytes, keep: bool) -> Block:
        """The block `_fetch` decoded for `height`, if these are its bytes; else `data` decoded now."""
        cached = self._fetched.get(height) if keep else self._fetched.pop(height, None)
        return cached if cached is not None and cached.encoded == data else Block.decode(data)

    async def _deliver_transferred(self, deliveries: Sequence[Deliver]) -> None:
        """Apply consecutive certified blocks (state transfer) in groups, one synced write per group, and let
        other tasks run between groups."""
        group: list[tuple[Block, Certificate]] = []
        txs = 0
        for action in deliveries:
            block = self._decoded_fetched(action.height, action.block, keep=False)
            group.append((block, action.certificate))
            txs += len(block.txs)
            if txs >= CATCH_UP_GROUP_TXS or len(group) >= CATCH_UP_GROUP_BLOCKS:
                self._apply_certified_group(group, None)
                group, txs = [], 0
                await self._let_others_run()
        if group:
            self._apply_certified_group(group, None)
        head = self.chain.head().height
        for height in [h for h in self._fetched if h <= head]:
            del self._fetched[height]

    def _apply_certified_group(
        self, group: Sequence[tuple[Block, Certificate]], local_now_ms: int | None
    ) -> None:
        """Check each certificate, execute and store the blocks in one synced write, relying on the
        certificates for the transaction signatures (docs/consensus.md); then clear the mempool and answer
        waiters for what was stored. A failure raises after the good blocks before it are stored."""
        applied: list[AppliedBlock] = []
        try:
            self.chain.apply_certified(group, local_now_ms, verify_signatures=False, applied=applied)
        finally:
            stored_us = time.time_ns() // 1_000
            for item in applied:
                self.metrics.committed(item.block.height, len(item.txs), stored_us)
            txs = [tx for item in applied for tx in item.txs]
            if len(self.mempool):
                self.mempool.remove_committed(txs, self.chain.state)
            self._waiters.committed(tx.hash for tx in txs)
            if applied:
                logger.info(
                    "committed blocks %d-%d (%d txs) from certificates",
                    applied[0].block.height,
                    applied[-1].block.height,
                    len(txs),
                )

    async def _follow(self) -> None:
        """Observer: poll members for new certified blocks and apply them in groups after checking every
        certificate (and executing every block)."""
        members = [m.public_key.raw for m in self.genesis.validators]
        turn = 0
        while True:
            member = members[turn % len(members)]
            turn += 1
            try:
                answer = await self.network.request(
                    self.network.peer_id_of(member),
                    SYNC_PROTOCOL,
                    encode_request(self.chain.head().height + 1, MAX_SYNC_BLOCKS),
                    SYNC_TIMEOUT_S,
                )
                blocks = await trio.to_thread.run_sync(decode_response, answer)
            except (RequestFailed, NetworkError, LedgerError) as exc:
                logger.debug("observer sync from %s failed: %s", member.hex()[:16], exc)
                blocks = []
            if not blocks:
                self.syncing = False
                await trio.sleep(OBSERVER_POLL_S)
                continue
            self.syncing = True
            try:
                for start in range(0, len(blocks), CATCH_UP_GROUP_BLOCKS):
                    self._apply_certified_group(blocks[start : start + CATCH_UP_GROUP_BLOCKS], now_ms())
                    await self._let_others_run()
            except LedgerError as exc:
                logger.error("certified blocks from %s refused: %s", member.hex()[:16], exc)
                self._penalize_member(member, "bad certified block", 50.0)

    # ---- transactions ---------------------------------------------------------------------------------

    async def _gossip_in(self) -> None:
        async for peer_id, raws in self.network.tx_batches():
            await self._admit_from_peer(peer_id, raws, "gossip batch")

    async def _admit_from_peer(self, peer_id: str, raws: Sequence[bytes], what: str) -> None:
        """Check a peer's transactions (signatures in worker threads), then admit them; invalid ones cost
        it score."""
        txs: list[Transaction] = []
        bad = 0
        for raw in raws:
            try:
                txs.append(Transaction.decode(raw))
            except DecodeError:
                bad += 1
        valid = await self.verifier.verify(txs)
        now = now_ms()
        admitted_any = False
        for tx, ok in zip(txs, valid, strict=True):
            if not ok:
                bad += 1
                continue
            try:
                admitted_any = self.mempool.admit(tx, self.chain.state, now, from_peer=True) or admitted_any
            except MempoolRejected:
                continue
        if admitted_any:
            self._poke_proposer()
        if bad:
            self.network.penalize(peer_id, f"{bad} invalid transactions in a {what}", float(bad))

    async def _pull_transactions(self) -> None:
        """Catch-up pull: every interval, ask the next member for the pending transactions we lack."""
        members = [
            m.public_key.raw for m in self.genesis.validators if m.public_key.raw != self.key.public.raw
        ]
        turn = 0
        while True:
            await trio.sleep(TXPULL_INTERVAL_S)
            peer_id = self.network.peer_id_of(members[turn % len(members)])
            turn += 1
            try:
                hashes = decode_hashes(
                    await self.network.request(
                        peer_id, TXPULL_PROTOCOL, hashes_request(MAX_PULL_HASHES), TXPULL_TIMEOUT_S
                    )
                )
                store = self.chain.store
                missing = [h for h in hashes if h not in self.mempool and store.tx_location(h) is None]
                if not missing:
                    continue
                answer = await self.network.request(
                    peer_id, TXPULL_PROTOCOL, fetch_request(missing), TXPULL_TIMEOUT_S
                )
                raws = decode_transactions(answer)
            except (RequestFailed, NetworkError, LedgerError) as exc:
                logger.debug("transaction pull from %s failed: %s", peer_id, exc)
                continue
            logger.info("pulled %d missing transactions from %s", len(raws), peer_id)
            await self._admit_from_peer(peer_id, raws, "pull answer")

    async def _gossip_flush(self) -> None:
        """Send new transactions as soon as there are any, then gather for GOSSIP_BATCH_S; every
        REGOSSIP_SCAN_MS, add the transactions pending for REGOSSIP_AGE_MS (once each)."""
        next_scan = 0
        while True:
            with trio.move_on_after(REGOSSIP_SCAN_MS / 1000):
                await self._gossip_ready.wait()
            self._gossip_ready = trio.Event()
            room = MAX_GOSSIP_BUFFER - len(self._gossip_out)
            if now_ms() >= next_scan and room > 0:
                next_scan = now_ms() + REGOSSIP_SCAN_MS
                again = self.mempool.to_regossip(now_ms(), REGOSSIP_AGE_MS, room)
                self._gossip_out.extend(tx.encoded for tx in again)
            if not self._gossip_out:
                continue
            batch, self._gossip_out = self._gossip_out, []
            try:
                if self.is_member:
                    self.network.relay_txs(batch)
                else:
                    await self.network.publish_txs(batch)
            except NetworkError as exc:
                logger.warning("gossip of %d transactions failed: %s", len(batch), exc)
            await trio.sleep(GOSSIP_BATCH_S)

    async def admit(self, raws: Sequence[bytes]) -> list[Transaction | MempoolRejected]:
        """Check and admit client transactions, in order: each one's transaction, or why it was refused.
        Concurrent calls check signatures in parallel and admit in the order they arrived."""
        async with self._client_arrivals.place() as turn:
            outcomes: list[Transaction | MempoolRejected] = []
            for raw in raws:
                try:
                    outcomes.append(self.mempool.check_envelope(raw))
                except MempoolRejected as exc:
                    outcomes.append(exc)
            decoded = [tx for tx in outcomes if isinstance(tx, Transaction)]
            valid = dict(zip((tx.hash for tx in decoded), await self.verifier.verify(decoded), strict=True))
            await turn()
            self._admit_checked(outcomes, valid)
        return outcomes

    def _admit_checked(self, outcomes: list[Transaction | MempoolRejected], valid: dict[bytes, bool]) -> None:
        store = self.chain.store
        now = now_ms()
        admitted_any = False
        for index, tx in enumerate(outcomes):
            if not isinstance(tx, Transaction):
                continue
            if not valid[tx.hash]:
                outcomes[index] = MempoolRejected("BAD_SIGNATURE", "the signature does not verify")
                continue
            if store.tx_location(tx.hash) is not None:
                continue
            try:
                admitted = self.mempool.admit(tx, self.chain.state, now)
            except MempoolRejected as exc:
                outcomes[index] = exc
                continue
            admitted_any = admitted_any or admitted
            if admitted and len(self._gossip_out) < MAX_GOSSIP_BUFFER:
                self._gossip_out.append(tx.encoded)
                self._gossip_ready.set()
        if admitted_any:
            self._poke_proposer()

    async def wait_committed(self, tx_hashes: Sequence[bytes], timeout_s: float = COMMIT_WAIT_S) -> bool:
        """Wait until every hash is committed; False on timeout."""
        store = self.chain.store
        waiting = [h for h in tx_hashes if store.tx_location(h) is None]
        return await self._waiters.wait(waiting, timeout_s)


@dataclass
class Transferred:
    """Consecutive Deliver actions (the replica emits them for state transfer): applied together."""

    deliveries: list[Deliver]


def _with_transfers(actions: Sequence[Action]) -> list[Action | Transferred]:
    """The actions, with each run of two or more consecutive Delivers replaced by one Transferred."""
    out: list[Action | Transferred] = []
    for action in actions:
        last = out[-1] if out else None
        if isinstance(action, Deliver) and isinstance(last, Transferred):
            last.deliveries.append(action)
        elif isinstance(action, Deliver) and isinstance(last, Deliver):
            out[-1] = Transferred([last, action])
        else:
            out.append(action)
    return out
