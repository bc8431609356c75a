"""Pure parts of the network layer: framing, gossip batches, rate limits, scores, identity mapping."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from multiaddr import Multiaddr

from ledger.errors import DecodeError
from ledger.keys import PrivateKey
from node.p2p import ConfigError, GossipBatchTooLarge, NetworkConfig, member_key_of_peer, peer_id_of_member
from node.p2p.config import LinkAddress, ip_multiaddr, key_pair_from_seed, parse_bootstrap, parse_member_link
from node.p2p.errors import FrameError
from node.p2p.framing import KEEPALIVE, FrameReader, encode_frames
from node.p2p.gossip import decode_batch, encode_batch, split_into_batches
from node.p2p.host import on_public_host
from node.p2p.peers import OutgoingQueue
from node.p2p.scoring import PeerScore, TokenBucket

payloads = st.lists(st.binary(max_size=300), max_size=30)


def chunked_source(data: bytes, cuts: list[int]):
    """A byte source that hands out `data` in pieces cut at `cuts`, then b"" (end of stream)."""
    pieces = []
    start = 0
    for cut in sorted({min(cut, len(data)) for cut in cuts}):
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    chunks = iter([piece for piece in pieces if piece])

    async def receive_some(max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return next(chunks, b"")

    return receive_some


async def read_all(reader: FrameReader) -> list[bytes]:
    frames = []
    while (frame := await reader.read_frame()) is not None:
        frames.append(frame)
    return frames


@settings(max_examples=60, deadline=None)
@given(payloads, st.lists(st.integers(min_value=0, max_value=12_000), max_size=20))
def test_frames_survive_any_chunking(messages, cuts):
    data = encode_frames(messages)

    async def main() -> list[bytes]:
        return await read_all(FrameReader(chunked_source(data, cuts), 300, read_timeout=1.0))

    assert trio.run(main) == messages


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(min_value=1, max_value=199))
def test_a_stream_cut_inside_a_frame_is_truncated(message, keep):
    data = encode_frames([message])[: min(keep, 3 + len(message))]

    async def main() -> None:
        await read_all(FrameReader(chunked_source(data, []), 1000, read_timeout=1.0))

    with pytest.raises(FrameError) as caught:
        trio.run(main)
    assert caught.value.reason == "truncated"


async def test_an_oversized_length_is_refused_before_reading_the_body():
    reader = FrameReader(chunked_source(encode_frames([b"x" * 101]), []), 100, read_timeout=1.0)
    with pytest.raises(FrameError) as caught:
        await reader.read_frame()
    assert caught.value.reason == "oversized"


async def test_keepalives_are_empty_frames_and_silence_times_out():
    async def silent_after_keepalive(max_bytes: int) -> bytes:
        if not hasattr(silent_after_keepalive, "sent"):
            silent_after_keepalive.sent = True  # type: ignore[attr-defined]
            return KEEPALIVE
        await trio.sleep_forever()
        return b""

    reader = FrameReader(silent_after_keepalive, 100, read_timeout=0.05)
    assert await reader.read_frame() == b""
    with trio.fail_after(2), pytest.raises(FrameError) as caught:
        await reader.read_frame()
    assert caught.value.reason == "silent"


tx_lists = st.lists(st.binary(min_size=1, max_size=8 * 1024), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(tx_lists, st.integers(min_value=9 * 1024, max_value=64 * 1024), st.integers(min_value=1, max_value=50))
def test_batches_respect_the_caps_and_keep_every_tx_in_order(txs, max_bytes, max_txs):
    batches = split_into_batches(txs, max_bytes, max_txs, 8 * 1024)
    decoded = []
    for batch in batches:
        assert len(batch) < max_bytes
        inner = decode_batch(batch, max_bytes, max_txs, 8 * 1024)
        assert 1 <= len(inner) <= max_txs
        decoded.extend(inner)
    assert decoded == txs


def test_oversized_transactions_are_refused_before_anything_is_sent():
    with pytest.raises(GossipBatchTooLarge):
        split_into_batches([b"ok", bytes(9000)], 60 * 1024, 100, 8 * 1024)
    with pytest.raises(GossipBatchTooLarge):
        split_into_batches([b""], 60 * 1024, 100, 8 * 1024)
    with pytest.raises(GossipBatchTooLarge):
        encode_batch([bytes(5000)] * 3, 10_000)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_batches_raise_decode_error_only(data):
    try:
        txs = decode_batch(data, 64 * 1024, 100, 8 * 1024)
    except DecodeError:
        return
    assert txs and all(isinstance(tx, bytes) and tx for tx in txs)


def test_batches_over_count_or_with_non_bytes_are_refused():
    with pytest.raises(DecodeError):
        decode_batch(encode_batch([b"a"] * 11, 64 * 1024), 64 * 1024, 10, 100)
    from ledger.codec import encode

    with pytest.raises(DecodeError):
        decode_batch(encode([b"a", 5]), 64 * 1024, 10, 100)
    with pytest.raises(DecodeError):
        decode_batch(encode([]), 64 * 1024, 10, 100)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=1000.0),
    st.floats(min_value=1.0, max_value=1000.0),
    st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=5.0), st.floats(min_value=0.0, max_value=50.0)),
        max_size=40,
    ),
)
def test_a_token_bucket_never_grants_more_than_burst_plus_rate_times_time(rate, burst, steps):
    bucket = TokenBucket(rate, burst)
    now = 0.0
    for gap, amount in steps:
        now += gap
        delay = bucket.take(amount, now)
        assert delay >= 0
        now += delay  # the caller waits out its debt
    spent = sum(amount for _, amount in steps)
    assert spent <= burst + rate * now + 1e-6 * (1 + spent)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(min_value=0.0, max_value=10.0), st.floats(min_value=0.0, max_value=60.0)))
)
def test_a_score_bans_exactly_when_it_crosses_the_threshold(events):
    score = PeerScore(threshold=-100.0, ban_seconds=30.0, recovery_per_second=1.0)
    now = 0.0
    for gap, points in events:
        now += gap
        was_banned = score.is_banned(now)
        before = score.current(now)
        started = score.penalize(points, now)
        assert score.current(now) <= 0
        if was_banned:
            assert not started
        else:
            assert started == (before - points <= -100.0)
        if started:
            assert score.is_banned(now) and not score.is_banned(now + 30.0)
            assert score.current(now + 30.0) == 0.0


def test_the_outgoing_queue_drops_its_oldest_message_and_batches_by_size():
    queue = OutgoingQueue(capacity=3)
    for payload in (b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 10):
        queue.push(payload)
    assert queue.dropped == 1
    assert queue.take(15) == [b"b" * 10]
    assert queue.take(100) == [b"c" * 10, b"d" * 10]
    queue.push(b"e" * 50)
    assert queue.take(10) == [b"e" * 50], "one message larger than the batch still goes out"
    for payload in (b"f", b"g"):
        queue.push(payload)
    batch = queue.take(100)
    queue.push(b"h")
    queue.push(b"i")
    queue.restore(batch)
    assert queue.take(100) == [b"g", b"h", b"i"], "failed batch back in front, oldest dropped"
    assert queue.dropped == 2


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_peer_ids_and_ledger_keys_map_both_ways(seed):
    key = PrivateKey(seed).public.raw
    peer_id = peer_id_of_member(key)
    assert member_key_of_peer(peer_id) == key
    assert key_pair_from_seed(seed).public_key.to_bytes() == key


def test_config_checks():
    key = PrivateKey(b"\x01" * 32).public.raw
    config = NetworkConfig(seed=b"\x01" * 32, chain_id="chain-9", members={key: "a"})
    assert "chain-9" in config.gossip_topic
    assert member_key_of_peer("not a peer id") is None
    with pytest.raises(ConfigError):
        NetworkConfig(seed=b"short", chain_id="c", members={})
    with pytest.raises(ConfigError):
        NetworkConfig(seed=b"\x01" * 32, chain_id="c", members={b"x": "bad"})
    with pytest.raises(ConfigError, match="must be an IPv4 or IPv6 address"):
        NetworkConfig(seed=b"\x01" * 32, chain_id="c", members={}, listen_host="localhost")
    with pytest.raises(ConfigError, match="every interface, not an address to dial"):
        NetworkConfig(seed=b"\x01" * 32, chain_id="c", members={}, listen_host="0.0.0.0")
    assert config.public_host == "127.0.0.1"
    every = NetworkConfig(
        seed=b"\x01" * 32, chain_id="c", members={}, listen_host="0.0.0.0", advertise_host="10.0.0.5"
    )
    assert every.public_host == "10.0.0.5"
    assert ip_multiaddr("127.0.0.1") == "/ip4/127.0.0.1"
    assert ip_multiaddr("0:0:0:0:0:0:0:1") == "/ip6/::1"
    with pytest.raises(ConfigError):
        parse_bootstrap("/ip4/127.0.0.1/tcp/4001")
    with pytest.raises(ConfigError):
        parse_bootstrap("not a multiaddr")
    peer_id, address = parse_bootstrap(f"/ip4/127.0.0.1/tcp/4001/p2p/{peer_id_of_member(key)}")
    assert peer_id == peer_id_of_member(key) and str(address) == "/ip4/127.0.0.1/tcp/4001"


def test_identify_advertises_each_bound_port_on_the_public_host():
    bound = [
        Multiaddr("/ip4/0.0.0.0/tcp/4001"),
        Multiaddr("/ip4/0.0.0.0/tcp/4001"),
        Multiaddr("/ip4/0.0.0.0/tcp/7"),
    ]
    assert [str(a) for a in on_public_host("10.0.0.5")(bound)] == [
        "/ip4/10.0.0.5/tcp/4001",
        "/ip4/10.0.0.5/tcp/7",
    ]
    assert [str(a) for a in on_public_host("::1")([Multiaddr("/ip6/::/tcp/9")])] == ["/ip6/::1/tcp/9"]
    assert on_public_host("10.0.0.5")([Multiaddr("/ip4/0.0.0.0/udp/9/quic-v1")]) == []


def test_member_links_name_a_member_at_a_tcp_address():
    keys = [PrivateKey(bytes([index]) * 32).public.raw for index in (1, 2)]
    members = {keys[0]: "a", keys[1]: "b"}
    link = f"/ip4/10.0.0.2/tcp/7002/p2p/{peer_id_of_member(keys[1])}"
    assert parse_member_link(link) == (keys[1], LinkAddress("10.0.0.2", 7002))
    named = f"/dns4/dc-b.example/tcp/7002/p2p/{peer_id_of_member(keys[1])}"
    assert parse_member_link(named) == (keys[1], LinkAddress("dc-b.example", 7002))
    config = NetworkConfig(seed=b"\x01" * 32, chain_id="c", members=members, member_links=(link,))
    assert config.link_addresses() == {keys[1]: LinkAddress("10.0.0.2", 7002)}
    stranger = PrivateKey(b"\x09" * 32).public.raw
    for bad in (
        f"/ip4/10.0.0.2/udp/7002/p2p/{peer_id_of_member(keys[1])}",
        f"/ip4/10.0.0.2/p2p/{peer_id_of_member(keys[1])}",
        "/ip4/10.0.0.2/tcp/7002",
    ):
        with pytest.raises(ConfigError):
            parse_member_link(bad)
    for bad_links in ((f"/ip4/10.0.0.3/tcp/1/p2p/{peer_id_of_member(stranger)}",), (link, link)):
        with pytest.raises(ConfigError):
            NetworkConfig(seed=b"\x01" * 32, chain_id="c", members=members, member_links=bad_links)
    with pytest.raises(ConfigError):
        NetworkConfig(seed=b"\x01" * 32, chain_id="c", members=members, link_port=70_000)
