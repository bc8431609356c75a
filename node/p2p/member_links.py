"""Direct member links: one TCP connection per ordered pair of members and per channel, Noise-secured.

Theory: consensus and transaction relay run between a fixed, known set of members, so they need neither
libp2p's peer discovery nor its stream multiplexer, whose Python implementation costs about a millisecond of
CPU per message (a member exchanges about fifteen messages per block). Each member dials every other member
once per channel and only writes on the connections it dialed; it only reads on the connections it
accepted. So there is no tie to break between simultaneous dials, and a restart on either side is just a
redial. The dialer also reads its connection: the acceptor never writes after the handshake, so the read
returns only when the peer is gone, and the link is redialed at once instead of at the next failed write.
A newer accepted link of a member and channel replaces the older one (the member restarted). A handshake
only counts, never blames: the member named in a hello is a claim until the handshake proves it. Frames on
an authenticated link are the member's own, and a bad one costs it points as on any other channel. Reads and
writes are bounded by one watchdog task per link rather than a cancel scope per call (entering and closing
scopes took a fifth of the CPU of a small message): it cancels the link when no byte arrived for
`read_timeout`, or when a write is stuck for `write_timeout`, and queues a keepalive when nothing was written
for `keepalive_interval`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass

import trio

from ledger.keys import PrivateKey
from node.p2p.config import LinkAddress, NetworkLimits
from node.p2p.errors import FrameError
from node.p2p.framing import FrameReader, encode_frames
from node.p2p.peers import OutgoingQueue, PeerState
from node.p2p.secure_channel import Channel, LinkError, SecureStream, accept, initiate
from node.p2p.traffic import Traffic

logger = logging.getLogger(__name__)

LINK_ERRORS = (LinkError, OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError)
CLOSE_SECONDS = 1.0

FrameHandler = Callable[[PeerState, Channel, bytes], Awaitable[None]]
Penalize = Callable[[PeerState, str, float], None]


@dataclass
class _Progress:
    """What a link's watchdog looks at: when bytes last moved, and whether a write is under way."""

    last: float
    write_started: float | None = None
    timed_out: bool = False


def link_name(channel: Channel, outbound: bool) -> str:
    return f"{channel.name.lower()}-{'out' if outbound else 'in'}"


async def _close(stream: trio.abc.AsyncResource) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_SECONDS), suppress(*LINK_ERRORS):
        await stream.aclose()


class MemberLinks:
    """The links of one member: a listener, and a writer task per other member and channel.

    `peers` maps each other member's ledger key to its state (queues, buckets, score, counters);
    `on_frame` takes each frame read from an authenticated link; `penalize` is the network's scoring;
    `counters` is the network's own counters, where the links add theirs.
    """

    def __init__(
        self,
        local: PrivateKey,
        chain_id: str,
        limits: NetworkLimits,
        peers: Mapping[bytes, PeerState],
        traffic: Traffic,
        on_frame: FrameHandler,
        penalize: Penalize,
        counters: dict[str, int],
    ) -> None:
        self._local = local
        self._chain_id = chain_id
        self._limits = limits
        self._peers = peers
        self._traffic = traffic
        self._on_frame = on_frame
        self._penalize = penalize
        self._handshakes = trio.Semaphore(limits.max_pending_links)
        self._accepted: dict[tuple[bytes, Channel], trio.CancelScope] = {}
        self.up: set[tuple[bytes, str]] = set()
        self.counters = counters
        for name in ("links_refused", "links_failed_handshake", "links_over_pending_cap"):
            counters.setdefault(name, 0)

    def names_up(self, member_key: bytes | None) -> tuple[str, ...]:
        """The links with a member that are up now, e.g. ("consensus-in", "consensus-out")."""
        return tuple(sorted(name for key, name in self.up if key == member_key))

    # ----- accepting -----

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen for members' links; reports the bound port once listening."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._serve_connection, listeners)

    def close_accepted(self, member_key: bytes) -> None:
        """Drop every link a member opened to us (it was banned)."""
        for (key, _channel), scope in list(self._accepted.items()):
            if key == member_key:
                scope.cancel()

    def _is_acceptable(self, member_key: bytes, channel: Channel) -> bool:
        state = self._peers.get(member_key)
        return state is not None and not state.score.is_banned(trio.current_time())

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            self._handshakes.acquire_nowait()
        except trio.WouldBlock:
            self.counters["links_over_pending_cap"] += 1
            await _close(stream)
            return
        try:
            link = await accept(
                stream, self._local, self._chain_id, self._is_acceptable, self._limits.dial_timeout
            )
        except LINK_ERRORS as error:
            refused = isinstance(error, LinkError) and error.reason == "refused"
            self.counters["links_refused" if refused else "links_failed_handshake"] += 1
            logger.info("member link from %s not accepted: %r", _remote(stream), error)
            await _close(stream)
            return
        finally:
            self._handshakes.release()
        await self._read_link(link)

    async def _read_link(self, link: SecureStream) -> None:
        state = self._peers[link.remote_key]
        slot = (link.remote_key, link.channel)
        name = (link.remote_key, link_name(link.channel, outbound=False))
        previous = self._accepted.get(slot)
        if previous is not None:
            previous.cancel()
        max_frame = (
            self._limits.max_frame_bytes
            if link.channel is Channel.CONSENSUS
            else self._limits.max_gossip_batch_bytes
        )
        progress = _Progress(trio.current_time())

        async def receive_some(max_bytes: int) -> bytes:
            data = await link.receive_some(max_bytes)
            progress.last = trio.current_time()
            return data

        reader = FrameReader(receive_some, max_frame, read_timeout=None)
        async with trio.open_nursery() as nursery:
            scope = nursery.cancel_scope
            self._accepted[slot] = scope
            self.up.add(name)
            state.counters["links_accepted"] += 1
            nursery.start_soon(self._watch_reads, progress, scope)
            try:
                while not state.score.is_banned(trio.current_time()):
                    frame = await reader.read_frame()
                    if frame is None:
                        break
                    if frame:
                        await self._on_frame(state, link.channel, frame)
            except LinkError as error:
                state.counters[f"link_{error.reason}"] += 1
            except FrameError as error:
                state.counters[f"frames_{error.reason}"] += 1
                if error.reason != "silent":
                    self._penalize(state, str(error), self._limits.oversized_frame_penalty)
            except LINK_ERRORS as error:
                logger.debug("link from %s (%s) broke: %r", state.peer_id, state.name, error)
            finally:
                scope.cancel()
                if self._accepted.get(slot) is scope:
                    del self._accepted[slot]
                    self.up.discard(name)
        if progress.timed_out:
            state.counters["frames_silent"] += 1
        await _close(link)

    async def _watch_reads(self, progress: _Progress, scope: trio.CancelScope) -> None:
        """Cancel the link once no byte arrived for `read_timeout` (the dialer sends keepalives)."""
        timeout = self._limits.read_timeout
        while trio.current_time() < progress.last + timeout:
            await trio.sleep_until(progress.last + timeout)
        progress.timed_out = True
        scope.cancel()

    # ----- dialing -----

    async def keep_link(self, member_key: bytes, channel: Channel, address: LinkAddress) -> None:
        """Dial a member's link for `channel`, drain the channel's queue into it, redial when it breaks."""
        state = self._peers[member_key]
        queue = state.outgoing if channel is Channel.CONSENSUS else state.relay
        assert queue is not None
        name = (member_key, link_name(channel, outbound=True))
        delay = self._limits.redial_min_delay
        while True:
            await trio.sleep_until(state.score.banned_until)
            try:
                link = await self._dial(member_key, channel, address)
            except LINK_ERRORS as error:
                state.counters["link_dial_failures"] += 1
                logger.debug("link to %s (%s) not up: %r", state.peer_id, state.name, error)
                await trio.sleep(delay)
                delay = min(2 * delay, self._limits.redial_max_delay)
                continue
            delay = self._limits.redial_min_delay
            state.counters["links_dialed"] += 1
            self.up.add(name)
            progress = _Progress(trio.current_time())
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._cancel_on_close, link, nursery.cancel_scope)
                    nursery.start_soon(self._watch_writes, progress, queue, nursery.cancel_scope)
                    try:
                        await self._pump(state, channel, link, queue, progress)
                    except LINK_ERRORS as error:
                        state.counters["link_write_failures"] += 1
                        logger.info("link to %s (%s) broke: %r", state.peer_id, state.name, error)
                    nursery.cancel_scope.cancel()
            finally:
                self.up.discard(name)
                if progress.timed_out:
                    state.counters["link_write_failures"] += 1
                    logger.info(
                        "link to %s (%s): a write took over the write timeout", state.peer_id, state.name
                    )
                await _close(link)

    async def _dial(self, member_key: bytes, channel: Channel, address: LinkAddress) -> SecureStream:
        with trio.fail_after(self._limits.dial_timeout):
            stream = await trio.open_tcp_stream(address.host, address.port)
        try:
            return await initiate(
                stream, self._local, member_key, self._chain_id, channel, self._limits.dial_timeout
            )
        except BaseException:
            await _close(stream)
            raise

    async def _cancel_on_close(self, link: SecureStream, scope: trio.CancelScope) -> None:
        """The acceptor never writes: a read returns only when it closed (or broke) the connection."""
        with suppress(*LINK_ERRORS):
            await link.receive_some(1)
        scope.cancel()

    async def _watch_writes(self, progress: _Progress, queue: OutgoingQueue, scope: trio.CancelScope) -> None:
        """Cancel the link when a write is stuck for `write_timeout` (noticed within `keepalive_interval`
        more); queue a keepalive (an empty frame) when nothing was written for `keepalive_interval`."""
        limits = self._limits
        while True:
            now = trio.current_time()
            started = progress.write_started
            if started is not None:
                if now - started >= limits.write_timeout:
                    progress.timed_out = True
                    scope.cancel()
                    return
                await trio.sleep_until(started + limits.write_timeout)
            elif now - progress.last >= limits.keepalive_interval:
                if not len(queue):
                    queue.push(b"")
                await trio.sleep(limits.keepalive_interval)
            else:
                await trio.sleep_until(progress.last + limits.keepalive_interval)

    async def _pump(
        self,
        state: PeerState,
        channel: Channel,
        link: SecureStream,
        queue: OutgoingQueue,
        progress: _Progress,
    ) -> None:
        limits = self._limits
        traffic = self._traffic
        consensus = channel is Channel.CONSENSUS
        while not state.score.is_banned(trio.current_time()):
            await queue.wait_nonempty()
            batch = queue.take(limits.max_write_batch_bytes)
            data = encode_frames(batch)
            progress.write_started = trio.current_time()
            try:
                await link.send_all(data)
            except BaseException:
                queue.restore([message for message in batch if message])
                raise
            progress.last = trio.current_time()
            progress.write_started = None
            messages = sum(1 for message in batch if message)  # not the keepalives
            if consensus:
                state.counters["frames_out"] += messages
                state.counters["writes_out"] += 1
                state.counters["bytes_out"] += len(data)
                traffic.consensus_messages_out += messages
                traffic.consensus_writes += 1
                traffic.consensus_bytes_out += len(data)
            else:
                state.counters["relay_batches_out"] += messages
                state.counters["relay_writes_out"] += 1
                state.counters["relay_bytes_out"] += len(data)
                traffic.gossip_writes += 1
                traffic.gossip_bytes_out += len(data)


def _remote(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"
