"""`NodeApi` for the JSON-RPC layer: the runtime's status and submission, and the chain views."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.receipts import Receipt, decode_results
from node import views
from node.mempool import MempoolFull as PoolFull
from node.mempool import MempoolRejected
from node.metrics import COLLECTOR
from node.rpc import api
from node.runtime import NodeRuntime, now_ms


class NodeService:
    """Implements `node.rpc.api.NodeApi` over a running `NodeRuntime`."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.views = views.ChainViews(runtime.chain, runtime.genesis)

    def status(self) -> api.NodeStatus:
        runtime = self.runtime
        replica = runtime.replica
        head = runtime.chain.head()
        proposer = None
        view = 0
        if replica is not None:
            view = replica.view
            proposer = api.Address(runtime.genesis.validators.proposer(replica.height, view).public_key.raw)
        connected = sum(1 for p in runtime.network.peers() if p.connected)
        return api.NodeStatus(
            runtime.genesis.chain_id,
            runtime.config.name,
            "member" if runtime.is_member else "observer",
            head.height,
            view,
            proposer,
            connected,
            runtime.syncing,
            len(runtime.mempool),
        )

    def peers(self) -> Sequence[api.PeerInfo]:
        return [
            api.PeerInfo(
                p.peer_id,
                p.name,
                p.member_key is not None,
                p.connected,
                int(p.score),
                {k: int(v) for k, v in p.counters.items()},
                p.links,
            )
            for p in self.runtime.network.peers()
        ]

    def metrics(self) -> api.NodeMetrics:
        runtime = self.runtime
        traffic = runtime.network.traffic
        counted = runtime.metrics
        replica = runtime.replica
        return api.NodeMetrics(
            signature_checks=runtime.chain.signature_checks + runtime.verifier.checks,
            worker_signature_checks=runtime.verifier.checks,
            vote_signature_checks=0 if replica is None else replica.counters["signature_checks"],
            blocks_committed=counted.blocks_committed,
            txs_committed=counted.txs_committed,
            consensus_messages_sent=traffic.consensus_messages_out,
            consensus_messages_received=traffic.consensus_messages_in,
            network_writes=traffic.writes,
            network_bytes_written=traffic.bytes_out,
            consensus_writes=traffic.consensus_writes,
            consensus_bytes_written=traffic.consensus_bytes_out,
            gossip_writes=traffic.gossip_writes,
            gossip_bytes_written=traffic.gossip_bytes_out,
            request_writes=traffic.request_writes,
            request_bytes_written=traffic.request_bytes_out,
            consensus_counters={} if replica is None else {k: v for k, v in replica.counters.items() if v},
            network_counters={k: v for k, v in runtime.network.counters.items() if v},
            collector_counters={k: v for k, v in COLLECTOR.counters.items() if v},
        )

    def commit_times(self, from_height: int | None, limit: int) -> Sequence[api.CommitTime]:
        return [api.CommitTime(*entry) for entry in self.runtime.metrics.commits_from(from_height, limit)]

    def head(self) -> api.Head:
        return self.views.head()

    def block(self, height: int) -> api.BlockInfo:
        return self.views.block(height)

    def tx(self, tx_hash: bytes) -> api.TxLocation:
        return self.views.tx(tx_hash)

    def validators(self) -> api.ValidatorSetInfo:
        return self.views.validators()

    def genesis(self) -> api.GenesisInfo:
        return self.views.genesis_info()

    async def submit(self, txs: Sequence[bytes], wait: api.Wait) -> Sequence[api.Admission]:
        admitted: list[bytes] = []
        outcomes: list[tuple[bytes, api.TxRejected | api.MempoolFull | None]] = []
        for outcome in await self.runtime.admit(txs):
            if isinstance(outcome, PoolFull):
                outcomes.append((b"", api.MempoolFull(outcome.reason)))
            elif isinstance(outcome, MempoolRejected):
                outcomes.append((b"", api.TxRejected(outcome.code, outcome.reason)))
            else:
                admitted.append(outcome.hash)
                outcomes.append((outcome.hash, None))
        if wait == "commit" and admitted:
            started = now_ms()
            if not await self.runtime.wait_committed(admitted):
                raise api.CommitTimeout(admitted, now_ms() - started)
        receipts: dict[int, Sequence[Receipt] | None] = {}  # a block's receipts, decoded once per call
        return [self._admission(tx_hash, refusal, wait, receipts) for tx_hash, refusal in outcomes]

    def _admission(
        self,
        tx_hash: bytes,
        refusal: api.TxRejected | api.MempoolFull | None,
        wait: api.Wait,
        receipts: dict[int, Sequence[Receipt] | None],
    ) -> api.Admission:
        if refusal is not None or wait != "commit":
            return api.Admission(tx_hash, refusal)
        store = self.runtime.chain.store
        location = store.tx_location(tx_hash)
        if location is None:
            return api.Admission(tx_hash)
        height, index = location
        if height not in receipts:
            results = store.results(height)
            receipts[height] = None if results is None else decode_results(results)[0]
        block_receipts = receipts[height]
        receipt = None if block_receipts is None else views.receipt_view(block_receipts[index])
        return api.Admission(tx_hash, None, height, receipt)

    def account(self, address: api.Address) -> api.AccountInfo:
        return self.views.account(address, self.runtime.mempool.next_nonce(bytes(address)))

    def classes(self) -> api.MarketInfo:
        return self.views.classes()

    def orders(
        self,
        kind: api.OrderKind,
        resource_class: str | None,
        region: str | None,
        owner: api.Address | None,
        limit: int,
    ) -> Sequence[api.OfferInfo | api.BidInfo]:
        return self.views.orders(kind, resource_class, region, owner, limit)

    def book(self, resource_class: str, region: str) -> api.BookInfo:
        return self.views.book(resource_class, region)

    def trades(self, from_height: int | None, limit: int) -> Sequence[api.TradeInfo]:
        return self.views.trades(from_height, limit)

    def price(self, resource_class: str, region: str) -> api.PriceInfo:
        return self.views.price(resource_class, region)

    def quote(self, resource_class: str, region: str, quantity: int, duration: int) -> api.QuoteInfo:
        return self.views.quote(resource_class, region, quantity, duration, now_ms() // 1000)

    def lease(self, lease_id: bytes) -> api.LeaseInfo:
        return self.views.lease(lease_id)

    def leases(self, owner: api.Address | None, limit: int) -> Sequence[api.LeaseInfo]:
        return self.views.leases(owner, limit)
