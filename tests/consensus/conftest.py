"""The consensus simulator: n replicas over a seeded fake network with a fake clock and Byzantine members.

Everything random comes from `random.Random` seeded by the scenario, and events are ordered by (time,
sequence number), so a seed replays byte for byte. Blocks are canonical lists `[height, proposer, [tx ids],
marker]`; the validity function rejects other shapes, a wrong height or a marker other than b"ok". Each
member has a mempool model:
clients hand transactions to every member, proposers put their pending transactions in blocks, and a
transaction pending longer than `CENSORSHIP_BOUND_MS` raises a censorship alarm.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from consensus.crypto import Ed25519Signer, Ed25519Verifier, verify_certificate
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
    ProposalReady,
    ReplicaConfig,
    ReportEvidence,
    RequestProposal,
    Send,
    SetTimer,
    Tick,
)
from consensus.messages import (
    ROUND_CHANGE_TAG,
    Decided,
    Kind,
    NewView,
    PreparedCertificate,
    PrePrepare,
    RoundChange,
    Vote,
    decode_message,
    encode_message,
    round_change_payload,
    vote_tag_and_payload,
)
from consensus.replica import Replica
from ledger.codec import decode, encode, expect_bytes, expect_int, expect_list
from ledger.errors import DecodeError, LedgerError
from ledger.hashing import tagged_hash
from ledger.keys import PrivateKey
from ledger.validators import ValidatorSet

CHAIN = "sim-chain"
BLOCK_TAG = b"sim/block"
EMPTY_BLOCK_DELAY_MS = 400
CENSORSHIP_BOUND_MS = 2_500
MEMPOOL_CHECK_MS = 250
MAX_TXS_PER_BLOCK = 64
FETCH_BATCH = 8
APPLY_DELAY_MS = 3  # a node reports a delivered block applied within this
LIVENESS_BOUND_MS = 30_000  # after healing, every honest member commits TARGET_NEW_HEIGHTS within this
TARGET_NEW_HEIGHTS = 2
SIM_CONFIG = {
    "base_timeout_ms": 500,
    "max_timeout_doublings": 4,
    "resend_interval_ms": 400,
    "fetch_interval_ms": 300,
}
BEHAVIOURS = (
    "silent",
    "mute_proposer",
    "equivocate",
    "wrong_digest",
    "invalid_block",
    "forger",
    "replayer",
    "garbage",
    "censor",
)


# Crypto -----------------------------------------------------------------------------------------------------


class StandInSigner:
    """A keyed hash in place of ed25519: only the holder of the secret can make a signature that checks."""

    def __init__(self, public_key: bytes, secret: bytes) -> None:
        self._public_key, self._secret = public_key, secret

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def sign(self, tag: bytes, chain_id: str, payload: bytes) -> bytes:
        return hashlib.sha512(b"%b|%b|%b|%b" % (self._secret, tag, chain_id.encode(), payload)).digest()


class StandInVerifier:
    def __init__(self, secrets: dict[bytes, bytes]) -> None:
        self._secrets = secrets

    def verify(self, signer: bytes, tag: bytes, chain_id: str, payload: bytes, signature: bytes) -> bool:
        secret = self._secrets.get(signer)
        return secret is not None and StandInSigner(signer, secret).sign(tag, chain_id, payload) == signature


def member_keys(n: int) -> list[PrivateKey]:
    return [PrivateKey(hashlib.sha256(b"sim-member-%d" % i).digest()) for i in range(n)]


# Blocks -----------------------------------------------------------------------------------------------------


def make_block(height: int, proposer: int, txs: list[int], marker: bytes = b"ok") -> bytes:
    return encode([height, proposer, sorted(txs), marker])


@functools.lru_cache(maxsize=4096)
def block_txs(block: bytes) -> tuple[int, ...]:
    value = expect_list(decode(block, 1 << 20), 4, "sim block")
    txs = value[2]
    assert isinstance(txs, list)
    return tuple(expect_int(t, "tx") for t in txs)


def validate(height: int, block: bytes, now_ms: int) -> bytes:
    value = expect_list(decode(block, 1 << 20), 4, "sim block")
    if expect_int(value[0], "height") != height:
        raise LedgerError("block is for another height")
    expect_int(value[1], "proposer", 0, 63)
    txs = value[2]
    if not isinstance(txs, list) or len(txs) > MAX_TXS_PER_BLOCK:
        raise LedgerError("bad transaction list")
    ids = [expect_int(t, "tx") for t in txs]
    if ids != sorted(set(ids)):
        raise LedgerError("transactions not sorted or repeated")
    if expect_bytes(value[3], "marker") != b"ok":
        raise LedgerError("invalid block")
    return tagged_hash(BLOCK_TAG, block)


def certified_digest(height: int, block: bytes) -> bytes:
    return validate(height, block, 0)


# Scenario ---------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    n: int
    seed: int
    real_signatures: bool = False
    byzantine: dict[int, str] = field(default_factory=dict)
    max_delay_ms: int = 20
    drop_permille: int = 0
    duplicate_permille: int = 0
    link_cuts: list[tuple[int, int, int, int]] = field(default_factory=list)  # (from, to, cut_at, restore_at)
    isolations: list[tuple[int, int, int]] = field(default_factory=list)  # (member, from_ms, to_ms)
    crashes: list[tuple[int, int, int]] = field(default_factory=list)  # (member, crash_at, restart_at)
    heal_ms: int = 1_500
    txs: list[tuple[int, int, int]] = field(default_factory=list)  # (at_ms, client, tx id)
    censored_client: int | None = None


def random_scenario(n: int, seed: int) -> Scenario:
    rng = random.Random(f"scenario-{n}-{seed}")
    f = (n - 1) // 3
    members = list(range(n))
    rng.shuffle(members)
    byzantine = {m: rng.choice(BEHAVIOURS) for m in members[: rng.randint(0, f)]}
    honest = [m for m in range(n) if m not in byzantine]
    heal = rng.randint(200, 500)
    scenario = Scenario(
        n=n,
        seed=seed,
        real_signatures=seed % 50 == 0,
        byzantine=byzantine,
        max_delay_ms=rng.randint(2, 60),
        drop_permille=rng.choice((0, 0, 20, 100, 300)),
        duplicate_permille=rng.choice((0, 30)),
        heal_ms=heal,
    )
    for _ in range(rng.randint(0, 3)):
        a, b = rng.sample(range(n), 2)
        start = rng.randint(0, heal - 100)
        scenario.link_cuts.append((a, b, start, rng.randint(start + 1, heal)))
    if rng.random() < 0.3:
        start = rng.randint(0, heal - 200)
        scenario.isolations.append((rng.choice(honest), start, rng.randint(start + 100, heal)))
    if rng.random() < 0.3:
        start = rng.randint(0, heal - 200)
        scenario.crashes.append((rng.choice(honest), start, rng.randint(start + 50, heal)))
    if "censor" in byzantine.values() or rng.random() < 0.3:
        scenario.censored_client = 7
    for tx_id in range(1, rng.randint(2, 8) + 1):
        client = rng.choice((1, 2, 3, 7))
        scenario.txs.append((rng.randint(0, heal), client, tx_id * 16 + client))
    return scenario


# Simulation -------------------------------------------------------------------------------------------------


@dataclass
class Member:
    index: int
    replica: Replica
    behaviour: str | None
    alive: bool = True
    incarnation: int = 0
    record: bytes | None = None
    log: list[Deliver] = field(default_factory=list)
    mempool: dict[int, int] = field(default_factory=dict)  # tx id -> time it arrived
    alarmed_height: int = -1
    evidence: list[ReportEvidence] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)


class Simulation:
    def __init__(self, scenario: Scenario, config_overrides: dict[str, int] | None = None) -> None:
        self.scenario = scenario
        self.rng = random.Random(f"network-{scenario.n}-{scenario.seed}")
        self.keys = member_keys(scenario.n)
        self.validators = ValidatorSet.of([(f"m{i}", k.public.raw) for i, k in enumerate(self.keys)])
        self.raw = [k.public.raw for k in self.keys]
        self.index = {raw: i for i, raw in enumerate(self.raw)}
        if scenario.real_signatures:
            self.signers: list[Any] = [Ed25519Signer(k) for k in self.keys]
            verifier: Any = Ed25519Verifier(self.validators)
        else:
            secrets = {k.public.raw: k.seed for k in self.keys}
            self.signers = [StandInSigner(k.public.raw, k.seed) for k in self.keys]
            verifier = StandInVerifier(secrets)
        self.config = ReplicaConfig(
            CHAIN, self.validators, verifier, **{**SIM_CONFIG, **(config_overrides or {})}
        )
        self.now = 0
        self.queue: list[tuple[int, int, str, Any]] = []
        self.sequence = 0
        self.trace = hashlib.sha256()
        self.cut: set[tuple[int, int]] = set()
        self.messages_sent = 0
        self.violations: list[str] = []
        self.members = [
            Member(
                i,
                Replica(
                    self.config, self.signers[i], self._validate_at(i), certified_digest=certified_digest
                ),
                scenario.byzantine.get(i),
            )
            for i in range(scenario.n)
        ]
        self.honest = [m for m in self.members if m.behaviour is None]
        self.heal_heights: dict[int, int] = {}
        self.live_at: int | None = None
        self.tx_arrival: dict[int, int] = {}
        self.tx_committed: dict[int, int] = {}  # tx id -> time every honest member had committed it
        self._schedule_scenario()

    # Scheduling -------------------------------------------------------------------------------------------

    def at(self, time: int, kind: str, payload: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.queue, (time, self.sequence, kind, payload))

    def _schedule_scenario(self) -> None:
        s = self.scenario
        for member in self.members:
            self.at(0, "tick", (member.index, 0))
            self.at(MEMPOOL_CHECK_MS, "mempool", member.index)
        for a, b, cut_at, restore_at in s.link_cuts:
            self.at(cut_at, "cut", (a, b))
            self.at(restore_at, "restore", (a, b))
        for member, start, end in s.isolations:
            for other in range(s.n):
                if other != member:
                    for link in ((member, other), (other, member)):
                        self.at(start, "cut", link)
                        self.at(end, "restore", link)
        for member, crash_at, restart_at in s.crashes:
            self.at(crash_at, "crash", member)
            self.at(restart_at, "restart", member)
        for time, client, tx in s.txs:
            self.at(time, "tx", (client, tx))
        self.at(s.heal_ms, "heal", None)

    def _validate_at(self, index: int) -> Callable[[int, bytes, int], bytes]:
        """A member's validity function: like a real chain, it judges a block against the parent it has
        applied, so validating height h before applying h - 1 is a replica bug (and fails)."""

        def member_validate(height: int, block: bytes, now_ms: int) -> bytes:
            applied = len(self.members[index].log)
            if height != applied + 1:
                self.violations.append(f"member {index} validated height {height} with {applied} applied")
                raise LedgerError(f"no parent for height {height}")
            return validate(height, block, now_ms)

        return member_validate

    # Running ----------------------------------------------------------------------------------------------

    def run(self, until_ms: int | None = None, stop: Callable[[Simulation], bool] | None = None) -> None:
        limit = until_ms if until_ms is not None else self.scenario.heal_ms + LIVENESS_BOUND_MS
        while self.queue and self.queue[0][0] <= limit:
            time, _, kind, payload = heapq.heappop(self.queue)
            self.now = time
            self._handle(kind, payload)
            if stop is not None and stop(self):
                return

    def run_to_liveness(self) -> None:
        self.run(stop=lambda sim: sim.is_live())

    def is_live(self) -> bool:
        if not self.heal_heights:
            return False
        for member in self.honest:
            if len(member.log) < self.heal_heights[member.index] + TARGET_NEW_HEIGHTS:
                return False
        if self.live_at is None:
            self.live_at = self.now
        return self.pending_held_txs() == []

    def pending_held_txs(self) -> list[int]:
        committed = {tx for d in self.honest[0].log for tx in block_txs(d.block)}
        return sorted(tx for tx in self.tx_arrival if tx not in committed)

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "deliver":
            to, sender, data = payload
            member = self.members[to]
            if member.alive:
                member.received.append(data)
                self.step(member, MessageReceived(self.raw[sender], data))
        elif kind == "tick":
            index, incarnation = payload
            member = self.members[index]
            if member.alive and member.incarnation == incarnation:
                self.step(member, Tick(self.now))
        elif kind == "event":
            index, incarnation, event = payload
            member = self.members[index]
            if member.alive and member.incarnation == incarnation:
                self.step(member, event)
        elif kind == "mempool":
            self._check_mempool(self.members[payload])
            self.at(self.now + MEMPOOL_CHECK_MS, "mempool", payload)
        elif kind == "tx":
            _client, tx = payload
            self.tx_arrival[tx] = self.now
            for member in self.members:
                member.mempool.setdefault(tx, self.now)
        elif kind == "cut":
            self.cut.add(payload)
        elif kind == "restore":
            self.cut.discard(payload)
        elif kind == "crash":
            self.members[payload].alive = False
            self.members[payload].incarnation += 1
        elif kind == "restart":
            self._restart(self.members[payload])
        elif kind == "heal":
            self.cut.clear()
            self.heal_heights = {m.index: len(m.log) for m in self.honest}
        self.trace.update(f"{self.now}|{kind}|".encode())

    def _restart(self, member: Member) -> None:
        last = member.log[-1] if member.log else None
        decided = None
        if last is not None:
            decided = Decided(last.block, last.certificate)
        member.replica = Replica(
            self.config,
            self.signers[member.index],
            self._validate_at(member.index),
            certified_digest=certified_digest,
            next_height=len(member.log) + 1,
            record=member.record,
            last_decided=decided,
        )
        member.alive = True
        member.incarnation += 1
        self.step(member, Tick(self.now))

    def _check_mempool(self, member: Member) -> None:
        if not member.alive or member.behaviour is not None:
            return
        height = member.replica.height
        waited = [tx for tx, since in member.mempool.items() if self.now - since > CENSORSHIP_BOUND_MS]
        if waited and member.alarmed_height != height:
            member.alarmed_height = height
            self.step(member, CensorshipAlarm(height))

    # The node: executing actions --------------------------------------------------------------------------

    def step(self, member: Member, event: Event) -> None:
        """Step and execute the actions; after a delivery, report the applied height a moment later (the
        replica must hold the next height's messages meanwhile)."""
        applied = len(member.log)
        for action in member.replica.step(event):
            self._execute(member, action)
        if len(member.log) > applied:
            delay = self.rng.randint(0, APPLY_DELAY_MS)
            self.at(self.now + delay, "event", (member.index, member.incarnation, Applied(len(member.log))))

    def send(self, sender: int, to: int, data: bytes) -> None:
        self.messages_sent += 1
        self.trace.update(b"%d>%d:" % (sender, to) + hashlib.sha256(data).digest())
        if (sender, to) in self.cut or not self.members[to].alive:
            return
        healed = self.now >= self.scenario.heal_ms
        if not healed and self.rng.randrange(1000) < self.scenario.drop_permille:
            return
        copies = 2 if not healed and self.rng.randrange(1000) < self.scenario.duplicate_permille else 1
        for _ in range(copies):
            self.at(self.now + self.rng.randint(1, self.scenario.max_delay_ms), "deliver", (to, sender, data))

    def _execute(self, member: Member, action: Action) -> None:
        behaviour = member.behaviour
        if behaviour is not None and behaviour_overrides(self, member, action):
            return
        if isinstance(action, Persist):
            member.record = action.record
        elif isinstance(action, Broadcast):
            for other in range(self.scenario.n):
                if other != member.index:
                    self.send(member.index, other, action.data)
        elif isinstance(action, Send):
            self.send(member.index, self.index[action.to], action.data)
        elif isinstance(action, SetTimer):
            self.at(max(action.at_ms, self.now), "tick", (member.index, member.incarnation))
        elif isinstance(action, Deliver):
            self._on_deliver(member, action)
        elif isinstance(action, RequestProposal):
            self._propose(member, action)
        elif isinstance(action, FetchBlocks):
            self._serve_fetch(member, action)
        elif isinstance(action, ReportEvidence):
            member.evidence.append(action)
        elif isinstance(action, PeerFault):
            blamed = self.members[self.index[action.member]]
            if member.behaviour is None and blamed.behaviour is None:
                self.violations.append(
                    f"member {member.index} blamed honest member {blamed.index}: {action.cause}"
                )

    def _propose(self, member: Member, request: RequestProposal) -> None:
        committed = {tx for d in member.log for tx in block_txs(d.block)}
        pending = sorted(tx for tx in member.mempool if tx not in committed)
        if member.behaviour == "censor":
            pending = [tx for tx in pending if tx % 16 != self.scenario.censored_client]
        block = make_block(request.height, member.index, pending[:MAX_TXS_PER_BLOCK])
        delay = 0 if pending else EMPTY_BLOCK_DELAY_MS
        event = ProposalReady(request.height, request.view, block)
        self.at(self.now + delay, "event", (member.index, member.incarnation, event))

    def _serve_fetch(self, member: Member, request: FetchBlocks) -> None:
        peers = [self.members[self.index[p]] for p in request.peers]
        peer = peers[self.rng.randrange(len(peers))]
        if not peer.alive:
            return
        served = peer.log[request.from_height - 1 : request.from_height - 1 + FETCH_BATCH]
        blocks = tuple(FetchedBlock(d.height, d.block, d.certificate) for d in served)
        if blocks:
            delay = self.rng.randint(1, self.scenario.max_delay_ms)
            self.at(self.now + delay, "event", (member.index, member.incarnation, BlocksFetched(blocks)))

    def _on_deliver(self, member: Member, delivered: Deliver) -> None:
        self.trace.update(b"deliver%d:%d:" % (member.index, delivered.height) + delivered.block_hash)
        if delivered.height != len(member.log) + 1:
            self.violations.append(f"member {member.index} delivered height {delivered.height} out of order")
        try:
            digest = validate(delivered.height, delivered.block, self.now)
            if digest != delivered.block_hash:
                self.violations.append(f"member {member.index}: delivered digest differs from the block's")
            verify_certificate(
                delivered.certificate, self.validators, CHAIN, delivered.height, digest, self.config.verifier
            )
            if self.scenario.real_signatures:
                delivered.certificate.verify(self.validators, CHAIN, delivered.height, digest)
        except LedgerError as exc:
            self.violations.append(f"member {member.index} delivered an invalid block or certificate: {exc}")
        member.log.append(delivered)
        for tx in block_txs(delivered.block):
            member.mempool.pop(tx, None)
            if (
                member.behaviour is None
                and tx in self.tx_arrival
                and tx not in self.tx_committed
                and all(any(tx in block_txs(d.block) for d in m.log) for m in self.honest)
            ):
                self.tx_committed[tx] = self.now

    def transaction_latencies(self) -> dict[int, int]:
        """For each transaction: time from max(arrival, healing) until every honest member committed it."""
        heal = self.scenario.heal_ms
        return {tx: at - max(self.tx_arrival[tx], heal) for tx, at in self.tx_committed.items()}

    # Properties -------------------------------------------------------------------------------------------

    def agreement_violations(self) -> list[str]:
        problems = []
        logs = [m.log for m in self.honest]
        for height in range(1, max(len(log) for log in logs) + 1):
            hashes = {log[height - 1].block_hash for log in logs if len(log) >= height}
            if len(hashes) > 1:
                problems.append(f"honest members committed different blocks at height {height}")
        return problems

    def trace_digest(self) -> str:
        return self.trace.hexdigest()


# Byzantine behaviours ---------------------------------------------------------------------------------------


def behaviour_overrides(sim: Simulation, member: Member, action: Action) -> bool:
    """Apply the member's Byzantine behaviour to one action; True when it replaced the honest action."""
    behaviour = member.behaviour
    if behaviour == "silent":
        return isinstance(action, Broadcast | Send)
    lies = ("equivocate", "wrong_digest", "invalid_block")
    if behaviour in lies and isinstance(action, RequestProposal) and action.view == 0:
        _lying_proposal(sim, member, action)
        return True
    if not isinstance(action, Broadcast):
        return False
    message = decode_message(action.data)
    is_proposal = isinstance(message, PrePrepare | NewView)
    if behaviour == "mute_proposer":
        return is_proposal
    rng = sim.rng
    if behaviour == "forger":
        victim = sim.raw[rng.randrange(sim.scenario.n)]
        digest = rng.randbytes(32)
        for signer in (victim, sim.raw[member.index]):
            forged = Vote(
                Kind.COMMIT, signer, member.replica.height, member.replica.view, digest, rng.randbytes(64)
            )
            _broadcast(sim, member, encode_message(forged))
    elif behaviour == "replayer":  # replays its own old messages and others' (from old views and heights)
        member.received.append(action.data)
        for _ in range(3):
            _broadcast(sim, member, member.received[rng.randrange(len(member.received))])
    elif behaviour == "garbage":
        _broadcast(sim, member, rng.randbytes(rng.randint(0, 80)))
        _broadcast(sim, member, action.data[: rng.randint(0, len(action.data))])
    return False


def _broadcast(sim: Simulation, member: Member, data: bytes) -> None:
    for other in range(sim.scenario.n):
        if other != member.index:
            sim.send(member.index, other, data)


def signed_pre_prepare(
    sim: Simulation, member: int, height: int, view: int, block: bytes, digest: bytes
) -> bytes:
    tag, payload = vote_tag_and_payload(Kind.PRE_PREPARE, height, view, digest)
    signature = sim.signers[member].sign(tag, CHAIN, payload)
    return encode_message(
        PrePrepare(Vote(Kind.PRE_PREPARE, sim.raw[member], height, view, digest, signature), block)
    )


def _lying_proposal(sim: Simulation, member: Member, request: RequestProposal) -> None:
    """A Byzantine proposer: two blocks to two halves, a digest not the block's, or an invalid block."""
    h, i = request.height, member.index
    first = make_block(h, i, [1])
    second = make_block(h, i, [2])
    others = [o for o in range(sim.scenario.n) if o != i]
    for position, other in enumerate(others):
        if member.behaviour == "equivocate":
            block = first if position % 2 else second
            data = signed_pre_prepare(sim, i, h, 0, block, validate(h, block, 0))
        elif member.behaviour == "wrong_digest":
            data = signed_pre_prepare(sim, i, h, 0, first, validate(h, second, 0))
        else:
            bad = make_block(h, i, [3], marker=b"bad")
            data = signed_pre_prepare(sim, i, h, 0, bad, tagged_hash(BLOCK_TAG, bad))
        sim.send(i, other, data)
    if member.behaviour == "equivocate":  # one member also gets the other block: it can prove the lie
        sim.send(i, others[0], signed_pre_prepare(sim, i, h, 0, first, validate(h, first, 0)))


class Crafter:
    """Signs consensus messages as any member, to drive one replica through a rule by hand."""

    def __init__(self, n: int = 4, real_signatures: bool = True) -> None:
        self.keys = member_keys(n)
        self.validators = ValidatorSet.of([(f"m{i}", k.public.raw) for i, k in enumerate(self.keys)])
        self.raw = [k.public.raw for k in self.keys]
        if real_signatures:
            self.signers: list[Any] = [Ed25519Signer(k) for k in self.keys]
            verifier: Any = Ed25519Verifier(self.validators)
        else:
            self.signers = [StandInSigner(k.public.raw, k.seed) for k in self.keys]
            verifier = StandInVerifier({k.public.raw: k.seed for k in self.keys})
        self.config = ReplicaConfig(CHAIN, self.validators, verifier, **SIM_CONFIG)

    def replica(self, member: int, **kwargs: Any) -> Replica:
        replica = Replica(
            self.config, self.signers[member], validate, certified_digest=certified_digest, **kwargs
        )
        replica.tick(0)
        return replica

    def vote(self, kind: Kind, member: int, height: int, view: int, digest: bytes) -> Vote:
        tag, payload = vote_tag_and_payload(kind, height, view, digest)
        return Vote(
            kind, self.raw[member], height, view, digest, self.signers[member].sign(tag, CHAIN, payload)
        )

    def pre_prepare(self, member: int, height: int, view: int, block: bytes) -> PrePrepare:
        return PrePrepare(
            self.vote(Kind.PRE_PREPARE, member, height, view, validate(height, block, 0)), block
        )

    def prepared(self, height: int, view: int, block: bytes, preparers: list[int]) -> PreparedCertificate:
        proposer = self.raw.index(self.validators.proposer(height, view).public_key.raw)
        head = self.pre_prepare(proposer, height, view, block).vote
        return PreparedCertificate(
            head, tuple(self.vote(Kind.PREPARE, m, height, view, head.digest) for m in preparers)
        )

    def round_change(
        self,
        member: int,
        height: int,
        view: int,
        prepared: PreparedCertificate | None = None,
        block: bytes | None = None,
    ) -> RoundChange:
        tag, payload = ROUND_CHANGE_TAG, round_change_payload(height, view, prepared)
        signature = self.signers[member].sign(tag, CHAIN, payload)
        return RoundChange(self.raw[member], height, view, prepared, signature, block)

    def receive(self, replica: Replica, member: int, message: Any) -> list[Action]:
        data = message if isinstance(message, bytes) else encode_message(message)
        return replica.step(MessageReceived(self.raw[member], data))


def replay_command(test: str, seed: int, n: int) -> str:
    return (
        f"seed {seed} (n={n}) failed; replay with: .venv/bin/python -m pytest "
        f"'tests/consensus/{test}' --seed-offset {seed} --seeds 1 -q"
    )


@pytest.fixture
def sim() -> SimpleNamespace:
    """The simulator's parts, for the tests of this folder."""
    return SimpleNamespace(
        Simulation=Simulation,
        Crafter=Crafter,
        Scenario=Scenario,
        random_scenario=random_scenario,
        make_block=make_block,
        validate=validate,
        certified_digest=certified_digest,
        block_txs=block_txs,
        member_keys=member_keys,
        StandInSigner=StandInSigner,
        StandInVerifier=StandInVerifier,
        signed_pre_prepare=signed_pre_prepare,
        replay_command=replay_command,
        CHAIN=CHAIN,
        SIM_CONFIG=SIM_CONFIG,
        LIVENESS_BOUND_MS=LIVENESS_BOUND_MS,
        CENSORSHIP_BOUND_MS=CENSORSHIP_BOUND_MS,
        TARGET_NEW_HEIGHTS=TARGET_NEW_HEIGHTS,
        BEHAVIOURS=BEHAVIOURS,
        DecodeError=DecodeError,
    )
