"""What goes into a replica (events) and what comes out (actions): plain, immutable data.

Theory (etcd-io/raft's Step/Ready): the core decides, the node acts. The node executes a batch of actions in
order and writes every `Persist` durably before it executes any later `Send` or `Broadcast` of the same batch,
so a restarted replica never signs a message that contradicts one already sent. After executing a `Deliver`
(or a run of them) the node steps `Applied` with the last height: until then the replica validates no block
of the next height, since the node judges a block against the parent it has stored (raft's Ready/Advance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consensus.crypto import Verifier
from ledger.validators import ValidatorSet
from ledger.votes import Certificate

Validate = Callable[[int, bytes, int], bytes]
"""validate(height, block, now_ms) -> 32-byte digest, or raise `ledger.errors.LedgerError`: the proposer is
blamed (`PeerFault`), except for `ledger.block.UntimelyBlock`, a judgment of the local clock. Called only
after the node has applied height - 1 (see `Applied`)."""


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    chain_id: str
    validators: ValidatorSet
    verifier: Verifier
    base_timeout_ms: int = 4_000  # view 0; doubles with each view (must exceed the empty-block interval)
    max_timeout_doublings: int = 6
    resend_interval_ms: int = 1_000  # own messages of the current height are re-broadcast this often
    fetch_interval_ms: int = 1_000  # at most one state-transfer request this often
    max_heights_ahead: int = 4  # messages further ahead are dropped (but still reveal a peer's height)
    max_views_ahead: int = 32
    max_future_per_sender: int = 64


# Events -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageReceived:
    sender: bytes  # public key as authenticated by the transport
    data: bytes


@dataclass(frozen=True, slots=True)
class Tick:
    now_ms: int


@dataclass(frozen=True, slots=True)
class ProposalReady:
    height: int
    view: int
    block: bytes


@dataclass(frozen=True, slots=True)
class CensorshipAlarm:
    """The mempool holds a valid transaction that waited longer than its bound without being proposed."""

    height: int


@dataclass(frozen=True, slots=True)
class Applied:
    """The node has executed and stored every delivered block up to `height`."""

    height: int


@dataclass(frozen=True, slots=True)
class FetchedBlock:
    height: int
    block: bytes
    certificate: Certificate


@dataclass(frozen=True, slots=True)
class BlocksFetched:
    blocks: tuple[FetchedBlock, ...]


Event = MessageReceived | Tick | ProposalReady | CensorshipAlarm | Applied | BlocksFetched


# Actions ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    to: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """To every other member."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Persist:
    """The last-signed record: write it durably before executing any later send of the same batch."""

    record: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    height: int
    view: int
    block: bytes
    block_hash: bytes
    certificate: Certificate


@dataclass(frozen=True, slots=True)
class RequestProposal:
    """Build a block for (height, view) and step it back as `ProposalReady`."""

    height: int
    view: int


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call `tick` at (or after) `at_ms`; a later SetTimer replaces it."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    """Two conflicting messages signed by one member for one (height, view, phase)."""

    offender: bytes
    first: bytes
    second: bytes


@dataclass(frozen=True, slots=True)
class FetchBlocks:
    from_height: int
    peers: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PeerFault:
    """`member` sent something only a faulty or malicious member sends; `cause` names the drop counter
    (`dropped_garbage`, `dropped_wrong_sender`, `dropped_bad_signature`, `dropped_invalid_block`,
    `dropped_wrong_digest`, `dropped_bad_new_view`)."""

    member: bytes
    cause: str


@dataclass(frozen=True, slots=True)
class ViewChanged:
    height: int
    old_view: int
    new_view: int


@dataclass(frozen=True, slots=True)
class ProposalAbandoned:
    """A block this replica proposed will not commit in its view: return its transactions to the mempool."""

    height: int
    view: int
    block: bytes


Action = (
    Send
    | Broadcast
    | Persist
    | Deliver
    | RequestProposal
    | SetTimer
    | ReportEvidence
    | PeerFault
    | FetchBlocks
    | ViewChanged
    | ProposalAbandoned
)
