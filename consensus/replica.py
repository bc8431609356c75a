"""The replica: PBFT (Castro and Liskov) for a chain, one height at a time, as a sans-I/O state machine.

Theory: the sequence number is the height (IBFT 2.0). In view v of height h, proposer(h, v) sends a
pre-prepare with the block; the others send PREPARE; a member holding the pre-prepare and matching PREPAREs
from a quorum in all is *prepared* and sends COMMIT; a quorum (2f+1) of COMMITs for one digest decides the
block, and those COMMIT signatures are its certificate. A timer that doubles with each view starts a view
change: members send ROUND-CHANGE carrying their highest prepared certificate; the next proposer gathers a
quorum into a NEW-VIEW whose block must be the highest prepared one (see view_change.py for why this is safe).
The replica reads no clock and does no I/O: time arrives in `Tick` events and everything it wants done comes
out as actions. A decided height is delivered to the node, and the next one starts (proposal request, queued
messages, fetches) only once the node reports it `Applied`: its blocks are judged against that parent.
Bad input is dropped and counted, never raised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from consensus import events as ev
from consensus.crypto import CountingVerifier, Signer, verify_certificate
from consensus.events import Action, Event, ReplicaConfig, Validate
from consensus.height import HeightState
from consensus.messages import (
    Decided,
    Kind,
    Message,
    NewView,
    PreparedCertificate,
    PrePrepare,
    RoundChange,
    Vote,
    decode_message,
    encode_message,
    message_signer,
)
from consensus.record import SignedRecord
from consensus.transfer import CatchUp
from consensus.view_change import highest_prepared, is_authentic, new_view_problem
from ledger.block import UntimelyBlock
from ledger.errors import LedgerError
from ledger.votes import Certificate, CommitVote


class Replica:
    def __init__(
        self,
        config: ReplicaConfig,
        signer: Signer,
        validate: Validate,
        *,
        certified_digest: Callable[[int, bytes], bytes],
        next_height: int = 1,
        record: bytes | None = None,
        last_decided: Decided | None = None,
    ) -> None:
        """`record`: the last persisted record (restart); `last_decided`: the block below `next_height`.

        `validate(height, block, now_ms)` judges a proposal against the applied parent;
        `certified_digest(height, block)` gives the digest of a block that arrives with a certificate (state
        transfer), without its parent, since several certified blocks may be decided before the node applies
        the first.
        """
        self.config = config
        self._validators = config.validators
        self._quorum = config.validators.quorum
        self._signer = signer
        self._me = signer.public_key
        if self._me not in config.validators:
            raise ValueError("a replica signs as a member of the validator set")
        self._validate = validate
        self._certified_digest = certified_digest
        self.counters: Counter[str] = Counter()
        self._verifier = CountingVerifier(config.verifier, self.counters)
        self._now = 0
        self._applied = next_height - 1  # the node has applied every block up to here
        self._started = False
        self._record = SignedRecord.restore(record, next_height)
        self._h = HeightState(next_height, self._record.view, 0)
        if self._record.prepared is not None and self._record.prepared_block is not None:
            self._h.blocks[self._record.prepared.digest] = self._record.prepared_block
        self._catch_up = CatchUp(config, last_decided)
        self._next_resend_ms = 0
        self._timer_set_ms = -1
        self._out: list[Action] = []

    @property
    def height(self) -> int:
        return self._h.height

    @property
    def view(self) -> int:
        return self._h.view

    @property
    def last_decided(self) -> Decided | None:
        return self._catch_up.last_decided

    def tick(self, now_ms: int) -> list[Action]:
        return self.step(ev.Tick(now_ms))

    def step(self, event: Event) -> list[Action]:
        if isinstance(event, ev.Tick):
            self._on_tick(event.now_ms)
        elif isinstance(event, ev.MessageReceived):
            self._on_data(event.sender, event.data)
        elif isinstance(event, ev.ProposalReady):
            self._on_proposal(event)
        elif isinstance(event, ev.CensorshipAlarm):
            self._on_censorship(event.height)
        elif isinstance(event, ev.Applied):
            self._on_applied(event.height)
        else:
            self._on_fetched(event)
        if self._started:
            wake = min(self._deadline_ms(), self._next_resend_ms)
            if wake != self._timer_set_ms:
                self._timer_set_ms = wake
                self._out.append(ev.SetTimer(wake))
        out, self._out = self._out, []
        return out

    def held(self) -> dict[str, int]:
        """How much the replica holds (memory is bounded by these counts)."""
        return {
            **self._h.held(),
            "future": len(self._catch_up.future),
            "future_longest": self._catch_up.future.longest(),
            "certificates": 1 if self._catch_up.last_decided else 0,
        }

    # Time

    def _deadline_ms(self) -> int:
        doublings = min(self._h.view, self.config.max_timeout_doublings)
        return self._h.view_started_ms + (self.config.base_timeout_ms << doublings)

    def _on_tick(self, now_ms: int) -> None:
        self._now = max(self._now, now_ms)
        if not self._started:
            self._started = True
            self._h.view_started_ms = self._now
            self._next_resend_ms = self._now + self.config.resend_interval_ms
            if self._h.view > 0:
                self._broadcast_round_change()
            self._maybe_request_proposal()
            return
        if self._now >= self._deadline_ms():
            self.counters["timeouts"] += 1
            self._next_resend_ms = self._now + self.config.resend_interval_ms
            self._start_view_change(self._h.view + 1)
        if self._now >= self._next_resend_ms:
            self._next_resend_ms = self._now + self.config.resend_interval_ms
            for kind in sorted(self._h.own):
                self._out.append(ev.Broadcast(self._h.own[kind]))
                self.counters["resent"] += 1
        self._maybe_fetch()

    # Incoming messages

    def _on_data(self, sender: bytes, data: bytes) -> None:
        if sender not in self._validators or sender == self._me:
            self.counters["dropped_non_member"] += 1
            return
        try:
            message = decode_message(data)
        except LedgerError:
            self._fault(sender, "dropped_garbage")
            return
        signer = message_signer(message)
        if signer is not None and signer != sender:
            self._fault(sender, "dropped_wrong_sender")
            return
        height = message.height
        if height < self._h.height:
            self.counters["dropped_stale_height"] += 1
            if isinstance(message, RoundChange):  # it timed out below us: it is stuck, not merely late
                help_action = self._catch_up.help(sender, height, self._h.height, self._now)
                self._out.extend([help_action] if help_action else [])
            return
        if isinstance(message, Decided):
            self._on_decided(sender, message)
            return
        if not is_authentic(message, self._validators, self._check):
            self._fault(sender, "dropped_bad_signature")
            return
        self._catch_up.peers.saw(sender, height)
        if height == self._h.height and self._applying:
            if not self._catch_up.future.add(sender, message):
                self.counters["dropped_queue_full"] += 1
            return
        if height > self._h.height:
            if height > self._h.height + self.config.max_heights_ahead:
                self.counters["dropped_far_future"] += 1
            elif not self._catch_up.future.add(sender, message):
                self.counters["dropped_queue_full"] += 1
            self._maybe_fetch()
            return
        self._dispatch(message)

    def _check(self, signer: bytes, tag: bytes, payload: bytes, signature: bytes) -> bool:
        return self._h.check_signature(self._verifier, self.config.chain_id, signer, tag, payload, signature)

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, PrePrepare):
            if message.vote.view != 0:
                self.counters["dropped_pre_prepare_without_new_view"] += 1
            elif message.vote.signer != self._proposer(0):
                self.counters["dropped_not_proposer"] += 1
            else:
                self._accept_pre_prepare(message)
        elif isinstance(message, Vote):
            self._on_vote(message)
        elif isinstance(message, RoundChange):
            self._on_round_change(message)
        elif isinstance(message, NewView):
            self._on_new_view(message)

    def _conflicts(self, kind: Kind, view: int, signer: bytes, content: object, message: Message) -> bool:
        """A second, different message for one (kind, view, signer) slot is equivocation: report it."""
        earlier = self._h.remember(kind, view, signer, content, message)
        if earlier is None:
            return False
        self.counters["equivocations"] += 1
        self._out.append(ev.ReportEvidence(signer, encode_message(earlier), encode_message(message)))
        return True

    def _fault(self, member: bytes, cause: str) -> None:
        """Drop something that only a faulty or malicious `member` sends: count it, and tell the node whom
        to blame (not a counter difference: a held message is judged in a later step than it arrived)."""
        self.counters[cause] += 1
        if member != self._me:
            self._out.append(ev.PeerFault(member, cause))

    def _digest(self, height: int, block: bytes, author: bytes) -> bytes | None:
        try:
            return self._validate(height, block, self._now)
        except UntimelyBlock:
            self.counters["dropped_untimely_block"] += 1  # our clock's judgment: nobody to blame
            return None
        except LedgerError:
            self._fault(author, "dropped_invalid_block")
            return None

    # Normal case: pre-prepare, prepare, commit (PBFT section 4.2)

    def _proposer(self, view: int) -> bytes:
        return self._validators.proposer(self._h.height, view).public_key.raw

    def _accept_pre_prepare(self, pre_prepare: PrePrepare) -> None:
        vote, h = pre_prepare.vote, self._h
        if vote.view < h.view:
            self.counters["dropped_stale_view"] += 1
            return
        if self._conflicts(Kind.PRE_PREPARE, vote.view, vote.signer, vote.digest, vote):
            return
        if vote.view in h.pre_prepares:
            self.counters["duplicates"] += 1
            return
        if vote.signer != self._me:
            known = h.blocks.get(vote.digest) == pre_prepare.block
            digest = vote.digest if known else self._digest(h.height, pre_prepare.block, vote.signer)
            if digest is None:
                return
            if digest != vote.digest:
                self._fault(vote.signer, "dropped_wrong_digest")
                return
        if vote.view > h.view:
            self._move_to_view(vote.view)
        h.waiting_new_view = False
        h.pre_prepares[vote.view] = pre_prepare
        h.blocks[vote.digest] = pre_prepare.block
        if vote.signer != self._me:
            prepare = self._sign_vote(Kind.PREPARE, vote.view, vote.digest)
            if prepare is not None:
                self._persist_and_broadcast(Kind.PREPARE, prepare)
                h.prepares.setdefault(vote.view, {})[self._me] = prepare
        self._check_prepared()
        self._check_committed(vote.digest)

    def _on_vote(self, vote: Vote) -> None:
        h = self._h
        lowest = h.view if vote.kind is Kind.PREPARE else 0
        if not lowest <= vote.view <= h.view + self.config.max_views_ahead:
            self.counters["dropped_stale_view"] += 1
            return
        if self._conflicts(vote.kind, vote.view, vote.signer, vote.digest, vote):
            return
        box = (h.prepares if vote.kind is Kind.PREPARE else h.commits).setdefault(vote.view, {})
        if vote.signer in box:
            self.counters["duplicates"] += 1
            return
        box[vote.signer] = vote
        if vote.kind is Kind.PREPARE:
            self._check_prepared()
        else:
            self._check_committed(vote.digest)

    def _check_prepared(self) -> None:
        """Prepared: the pre-prepare and matching PREPAREs of others, a quorum in all (PBFT 4.2)."""
        h, prepared = self._h, self._record.prepared
        found = h.matching_prepares()
        if found is None or (prepared is not None and prepared.view == h.view):
            return
        pre_prepare, matching = found
        if len(matching) + 1 < self._quorum.commit:
            return
        self._record.prepared = PreparedCertificate(pre_prepare.vote, matching)
        self._record.prepared_block = pre_prepare.block
        commit = self._sign_vote(Kind.COMMIT, h.view, pre_prepare.vote.digest)
        if commit is not None:
            self._persist_and_broadcast(Kind.COMMIT, commit)
            h.commits.setdefault(h.view, {})[self._me] = commit
            self._check_committed(pre_prepare.vote.digest)

    def _check_committed(self, digest: bytes) -> None:
        """Committed: a quorum of COMMITs for one (view, digest), in any view (PBFT 4.2; IBFT 2.0 4.3)."""
        h = self._h
        block, found = h.blocks.get(digest), h.commit_quorum(digest, self._quorum.commit)
        if block is not None and found is not None:
            votes = tuple(CommitVote(v.signer, v.signature) for v in found[1])
            self._decide(found[0], block, digest, Certificate(h.height, found[0], digest, votes))

    def _decide(
        self, view: int, block: bytes, digest: bytes, certificate: Certificate, start_next: bool = True
    ) -> None:
        """Deliver the block and move to the next height; unless `start_next`, only enter it (state transfer
        decides several heights in a row and starts only the last one)."""
        h = self._h
        self._out.append(ev.Deliver(h.height, view, block, digest, certificate))
        for proposed_view, proposed in sorted(h.proposed.items()):
            if proposed_view == h.view and proposed != block:
                self._out.append(ev.ProposalAbandoned(h.height, proposed_view, proposed))
        self._catch_up.decided(Decided(block, certificate))
        self._enter_height(h.height + 1)
        if start_next:
            self._start_height()

    def _enter_height(self, height: int) -> None:
        self._record = SignedRecord(height)
        self._h = HeightState(height, 0, self._now)
        self._next_resend_ms = self._now + self.config.resend_interval_ms

    @property
    def _applying(self) -> bool:
        """The node has not yet applied the parent of the current height."""
        return self._applied < self._h.height - 1

    def _on_applied(self, height: int) -> None:
        if self._applied >= height or not self._applying:
            return
        self._applied = min(height, self._h.height - 1)
        self._start_height()

    def _start_height(self) -> None:
        """Once the parent is applied: ask for a proposal if it is ours, replay the messages queued for this
        height, fetch if behind."""
        if self._applying:
            return
        height = self._h.height
        self._maybe_request_proposal()
        for _, message in self._catch_up.future.take(height, self._validators):
            if self._h.height != height:
                break
            self._dispatch(message)
        self._maybe_fetch()

    # Proposing

    def _maybe_request_proposal(self) -> None:
        h = self._h
        if h.view == 0 and self._proposer(0) == self._me and h.proposal_requested is None and not h.proposed:
            h.proposal_requested = 0
            self._out.append(ev.RequestProposal(h.height, 0))

    def _on_proposal(self, event: ev.ProposalReady) -> None:
        h = self._h
        current = (event.height, event.view) == (h.height, h.view) and h.proposal_requested == event.view
        if not current or h.proposed:
            self.counters["dropped_stale_proposal"] += 1
            self._out.append(ev.ProposalAbandoned(event.height, event.view, event.block))
            return
        block = event.block
        if event.view > 0:
            best = highest_prepared(list(h.round_changes.get(h.view, {}).values()))
            if best is not None and best.digest in h.blocks:
                self._out.append(ev.ProposalAbandoned(event.height, event.view, event.block))
                block = h.blocks[best.digest]
        digest = self._digest(h.height, block, self._me)
        if digest is None:
            self._out.append(ev.ProposalAbandoned(event.height, event.view, event.block))
            return
        self._propose(block, digest)

    def _propose(self, block: bytes, digest: bytes) -> None:
        h = self._h
        vote = self._sign_vote(Kind.PRE_PREPARE, h.view, digest)
        if vote is None:
            return
        pre_prepare = PrePrepare(vote, block)
        message: PrePrepare | NewView = pre_prepare
        if h.view > 0:
            justification = sorted(h.round_changes.get(h.view, {}).values(), key=lambda rc: rc.signer)
            message = NewView(pre_prepare, tuple(rc.without_block() for rc in justification))
        self._persist_and_broadcast(Kind.PRE_PREPARE, message)
        h.proposed[h.view] = block
        self._accept_pre_prepare(pre_prepare)

    # View change (PBFT section 4.4; IBFT 2.0 round change)

    def _on_censorship(self, height: int) -> None:
        if height == self._h.height and not self._h.waiting_new_view:
            self.counters["censorship_alarms"] += 1
            self._start_view_change(self._h.view + 1)

    def _move_to_view(self, view: int) -> None:
        h = self._h
        self._out.append(ev.ViewChanged(h.height, h.view, view))
        if h.view in h.proposed:
            self._out.append(ev.ProposalAbandoned(h.height, h.view, h.proposed[h.view]))
        h.enter_view(view, self._now)
        self._record.view = view

    def _start_view_change(self, view: int) -> None:
        if view <= self._h.view:
            return
        self._move_to_view(view)
        self._h.waiting_new_view = True
        self._broadcast_round_change()
        self._maybe_send_new_view()

    def _broadcast_round_change(self) -> None:
        round_change = self._record.sign_round_change(self._signer, self.config.chain_id, self._h.view)
        if round_change is None:
            self.counters["refused_to_contradict"] += 1
            return
        self._persist_and_broadcast(Kind.ROUND_CHANGE, round_change)
        self._h.round_changes.setdefault(self._h.view, {})[self._me] = round_change

    def _on_round_change(self, rc: RoundChange) -> None:
        h = self._h
        if rc.view == 0 or rc.view < h.view or rc.view > h.view + self.config.max_views_ahead:
            self.counters["dropped_stale_view"] += 1
            return
        prepared = None if rc.prepared is None else (rc.prepared.view, rc.prepared.digest)
        if self._conflicts(Kind.ROUND_CHANGE, rc.view, rc.signer, prepared, rc.without_block()):
            return
        box = h.round_changes.setdefault(rc.view, {})
        if rc.signer in box:
            self.counters["duplicates"] += 1
            return
        if rc.prepared is not None and rc.block is not None and rc.prepared.digest not in h.blocks:
            digest = self._digest(h.height, rc.block, rc.signer)
            if digest is None:
                return
            if digest != rc.prepared.digest:
                self._fault(rc.signer, "dropped_wrong_digest")
                return
            h.blocks[digest] = rc.block
            self._check_committed(digest)
            if self._h is not h:
                return
        box[rc.signer] = rc
        target = h.join_target(self._me, self._quorum.weak)  # f+1 ask for higher views: join (PBFT 4.5.2)
        if target is not None:
            self._start_view_change(target)
        self._maybe_send_new_view()

    def _maybe_send_new_view(self) -> None:
        h = self._h
        round_changes = h.round_changes.get(h.view, {})
        if len(round_changes) < self._quorum.commit or self._proposer(h.view) != self._me:
            return
        if not h.waiting_new_view or h.view == 0 or h.view in h.proposed or h.proposal_requested == h.view:
            return
        best = highest_prepared(list(round_changes.values()))
        if best is None:
            h.proposal_requested = h.view
            self._out.append(ev.RequestProposal(h.height, h.view))
        elif best.digest in h.blocks:
            self._propose(h.blocks[best.digest], best.digest)
        else:
            self.counters["missing_prepared_block"] += 1

    def _on_new_view(self, new_view: NewView) -> None:
        h, head = self._h, new_view.pre_prepare.vote
        if head.view < h.view or head.view > h.view + self.config.max_views_ahead:
            self.counters["dropped_stale_view"] += 1
            return
        if head.view not in h.pre_prepares:
            problem = new_view_problem(new_view, self._validators, self._check)
            if problem is not None:
                self._fault(head.signer, "dropped_bad_new_view")
                return
        self._accept_pre_prepare(new_view.pre_prepare)

    # Signing and sending

    def _sign_vote(self, kind: Kind, view: int, digest: bytes) -> Vote | None:
        vote = self._record.sign_vote(self._signer, self.config.chain_id, kind, self._h.height, view, digest)
        if vote is None:
            self.counters["refused_to_contradict"] += 1
        return vote

    def _persist_and_broadcast(self, kind: Kind, message: Message) -> None:
        self._out.append(ev.Persist(self._record.encode()))
        data = encode_message(message)
        self._h.own[kind] = data
        self._out.append(ev.Broadcast(data))

    # Catching up

    def _on_decided(self, sender: bytes, decided: Decided) -> None:
        if decided.height > self._h.height:
            self._catch_up.peers.saw(sender, decided.height + 1)
            self._maybe_fetch()
            return
        self._apply_certified(decided.block, decided.certificate)

    def _apply_certified(self, block: bytes, certificate: Certificate, start_next: bool = True) -> bool:
        height = self._h.height
        try:
            digest = self._certified_digest(height, block)
            verify_certificate(
                certificate, self._validators, self.config.chain_id, height, digest, self._verifier
            )
        except LedgerError:
            self.counters["dropped_bad_certificate"] += 1
            return False
        self.counters["certified_blocks_applied"] += 1
        self._decide(certificate.view, block, digest, certificate, start_next)
        return True

    def _on_fetched(self, event: ev.BlocksFetched) -> None:
        """Decide the fetched blocks in height order from the current height, each only if its certificate
        verifies (the first bad one or a gap ends the batch). Their Delivers come out consecutively, so the
        node may apply them together; the height after the last one is then started."""
        decided = False
        for fetched in sorted(event.blocks, key=lambda b: b.height):
            if fetched.height < self._h.height:
                continue
            if fetched.height > self._h.height or not self._apply_certified(
                fetched.block, fetched.certificate, start_next=False
            ):
                break
            decided = True
        if decided:
            self._start_height()

    def _maybe_fetch(self) -> None:
        fetch = self._catch_up.fetch(self._h.height, self._now)
        if fetch is not None:
            self._out.append(fetch)
