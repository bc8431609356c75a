"""Read-only views of the committed chain for the JSON-RPC layer (the query half of `NodeApi`).

Everything here reads the store and the in-memory ledger state synchronously, between two awaits of the
runtime, so a reader never sees a block half applied.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from ledger.block import Block
from ledger.chain import Chain, tx_hash_of
from ledger.genesis import Genesis
from ledger.leases import Lease
from ledger.market import Bid, Offer
from ledger.merkle import MerkleTree
from ledger.receipts import Event as LedgerEvent
from ledger.receipts import EventKind, Receipt, decode_results
from ledger.tx import PlanReference, Transaction, Transfer
from ledger.votes import Certificate
from node.rpc import api

TRADE_SCAN_BLOCKS = 10_000  # the most blocks one `market_trades` call reads
INDEXED_BLOCKS = 16  # recent blocks whose receipts and transaction tree `chain_tx` keeps decoded


def _address(raw: bytes) -> api.Address:
    return api.Address(raw)


def header_view(block: Block) -> api.Header:
    h = block.header
    return api.Header(
        h.version,
        h.chain_id,
        h.height,
        h.prev_hash,
        h.timestamp_ms,
        _address(h.proposer),
        h.tx_root,
        h.state_root,
        h.validators_hash,
    )


def _body(tx: Transaction) -> Mapping[str, api.Shapeable]:
    body: dict[str, api.Shapeable] = {}
    for f in dataclasses.fields(tx.body):
        value = getattr(tx.body, f.name)
        if isinstance(value, PlanReference):
            value = {"plan_hash": value.plan_hash, "indicators": {n: v for n, v in value.indicators}}
        body[f.name] = value
    if isinstance(tx.body, Transfer):
        body["to"] = _address(tx.body.to)
    return body


def tx_view(tx: Transaction) -> api.TxInfo:
    return api.TxInfo(tx.hash, tx.encoded, tx.kind.name.lower(), _address(tx.sender), tx.nonce, _body(tx))


def receipt_view(receipt: Receipt) -> api.Receipt:
    status = "ok" if receipt.ok else "failed"
    return api.Receipt(
        receipt.tx_hash, int(receipt.code), status, receipt.detail or receipt.code.name, receipt.ids
    )


def certificate_view(certificate: Certificate) -> api.CertificateInfo:
    votes = tuple(api.Vote(_address(v.signer), v.signature) for v in certificate.votes)
    return api.CertificateInfo(certificate.view, certificate.block_hash, votes, certificate.encode())


def event_view(event: LedgerEvent) -> Mapping[str, api.Shapeable]:
    return {"kind": event.kind.name.lower(), "subject": event.subject, "data": list(event.data)}


def offer_view(order: Offer) -> api.OfferInfo:
    return api.OfferInfo(
        order.order_id,
        _address(order.owner),
        order.resource_class,
        order.region,
        order.quantity,
        order.min_price,
        order.available_from,
        order.available_until,
        order.seq,
    )


def bid_view(order: Bid) -> api.BidInfo:
    return api.BidInfo(
        order.order_id,
        _address(order.owner),
        order.resource_class,
        order.region,
        order.quantity,
        order.max_price,
        order.duration,
        order.expires_at,
        order.seq,
    )


def lease_view(lease: Lease) -> api.LeaseInfo:
    return api.LeaseInfo(
        lease.lease_id,
        lease.bid_id,
        lease.offer_id,
        _address(lease.buyer),
        _address(lease.provider),
        lease.resource_class,
        lease.region,
        lease.quantity,
        lease.price,
        lease.start,
        lease.end,
        lease.escrow,
        lease.status.name.lower(),
        lease.grant_deadline,
        lease.access_key,
        lease.sealed_grant or None,
    )


def _trade(height: int, event: LedgerEvent) -> api.TradeInfo:
    """A LEASE_CREATED event as a trade (its data layout is in docs/transactions.md)."""
    bid_id, offer_id, buyer, provider, resource_class, region, quantity, price, start, end = event.data[:10]
    assert isinstance(bid_id, bytes) and isinstance(offer_id, bytes)
    assert isinstance(buyer, bytes) and isinstance(provider, bytes)
    assert isinstance(resource_class, str) and isinstance(region, str)
    assert isinstance(quantity, int) and isinstance(price, int)
    assert isinstance(start, int) and isinstance(end, int)
    return api.TradeInfo(
        height,
        event.subject,
        bid_id,
        offer_id,
        _address(buyer),
        _address(provider),
        resource_class,
        region,
        quantity,
        price,
        end - start,
    )


@dataclass(frozen=True, slots=True)
class _IndexedBlock:
    block: Block
    receipts: list[Receipt]
    tree: MerkleTree


class ChainViews:
    """The query methods of `NodeApi`, answered from the committed chain."""

    def __init__(self, chain: Chain, genesis: Genesis) -> None:
        self.chain = chain
        self.genesis = genesis
        self._indexed: OrderedDict[int, _IndexedBlock] = OrderedDict()

    def _results(self, height: int) -> tuple[list[Receipt], list[LedgerEvent]]:
        data = self.chain.store.results(height)
        if data is None:
            return [], []
        return decode_results(data)

    def head(self) -> api.Head:
        head = self.chain.head()
        return api.Head(head.height, head.block_hash, head.timestamp_ms)

    def block(self, height: int) -> api.BlockInfo:
        block = self.chain.store.block(height)
        if block is None:
            raise api.NotFound(f"no block at height {height}")
        receipts, events = self._results(height)
        certificate = self.chain.store.certificate(height)
        txs = tuple(tx_view(Transaction.decode(raw)) for raw in block.txs)
        return api.BlockInfo(
            block.hash,
            header_view(block),
            block.encoded,
            txs,
            tuple(receipt_view(r) for r in receipts),
            None if certificate is None else certificate_view(certificate),
            tuple(event_view(e) for e in events),
        )

    def tx(self, tx_hash: bytes) -> api.TxLocation:
        location = self.chain.store.tx_location(tx_hash)
        if location is None:
            raise api.NotFound(f"no committed transaction {tx_hash.hex()}")
        height, index = location
        indexed = self._indexed_block(height, tx_hash)
        block = indexed.block
        proof = indexed.tree.proof(index)
        return api.TxLocation(
            tx_view(Transaction.decode(block.txs[index])),
            receipt_view(indexed.receipts[index]),
            height,
            index,
            block.hash,
            api.InclusionProof(proof.index, proof.size, proof.path, block.header.tx_root),
        )

    def _indexed_block(self, height: int, tx_hash: bytes) -> _IndexedBlock:
        """The block of `height` with its receipts and transaction tree, decoded once for the many lookups
        a client makes of one block's transactions (a committed block never changes)."""
        indexed = self._indexed.get(height)
        if indexed is not None:
            self._indexed.move_to_end(height)
            return indexed
        block = self.chain.store.block(height)
        if block is None:
            raise api.NotFound(f"block {height} of transaction {tx_hash.hex()} is missing")
        receipts, _ = self._results(height)
        indexed = _IndexedBlock(block, receipts, MerkleTree([tx_hash_of(raw) for raw in block.txs]))
        self._indexed[height] = indexed
        if len(self._indexed) > INDEXED_BLOCKS:
            self._indexed.popitem(last=False)
        return indexed

    def validators(self) -> api.ValidatorSetInfo:
        validators = self.genesis.validators
        members = tuple(
            api.ValidatorInfo(i, m.name, _address(m.public_key.raw)) for i, m in enumerate(validators)
        )
        return api.ValidatorSetInfo(validators.hash(), validators.quorum.f, validators.quorum.commit, members)

    def genesis_info(self) -> api.GenesisInfo:
        return api.GenesisInfo(self.genesis.hash(), json.loads(self.genesis.to_json()))

    def account(self, address: api.Address, pending_nonce: int | None) -> api.AccountInfo:
        account = self.chain.state.account(bytes(address))
        next_nonce = max(account.next_nonce, pending_nonce or 0)
        return api.AccountInfo(address, account.balance, account.escrow, next_nonce)

    def classes(self) -> api.MarketInfo:
        return api.MarketInfo(self.genesis.resource_classes, self.genesis.regions)

    def _check_book(self, resource_class: str, region: str) -> None:
        if resource_class not in self.genesis.resource_classes:
            raise api.NotFound(f"unknown resource class {resource_class!r}")
        if region not in self.genesis.regions:
            raise api.NotFound(f"unknown region {region!r}")

    def orders(
        self,
        kind: api.OrderKind,
        resource_class: str | None,
        region: str | None,
        owner: api.Address | None,
        limit: int,
    ) -> Sequence[api.OfferInfo | api.BidInfo]:
        wanted = Offer if kind == "offer" else Bid
        found: list[Offer | Bid] = []
        owner_raw = None if owner is None else bytes(owner)
        for order in self.chain.state.market.orders(resource_class, region, owner_raw):
            if isinstance(order, wanted):
                found.append(order)
        found.sort(key=lambda o: o.seq)
        return [offer_view(o) if isinstance(o, Offer) else bid_view(o) for o in found[:limit]]

    def book(self, resource_class: str, region: str) -> api.BookInfo:
        self._check_book(resource_class, region)
        bids, offers = self.chain.state.market.depth(resource_class, region, levels=50)
        return api.BookInfo(
            resource_class,
            region,
            tuple(api.BookLevel(p, q) for p, q in bids),
            tuple(api.BookLevel(p, q) for p, q in offers),
        )

    def _trade_events(self, heights: Iterator[int]) -> Iterator[api.TradeInfo]:
        for height in heights:
            _, events = self._results(height)
            for event in events:
                if event.kind == EventKind.LEASE_CREATED:
                    yield _trade(height, event)

    def trades(self, from_height: int | None, limit: int) -> Sequence[api.TradeInfo]:
        top = self.chain.head().height
        if from_height is not None:
            stop = min(top, from_height + TRADE_SCAN_BLOCKS)
            found = []
            for trade in self._trade_events(iter(range(max(from_height, 1), stop + 1))):
                found.append(trade)
                if len(found) >= limit:
                    break
            return found
        latest: list[api.TradeInfo] = []
        for height in range(top, max(0, top - TRADE_SCAN_BLOCKS), -1):
            block_trades = list(self._trade_events(iter([height])))
            latest[:0] = block_trades
            if len(latest) >= limit:
                break
        return latest[-limit:]

    def price(self, resource_class: str, region: str) -> api.PriceInfo:
        self._check_book(resource_class, region)
        history = self.chain.state.last_prices(resource_class, region)
        return api.PriceInfo(
            resource_class,
            region,
            self.chain.state.last_price(resource_class, region),
            tuple(api.PricePoint(p.height, p.price, p.quantity) for p in history),
        )

    def quote(
        self, resource_class: str, region: str, quantity: int, duration: int, now_s: int
    ) -> api.QuoteInfo:
        self._check_book(resource_class, region)
        quote = self.chain.state.market.quote(resource_class, region, quantity, duration, now_s)
        if quote is None:
            return api.QuoteInfo(resource_class, region, quantity, duration, 0, None, 0)
        return api.QuoteInfo(
            resource_class, region, quantity, duration, quote.quantity, quote.price, quote.cost
        )

    def lease(self, lease_id: bytes) -> api.LeaseInfo:
        lease = self.chain.state.lease(lease_id)
        if lease is None:
            raise api.NotFound(f"no lease {lease_id.hex()}")
        return lease_view(lease)

    def leases(self, owner: api.Address | None, limit: int) -> Sequence[api.LeaseInfo]:
        found = []
        for lease in self.chain.state.leases(None if owner is None else bytes(owner)):
            found.append(lease_view(lease))
            if len(found) >= limit:
                break
        return found
