"""Consensus links between real libp2p hosts on 127.0.0.1: delivery, batching, membership, cut-offs."""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import replace

import multiaddr
import pytest
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from node.p2p import PBFT_PROTOCOL, Network, NetworkError, PeerStatus, parse_bootstrap
from node.p2p.host import build_host

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


async def test_non_member_cannot_get_a_consensus_message_accepted(
    member_configs, outsider_config, federation, wait_until
):
    configs = member_configs(3)
    keys = list(configs[0].members)
    with trio.fail_after(30):
        async with federation(configs) as networks:
            target = networks[0]
            async with federation([outsider_config(configs[1])]) as (outsider,):
                assert outsider.member_key_of(outsider.local_peer_id) is None
                outsider.send(keys[0], b"forged vote")

                def rejected() -> bool:
                    rows = {row.peer_id: row for row in target.peers()}
                    row = rows.get(outsider.local_peer_id)
                    return row is not None and row.counters.get("rejected_streams", 0) >= 1

                await wait_until(rejected)
                networks[1].send(keys[0], b"genuine vote")
                assert await collect(target, 1) == [(keys[1], b"genuine vote")]
                outsider_row = next(row for row in target.peers() if row.peer_id == outsider.local_peer_id)
                assert outsider_row.member_key is None
                assert outsider_row.score < 0


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

            # A member (raw host with member 3's key) that announces a frame over the cap.
            evil = build_host(configs[3])
            async with evil.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                peer_id, address = parse_bootstrap(configs[3].bootstrap[0])
                target = ID.from_base58(peer_id)
                await evil.connect(PeerInfo(target, [address]))
                stream = await evil.new_stream(target, [PBFT_PROTOCOL])
                await stream.write(struct.pack(">I", receiver.limits.max_frame_bytes + 1) + b"x" * 100)
                await wait_until(lambda: banned(receiver.peer_id_of(keys[3])))
                row = next(row for row in receiver.peers() if row.peer_id == receiver.peer_id_of(keys[3]))
                assert row.counters["frames_oversized"] == 1

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
