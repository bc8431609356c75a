"""One test per protocol rule, driving a single replica (member 2 of 4, ed25519) with hand-signed messages.

Citations: PBFT = Castro and Liskov, "Practical Byzantine Fault Tolerance", OSDI 1999 (TOCS 2002 for the
recovery sections); IBFT 2.0 = Saltini and Hyland-Wood, "IBFT 2.0: A Safe and Live Variation of the IBFT
Blockchain Consensus Protocol for Eventually Synchronous Networks", 2019. With n = 4, f = 1: proposer(1, 0) is
member 1 and proposer(1, 1) is member 2.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from consensus.events import (
    Applied,
    BlocksFetched,
    Broadcast,
    CensorshipAlarm,
    Deliver,
    FetchBlocks,
    FetchedBlock,
    PeerFault,
    Persist,
    ReportEvidence,
    RequestProposal,
    Send,
    Tick,
    ViewChanged,
)
from consensus.messages import (
    Decided,
    Kind,
    NewView,
    PrePrepare,
    RoundChange,
    Vote,
    decode_evidence,
    decode_message,
)
from consensus.record import SignedRecord
from consensus.replica import Replica
from ledger.block import UntimelyBlock
from ledger.votes import Certificate, CommitVote

ME = 2


def broadcasts(actions: list[Any]) -> list[Any]:
    return [decode_message(a.data) for a in actions if isinstance(a, Broadcast)]


def votes_of(actions: list[Any], kind: Kind) -> list[Vote]:
    return [m for m in broadcasts(actions) if isinstance(m, Vote) and m.kind is kind]


def prepared_replica(sim: SimpleNamespace) -> tuple[Any, Any, bytes, bytes]:
    """Member 2 prepared on block B at height 1, view 0 (it sent COMMIT)."""
    c = sim.Crafter()
    replica = c.replica(ME)
    block = sim.make_block(1, 1, [5])
    pre_prepare = c.pre_prepare(1, 1, 0, block)
    c.receive(replica, 1, pre_prepare)
    actions = c.receive(replica, 0, c.vote(Kind.PREPARE, 0, 1, 0, pre_prepare.vote.digest))
    assert votes_of(actions, Kind.COMMIT)
    return c, replica, block, pre_prepare.vote.digest


def test_prepared_needs_a_pre_prepare_and_2f_matching_prepares(sim: SimpleNamespace) -> None:
    """PBFT 4.2: prepared(m, v, n, i) needs the pre-prepare and 2f matching PREPAREs of distinct backups."""
    c = sim.Crafter()
    replica = c.replica(ME)
    block = sim.make_block(1, 1, [5])
    digest = sim.validate(1, block, 0)
    # Prepares alone (even 2f of them, even the proposer's) do not prepare without the pre-prepare.
    for member in (0, 1):
        assert not votes_of(
            c.receive(replica, member, c.vote(Kind.PREPARE, member, 1, 0, digest)), Kind.COMMIT
        )
    # A fresh replica: the pre-prepare plus its own PREPARE is 1 < 2f matching prepares: not prepared.
    replica = c.replica(ME)
    actions = c.receive(replica, 1, c.pre_prepare(1, 1, 0, block))
    assert [v.digest for v in votes_of(actions, Kind.PREPARE)] == [digest]
    assert not votes_of(actions, Kind.COMMIT)
    # A PREPARE for another digest does not match.
    other = sim.validate(1, sim.make_block(1, 1, [6]), 0)
    assert not votes_of(c.receive(replica, 3, c.vote(Kind.PREPARE, 3, 1, 0, other)), Kind.COMMIT)
    # The proposer's own PREPARE is not a backup's: still not prepared.
    assert not votes_of(c.receive(replica, 1, c.vote(Kind.PREPARE, 1, 1, 0, digest)), Kind.COMMIT)
    # A second backup's matching PREPARE makes 2f: prepared, so the replica sends COMMIT.
    commits = votes_of(c.receive(replica, 0, c.vote(Kind.PREPARE, 0, 1, 0, digest)), Kind.COMMIT)
    assert [v.digest for v in commits] == [digest]


def test_committed_needs_2f_plus_1_commits_and_yields_a_ledger_certificate(sim: SimpleNamespace) -> None:
    """PBFT 4.2: committed-local(m, v, n, i) needs 2f+1 matching COMMITs; the certificate is the ledger's."""
    c, replica, block, digest = prepared_replica(sim)
    # Own COMMIT + one more = 2 < 2f+1.
    assert not [
        a for a in c.receive(replica, 0, c.vote(Kind.COMMIT, 0, 1, 0, digest)) if isinstance(a, Deliver)
    ]
    # A COMMIT from a non-member key or for another digest does not count.
    other = sim.validate(1, sim.make_block(1, 1, [6]), 0)
    assert not [
        a for a in c.receive(replica, 3, c.vote(Kind.COMMIT, 3, 1, 0, other)) if isinstance(a, Deliver)
    ]
    c2 = sim.Crafter()
    actions = c2.receive(replica, 1, c2.vote(Kind.COMMIT, 1, 1, 0, digest))
    delivered = [a for a in actions if isinstance(a, Deliver)]
    assert len(delivered) == 1
    d = delivered[0]
    assert (d.height, d.block, d.block_hash) == (1, block, digest)
    d.certificate.verify(c.validators, sim.CHAIN, 1, digest)  # the ledger alone checks it
    assert len(d.certificate.votes) == c.validators.quorum.commit
    assert replica.height == 2


def test_second_conflicting_pre_prepare_is_rejected_with_evidence(sim: SimpleNamespace) -> None:
    """PBFT 4.2: a backup accepts a pre-prepare only if it accepted none for (v, n) with another digest."""
    c = sim.Crafter()
    replica = c.replica(ME)
    first, second = sim.make_block(1, 1, [5]), sim.make_block(1, 1, [6])
    assert votes_of(c.receive(replica, 1, c.pre_prepare(1, 1, 0, first)), Kind.PREPARE)
    actions = c.receive(replica, 1, c.pre_prepare(1, 1, 0, second))
    assert not votes_of(actions, Kind.PREPARE)
    evidence = [a for a in actions if isinstance(a, ReportEvidence)]
    assert len(evidence) == 1 and evidence[0].offender == c.raw[1]
    a, b = decode_evidence(evidence[0].first), decode_evidence(evidence[0].second)
    assert isinstance(a, Vote) and isinstance(b, Vote)
    assert (a.height, a.view, a.kind) == (b.height, b.view, b.kind) and a.digest != b.digest
    assert replica.counters["equivocations"] == 1


def test_f_plus_1_round_changes_for_higher_views_make_a_replica_join(sim: SimpleNamespace) -> None:
    """PBFT 4.5.2: f+1 VIEW-CHANGEs for views above its own make a replica send one for the smallest."""
    c = sim.Crafter()
    replica = c.replica(3)
    assert not broadcasts(c.receive(replica, 0, c.round_change(0, 1, 3)))  # f = 1 alone: ignored
    assert replica.view == 0
    sent = broadcasts(c.receive(replica, 1, c.round_change(1, 1, 5)))
    joined = [m for m in sent if isinstance(m, RoundChange)]
    assert [(m.height, m.view) for m in joined] == [(1, 3)] and replica.view == 3


def test_a_prepared_block_survives_a_view_change(sim: SimpleNamespace) -> None:
    """PBFT 4.4 / IBFT 2.0 section 4: the new proposer re-proposes the highest prepared block."""
    c, replica, block, digest = prepared_replica(sim)
    timeout = replica.step(Tick(sim.SIM_CONFIG["base_timeout_ms"]))
    assert [(a.old_view, a.new_view) for a in timeout if isinstance(a, ViewChanged)] == [(0, 1)]
    own = [m for m in broadcasts(timeout) if isinstance(m, RoundChange)]
    assert len(own) == 1 and own[0].prepared is not None and own[0].prepared.digest == digest
    assert own[0].block == block
    # Member 2 is proposer(1, 1); with two more round changes (neither prepared) it has a quorum.
    c.receive(replica, 0, c.round_change(0, 1, 1))
    actions = c.receive(replica, 3, c.round_change(3, 1, 1))
    assert not [a for a in actions if isinstance(a, RequestProposal)]
    new_views = [m for m in broadcasts(actions) if isinstance(m, NewView)]
    assert len(new_views) == 1
    assert new_views[0].pre_prepare.block == block and new_views[0].pre_prepare.vote.digest == digest


def test_a_new_view_that_drops_a_prepared_block_is_rejected(sim: SimpleNamespace) -> None:
    """PBFT 4.4 (backups check the new-view's O set) / IBFT 2.0 justification of a round-change proposal."""
    c = sim.Crafter()
    replica = c.replica(3)
    block, other = sim.make_block(1, 1, [5]), sim.make_block(1, 2, [9])
    prepared = c.prepared(1, 0, block, [0, 2])
    round_changes = (c.round_change(0, 1, 1, prepared), c.round_change(1, 1, 1), c.round_change(2, 1, 1))
    dropping = NewView(c.pre_prepare(2, 1, 1, other), tuple(rc.without_block() for rc in round_changes))
    actions = c.receive(replica, 2, dropping)
    assert not votes_of(actions, Kind.PREPARE)
    assert replica.counters["dropped_bad_new_view"] == 1
    keeping = NewView(c.pre_prepare(2, 1, 1, block), dropping.round_changes)
    prepares = votes_of(c.receive(replica, 2, keeping), Kind.PREPARE)
    assert [(p.view, p.digest) for p in prepares] == [(1, sim.validate(1, block, 0))]
    too_few = NewView(c.pre_prepare(2, 1, 2, other), ())
    assert not votes_of(c.receive(replica, 2, too_few), Kind.PREPARE)


def test_persist_comes_before_send_and_a_restart_never_contradicts(sim: SimpleNamespace) -> None:
    """PBFT 4.5 (TOCS): what a replica signed survives a crash, so it never signs a conflicting message."""
    c = sim.Crafter()
    replica = c.replica(ME)
    first, second = sim.make_block(1, 1, [5]), sim.make_block(1, 1, [6])
    actions = c.receive(replica, 1, c.pre_prepare(1, 1, 0, first))
    kinds = [type(a) for a in actions if isinstance(a, Persist | Broadcast)]
    assert kinds == [Persist, Broadcast]
    record = next(a.record for a in actions if isinstance(a, Persist))
    assert SignedRecord.decode(record).encode() == record
    restarted = c.replica(ME, record=record)
    actions = c.receive(restarted, 1, c.pre_prepare(1, 1, 0, second))
    assert not votes_of(actions, Kind.PREPARE)
    assert restarted.counters["refused_to_contradict"] == 1
    # The same pre-prepare again is fine: signing the same thing twice is no contradiction.
    again = votes_of(c.receive(c.replica(ME, record=record), 1, c.pre_prepare(1, 1, 0, first)), Kind.PREPARE)
    assert len(again) == 1


def test_a_censorship_alarm_votes_for_a_view_change(sim: SimpleNamespace) -> None:
    """IBFT 2.0 round change on timeout, triggered early: a transaction waited past its bound."""
    c = sim.Crafter()
    replica = c.replica(3)
    sent = broadcasts(replica.step(CensorshipAlarm(1)))
    assert [(m.height, m.view) for m in sent if isinstance(m, RoundChange)] == [(1, 1)]
    assert broadcasts(replica.step(CensorshipAlarm(7))) == []  # another height: ignored


def test_state_transfer_starts_at_f_plus_1_higher_members_and_checks_certificates(
    sim: SimpleNamespace,
) -> None:
    """PBFT 4.3/5.3 (checkpoints, state transfer): blocks are taken only with a certificate that verifies."""
    c = sim.Crafter()
    replica = c.replica(3)
    far = sim.make_block(3, 0, [])
    assert not [a for a in c.receive(replica, 0, c.pre_prepare(0, 3, 0, far)) if isinstance(a, FetchBlocks)]
    fetches = [
        a
        for a in c.receive(replica, 1, c.vote(Kind.PREPARE, 1, 3, 0, b"\1" * 32))
        if isinstance(a, FetchBlocks)
    ]
    assert len(fetches) == 1 and fetches[0].from_height == 1 and set(fetches[0].peers) == {c.raw[0], c.raw[1]}
    block = sim.make_block(1, 1, [])
    digest = sim.validate(1, block, 0)
    votes = tuple(
        CommitVote(v.signer, v.signature) for v in (c.vote(Kind.COMMIT, m, 1, 0, digest) for m in (0, 1))
    )
    short = Certificate(1, 0, digest, votes)
    replica.step(BlocksFetched((FetchedBlock(1, block, short),)))
    assert replica.height == 1 and replica.counters["dropped_bad_certificate"] == 1
    full = Certificate(
        1, 0, digest, (*votes, CommitVote(c.raw[2], c.vote(Kind.COMMIT, 2, 1, 0, digest).signature))
    )
    actions = replica.step(BlocksFetched((FetchedBlock(1, block, full),)))
    assert [(a.height, a.block_hash) for a in actions if isinstance(a, Deliver)] == [(1, digest)]
    # A member merely late at height 1 is left alone; one stuck there (asking for a new view) gets the block.
    assert not [
        a for a in c.receive(replica, 0, c.vote(Kind.PREPARE, 0, 1, 0, digest)) if isinstance(a, Send)
    ]
    helped = [a for a in c.receive(replica, 0, c.round_change(0, 1, 1)) if isinstance(a, Send)]
    assert len(helped) == 1 and isinstance(decode_message(helped[0].data), Decided)


def certified_blocks(c: Any, sim: SimpleNamespace, heights: range) -> list[FetchedBlock]:
    """Blocks at `heights`, each with a certificate of members 0, 1 and 2."""
    fetched = []
    for height in heights:
        block = sim.make_block(height, height % 4, [height])
        digest = sim.validate(height, block, 0)
        votes = tuple(
            CommitVote(c.raw[m], c.vote(Kind.COMMIT, m, height, 0, digest).signature) for m in (0, 1, 2)
        )
        fetched.append(FetchedBlock(height, block, Certificate(height, 0, digest, votes)))
    return fetched


def test_state_transfer_delivers_a_batch_consecutively_then_starts_the_next_height(
    sim: SimpleNamespace,
) -> None:
    """Fetched blocks are decided in order with nothing between their Delivers (the node applies such a run
    as one batch); only the height after the last one is started (member 3 proposes at heights 3 and 7)."""
    c = sim.Crafter()
    replica = c.replica(3)
    fetched = certified_blocks(c, sim, range(1, 7))
    actions = replica.step(BlocksFetched(tuple(reversed(fetched))))
    kinds = [type(a).__name__ for a in actions]
    assert kinds[:6] == ["Deliver"] * 6 and "Deliver" not in kinds[6:]
    assert [a.height for a in actions[:6]] == [1, 2, 3, 4, 5, 6]
    assert replica.height == 7 and replica.counters["certified_blocks_applied"] == 6
    # Height 7 starts once the node has applied all six, not before.
    assert not [a for a in actions + replica.step(Applied(5)) if isinstance(a, RequestProposal)]
    started = replica.step(Applied(6))
    assert [(a.height, a.view) for a in started if isinstance(a, RequestProposal)] == [(7, 0)]


def test_the_next_height_waits_until_the_node_applied_the_decided_block(sim: SimpleNamespace) -> None:
    """A proposal for h + 1 that arrived before h was decided is validated only once the node reports h
    applied (a node judges a block against its stored parent); messages arriving meanwhile are held."""
    c = sim.Crafter()
    validated: list[int] = []

    def recording_validate(height: int, block: bytes, now_ms: int) -> bytes:
        validated.append(height)
        return sim.validate(height, block, now_ms)

    replica = Replica(c.config, c.signers[3], recording_validate, certified_digest=sim.certified_digest)
    replica.tick(0)
    block1, block2 = sim.make_block(1, 1, []), sim.make_block(2, 2, [])
    digest1, digest2 = sim.validate(1, block1, 0), sim.validate(2, block2, 0)
    c.receive(replica, 1, c.pre_prepare(1, 1, 0, block1))
    c.receive(replica, 2, c.pre_prepare(2, 2, 0, block2))  # early: queued for height 2
    c.receive(replica, 2, c.vote(Kind.PREPARE, 2, 1, 0, digest1))
    c.receive(replica, 1, c.vote(Kind.COMMIT, 1, 1, 0, digest1))
    decided = c.receive(replica, 2, c.vote(Kind.COMMIT, 2, 1, 0, digest1))
    assert [a.height for a in decided if isinstance(a, Deliver)] == [1] and replica.height == 2
    assert validated == [1] and not votes_of(decided, Kind.PREPARE)
    held = c.receive(replica, 0, c.vote(Kind.PREPARE, 0, 2, 0, digest2))  # before the node applied 1
    assert validated == [1] and not votes_of(held, Kind.PREPARE) and not votes_of(held, Kind.COMMIT)
    started = replica.step(Applied(1))
    assert validated == [1, 2]
    assert [v.digest for v in votes_of(started, Kind.PREPARE)] == [digest2]
    assert [v.digest for v in votes_of(started, Kind.COMMIT)] == [digest2]  # the held PREPARE counted
    assert replica.counters["dropped_invalid_block"] == 0


def test_a_held_invalid_proposal_is_blamed_on_its_proposer_when_judged(sim: SimpleNamespace) -> None:
    """An invalid h + 1 proposal held while h is applied is judged in the Applied step: the fault names its
    proposer, not whoever sent the message that decided h."""
    c = sim.Crafter()
    replica = c.replica(3)
    block1, bad2 = sim.make_block(1, 1, []), sim.make_block(2, 2, [], marker=b"bad")
    digest1 = sim.validate(1, block1, 0)
    c.receive(replica, 1, c.pre_prepare(1, 1, 0, block1))
    signed_bad = PrePrepare(c.vote(Kind.PRE_PREPARE, 2, 2, 0, b"\x07" * 32), bad2)
    assert not [a for a in c.receive(replica, 2, signed_bad) if isinstance(a, PeerFault)]  # held
    c.receive(replica, 2, c.vote(Kind.PREPARE, 2, 1, 0, digest1))
    c.receive(replica, 0, c.vote(Kind.COMMIT, 0, 1, 0, digest1))
    decided = c.receive(replica, 1, c.vote(Kind.COMMIT, 1, 1, 0, digest1))
    assert [a.height for a in decided if isinstance(a, Deliver)] == [1]
    assert not [a for a in decided if isinstance(a, PeerFault)]
    faults = [a for a in replica.step(Applied(1)) if isinstance(a, PeerFault)]
    assert faults == [PeerFault(c.raw[2], "dropped_invalid_block")]


def test_an_untimely_proposal_is_dropped_without_blaming_its_proposer(sim: SimpleNamespace) -> None:
    """A proposal outside the local clock bound (it waited in a queue while this member was away, or this
    clock is off) proves nothing against the proposer: it is dropped and counted, and nobody is blamed."""
    c = sim.Crafter()

    def clock_judging_validate(height: int, block: bytes, now_ms: int) -> bytes:
        if now_ms > 0:
            raise UntimelyBlock("timestamp -5200 ms from the local clock (bound 5000 ms)")
        return sim.validate(height, block, now_ms)

    replica = Replica(c.config, c.signers[ME], clock_judging_validate, certified_digest=sim.certified_digest)
    replica.tick(1_000)
    actions = c.receive(replica, 1, c.pre_prepare(1, 1, 0, sim.make_block(1, 1, [5])))
    assert not [a for a in actions if isinstance(a, PeerFault)]
    assert not votes_of(actions, Kind.PREPARE)
    assert replica.counters["dropped_untimely_block"] == 1
    assert replica.counters["dropped_invalid_block"] == 0


def test_state_transfer_stops_at_a_bad_certificate_or_a_gap(sim: SimpleNamespace) -> None:
    c = sim.Crafter()
    replica = c.replica(3)
    fetched = certified_blocks(c, sim, range(1, 7))
    bad = fetched[3].certificate
    fetched[3] = FetchedBlock(4, fetched[3].block, Certificate(4, 0, bad.block_hash, bad.votes[:2]))
    actions = replica.step(BlocksFetched(tuple(fetched)))
    assert [a.height for a in actions if isinstance(a, Deliver)] == [1, 2, 3]
    assert replica.height == 4 and replica.counters["dropped_bad_certificate"] == 1
    later = certified_blocks(c, sim, range(5, 8))  # height 4 missing: nothing is taken
    assert not [a for a in replica.step(BlocksFetched(tuple(later))) if isinstance(a, Deliver)]
    assert replica.height == 4


def test_pre_prepare_in_a_later_view_needs_a_new_view(sim: SimpleNamespace) -> None:
    """PBFT 4.4: in a view above 0 the primary's pre-prepares are justified by its NEW-VIEW."""
    c = sim.Crafter()
    replica = c.replica(3)
    actions = c.receive(replica, 2, c.pre_prepare(2, 1, 1, sim.make_block(1, 2, [])))
    assert not votes_of(actions, Kind.PREPARE)
    assert replica.counters["dropped_pre_prepare_without_new_view"] == 1
    not_proposer = c.receive(
        replica, 0, PrePrepare(c.pre_prepare(0, 1, 0, sim.make_block(1, 0, [])).vote, b"")
    )
    assert not votes_of(not_proposer, Kind.PREPARE)
