"""The node's network: member links, transaction gossip, request/response, peer scoring, redial.

Theory: consensus needs few, ordered, authenticated messages between a fixed set of members, so each member
keeps one direct link per other member (node/p2p/member_links.py), written by one task that drains a bounded
queue into batched frames and accepted only from genesis members (the Noise handshake proves the member's
key). Members relay transactions to each other the same way, on a second link per member (so a batch never
delays a vote): every member receives each batch once, where gossipsub would deliver it once per mesh
neighbour at a cost of milliseconds per message. Everything else runs on libp2p: observers publish
transactions on gossipsub, which members read, and catch-up and transaction pulls are libp2p requests.
Everything a peer sends is bounded (frame caps, per-read timeouts, token buckets), and misbehaviour lowers a
score that ends in a disconnection and a timed ban. The interface (`send`, `broadcast`, `inbound`,
`relay_txs`, `publish_txs`, `tx_batches`, `request`) names no transport type.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress

import multiaddr  # type: ignore[import-untyped]
import trio
from libp2p.abc import IHost, IMuxedConn, INetConn, INetStream, INetwork, INotifee
from libp2p.exceptions import BaseLibp2pError
from libp2p.host.ping import ID as PING_PROTOCOL_ID
from libp2p.host.ping import PING_LENGTH
from libp2p.io.utils import read_exactly
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from ledger.errors import DecodeError, LedgerError
from ledger.keys import PrivateKey
from node.p2p.config import NetworkConfig, ip_multiaddr, parse_bootstrap, peer_id_of_member
from node.p2p.errors import FrameError, NetworkError, RequestFailed, RequestTimeout
from node.p2p.framing import FrameReader, encode_frame
from node.p2p.gossip import decode_batch, split_into_batches
from node.p2p.host import build_gossip, build_host, listen_multiaddr, stop_auto_connector
from node.p2p.member_links import MemberLinks
from node.p2p.peers import PeerState, PeerStatus
from node.p2p.scoring import TokenBucket
from node.p2p.secure_channel import Channel
from node.p2p.traffic import Traffic

logger = logging.getLogger(__name__)

RequestHandler = Callable[[str, bytes], Awaitable[bytes]]
TRANSPORT_ERRORS = (BaseLibp2pError, OSError, trio.BrokenResourceError, trio.ClosedResourceError)
CLEANUP_SECONDS = 1.0
SHUTDOWN_SECONDS = 3.0


def _receive_some(stream: INetStream) -> Callable[[int], Awaitable[bytes]]:
    """Adapt a libp2p stream to FrameReader: EOF and reset both end the stream (a reset reads as EOF)."""

    async def receive(max_bytes: int) -> bytes:
        try:
            return await stream.read(max_bytes)
        except StreamError:
            return b""

    return receive


async def _echoes(stream: INetStream) -> bool:
    """Send a ping on `stream` and read its echo: whether the echo matches."""
    payload = secrets.token_bytes(PING_LENGTH)
    await stream.write(payload)
    return await read_exactly(stream, PING_LENGTH) == payload


async def _discard(stream: INetStream) -> None:
    """Reset a stream, bounded and shielded, ignoring a peer that is already gone."""
    with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_SECONDS), suppress(*TRANSPORT_ERRORS):
        await stream.reset()


class _ConnectionWatcher(INotifee):
    def __init__(self, network: Network) -> None:
        self._network = network

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._network._on_connection_change(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._network._drop_request_streams(conn.muxed_conn)
        self._network._on_connection_change(conn.muxed_conn.peer_id)

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


class Network:
    """A running network endpoint; obtain one with `open_network(config)`."""

    def __init__(self, config: NetworkConfig, host: IHost, pubsub: Pubsub, nursery: trio.Nursery) -> None:
        self.config = config
        self.limits = config.limits
        self._host = host
        self._pubsub = pubsub
        self._nursery = nursery
        self.local_peer_id = host.get_id().to_base58()
        self._peers: dict[str, PeerState] = {}
        self._member_peer_ids: dict[bytes, str] = {}
        for key, name in config.members.items():
            peer_id = peer_id_of_member(key)
            self._member_peer_ids[key] = peer_id
            self._peers[peer_id] = PeerState.create(peer_id, key, name, self.limits)
        self._inbound_send, self._inbound = trio.open_memory_channel[tuple[bytes, bytes]](
            self.limits.inbound_queue_messages
        )
        self._tx_send, self._tx_batches = trio.open_memory_channel[tuple[str, list[bytes]]](
            self.limits.inbound_gossip_batches
        )
        self._bootstrap_peer_ids = {parse_bootstrap(address)[0] for address in config.bootstrap}
        self._request_streams: dict[tuple[str, str], INetStream] = {}  # kept for the next request
        self._publish_bucket = TokenBucket(self.limits.gossip_messages_per_second, 1.0)
        self._publish_lock = trio.Lock()
        self.counters: dict[str, int] = {
            "gossip_batches_dropped": 0,
            "gossip_batches_invalid": 0,
            "relay_batches_invalid": 0,
        }
        self.traffic = Traffic()
        self._count_gossip_writes()
        self._local_key = PrivateKey(config.seed)
        self.is_member = self._local_key.public.raw in config.members
        self._links = MemberLinks(
            self._local_key,
            config.chain_id,
            self.limits,
            {
                key: self._peers[peer_id]
                for key, peer_id in self._member_peer_ids.items()
                if peer_id != self.local_peer_id
            },
            self.traffic,
            self._on_link_frame,
            self._penalize_state,
            self.counters,
        )
        self.link_port: int | None = None

    # ----- identity -----

    @property
    def listen_addrs(self) -> list[str]:
        """The bound ports on the advertised host, with our peer id, ready for other nodes' bootstrap lists
        (what identify tells peers too: `host.on_public_host`)."""
        return [str(address) for address in self._host.get_addrs()]

    @property
    def link_addr(self) -> str | None:
        """Where the other members reach our direct links (None for an observer), for their `member_links`."""
        if self.link_port is None:
            return None
        return f"{ip_multiaddr(self.config.public_host)}/tcp/{self.link_port}/p2p/{self.local_peer_id}"

    @property
    def security_protocols(self) -> list[str]:
        """Security transports offered: Noise only (with plaintext a dialer could claim any peer id)."""
        upgrader = self._host.get_network().upgrader  # type: ignore[attr-defined]
        return [str(protocol) for protocol in upgrader.security_multistream.transports]

    def gossip_peers(self) -> list[str]:
        """Our gossipsub mesh for the transaction topic: the peers a publish goes to right now.

        Until the first heartbeats graft a mesh, a publish reaches nobody (silently): the catch-up pull
        covers that window.
        """
        mesh: dict[str, set[ID]] = self._pubsub.router.mesh
        return [peer.to_base58() for peer in mesh.get(self.config.gossip_topic, ())]

    def peer_id_of(self, member_key: bytes) -> str:
        return self._member_peer_ids.get(member_key) or peer_id_of_member(member_key)

    def member_key_of(self, peer_id: str) -> bytes | None:
        """The genesis member key of a peer id, or None for a non-member."""
        state = self._peers.get(peer_id)
        return state.member_key if state is not None else None

    # ----- consensus links -----

    def send(self, member_key: bytes, payload: bytes) -> None:
        """Queue one consensus message for a member; never blocks (a full queue drops its oldest message)."""
        if len(payload) > self.limits.max_frame_bytes:
            raise NetworkError(f"consensus message of {len(payload)} bytes over the cap")
        peer_id = self._member_peer_ids.get(member_key)
        if peer_id is None:
            raise NetworkError("not a federation member")
        if peer_id == self.local_peer_id:
            return
        state = self._peers[peer_id]
        assert state.outgoing is not None
        state.outgoing.push(payload)

    def broadcast(self, payload: bytes) -> None:
        """Queue one consensus message for every other member."""
        for key in self._member_peer_ids:
            self.send(key, payload)

    def inbound(self) -> trio.MemoryReceiveChannel[tuple[bytes, bytes]]:
        """Consensus messages as (sender member key, payload), in order per sender."""
        return self._inbound

    # ----- gossip -----

    async def publish_txs(self, txs: list[bytes]) -> int:
        """Gossip transactions in as few batches as the caps allow; return the number of batches.

        Raises GossipBatchTooLarge, before publishing anything, if a transaction cannot fit in a batch.
        Waits when the local publish rate is used up (gossipsub would silently drop the excess).
        """
        limits = self.limits
        batches = split_into_batches(
            txs, limits.max_gossip_batch_bytes, limits.max_gossip_batch_txs, limits.max_tx_bytes
        )
        async with self._publish_lock:
            for batch in batches:
                await trio.sleep(self._publish_bucket.take(1.0, trio.current_time()))
                await self._pubsub.publish(self.config.gossip_topic, batch)
        return len(batches)

    def relay_txs(self, txs: Sequence[bytes]) -> int:
        """Queue transactions for every other member's relay link, in as few batches as the caps allow;
        return the number of batches. Never blocks: a full queue drops its oldest batch. Raises
        GossipBatchTooLarge, before queueing anything, if a transaction cannot fit in a batch."""
        limits = self.limits
        batches = split_into_batches(
            txs, limits.max_gossip_batch_bytes, limits.max_gossip_batch_txs, limits.max_tx_bytes
        )
        for peer_id in self._member_peer_ids.values():
            relay = self._peers[peer_id].relay
            if peer_id == self.local_peer_id or relay is None:
                continue
            for batch in batches:
                relay.push(batch)
        return len(batches)

    def tx_batches(self) -> trio.MemoryReceiveChannel[tuple[str, list[bytes]]]:
        """Inbound transaction batches (relayed or gossiped) as (peer id, transactions); a full channel drops
        new batches."""
        return self._tx_batches

    # ----- request / response -----

    def register_handler(self, protocol: str, handler: RequestHandler) -> None:
        """Serve `protocol`: one request frame in, `await handler(peer_id, request)` frame out."""

        async def serve(stream: INetStream) -> None:
            await self._serve_request(stream, handler)

        self._host.set_stream_handler(protocol, serve)  # type: ignore[arg-type]

    async def request(self, peer_id: str, protocol: str, payload: bytes, timeout: float) -> bytes:
        """Send one request and wait for its answer; RequestTimeout or RequestFailed otherwise. The stream of
        the last answer from that peer on that protocol is used again: a new stream's negotiation costs
        several times a small request in py-libp2p. A kept stream that the server has closed since (it keeps
        one `request_stream_idle` seconds) is replaced once by a new one."""
        if len(payload) > self.limits.max_request_bytes:
            raise RequestFailed(f"request of {len(payload)} bytes over the cap")
        try:
            target = ID.from_base58(peer_id)
        except ValueError as error:
            raise RequestFailed(f"bad peer id {peer_id!r}") from error
        key = (peer_id, protocol)
        try:
            with trio.fail_after(timeout):
                kept = self._request_streams.pop(key, None)
                answer = None if kept is None else await self._exchange(kept, payload, timeout, retry=True)
                if answer is not None:
                    stream = kept
                else:
                    stream = await self._host.new_stream(target, [protocol])  # type: ignore[list-item]
                    self._state(peer_id).counters["request_streams"] += 1
                    answer = await self._exchange(stream, payload, timeout, retry=False)
        except trio.TooSlowError:
            raise RequestTimeout(f"{protocol} to {peer_id}: no answer within {timeout} s") from None
        except FrameError as error:
            raise RequestFailed(f"{protocol} to {peer_id}: {error}") from error
        except TRANSPORT_ERRORS as error:
            raise RequestFailed(f"{protocol} to {peer_id}: {error!r}") from error
        if answer is None:
            raise RequestFailed(f"{protocol} to {peer_id}: closed without an answer")
        spare = self._request_streams.setdefault(key, stream)
        if spare is not stream:  # a concurrent request kept its own stream first
            await _discard(stream)
        return answer

    async def _exchange(
        self, stream: INetStream, payload: bytes, timeout: float, retry: bool
    ) -> bytes | None:
        """Write one request frame and read the answer frame: the answer, or None when the stream ended first.
        With `retry`, a transport error counts as the stream having ended (the caller opens a new one); the
        stream is reset unless an answer came."""
        try:
            frame = encode_frame(payload)
            await stream.write(frame)
            self.traffic.request_writes += 1
            self.traffic.request_bytes_out += len(frame)
            answer = await FrameReader(
                _receive_some(stream), self.limits.max_response_bytes, timeout
            ).read_frame()
        except TRANSPORT_ERRORS:
            await _discard(stream)
            if retry:
                return None
            raise
        except BaseException:
            await _discard(stream)
            raise
        if answer is None:
            await _discard(stream)
        return answer

    # ----- scoring -----

    def penalize(self, peer_id: str, reason: str, points: float) -> None:
        """Lower a peer's score (garbage, bad signature...); below the threshold it is cut off and banned."""
        try:
            ID.from_base58(peer_id)
        except ValueError as error:
            raise NetworkError(f"bad peer id {peer_id!r}") from error
        self._penalize_state(self._state(peer_id), reason, points)

    def _penalize_state(self, state: PeerState, reason: str, points: float) -> None:
        peer_id = state.peer_id
        state.counters["penalties"] += 1
        now = trio.current_time()
        if state.score.penalize(points, now):
            logger.warning(
                "banning peer %s (%s) for %s s: %s", peer_id, state.name, state.score.ban_seconds, reason
            )
            state.counters["bans"] += 1
            self._nursery.start_soon(self._enforce_ban, state)
        else:
            logger.info("peer %s penalized %s points: %s", peer_id, points, reason)

    def peers(self) -> list[PeerStatus]:
        now = trio.current_time()
        rows = []
        for state in self._peers.values():
            if state.peer_id == self.local_peer_id:
                continue
            score = state.score.current(now)
            rows.append(
                PeerStatus(
                    peer_id=state.peer_id,
                    member_key=state.member_key,
                    name=state.name,
                    connected=self._is_connected(state.peer_id),
                    score=score,
                    banned_for=max(0.0, state.score.banned_until - now),
                    queued=len(state.outgoing) if state.outgoing is not None else 0,
                    links=self._links.names_up(state.member_key),
                    counters=dict(state.counters)
                    | {
                        "dropped_out": state.outgoing.dropped if state.outgoing is not None else 0,
                        "relay_dropped_out": state.relay.dropped if state.relay is not None else 0,
                    },
                )
            )
        return rows

    # ----- internals -----

    def _count_gossip_writes(self) -> None:
        """Count gossipsub's stream writes: py-libp2p writes every RPC (publishes, forwards, control) through
        `Pubsub.write_msg`, looked up on the instance, so a wrapper there sees each one."""
        pubsub = self._pubsub
        write = pubsub.write_msg
        traffic = self.traffic

        async def counted(stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
            written = await write(stream, rpc_msg)
            if written:
                size = rpc_msg.ByteSize()
                traffic.gossip_writes += 1
                traffic.gossip_bytes_out += size + (size.bit_length() + 6) // 7  # and the varint prefix
            return written

        pubsub.write_msg = counted  # type: ignore[method-assign]

    def _state(self, peer_id: str) -> PeerState:
        state = self._peers.get(peer_id)
        if state is None:
            state = PeerState.create(peer_id, None, None, self.limits)
            self._peers[peer_id] = state
        return state

    def _is_connected(self, peer_id: str) -> bool:
        return self._connection(peer_id) is not None

    def _connection(self, peer_id: str) -> INetConn | None:
        """The open connection to a peer: the swarm may still list a closed one."""
        try:
            connections = self._host.get_network().get_connections(ID.from_base58(peer_id))
        except ValueError:
            return None
        return next((connection for connection in connections if not connection.is_closed), None)

    def _is_banned(self, state: PeerState) -> bool:
        return state.score.is_banned(trio.current_time())

    def _on_connection_change(self, peer: ID) -> None:
        state = self._state(peer.to_base58())
        state.connected = self._is_connected(state.peer_id)
        if state.connected and self._is_banned(state):
            self._nursery.start_soon(self._disconnect, state)
        elif not state.connected and self._forgettable(state):
            del self._peers[state.peer_id]
        state.notify()

    def _drop_request_streams(self, closed: IMuxedConn) -> None:
        """Forget the streams kept for requests on a connection that closed: they closed with it."""
        for key in [key for key, stream in self._request_streams.items() if stream.muxed_conn is closed]:
            del self._request_streams[key]

    def _forgettable(self, state: PeerState) -> bool:
        """A disconnected stranger in good standing: forgetting it keeps `_peers` bounded by connections."""
        return (
            state.member_key is None
            and state.peer_id not in self._bootstrap_peer_ids
            and not self._is_banned(state)
            and state.score.current(trio.current_time()) == 0.0
        )

    async def _disconnect(self, state: PeerState) -> None:
        with trio.move_on_after(self.limits.dial_timeout):
            try:
                await self._host.disconnect(ID.from_base58(state.peer_id))
            except TRANSPORT_ERRORS as error:
                logger.info("disconnecting %s: %r", state.peer_id, error)

    async def _enforce_ban(self, state: PeerState) -> None:
        peer = ID.from_base58(state.peer_id)
        self._pubsub.add_to_blacklist(peer)
        if state.member_key is not None:
            self._links.close_accepted(state.member_key)
        state.notify()
        await self._disconnect(state)
        await trio.sleep_until(state.score.banned_until)
        self._pubsub.remove_from_blacklist(peer)
        state.notify()

    async def _close_connections(self) -> None:
        """First step of shutdown: with no connection left, no pubsub stream handler can run while
        pubsub stops (py-libp2p would raise "Nursery is closed to new arrivals" out of the swarm).

        Pubsub's handlers are replaced by `_discard` (the stream is reset), not removed: py-libp2p's
        negotiation checks that a handler exists, awaits a write, then looks the handler up again, and a
        removal in between raises KeyError out of the swarm.
        """
        swarm = self._host.get_network()
        for protocol in self._pubsub.router.get_protocols():
            self._host.set_stream_handler(protocol, _discard)
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_SECONDS):
            for peer in list(swarm.connections):
                try:
                    await swarm.close_peer(peer)
                except TRANSPORT_ERRORS as error:
                    logger.debug("closing %s at shutdown: %r", peer, error)

    async def _start(self) -> None:
        self._host.get_network().register_notifee(_ConnectionWatcher(self))
        self._pubsub.set_topic_validator(self.config.gossip_topic, self._validate_gossip, False)
        subscription = await self._pubsub.subscribe(self.config.gossip_topic)
        self._nursery.start_soon(self._read_gossip, subscription.receive_channel)  # type: ignore[attr-defined]
        if self.is_member:
            await self._start_links()
        for address in self.config.bootstrap:
            peer_id, transport_addr = parse_bootstrap(address)
            if peer_id != self.local_peer_id:
                self._nursery.start_soon(self._keep_connected, self._state(peer_id), transport_addr)

    async def _keep_connected(self, state: PeerState, address: multiaddr.Multiaddr) -> None:
        """Dial a bootstrap peer, and redial with backoff whenever it drops (after its ban, if banned).

        Its address is kept with a zero TTL (permanent: `host.connect` would set 120 s) and the swarm's 60 s
        negative dial cache is cleared before each attempt, so a member that comes back is found at once.
        """
        peer = ID.from_base58(state.peer_id)
        network = self._host.get_network()
        peerstore = self._host.get_peerstore()
        delay = self.limits.redial_min_delay
        while True:
            if self._is_banned(state):
                await trio.sleep_until(state.score.banned_until)
                continue
            if not self._is_connected(state.peer_id):
                peerstore.add_addrs(peer, [address], 0)
                network.unblock_peer(peer)  # type: ignore[attr-defined]
                try:
                    with trio.fail_after(self.limits.dial_timeout):
                        await self._dial(peer)
                except (*TRANSPORT_ERRORS, trio.TooSlowError) as error:
                    state.counters["dial_failures"] += 1
                    logger.debug("dial %s (%s) failed: %r", state.peer_id, state.name, error)
                    await trio.sleep(delay)
                    delay = min(2 * delay, self.limits.redial_max_delay)
                    continue
                finally:
                    peerstore.add_addrs(peer, [address], 0)
                state.counters["dials"] += 1
                delay = self.limits.redial_min_delay
            ping_stream: INetStream | None = None
            while self._is_connected(state.peer_id) and not self._is_banned(state):
                with trio.move_on_after(self.limits.ping_interval) as quiet:
                    await state.changed.wait()
                if not quiet.cancelled_caught:
                    continue
                ping_stream = await self._ping(peer, ping_stream)
                if ping_stream is None:
                    state.counters["dead_connections"] += 1
                    logger.info("%s (%s) does not answer a ping: disconnecting", state.peer_id, state.name)
                    await self._disconnect(state)
            if ping_stream is not None:
                await _discard(ping_stream)

    async def _ping(self, peer: ID, kept: INetStream | None) -> INetStream | None:
        """Ping the peer on the stream kept from the last ping, or on a new one if there is none or it broke
        (the peer's handler ends a stream that waited 10 s for a ping); the stream to keep, or None when no
        echo came within the read timeout. A peer that went away without closing its connection (a killed
        machine, a connection it dropped half-way through its shutdown) leaves it open here with no one
        behind it, and the redial loop would wait on it forever. One stream per peer, not one per ping: a
        new stream's negotiation costs about six times the ping itself in py-libp2p."""
        if kept is not None:
            try:
                with trio.fail_after(self.limits.read_timeout):
                    if await _echoes(kept):
                        return kept
            except trio.TooSlowError:
                await _discard(kept)
                return None
            except TRANSPORT_ERRORS:
                pass
            await _discard(kept)
        stream = None
        try:
            with trio.fail_after(self.limits.read_timeout):
                stream = await self._host.new_stream(peer, [PING_PROTOCOL_ID])
                if await _echoes(stream):
                    return stream
        except (*TRANSPORT_ERRORS, trio.TooSlowError):
            pass
        if stream is not None:
            await _discard(stream)
        return None

    async def _dial(self, peer: ID) -> None:
        """Dial via the swarm: `host.connect` returns at once while a closed connection is still listed."""
        for connection in await self._host.get_network().dial_peer(peer):
            started = getattr(connection, "event_started", None)
            if started is not None:
                await started.wait()

    async def _start_links(self) -> None:
        config = self.config
        self.link_port = await self._nursery.start(self._links.serve, config.listen_host, config.link_port)
        addresses = config.link_addresses()
        for key, name in config.members.items():
            if key == self._local_key.public.raw:
                continue
            address = addresses.get(key)
            if address is None:
                logger.warning("no member link address for %s: it will not hear from us", name)
                continue
            for channel in Channel:
                self._nursery.start_soon(self._links.keep_link, key, channel, address)

    async def _on_link_frame(self, state: PeerState, channel: Channel, frame: bytes) -> None:
        """A frame read from a member's authenticated link: charged to its buckets, then delivered."""
        await self._throttle(state, len(frame))
        if channel is Channel.CONSENSUS:
            assert state.member_key is not None
            state.counters["frames_in"] += 1
            state.counters["bytes_in"] += len(frame)
            self.traffic.consensus_messages_in += 1
            await self._inbound_send.send((state.member_key, frame))
            return
        state.counters["relay_bytes_in"] += len(frame)
        try:
            txs = self._decode_batch(frame)
        except DecodeError as error:
            self.counters["relay_batches_invalid"] += 1
            self._penalize_state(state, f"bad relayed batch: {error}", self.limits.bad_gossip_penalty)
            return
        state.counters["relay_batches_in"] += 1
        try:
            self._tx_send.send_nowait((state.peer_id, txs))
        except trio.WouldBlock:
            self.counters["gossip_batches_dropped"] += 1

    async def _throttle(self, state: PeerState, size: int) -> None:
        """Charge a frame to the peer's buckets; an overdraft costs points and waits."""
        now = trio.current_time()
        delay = max(state.frame_bucket.take(1.0, now), state.byte_bucket.take(float(size), now))
        if delay > 0:
            state.counters["throttled"] += 1
            self.penalize(state.peer_id, "over its rate limit", self.limits.flood_penalty)
            await trio.sleep(delay)

    def _on_bad_frames(self, state: PeerState, error: FrameError) -> None:
        state.counters[f"frames_{error.reason}"] += 1
        if error.reason == "silent":
            logger.info("peer %s (%s) silent: dropping its connection", state.peer_id, state.name)
            self._nursery.start_soon(self._disconnect, state)
        else:
            self.penalize(state.peer_id, str(error), self.limits.oversized_frame_penalty)

    async def _serve_request(self, stream: INetStream, handler: RequestHandler) -> None:
        """Answer requests on `stream` until the client ends it or sends nothing for `request_stream_idle`
        seconds. The first request must come within the read timeout (a silent opener is dropped)."""
        state = self._state(stream.muxed_conn.peer_id.to_base58())
        limits = self.limits
        try:
            request = await FrameReader(
                _receive_some(stream), limits.max_request_bytes, limits.read_timeout
            ).read_frame()
            while request is not None:
                if self._is_banned(state):
                    state.counters["rejected_streams"] += 1
                    return
                if not await self._answer(state, stream, handler, request):
                    return
                request = None
                with trio.move_on_after(limits.request_stream_idle):
                    request = await FrameReader(
                        _receive_some(stream), limits.max_request_bytes, None
                    ).read_frame()
        except FrameError as error:
            self._on_bad_frames(state, error)
        except (NetworkError, LedgerError) as error:
            logger.info("request from %s refused: %s", state.peer_id, error)
        except (*TRANSPORT_ERRORS, trio.TooSlowError) as error:
            logger.info("request from %s failed: %r", state.peer_id, error)
        finally:
            await _discard(stream)

    async def _answer(
        self, state: PeerState, stream: INetStream, handler: RequestHandler, request: bytes
    ) -> bool:
        """Answer one request; False when the answer is over the cap (not sent, the stream ends)."""
        await self._throttle(state, len(request))
        state.counters["requests_in"] += 1
        with trio.fail_after(self.limits.handler_timeout):
            answer = await handler(state.peer_id, request)
        if len(answer) > self.limits.max_response_bytes:
            logger.warning("handler answer of %s bytes over the cap: not sent", len(answer))
            return False
        frame = encode_frame(answer)
        with trio.fail_after(self.limits.write_timeout):
            await stream.write(frame)
        self.traffic.request_writes += 1
        self.traffic.request_bytes_out += len(frame)
        return True

    def _validate_gossip(self, forwarder: ID, message: rpc_pb2.Message) -> bool:
        try:
            self._decode_batch(message.data)
        except DecodeError as error:
            self.counters["gossip_batches_invalid"] += 1
            self.penalize(forwarder.to_base58(), f"bad gossip batch: {error}", self.limits.bad_gossip_penalty)
            return False
        return True

    def _decode_batch(self, data: bytes) -> list[bytes]:
        limits = self.limits
        return decode_batch(
            data, limits.max_gossip_batch_bytes, limits.max_gossip_batch_txs, limits.max_tx_bytes
        )

    async def _read_gossip(self, messages: trio.MemoryReceiveChannel[rpc_pb2.Message]) -> None:
        async for message in messages:
            origin = ID(message.from_id).to_base58()
            if origin == self.local_peer_id:
                continue
            try:
                txs = self._decode_batch(message.data)
            except DecodeError:
                self.counters["gossip_batches_invalid"] += 1
                continue
            self._state(origin).counters["gossip_batches_in"] += 1
            try:
                self._tx_send.send_nowait((origin, txs))
            except trio.WouldBlock:
                self.counters["gossip_batches_dropped"] += 1


@asynccontextmanager
async def open_network(config: NetworkConfig) -> AsyncIterator[Network]:
    """Start the host, gossip and links; leaving the block (or cancelling it) shuts everything down.

    The teardown is bounded by SHUTDOWN_SECONDS: py-libp2p's swarm shutdown sometimes waits on a task
    that only a cancellation ends, so past the bound the remaining teardown is cancelled.
    """
    host = build_host(config)
    with trio.CancelScope() as teardown:
        async with host.run([listen_multiaddr(config)]):
            await stop_auto_connector(host)
            pubsub, router = build_gossip(host, config)
            async with background_trio_service(pubsub), background_trio_service(router):
                await pubsub.wait_until_ready()
                async with trio.open_nursery() as nursery:
                    network = Network(config, host, pubsub, nursery)
                    await network._start()
                    try:
                        yield network
                    finally:
                        nursery.cancel_scope.cancel()
                        teardown.deadline = trio.current_time() + SHUTDOWN_SECONDS
                        await network._close_connections()
    if teardown.cancelled_caught:
        logger.warning("libp2p teardown took over %s s and was cut short", SHUTDOWN_SECONDS)
