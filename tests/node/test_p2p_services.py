"""Gossip batches, request/response and member reconnection between real libp2p hosts on 127.0.0.1."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio
from libp2p.peer.id import ID

from node.p2p import GossipBatchTooLarge, Network, RequestFailed, RequestTimeout, open_network

SYNC = "/fedmarket/sync/1.0.0"


async def test_tx_batches_reach_the_other_members(member_configs, federation, wait_until):
    configs = member_configs(3)
    with trio.fail_after(30):
        async with federation(configs) as networks:
            publisher = networks[0]
            await wait_until(lambda: all(len(network.gossip_peers()) == 2 for network in networks))
            txs = [b"tx-%05d-" % index + bytes(200) for index in range(600)]
            batches = await publisher.publish_txs(txs)
            assert 2 <= batches < len(txs) / 100, "hundreds of transactions per gossip message"
            for receiver in networks[1:]:
                received: list[bytes] = []
                with trio.fail_after(10):
                    async for origin, batch in receiver.tx_batches():
                        assert origin == publisher.local_peer_id
                        assert 0 < len(batch) <= receiver.limits.max_gossip_batch_txs
                        received.extend(batch)
                        if len(received) == len(txs):
                            break
                assert sorted(received) == txs, "every transaction once (batches may arrive in any order)"
            # Every batch was written to both other members (forwards and control messages come on top).
            assert publisher.traffic.gossip_writes >= 2 * batches
            assert publisher.traffic.gossip_bytes_out > 2 * sum(map(len, txs))
            with pytest.raises(GossipBatchTooLarge, match="cannot be gossiped"):
                await publisher.publish_txs([b"small", bytes(publisher.limits.max_gossip_batch_bytes)])
            with pytest.raises(GossipBatchTooLarge):
                await publisher.publish_txs([bytes(publisher.limits.max_tx_bytes + 1)])


async def test_relayed_transactions_reach_each_member_once_and_bad_batches_cost_score(
    member_configs, federation, wait_until
):
    configs = member_configs(3)
    with trio.fail_after(30):
        async with federation(configs) as networks:
            sender = networks[0]
            txs = [b"tx-%05d-" % index + bytes(200) for index in range(600)]
            batches = sender.relay_txs(txs)
            assert 2 <= batches < len(txs) / 100, "hundreds of transactions per relayed batch"
            for receiver in networks[1:]:
                received: list[bytes] = []
                with trio.fail_after(10):
                    async for origin, batch in receiver.tx_batches():
                        assert origin == sender.local_peer_id
                        received.extend(batch)
                        if len(received) >= len(txs):
                            break
                assert received == txs, "every transaction once, in order (one link per member)"
            with pytest.raises(GossipBatchTooLarge):
                sender.relay_txs([bytes(sender.limits.max_tx_bytes + 1)])
            # A member whose relayed batch does not decode loses score; the link stays up.
            receiver = networks[1]
            sender_row = next(row for row in receiver.peers() if row.peer_id == sender.local_peer_id)
            state = sender._peers[receiver.local_peer_id]
            assert state.relay is not None
            state.relay.push(b"\xc1 not a batch")
            await wait_until(lambda: receiver.counters["relay_batches_invalid"] == 1)
            row = next(row for row in receiver.peers() if row.peer_id == sender.local_peer_id)
            assert row.score < sender_row.score and row.connected
            sender.relay_txs([b"after"])
            with trio.fail_after(10):
                assert await receiver.tx_batches().receive() == (sender.local_peer_id, [b"after"])


async def test_requests_share_a_kept_stream_and_replace_it_once_it_broke(
    member_configs, federation, wait_until
):
    with trio.fail_after(30):
        async with federation(member_configs(2)) as (client, server):

            async def echo(peer_id: str, request: bytes) -> bytes:
                return request

            server.register_handler(SYNC, echo)

            def counter(network: Network, peer_id: str, name: str) -> int:
                return next(row.counters.get(name, 0) for row in network.peers() if row.peer_id == peer_id)

            for index in range(3):
                assert (
                    await client.request(server.local_peer_id, SYNC, b"ask %d" % index, 5.0)
                    == b"ask %d" % index
                )
            assert counter(client, server.local_peer_id, "request_streams") == 1, "three requests, one stream"
            assert counter(server, client.local_peer_id, "requests_in") == 3
            await client._request_streams[(server.local_peer_id, SYNC)].reset()
            assert await client.request(server.local_peer_id, SYNC, b"again", 5.0) == b"again"
            assert counter(client, server.local_peer_id, "request_streams") == 2, (
                "the broken one was replaced"
            )
            # A closed connection takes its kept stream with it: nothing is left to try on the next request.
            await client._host.disconnect(ID.from_base58(server.local_peer_id))
            await wait_until(lambda: (server.local_peer_id, SYNC) not in client._request_streams)


async def test_request_response_answers_and_times_out(member_configs, federation):
    configs = member_configs(2)
    with trio.fail_after(30):
        async with federation(configs) as (client, server):
            asked_by: list[str] = []

            async def serve_sync(peer_id: str, request: bytes) -> bytes:
                asked_by.append(peer_id)
                return request[::-1] * 1000

            async def never_answer(peer_id: str, request: bytes) -> bytes:
                await trio.sleep_forever()
                raise AssertionError("unreachable")

            server.register_handler(SYNC, serve_sync)
            server.register_handler("/fedmarket/silent/1.0.0", never_answer)
            answer = await client.request(server.local_peer_id, SYNC, b"height 7", timeout=5.0)
            assert answer == b"7 thgieh" * 1000
            assert asked_by == [client.local_peer_id]
            assert (client.traffic.request_writes, server.traffic.request_writes) == (1, 1)
            assert client.traffic.request_bytes_out > len(b"height 7")
            assert server.traffic.request_bytes_out > len(answer)
            with trio.fail_after(3):
                with pytest.raises(RequestTimeout):
                    await client.request(server.local_peer_id, "/fedmarket/silent/1.0.0", b"?", timeout=0.5)
                with pytest.raises(RequestFailed):
                    await client.request(server.local_peer_id, "/fedmarket/unknown/1.0.0", b"?", timeout=2.0)
                with pytest.raises(RequestFailed, match="over the cap"):
                    await client.request(
                        server.local_peer_id, SYNC, bytes(client.limits.max_request_bytes + 1), 2.0
                    )
            # The connection still serves requests after a timeout and a refusal.
            assert await client.request(server.local_peer_id, SYNC, b"ab", timeout=5.0) == b"ba" * 1000


async def test_a_member_that_comes_back_is_reconnected(member_configs, federation, wait_until):
    configs = member_configs(3)
    keys = list(configs[0].members)
    with trio.fail_after(40):
        async with federation(configs[:2]) as networks:

            def connected_to(network: Network, peer_id: str) -> bool:
                return any(row.connected for row in network.peers() if row.peer_id == peer_id)

            async with open_network(configs[2]) as member:
                await wait_until(
                    lambda: all(connected_to(network, member.local_peer_id) for network in networks)
                )
            await wait_until(
                lambda: not any(connected_to(network, member.local_peer_id) for network in networks)
            )
            # Same key and port, and no bootstrap: only the others' redial loops can bring it back.
            async with open_network(replace(configs[2], bootstrap=())) as restarted:
                await wait_until(
                    lambda: all(connected_to(network, restarted.local_peer_id) for network in networks)
                )
                networks[0].send(keys[2], b"welcome back")
                with trio.fail_after(10):
                    assert await restarted.inbound().receive() == (keys[0], b"welcome back")
                restarted.send(keys[1], b"thanks")
                with trio.fail_after(10):
                    assert await networks[1].inbound().receive() == (keys[2], b"thanks")


async def test_cancelling_the_scope_shuts_a_busy_network_down_within_a_bound(
    member_configs, outsider_config, federation, wait_until
):
    configs = member_configs(2)
    with trio.fail_after(30):
        async with federation(configs) as networks:
            with trio.CancelScope() as scope:
                async with open_network(outsider_config(configs[0])) as observer:
                    await wait_until(lambda: any(row.connected for row in observer.peers()))
                    for _ in range(200):
                        networks[0].broadcast(b"x" * 10_000)
                    started = trio.current_time()
                    with trio.fail_after(5):
                        scope.cancel()
                        await trio.sleep_forever()
            assert scope.cancelled_caught
            assert trio.current_time() - started < 5
            # The federation itself is unaffected.
            first, second = configs[0].members
            networks[1].send(first, b"after")
            with trio.fail_after(10):
                assert await networks[0].inbound().receive() == (second, b"after")


async def test_a_ping_keeps_its_stream_and_opens_another_when_that_one_broke(member_configs, federation):
    with trio.fail_after(30):
        async with federation(member_configs(2)) as (first, second):
            peer = ID.from_base58(second.local_peer_id)
            kept = await first._ping(peer, None)
            assert kept is not None
            assert await first._ping(peer, kept) is kept, "the next ping reuses the stream"
            await kept.reset()
            again = await first._ping(peer, kept)
            assert again is not None and again is not kept, "a broken stream is replaced: the peer is alive"
