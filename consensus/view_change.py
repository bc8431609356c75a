"""Checks of the view-change messages: prepared certificates, round changes and new views.

Theory (PBFT section 4.4; IBFT 2.0 section 4, where the new-view carries the round changes that justify it):
if a block B committed in view v, a quorum signed COMMIT for it, so at least f+1 honest members were prepared
on B in view v and report it (or a later prepared certificate, by induction also for B) in every round change
they send for a later view. Any quorum of round changes intersects those f+1 in an honest member, so the
highest prepared certificate in a valid new-view is for B, and replicas accept only a new-view whose block is
that certificate's block. A new-view with no prepared certificate among its quorum may carry any valid block.
"""

from __future__ import annotations

from collections.abc import Callable

from consensus.messages import Kind, Message, NewView, PreparedCertificate, PrePrepare, RoundChange, Vote
from ledger.validators import ValidatorSet

SignatureCheck = Callable[[bytes, bytes, bytes, bytes], bool]
"""check(signer, tag, payload, signature) -> whether it verifies (chain id bound by the caller)."""


def vote_is_valid(vote: Vote, check: SignatureCheck) -> bool:
    tag, payload = vote.signed_bytes()
    return check(vote.signer, tag, payload, vote.signature)


def prepared_is_valid(
    prepared: PreparedCertificate,
    height: int,
    below_view: int,
    validators: ValidatorSet,
    check: SignatureCheck,
) -> bool:
    """A pre-prepare by the view's proposer and PREPAREs of distinct other members: a quorum in all."""
    head = prepared.pre_prepare
    if head.height != height or head.view >= below_view:
        return False
    proposer = validators.proposer(height, head.view).public_key.raw
    if head.signer != proposer or not vote_is_valid(head, check):
        return False
    signers = {proposer}
    for prepare in prepared.prepares:
        if (prepare.height, prepare.view, prepare.digest) != (height, head.view, head.digest):
            return False
        if prepare.signer in signers or prepare.signer not in validators or not vote_is_valid(prepare, check):
            return False
        signers.add(prepare.signer)
    return len(signers) >= validators.quorum.commit


def round_change_is_valid(rc: RoundChange, validators: ValidatorSet, check: SignatureCheck) -> bool:
    if rc.signer not in validators:
        return False
    tag, payload = rc.signed_bytes()
    if not check(rc.signer, tag, payload, rc.signature):
        return False
    return rc.prepared is None or prepared_is_valid(rc.prepared, rc.height, rc.view, validators, check)


def is_authentic(message: Message, validators: ValidatorSet, check: SignatureCheck) -> bool:
    """The message's own signatures verify (a new-view's justification is checked by `new_view_problem`)."""
    if isinstance(message, Vote):
        return vote_is_valid(message, check)
    if isinstance(message, PrePrepare):
        return vote_is_valid(message.vote, check)
    if isinstance(message, NewView):
        return vote_is_valid(message.pre_prepare.vote, check)
    return isinstance(message, RoundChange) and round_change_is_valid(message, validators, check)


def highest_prepared(
    round_changes: list[RoundChange] | tuple[RoundChange, ...],
) -> PreparedCertificate | None:
    best: PreparedCertificate | None = None
    for rc in round_changes:
        if rc.prepared is not None and (best is None or rc.prepared.view > best.view):
            best = rc.prepared
    return best


def new_view_problem(new_view: NewView, validators: ValidatorSet, check: SignatureCheck) -> str | None:
    """Why a NEW-VIEW must be rejected, or None when its justification holds (the block is checked apart)."""
    head = new_view.pre_prepare.vote
    if head.kind is not Kind.PRE_PREPARE or head.view == 0:
        return "a new view is for a view above 0"
    if head.signer != validators.proposer(head.height, head.view).public_key.raw:
        return "new view not from the view's proposer"
    signers: set[bytes] = set()
    for rc in new_view.round_changes:
        if (rc.height, rc.view) != (head.height, head.view) or rc.signer in signers:
            return "new view carries a round change for another view or a repeated member"
        if not round_change_is_valid(rc, validators, check):
            return "new view carries an invalid round change"
        signers.add(rc.signer)
    if len(signers) < validators.quorum.commit:
        return "new view carries fewer round changes than a quorum"
    best = highest_prepared(new_view.round_changes)
    if best is not None and best.digest != head.digest:
        return "new view drops the highest prepared block"
    if not vote_is_valid(head, check):
        return "new view pre-prepare has a bad signature"
    return None
