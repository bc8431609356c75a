"""Member links between real nodes on 127.0.0.1: delivery, batching, membership, cut-offs."""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import replace

import nacl.public
import pytest
import trio

from ledger.keys import PrivateKey, public_key
from node.p2p import Network, NetworkError, PeerStatus
from node.p2p.secure_channel import Channel, LinkError, SecureStream, accept, initiate

MESSAGES_PER_PEER = 300


async def collect(network: Network, count: int, timeout: float = 10.0) -> list[tuple[bytes, bytes]]:
    received = []
    with trio.fail_after(timeout):
        async for item in network.inbound():
            received.append(item)
            if len(received) == count:
                return received
    raise AssertionError("inbound channel closed")


async def test_members_exchange_messages_in_order_batched(member_configs, federation):
    configs = member_configs(4)
    with trio.fail_after(30):
        async with federation(configs) as networks:
            assert all(network.security_protocols == ["/noise"] for network in networks)
            keys = [config_key for config_key in configs[0].members]
            for sequence in range(MESSAGES_PER_PEER):
                for index, network in enumerate(networks):
                    network.broadcast(b"b|%d|%d" % (index, sequence))
                    target = keys[(index + 1) % 4]
                    network.send(target, b"s|%d|%d" % (index, sequence))
            expected = 3 * MESSAGES_PER_PEER + MESSAGES_PER_PEER
            for index, network in enumerate(networks):
                received = await collect(network, expected)
                by_sender: dict[bytes, list[bytes]] = defaultdict(list)
                for sender, payload in received:
                    by_sender[sender].append(payload)
                assert set(by_sender) == set(keys) - {keys[index]}
                direct_from = keys[(index - 1) % 4]
                for sender, payloads in by_sender.items():
                    sender_index = keys.index(sender)
                    broadcasts = [p for p in payloads if p.startswith(b"b|")]
                    assert broadcasts == [b"b|%d|%d" % (sender_index, s) for s in range(MESSAGES_PER_PEER)]
                    direct = [p for p in payloads if p.startswith(b"s|")]
                    if sender == direct_from:
                        assert direct == [b"s|%d|%d" % (sender_index, s) for s in range(MESSAGES_PER_PEER)]
                    else:
                        assert direct == []
            rows = [row for network in networks for row in network.peers()]
            frames = sum(row.counters.get("frames_out", 0) for row in rows)
            writes = sum(row.counters.get("writes_out", 0) for row in rows)
            assert frames == 4 * expected
            assert writes < frames / 4, "messages should be batched many per write"
            # The network-wide counters agree with the per-peer ones (keep-alives are writes too).
            assert sum(network.traffic.consensus_messages_out for network in networks) == frames
            assert sum(network.traffic.consensus_messages_in for network in networks) == frames
            assert sum(network.traffic.consensus_writes for network in networks) >= writes
            assert all(n.traffic.consensus_bytes_out > MESSAGES_PER_PEER * 4 * 6 for n in networks)
        # leaving the block closed every host within the bound above


class _Impostor:
    """Holds one key but names another in its hello."""

    def __init__(self, seed: bytes, claimed: bytes) -> None:
        self._key = PrivateKey(seed)
        self.public = public_key(claimed)

    def x25519_private(self) -> nacl.public.PrivateKey:
        return self._key.x25519_private()


async def dial_link(
    network: Network, seed: bytes, claimed: bytes | None = None, channel: Channel = Channel.CONSENSUS
) -> SecureStream:
    """Open a member link to `network` as the holder of `seed` (or, with `claimed`, naming another key)."""
    assert network.link_port is not None
    stream = await trio.open_tcp_stream("127.0.0.1", network.link_port)
    local = PrivateKey(seed) if claimed is None else _Impostor(seed, claimed)
    remote = PrivateKey(network.config.seed).public.raw
    return await initiate(stream, local, remote, network.config.chain_id, channel, 5.0)


async def test_members_are_linked_both_ways_on_both_channels(member_configs, federation):
    configs = member_configs(3)
    with trio.fail_after(30):
        async with federation(configs) as networks:
            for network in networks:
                assert network.link_addr is not None and network.link_addr.endswith(network.local_peer_id)
                for row in network.peers():
                    assert row.links == ("consensus-in", "consensus-out", "relay-in", "relay-out")
                    assert row.counters["links_dialed"] == 2
                    assert row.counters["links_accepted"] == 2


async def test_non_member_cannot_open_a_member_link(member_configs, outsider_config, federation, wait_until):
    configs = member_configs(3)
    keys = list(configs[0].members)
    with trio.fail_after(30):
        async with federation(configs) as networks:
            target = networks[0]
            with pytest.raises(LinkError):
                await dial_link(target, b"\xee" * 32)
            assert target.counters["links_refused"] == 1
            # Naming a member's key without holding it fails the handshake, and costs that member nothing.
            with pytest.raises(LinkError):
                await dial_link(target, b"\xee" * 32, claimed=keys[1])
            await wait_until(lambda: target.counters["links_failed_handshake"] == 1)
            row = next(row for row in target.peers() if row.member_key == keys[1])
            assert row.score == 0 and row.links == ("consensus-in", "consensus-out", "relay-in", "relay-out")
            # An observer does not dial links at all, and members keep talking.
            async with federation([outsider_config(configs[1])]) as (observer,):
                assert not observer.is_member and observer.link_addr is None
                networks[1].send(keys[0], b"genuine vote")
                assert await collect(target, 1) == [(keys[1], b"genuine vote")]


async def test_garbage_and_oversized_frames_cut_a_member_off(member_configs, federation, wait_until):
    configs = member_configs(4)
    keys = list(configs[0].members)
    with trio.fail_after(40):
        async with federation(configs[:3]) as networks:
            receiver = networks[0]
            # A member whose runtime reports garbage: the receiver's consumer penalizes each bad payload.
            for _ in range(3):
                networks[2].send(keys[0], b"\xffgarbage")
            for sender, payload in await collect(receiver, 3):
                assert payload == b"\xffgarbage"
                receiver.penalize(receiver.peer_id_of(sender), "undecodable consensus message", 40.0)
            garbage_peer = networks[2].local_peer_id
            with pytest.raises(NetworkError):
                receiver.penalize("not a peer id", "bogus report", 1.0)

            def banned(peer_id: str) -> bool:
                row = next(row for row in receiver.peers() if row.peer_id == peer_id)
                return row.banned_for > 0 and not row.connected

            await wait_until(lambda: banned(garbage_peer))

            # Member 3 (its own key, a raw link) announces a frame over the cap: one frame costs the ban.
            link = await dial_link(receiver, configs[3].seed)
            await link.send_all(struct.pack(">I", receiver.limits.max_frame_bytes + 1) + b"x" * 100)
            await wait_until(lambda: banned(receiver.peer_id_of(keys[3])))
            row = next(row for row in receiver.peers() if row.peer_id == receiver.peer_id_of(keys[3]))
            assert row.counters["frames_oversized"] == 1
            with pytest.raises(LinkError):
                await dial_link(receiver, configs[3].seed)
            await link.aclose()

            # The others keep exchanging messages.
            networks[1].send(keys[0], b"still here")
            networks[0].send(keys[1], b"me too")
            assert await collect(receiver, 1) == [(keys[1], b"still here")]
            assert await collect(networks[1], 1) == [(keys[0], b"me too")]
            # The banned member's messages are not accepted while the ban lasts.
            networks[2].send(keys[0], b"after ban")
            networks[1].send(keys[0], b"marker")
            assert await collect(receiver, 1) == [(keys[1], b"marker")]


async def test_a_flooding_member_is_throttled_then_banned_without_starving_the_others(
    member_configs, federation, wait_until, test_limits
):
    limits = replace(test_limits, frames_per_second=500.0, frame_burst=100.0, flood_penalty=1.0)
    configs = member_configs(3, limits)
    keys = list(configs[0].members)
    with trio.fail_after(30):
        async with federation(configs) as (receiver, honest, flooder):
            honest_received: list[bytes] = []

            def flooder_row() -> PeerStatus:
                return next(row for row in receiver.peers() if row.peer_id == flooder.local_peer_id)

            async def consume() -> None:
                async for sender, payload in receiver.inbound():
                    if sender == keys[1]:
                        honest_received.append(payload)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                for index in range(3000):
                    flooder.send(keys[0], b"flood %d" % index)
                for index in range(20):
                    honest.send(keys[0], b"vote %d" % index)
                await wait_until(lambda: len(honest_received) == 20)
                await wait_until(lambda: flooder_row().banned_for > 0)
                nursery.cancel_scope.cancel()
            assert honest_received == [b"vote %d" % index for index in range(20)]
            row = flooder_row()
            assert row.counters["throttled"] >= 1
            assert row.counters["frames_in"] < 3000


async def test_handshakes_in_progress_are_capped(member_configs, federation, wait_until, test_limits):
    configs = member_configs(2, replace(test_limits, max_pending_links=2))
    keys = list(configs[0].members)
    with trio.fail_after(30):
        async with federation(configs) as (target, other):
            assert target.link_port is not None
            silent = [await trio.open_tcp_stream("127.0.0.1", target.link_port) for _ in range(2)]
            over = await trio.open_tcp_stream("127.0.0.1", target.link_port)
            with trio.fail_after(5):
                assert await over.receive_some(1) == b""  # closed at once: two handshakes already wait
            assert target.counters["links_over_pending_cap"] == 1
            for stream in silent:
                await stream.aclose()
            await wait_until(lambda: target.counters["links_failed_handshake"] == 2)
            other.send(keys[0], b"still linked")
            assert await collect(target, 1) == [(keys[1], b"still linked")]


async def test_a_member_that_stops_reading_costs_a_redial_not_the_node(
    member_configs, federation, test_limits
):
    """A write that times out (or breaks) inside a link ends that link only: the writer redials."""
    configs = member_configs(2, replace(test_limits, write_timeout=0.3))
    keys = list(configs[0].members)
    stuck_member = PrivateKey(configs[1].seed)
    accepted: list[SecureStream] = []

    async def accept_and_never_read(stream: trio.SocketStream) -> None:
        chain_id = configs[1].chain_id
        accepted.append(await accept(stream, stuck_member, chain_id, lambda key, channel: True, 5.0))
        await trio.sleep_forever()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(configs[1].link_port, host="127.0.0.1")
            nursery.start_soon(trio.serve_listeners, accept_and_never_read, listeners)
            async with federation(configs[:1]) as (writer,):

                def counter(name: str) -> int:
                    row = next(row for row in writer.peers() if row.member_key == keys[1])
                    return row.counters.get(name, 0)

                while counter("link_write_failures") == 0:
                    writer.send(keys[1], b"v" * (1 << 20))
                    await trio.sleep(0.01)
                while counter("links_dialed") < 3:  # both channels, then the consensus link again
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert len(accepted) >= 3


async def test_idle_links_stay_up_on_keepalives_and_a_silent_link_is_dropped(
    member_configs, federation, wait_until, test_limits
):
    limits = replace(test_limits, read_timeout=0.6, keepalive_interval=0.15)
    configs = member_configs(3, limits)
    keys = list(configs[0].members)
    with trio.fail_after(30):
        async with federation(configs[:2]) as (receiver, other):

            def row_of(key: bytes) -> PeerStatus:
                return next(row for row in receiver.peers() if row.member_key == key)

            before = dict(row_of(keys[1]).counters)
            await trio.sleep(4 * limits.read_timeout)  # the idle spell under test: only keepalives cross
            after = row_of(keys[1])
            assert after.links == ("consensus-in", "consensus-out", "relay-in", "relay-out")
            assert "frames_silent" not in after.counters
            for counter in ("links_dialed", "links_accepted"):
                assert after.counters[counter] == before[counter]  # nothing was redialed
            # Member 2 (a raw link) completes the handshake, then sends nothing, not even keepalives.
            link = await dial_link(receiver, configs[2].seed)
            await wait_until(lambda: row_of(keys[2]).counters.get("frames_silent", 0) == 1)
            with trio.fail_after(5):
                assert await link.receive_some(1) == b""  # the receiver closed it
            other.send(keys[0], b"after the idle spell")
            assert await collect(receiver, 1) == [(keys[1], b"after the idle spell")]
