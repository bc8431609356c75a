"""The boundary between the JSON-RPC handlers and the node runtime.

Theory: the handlers never touch the runtime's internals; they call `NodeApi`, a structural protocol the
runtime implements, and receive plain frozen views made of integers, text, raw bytes and `Address`. The views
carry bytes, not text: turning hashes into lowercase hex and addresses into `fm1...` text is the RPC layer's
job (`node.rpc.shape`), done once, so the runtime cannot get the JSON encoding wrong. The runtime signals
expected failures by raising the `ApiError` subclasses below; each maps to one documented JSON-RPC error code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

from ledger.keys import PUBLIC_KEY_BYTES

Wait: TypeAlias = Literal["none", "commit"]
OrderKind: TypeAlias = Literal["offer", "bid"]


class Address(bytes):
    """A 32-byte address (an ed25519 public key); the RPC shows it as checksummed `fm1...` text."""

    def __new__(cls, raw: bytes) -> Address:
        if len(raw) != PUBLIC_KEY_BYTES:
            raise ValueError(f"an address is {PUBLIC_KEY_BYTES} bytes, got {len(raw)}")
        return super().__new__(cls, raw)


# A value the RPC layer knows how to turn into JSON (see `node.rpc.shape.to_json`); views are dataclasses.
Shapeable: TypeAlias = (
    "int | str | bool | bytes | Sequence[Shapeable] | Mapping[str, Shapeable] | object | None"
)


class ApiError(Exception):
    """Root of the failures `NodeApi` reports on purpose; the RPC layer maps each to an application code."""


class NotFound(ApiError):
    """No such block, transaction, account, order or lease."""


class TxRejected(ApiError):
    """A transaction failed admission (decoding, signature, chain id, nonce, balance...)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class MempoolFull(ApiError):
    """The mempool has no room; retry later (a sender over its own share is a `TxRejected`)."""


class CommitTimeout(ApiError):
    """`wait: "commit"` saw no commit in time; the transactions stay admitted and may still commit."""

    def __init__(self, hashes: Sequence[bytes], waited_ms: int) -> None:
        super().__init__(f"no commit within {waited_ms} ms")
        self.hashes = tuple(hashes)
        self.waited_ms = waited_ms


class Syncing(ApiError):
    """The node is catching up with the federation and cannot take this request yet."""

    def __init__(self, height: int, target_height: int | None) -> None:
        super().__init__(f"node is syncing at height {height}")
        self.height = height
        self.target_height = target_height


@dataclass(frozen=True, slots=True)
class NodeStatus:
    chain_id: str
    node_name: str
    role: Literal["member", "observer"]
    height: int
    view: int
    proposer: Address | None
    peers: int
    syncing: bool
    mempool_size: int


@dataclass(frozen=True, slots=True)
class NodeMetrics:
    """Counters since the node started; a reader takes differences between two readings."""

    signature_checks: int  # ed25519 transaction signature verifications (admission, gossip, blocks)
    worker_signature_checks: int  # those of them made in worker threads (`node.verifier`)
    vote_signature_checks: int  # consensus message signature verifications by the replica
    blocks_committed: int
    txs_committed: int
    consensus_messages_sent: int
    consensus_messages_received: int
    network_writes: int  # stream writes of every kind: the sum of the three below
    network_bytes_written: int
    consensus_writes: int
    consensus_bytes_written: int
    gossip_writes: int
    gossip_bytes_written: int
    request_writes: int
    request_bytes_written: int
    consensus_counters: Mapping[str, int]  # the replica's: drops by cause, duplicates, equivocations, ...
    network_counters: Mapping[str, int]  # the network's: refused member links, dropped or invalid batches
    collector_counters: Mapping[str, int]  # the garbage collector's runs and pauses (`node.metrics`)


@dataclass(frozen=True, slots=True)
class CommitTime:
    """When this node stored the block of `height` (its own wall clock, unix microseconds), with `txs`
    transactions."""

    height: int
    time_us: int
    txs: int


@dataclass(frozen=True, slots=True)
class PeerInfo:
    peer_id: str
    name: str | None
    member: bool
    connected: bool
    score: int
    counters: Mapping[str, int] = field(default_factory=dict)
    links: Sequence[str] = ()  # member links up: consensus-in, consensus-out, relay-in, relay-out


@dataclass(frozen=True, slots=True)
class Head:
    height: int
    hash: bytes
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Header:
    version: int
    chain_id: str
    height: int
    prev_hash: bytes
    timestamp_ms: int
    proposer: Address
    tx_root: bytes
    state_root: bytes
    validators_hash: bytes


@dataclass(frozen=True, slots=True)
class TxInfo:
    hash: bytes
    encoded: bytes
    kind: str
    sender: Address
    nonce: int
    body: Mapping[str, Shapeable]


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: bytes
    code: int
    status: str
    detail: str
    ids: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Vote:
    signer: Address
    signature: bytes


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    view: int
    block_hash: bytes
    votes: tuple[Vote, ...]
    encoded: bytes


@dataclass(frozen=True, slots=True)
class BlockInfo:
    hash: bytes
    header: Header
    encoded: bytes
    txs: tuple[TxInfo, ...]
    receipts: tuple[Receipt, ...]
    certificate: CertificateInfo | None
    events: tuple[Mapping[str, Shapeable], ...] = ()


@dataclass(frozen=True, slots=True)
class InclusionProof:
    index: int
    leaf_count: int
    path: tuple[bytes, ...]
    tx_root: bytes


@dataclass(frozen=True, slots=True)
class TxLocation:
    tx: TxInfo
    receipt: Receipt
    height: int
    index: int
    block_hash: bytes
    proof: InclusionProof


@dataclass(frozen=True, slots=True)
class ValidatorInfo:
    index: int
    name: str
    address: Address


@dataclass(frozen=True, slots=True)
class ValidatorSetInfo:
    hash: bytes
    f: int
    commit_quorum: int
    members: tuple[ValidatorInfo, ...]


@dataclass(frozen=True, slots=True)
class GenesisInfo:
    hash: bytes
    document: Mapping[str, Shapeable]


@dataclass(frozen=True, slots=True)
class Admission:
    """One submitted transaction's outcome: admitted (with `wait: "commit"`: committed) or refused."""

    hash: bytes
    refusal: TxRejected | MempoolFull | None = None
    height: int | None = None
    receipt: Receipt | None = None


@dataclass(frozen=True, slots=True)
class AccountInfo:
    address: Address
    balance: int
    escrow: int
    next_nonce: int


@dataclass(frozen=True, slots=True)
class MarketInfo:
    resource_classes: tuple[str, ...]
    regions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OfferInfo:
    order_id: bytes
    owner: Address
    resource_class: str
    region: str
    quantity: int
    min_price: int
    available_from: int
    available_until: int
    seq: int


@dataclass(frozen=True, slots=True)
class BidInfo:
    order_id: bytes
    owner: Address
    resource_class: str
    region: str
    quantity: int
    max_price: int
    duration: int
    expires_at: int
    seq: int


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: int
    quantity: int


@dataclass(frozen=True, slots=True)
class BookInfo:
    resource_class: str
    region: str
    bids: tuple[BookLevel, ...]
    offers: tuple[BookLevel, ...]


@dataclass(frozen=True, slots=True)
class TradeInfo:
    height: int
    lease_id: bytes
    bid_id: bytes
    offer_id: bytes
    buyer: Address
    provider: Address
    resource_class: str
    region: str
    quantity: int
    price: int
    duration: int


@dataclass(frozen=True, slots=True)
class PricePoint:
    height: int
    price: int
    quantity: int


@dataclass(frozen=True, slots=True)
class PriceInfo:
    resource_class: str
    region: str
    last_price: int | None
    history: tuple[PricePoint, ...]


@dataclass(frozen=True, slots=True)
class QuoteInfo:
    resource_class: str
    region: str
    quantity: int
    duration: int
    fillable_quantity: int
    price: int | None
    cost: int


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    lease_id: bytes
    bid_id: bytes
    offer_id: bytes
    buyer: Address
    provider: Address
    resource_class: str
    region: str
    quantity: int
    price: int
    start: int
    end: int
    escrow: int
    status: str
    grant_deadline: int
    access_key: bytes
    sealed_grant: bytes | None


class NodeApi(Protocol):
    """What the JSON-RPC handlers need from the node runtime.

    Queries answer from committed state and never block for long. Lists hold at most `limit` entries (the
    handlers pass one more than they show, to detect truncation): `orders` in placement (`seq`) order,
    `leases(owner)` the leases where `owner` is buyer or provider, `trades(from_height, limit)` the first
    trades at heights >= `from_height`, or the latest ones when it is None, oldest first either way.
    `commit_times(from_height, limit)` answers the first remembered commits at heights >= `from_height` (the
    oldest remembered when None), in height order; only recent heights are remembered.
    `submit` checks each transaction and admits it to this node's mempool, answering one `Admission` per
    transaction in order (a refused one carries its `TxRejected` or `MempoolFull`); with `wait="commit"` it
    returns only once every admitted transaction is committed, or raises `CommitTimeout` after its own bound.
    Expected failures raise `ApiError` subclasses; anything else is a bug, answered as an internal error.
    """

    def status(self) -> NodeStatus: ...

    def peers(self) -> Sequence[PeerInfo]: ...

    def metrics(self) -> NodeMetrics: ...

    def commit_times(self, from_height: int | None, limit: int) -> Sequence[CommitTime]: ...

    def head(self) -> Head: ...

    def block(self, height: int) -> BlockInfo: ...

    def tx(self, tx_hash: bytes) -> TxLocation: ...

    def validators(self) -> ValidatorSetInfo: ...

    def genesis(self) -> GenesisInfo: ...

    async def submit(self, txs: Sequence[bytes], wait: Wait) -> Sequence[Admission]: ...

    def account(self, address: Address) -> AccountInfo: ...

    def classes(self) -> MarketInfo: ...

    def orders(
        self,
        kind: OrderKind,
        resource_class: str | None,
        region: str | None,
        owner: Address | None,
        limit: int,
    ) -> Sequence[OfferInfo | BidInfo]: ...

    def book(self, resource_class: str, region: str) -> BookInfo: ...

    def trades(self, from_height: int | None, limit: int) -> Sequence[TradeInfo]: ...

    def price(self, resource_class: str, region: str) -> PriceInfo: ...

    def quote(self, resource_class: str, region: str, quantity: int, duration: int) -> QuoteInfo: ...

    def lease(self, lease_id: bytes) -> LeaseInfo: ...

    def leases(self, owner: Address | None, limit: int) -> Sequence[LeaseInfo]: ...
