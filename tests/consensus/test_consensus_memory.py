"""Memory stays bounded: after 10,000 heights a replica holds the current height, one certificate and bounded
future queues, whatever the peers send (ahead, behind, or far beyond)."""

from __future__ import annotations

from types import SimpleNamespace

from consensus.events import Applied, Broadcast, Deliver, ProposalReady, RequestProposal
from consensus.messages import Kind

HEIGHTS = 10_000
NOISE_EVERY = 10
ME = 2


def test_ten_thousand_heights_leave_only_bounded_state(sim: SimpleNamespace) -> None:
    c = sim.Crafter(real_signatures=False)
    replica = c.replica(ME)
    per_sender = c.config.max_future_per_sender
    largest: dict[str, int] = {}
    delivered = 0
    for height in range(1, HEIGHTS + 1):
        block = sim.make_block(height, height % 4, [])
        digest = sim.validate(height, block, 0)
        proposer = height % 4  # proposer(height, 0)
        if proposer == ME:
            actions = replica.step(ProposalReady(height, 0, block))
        else:
            actions = c.receive(replica, proposer, c.pre_prepare(proposer, height, 0, block))
        preparers = [m for m in range(4) if m not in (ME, proposer)]
        for member in preparers[:1] if proposer != ME else preparers:
            actions += c.receive(replica, member, c.vote(Kind.PREPARE, member, height, 0, digest))
        for member in [m for m in range(4) if m != ME][:2]:
            actions += c.receive(replica, member, c.vote(Kind.COMMIT, member, height, 0, digest))
        if height % NOISE_EVERY == 0:  # a vote for a near-future height (queued), one far ahead, one past
            actions += c.receive(replica, 3, c.vote(Kind.PREPARE, 3, height + 2, height % 7, digest))
            actions += c.receive(replica, 0, c.vote(Kind.PREPARE, 0, height + 1_000, 0, digest))
            actions += c.receive(replica, 1, c.vote(Kind.COMMIT, 1, max(height - 3, 1), 0, digest))
        actions += replica.step(Applied(height))
        delivered += sum(isinstance(a, Deliver) for a in actions)
        assert replica.height == height + 1, (height, actions)
        assert any(isinstance(a, Broadcast) for a in actions)
        if (height + 1) % 4 == ME:
            assert any(isinstance(a, RequestProposal) for a in actions)
        for name, count in replica.held().items():
            largest[name] = max(largest.get(name, 0), count)
    assert delivered == HEIGHTS
    held = replica.held()
    assert held["certificates"] == 1
    assert largest["future_longest"] <= per_sender
    assert largest["future"] <= 4 * per_sender
    # The current height's messages only: a few votes, never growing with the number of heights.
    for name in ("pre_prepares", "prepares", "commits", "round_changes", "blocks", "seen", "verified"):
        assert largest[name] <= 16, (name, largest[name])
    assert replica.counters["dropped_far_future"] == HEIGHTS // NOISE_EVERY
