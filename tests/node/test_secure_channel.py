"""Member links (node/p2p/secure_channel.py): Noise KK over a trio stream, with a cleartext hello and records.

The streams are in-memory (`trio.testing`) except one test over TCP on 127.0.0.1. A `Tap` wraps one end of a
link: it logs every byte that end writes, can rewrite them in flight (a man in the middle) and can hold them
back, so a test can drop, replay, reorder, splice or cut records before delivering them itself.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Awaitable, Callable, Sequence

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]

from ledger.keys import PrivateKey
from node.p2p.errors import NetworkError
from node.p2p.secure_channel import (
    HELLO,
    LINK_MAGIC,
    MAX_RECORD_BYTES,
    MAX_RECORD_PLAINTEXT,
    NOISE_PROTOCOL,
    PROLOGUE_TAG,
    RECORD_HEADER,
    TAG_BYTES,
    Channel,
    LinkError,
    SecureStream,
    accept,
    initiate,
)

CHAIN_ID = "fedmarket-test"
TIMEOUT = 5.0
ALICE = PrivateKey(bytes([1]) * 32)
BOB = PrivateKey(bytes([2]) * 32)
CAROL = PrivateKey(bytes([3]) * 32)
CHANNEL_OFFSET = len(LINK_MAGIC)
KEY_OFFSET = CHANNEL_OFFSET + 1
FIRST_MESSAGE_OFFSET = HELLO.size + RECORD_HEADER.size  # where the initiator's Noise message starts
ALICE_HELLO = HELLO.pack(LINK_MAGIC, Channel.CONSENSUS, ALICE.public.raw)
ALICE_ASKS_CONSENSUS = (ALICE.public.raw, Channel.CONSENSUS)  # what `is_acceptable` is asked for ALICE_HELLO

Tamper = Callable[[int, bytes], bytes]
Outcome = SecureStream | LinkError | trio.TooSlowError
StreamPairFactory = Callable[[], tuple[trio.StapledStream, trio.StapledStream]]


class Tap(trio.abc.HalfCloseableStream):
    """One end of a link, seen from the wire: logs what it writes, may rewrite it, may hold it back."""

    def __init__(self, inner: trio.StapledStream, tamper: Tamper | None = None) -> None:
        self.inner = inner
        self.tamper = tamper
        self.offset = 0  # bytes written so far, before tampering
        self.sent = bytearray()  # bytes that left this end, after tampering
        self.holding = False
        self.held: list[bytes] = []  # writes kept back while holding, one entry per send_all

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        chunk = bytes(data)
        if self.tamper is not None:
            chunk = self.tamper(self.offset, chunk)
        self.offset += len(data)
        self.sent += chunk
        if self.holding:
            self.held.append(chunk)
            await trio.lowlevel.checkpoint()
            return
        await self.inner.send_all(chunk)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def flip_byte(position: int, mask: int = 0x01) -> Tamper:
    """A man in the middle that XORs the byte at absolute stream `position` with `mask`."""

    def tamper(offset: int, chunk: bytes) -> bytes:
        if offset <= position < offset + len(chunk):
            edited = bytearray(chunk)
            edited[position - offset] ^= mask
            return bytes(edited)
        return chunk

    return tamper


def replace_bytes(position: int, replacement: bytes) -> Tamper:
    """A man in the middle that overwrites the stream from `position` with `replacement` (same length)."""

    def tamper(offset: int, chunk: bytes) -> bytes:
        edited = bytearray(chunk)
        for index, value in enumerate(replacement):
            if offset <= position + index < offset + len(chunk):
                edited[position + index - offset] = value
        return bytes(edited)

    return tamper


def tapped_pair(
    initiator_tamper: Tamper | None = None,
    responder_tamper: Tamper | None = None,
    factory: StreamPairFactory = trio.testing.memory_stream_pair,
) -> tuple[Tap, Tap]:
    initiator_end, responder_end = factory()
    return Tap(initiator_end, initiator_tamper), Tap(responder_end, responder_tamper)


def accept_all(member_key: bytes, channel: Channel) -> bool:
    return True


class Gate:
    """An `is_acceptable` that answers `answer` and remembers every (member key, channel) it was asked."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.asked: list[tuple[bytes, Channel]] = []

    def __call__(self, member_key: bytes, channel: Channel) -> bool:
        self.asked.append((member_key, channel))
        return self.answer


def split_records(wire: bytes) -> list[bytes]:
    """Cut `wire` into whole records (header included); the records must tile it exactly."""
    records = []
    offset = 0
    while offset < len(wire):
        assert len(wire) - offset >= RECORD_HEADER.size, "wire ends inside a record header"
        (length,) = RECORD_HEADER.unpack_from(wire, offset)
        end = offset + RECORD_HEADER.size + length
        assert end <= len(wire), "wire ends inside a record"
        records.append(wire[offset:end])
        offset = end
    return records


def record(body: bytes) -> bytes:
    return RECORD_HEADER.pack(len(body)) + body


async def _side(run: Callable[[], Awaitable[SecureStream]], stream: Tap, into: list[Outcome]) -> None:
    """Run one side of a handshake; on failure keep the error and end our half so the peer sees EOF."""
    try:
        into.append(await run())
    except (LinkError, trio.TooSlowError) as error:
        into.append(error)
        await stream.send_eof()


async def handshake(
    initiator_end: Tap,
    responder_end: Tap,
    *,
    initiator: PrivateKey = ALICE,
    responder: PrivateKey = BOB,
    expected_responder: bytes | None = None,
    initiator_chain: str = CHAIN_ID,
    responder_chain: str = CHAIN_ID,
    channel: Channel = Channel.CONSENSUS,
    is_acceptable: Callable[[bytes, Channel], bool] = accept_all,
) -> tuple[Outcome, Outcome]:
    """Run `initiate` and `accept` against each other; each side's link or error (LinkError, TooSlowError)."""
    remote_key = responder.public.raw if expected_responder is None else expected_responder
    initiator_outcome: list[Outcome] = []
    responder_outcome: list[Outcome] = []
    run_initiator = functools.partial(
        initiate, initiator_end, initiator, remote_key, initiator_chain, channel, TIMEOUT
    )
    run_responder = functools.partial(
        accept, responder_end, responder, responder_chain, is_acceptable, TIMEOUT
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_side, run_initiator, initiator_end, initiator_outcome)
        nursery.start_soon(_side, run_responder, responder_end, responder_outcome)
    return initiator_outcome[0], responder_outcome[0]


async def connect(
    initiator_end: Tap, responder_end: Tap, channel: Channel = Channel.CONSENSUS
) -> tuple[SecureStream, SecureStream]:
    initiator_link, responder_link = await handshake(initiator_end, responder_end, channel=channel)
    assert isinstance(initiator_link, SecureStream), initiator_link
    assert isinstance(responder_link, SecureStream), responder_link
    return initiator_link, responder_link


async def read_exactly(link: SecureStream | trio.abc.ReceiveStream, count: int) -> bytes:
    """`count` bytes from a link (plaintext) or a raw stream; the end coming first fails the test."""
    data = bytearray()
    while len(data) < count:
        chunk = await link.receive_some(count - len(data))
        assert chunk, "ended early"
        data += chunk
    return bytes(data)


async def read_to_eof(link: SecureStream, max_bytes: int = 65_536) -> bytes:
    data = bytearray()
    while chunk := await link.receive_some(max_bytes):
        data += chunk
    return bytes(data)


async def transfer(sender: SecureStream, receiver: SecureStream, data: bytes) -> bytes:
    """Send and receive concurrently (a lockstep stream blocks the sender until the receiver reads)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.send_all, data)
        received = await read_exactly(receiver, len(data))
    return received


async def held_records(sender: SecureStream, tap: Tap, payloads: Sequence[bytes]) -> list[bytes]:
    """Send `payloads` on `sender` but keep the records back (one send_all each); the records, in order."""
    tap.holding = True
    tap.held.clear()
    for payload in payloads:
        await sender.send_all(payload)
    tap.holding = False
    return [whole for write in tap.held for whole in split_records(write)]


async def deliver(tap: Tap, *chunks: bytes) -> None:
    """Write raw bytes on the wire from `tap`'s end, behind the link's back."""
    await tap.inner.send_all(b"".join(chunks))


def link_error(outcome: Outcome) -> LinkError:
    assert isinstance(outcome, LinkError), f"expected a LinkError, got {outcome!r}"
    return outcome


def hand_built_initiator(
    actual: PrivateKey, claimed_key: bytes, responder: PrivateKey, channel: Channel = Channel.CONSENSUS
) -> tuple[bytes, NoiseConnection]:
    """Hello + first handshake record of an initiator holding `actual` and claiming `claimed_key`, and its
    Noise state. Written from the documented format, not from the module's helpers (see the control test).
    """
    hello = HELLO.pack(LINK_MAGIC, channel, claimed_key)
    noise = NoiseConnection.from_name(NOISE_PROTOCOL)
    noise.set_as_initiator()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, actual.x25519_private().encode())
    noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, responder.public.x25519())
    noise.set_prologue(PROLOGUE_TAG + b"\x00" + CHAIN_ID.encode() + b"\x00" + hello)
    noise.start_handshake()
    return hello + record(bytes(noise.write_message())), noise


def noise_opening(actual: PrivateKey, claimed_key: bytes, responder: PrivateKey) -> bytes:
    return hand_built_initiator(actual, claimed_key, responder)[0]


async def receive_raw_record(stream: trio.abc.ReceiveStream) -> bytes:
    """The body of the next record, read straight off a raw stream."""
    (length,) = RECORD_HEADER.unpack(await read_exactly(stream, RECORD_HEADER.size))
    return await read_exactly(stream, length)


async def accept_raw(wire: bytes, is_acceptable: Callable[[bytes, Channel], bool] = accept_all) -> Outcome:
    """Feed `wire` as the whole pre-handshake input of `accept` (then EOF); its link or LinkError."""
    peer, ours = trio.testing.memory_stream_pair()
    await peer.send_all(wire)
    await peer.send_eof()
    try:
        return await accept(ours, BOB, CHAIN_ID, is_acceptable, TIMEOUT)
    except LinkError as error:
        return error


# ----- 1. handshake and round trip -----


@pytest.mark.parametrize("channel", list(Channel))
@pytest.mark.parametrize(
    "factory",
    [trio.testing.memory_stream_pair, trio.testing.lockstep_stream_pair],
    ids=["memory", "lockstep"],
)
async def test_handshake_names_both_ends_and_carries_data_both_ways(
    channel: Channel, factory: StreamPairFactory
) -> None:
    gate = Gate()
    initiator_end, responder_end = tapped_pair(factory=factory)
    initiator_link, responder_link = await handshake(
        initiator_end, responder_end, channel=channel, is_acceptable=gate
    )
    assert isinstance(initiator_link, SecureStream) and isinstance(responder_link, SecureStream)
    assert gate.asked == [(ALICE.public.raw, channel)]
    assert initiator_link.remote_key == BOB.public.raw
    assert responder_link.remote_key == ALICE.public.raw
    assert initiator_link.channel is channel and responder_link.channel is channel
    assert await transfer(initiator_link, responder_link, b"ping from alice") == b"ping from alice"
    assert await transfer(responder_link, initiator_link, b"pong from bob") == b"pong from bob"
    assert await transfer(initiator_link, responder_link, b"again") == b"again"
    assert b"ping from alice" not in initiator_end.sent and b"pong from bob" not in responder_end.sent


async def test_round_trip_over_tcp_on_loopback() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    payload = random.Random(7).randbytes(200_000)
    server_saw: list[tuple[bytes, Channel]] = []

    async def serve() -> None:
        stream = await listeners[0].accept()
        link = await accept(stream, BOB, CHAIN_ID, accept_all, TIMEOUT)
        server_saw.append((link.remote_key, link.channel))
        data = await read_exactly(link, len(payload))
        await link.send_all(data[::-1])
        await link.aclose()

    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                link = await initiate(stream, ALICE, BOB.public.raw, CHAIN_ID, Channel.RELAY, TIMEOUT)
                assert (link.remote_key, link.channel) == (BOB.public.raw, Channel.RELAY)
                await link.send_all(payload)
                echoed = await read_to_eof(link)
                await link.aclose()
    finally:
        for listener in listeners:
            await listener.aclose()
    assert server_saw == [(ALICE.public.raw, Channel.RELAY)]
    assert echoed == payload[::-1]


# ----- 2. records: any payloads survive cutting and reassembly -----

PAYLOAD_SIZES = st.one_of(
    st.just(0),
    st.integers(1, 64),
    st.integers(MAX_RECORD_PLAINTEXT - 3, MAX_RECORD_PLAINTEXT + 3),
    st.integers(1, 140_000),
)
MAX_TOTAL = 300_000


async def _send_and_reassemble(
    payloads: list[bytes], reads: list[int], forward_chunk: int, reverse: bool
) -> tuple[bytes, list[bytes]]:
    initiator_end, responder_end = tapped_pair()
    initiator_link, responder_link = await connect(initiator_end, responder_end)
    sender, receiver, tap = (
        (responder_link, initiator_link, responder_end)
        if reverse
        else (initiator_link, responder_link, initiator_end)
    )
    records = await held_records(sender, tap, payloads)
    wire = b"".join(records)
    received = bytearray()

    async def forward() -> None:
        for start in range(0, len(wire), forward_chunk):
            await tap.inner.send_all(wire[start : start + forward_chunk])
        await tap.inner.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward)
        calls = 0
        while True:
            limit = reads[calls % len(reads)]
            calls += 1
            piece = await receiver.receive_some(limit)
            if not piece:
                break
            assert len(piece) <= limit
            received += piece
    assert await receiver.receive_some(1) == b""  # EOF stays EOF
    return bytes(received), records


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(PAYLOAD_SIZES, max_size=8),
    seed=st.integers(0, 2**32 - 1),
    reverse=st.booleans(),
    data=st.data(),
)
def test_any_payloads_arrive_byte_identical_in_bounded_records(
    sizes: list[int], seed: int, reverse: bool, data: st.DataObject
) -> None:
    rng = random.Random(seed)
    payloads: list[bytes] = []
    for size in sizes:
        size = min(size, MAX_TOTAL - sum(map(len, payloads)))
        payloads.append(rng.randbytes(size))
    total = sum(map(len, payloads))
    floor = max(1, total // 2_000)  # keeps each example well under a second
    reads = data.draw(st.lists(st.integers(floor, 200_000), min_size=1, max_size=4), label="max_bytes")
    forward_chunk = data.draw(st.integers(floor, 70_000), label="forward_chunk")

    received, records = trio.run(_send_and_reassemble, payloads, reads, forward_chunk, reverse)

    assert received == b"".join(payloads)
    expected_pieces = [
        len(payload[start : start + MAX_RECORD_PLAINTEXT])
        for payload in payloads
        for start in range(0, len(payload), MAX_RECORD_PLAINTEXT)
    ]
    assert len(records) == sum(math.ceil(len(payload) / MAX_RECORD_PLAINTEXT) for payload in payloads)
    ciphertext_sizes = [len(whole) - RECORD_HEADER.size for whole in records]
    assert ciphertext_sizes == [piece + TAG_BYTES for piece in expected_pieces]
    assert all(size <= MAX_RECORD_BYTES for size in ciphertext_sizes)


async def test_a_full_size_record_is_exactly_the_noise_limit() -> None:
    initiator_end, responder_end = tapped_pair()
    initiator_link, responder_link = await connect(initiator_end, responder_end)
    payload = bytes(MAX_RECORD_PLAINTEXT + 1)
    records = await held_records(initiator_link, initiator_end, [payload])
    assert [len(whole) - RECORD_HEADER.size for whole in records] == [MAX_RECORD_BYTES, 1 + TAG_BYTES]
    await deliver(initiator_end, *records)
    assert await read_exactly(responder_link, len(payload)) == payload


# ----- 3. refusals and broken handshakes -----


async def test_refused_by_is_acceptable() -> None:
    refuse = Gate(answer=False)
    initiator_outcome, responder_outcome = await handshake(*tapped_pair(), is_acceptable=refuse)
    refusal = link_error(responder_outcome)
    assert refusal.reason == "refused"
    assert isinstance(refusal, NetworkError)  # the runtime's network-error handling catches it
    assert refuse.asked == [(ALICE.public.raw, Channel.CONSENSUS)]
    assert link_error(initiator_outcome).reason == "handshake"


async def test_initiator_expecting_another_responder_fails() -> None:
    initiator_outcome, responder_outcome = await handshake(
        *tapped_pair(), expected_responder=CAROL.public.raw
    )
    assert link_error(responder_outcome).reason == "handshake"
    assert link_error(initiator_outcome).reason == "handshake"


async def test_different_chain_ids_fail() -> None:
    initiator_outcome, responder_outcome = await handshake(*tapped_pair(), initiator_chain="another-chain")
    assert link_error(responder_outcome).reason == "handshake"
    assert link_error(initiator_outcome).reason == "handshake"


@pytest.mark.parametrize(
    ("tamper", "hello_as_received"),
    [
        pytest.param(
            flip_byte(CHANNEL_OFFSET, Channel.CONSENSUS ^ Channel.RELAY),
            (ALICE.public.raw, Channel.RELAY),
            id="channel-to-relay",
        ),
        pytest.param(
            replace_bytes(KEY_OFFSET, CAROL.public.raw),
            (CAROL.public.raw, Channel.CONSENSUS),
            id="key-to-carol",
        ),
        pytest.param(flip_byte(FIRST_MESSAGE_OFFSET + 3), ALICE_ASKS_CONSENSUS, id="ephemeral"),
        pytest.param(flip_byte(FIRST_MESSAGE_OFFSET + 37), ALICE_ASKS_CONSENSUS, id="tag"),
    ],
)
async def test_opening_altered_in_flight_fails(
    tamper: Tamper, hello_as_received: tuple[bytes, Channel]
) -> None:
    gate = Gate()
    initiator_end, responder_end = tapped_pair(initiator_tamper=tamper)
    initiator_outcome, responder_outcome = await handshake(initiator_end, responder_end, is_acceptable=gate)
    assert gate.asked == [hello_as_received]  # the altered hello is well formed: only the prologue catches it
    assert link_error(responder_outcome).reason == "handshake"
    assert link_error(initiator_outcome).reason == "handshake"


@pytest.mark.parametrize("position", [0, 20, 47], ids=["ephemeral", "ephemeral-end", "tag"])
async def test_answer_altered_in_flight_fails_at_the_initiator(position: int) -> None:
    initiator_end, responder_end = tapped_pair(responder_tamper=flip_byte(RECORD_HEADER.size + position))
    initiator_outcome, responder_outcome = await handshake(initiator_end, responder_end)
    assert link_error(initiator_outcome).reason == "handshake"
    # The responder cannot see the damage in a two-message handshake; the initiator then hangs up on it.
    if isinstance(responder_outcome, SecureStream):
        assert await responder_outcome.receive_some(10) == b""
    else:
        assert isinstance(responder_outcome, LinkError)


async def test_hand_built_initiator_following_the_spec_is_accepted() -> None:
    """Control for the forgery tests: `hand_built_initiator` speaks the documented protocol."""
    opening, noise = hand_built_initiator(ALICE, ALICE.public.raw, BOB)
    peer, ours = trio.testing.memory_stream_pair()
    links: list[SecureStream] = []

    async def run_accept() -> None:
        links.append(await accept(ours, BOB, CHAIN_ID, accept_all, TIMEOUT))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_accept)
        await peer.send_all(opening)
        noise.read_message(await receive_raw_record(peer))
        assert noise.handshake_finished  # the responder's answer decrypts under the spec's prologue
        # The key confirmation (an empty record) first, as the protocol requires.
        await peer.send_all(record(noise.encrypt(b"")) + record(noise.encrypt(b"hello from the spec")))
    assert links[0].remote_key == ALICE.public.raw
    assert await read_exactly(links[0], 19) == b"hello from the spec"


async def test_hello_claiming_another_members_key_fails() -> None:
    gate = Gate()
    outcome = await accept_raw(noise_opening(CAROL, ALICE.public.raw, BOB), gate)
    assert gate.asked == [(ALICE.public.raw, Channel.CONSENSUS)]
    assert link_error(outcome).reason == "handshake"


@pytest.mark.parametrize(
    "magic",
    [b"FMLINK\x00\x02", b"FMLINK\x01\x01", b"XXLINK\x00\x01", b"GET / HT"],
    ids=["version-2", "name-byte", "name", "http"],
)
async def test_bad_magic_fails_before_asking(magic: bytes) -> None:
    gate = Gate()
    opening = magic + noise_opening(ALICE, ALICE.public.raw, BOB)[len(magic) :]
    outcome = await accept_raw(opening, gate)
    assert link_error(outcome).reason == "handshake"
    assert gate.asked == []


@pytest.mark.parametrize("channel_number", [0, 3, 255])
async def test_unknown_channel_fails_before_asking(channel_number: int) -> None:
    gate = Gate()
    opening = HELLO.pack(LINK_MAGIC, channel_number, ALICE.public.raw) + record(bytes(48))
    outcome = await accept_raw(opening, gate)
    assert link_error(outcome).reason == "handshake"
    assert gate.asked == []


@pytest.mark.parametrize(
    "key",
    [b"\x01" + bytes(31), bytes(32), b"\x02" + bytes(31), b"\xff" * 32],
    ids=["identity", "small-order", "not-on-curve", "non-canonical"],
)
async def test_invalid_member_key_in_hello_fails_before_asking(key: bytes) -> None:
    gate = Gate()
    opening = HELLO.pack(LINK_MAGIC, Channel.CONSENSUS, key) + record(bytes(48))
    outcome = await accept_raw(opening, gate)
    assert link_error(outcome).reason == "handshake"
    assert gate.asked == []


@pytest.mark.parametrize("cut", [0, 1, HELLO.size - 1, HELLO.size, HELLO.size + 1, FIRST_MESSAGE_OFFSET + 40])
async def test_opening_cut_short_fails(cut: int) -> None:
    opening = noise_opening(ALICE, ALICE.public.raw, BOB)
    assert cut < len(opening)
    outcome = await accept_raw(opening[:cut])
    assert link_error(outcome).reason == "handshake"


# ----- 4. tampering after the handshake -----


async def _linked() -> tuple[Tap, Tap, SecureStream, SecureStream]:
    initiator_end, responder_end = tapped_pair()
    initiator_link, responder_link = await connect(initiator_end, responder_end)
    return initiator_end, responder_end, initiator_link, responder_link


async def assert_bad_record(link: SecureStream) -> None:
    """The next read on `link` fails as a record that does not decrypt."""
    with pytest.raises(LinkError) as caught:
        await link.receive_some(100)
    assert caught.value.reason == "bad_record"


@pytest.mark.parametrize(
    "position",
    [RECORD_HEADER.size, RECORD_HEADER.size + 7, -TAG_BYTES, -1],
    ids=["first-ciphertext-byte", "inner-ciphertext-byte", "first-tag-byte", "last-tag-byte"],
)
async def test_flipped_record_byte_is_a_bad_record(position: int) -> None:
    initiator_end, _, initiator_link, responder_link = await _linked()
    [whole] = await held_records(initiator_link, initiator_end, [b"pay the provider 100"])
    edited = bytearray(whole)
    edited[position] ^= 0x40
    await deliver(initiator_end, bytes(edited))
    await assert_bad_record(responder_link)


async def test_shortened_record_length_is_a_bad_record() -> None:
    initiator_end, _, initiator_link, responder_link = await _linked()
    [whole] = await held_records(initiator_link, initiator_end, [b"twenty bytes of data"])
    shorter = RECORD_HEADER.pack(len(whole) - RECORD_HEADER.size - 1) + whole[RECORD_HEADER.size :]
    await deliver(initiator_end, shorter)
    await assert_bad_record(responder_link)


async def test_replayed_record_is_a_bad_record() -> None:
    initiator_end, _, initiator_link, responder_link = await _linked()
    first, second = await held_records(initiator_link, initiator_end, [b"vote 1", b"vote 2"])
    await deliver(initiator_end, first, second)
    assert await read_exactly(responder_link, 12) == b"vote 1vote 2"
    await deliver(initiator_end, first)
    await assert_bad_record(responder_link)


@pytest.mark.parametrize("order", [(1,), (1, 0)], ids=["dropped", "reordered"])
async def test_dropped_or_reordered_records_are_a_bad_record(order: tuple[int, ...]) -> None:
    initiator_end, _, initiator_link, responder_link = await _linked()
    records = await held_records(initiator_link, initiator_end, [b"vote 1", b"vote 2"])
    await deliver(initiator_end, *(records[index] for index in order))
    await assert_bad_record(responder_link)


async def test_record_reflected_to_its_sender_is_a_bad_record() -> None:
    initiator_end, responder_end, initiator_link, _ = await _linked()
    [whole] = await held_records(initiator_link, initiator_end, [b"commit"])
    await deliver(responder_end, whole)  # as if Bob had sent Alice's own record back to her
    await assert_bad_record(initiator_link)


async def test_record_from_another_link_between_the_same_members_is_a_bad_record() -> None:
    first_end, _, first_link, _ = await _linked()
    second_end, _, _, second_responder = await _linked()
    [whole] = await held_records(first_link, first_end, [b"commit"])
    await deliver(second_end, whole)
    await assert_bad_record(second_responder)


@pytest.mark.parametrize(
    "body", [b"", bytes(TAG_BYTES - 1), bytes(TAG_BYTES), random.Random(3).randbytes(MAX_RECORD_BYTES)]
)
async def test_forged_record_is_a_bad_record(body: bytes) -> None:
    initiator_end, _, _, responder_link = await _linked()
    await deliver(initiator_end, record(body))
    await assert_bad_record(responder_link)


@pytest.mark.parametrize("keep", [1, RECORD_HEADER.size, RECORD_HEADER.size + 5, -1])
async def test_eof_inside_a_record_is_truncated(keep: int) -> None:
    initiator_end, _, initiator_link, responder_link = await _linked()
    first, second = await held_records(initiator_link, initiator_end, [b"whole record", b"cut record"])
    await deliver(initiator_end, first, second[:keep])
    await initiator_end.send_eof()
    assert await read_exactly(responder_link, 12) == b"whole record"
    with pytest.raises(LinkError) as caught:
        await responder_link.receive_some(100)
    assert caught.value.reason == "truncated"


async def test_clean_eof_between_records_reads_as_end_of_stream() -> None:
    initiator_end, _, initiator_link, responder_link = await _linked()
    await initiator_link.send_all(b"last words")
    await initiator_link.send_all(b"")  # sends nothing, and is no record
    await initiator_end.send_eof()
    assert await responder_link.receive_some(100) == b"last words"
    assert await responder_link.receive_some(100) == b""
    assert await responder_link.receive_some(100) == b""


async def test_replayed_opening_gives_no_working_link() -> None:
    """A recorded hello + first message replayed later: whatever accept does, nothing old decrypts."""
    initiator_end, _, initiator_link, _ = await _linked()
    [old_record] = await held_records(initiator_link, initiator_end, [b"old vote"])
    opening_length = FIRST_MESSAGE_OFFSET + RECORD_HEADER.unpack_from(initiator_end.sent, HELLO.size)[0]
    outcome = await accept_raw(bytes(initiator_end.sent[:opening_length]) + old_record)
    if isinstance(outcome, SecureStream):
        await assert_bad_record(outcome)
    else:
        assert isinstance(outcome, LinkError)


# ----- 5. timeouts (MockClock, autojump) -----


async def test_silent_initiator_times_out(autojump_clock: trio.testing.MockClock) -> None:
    _peer, ours = trio.testing.memory_stream_pair()
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        await accept(ours, BOB, CHAIN_ID, accept_all, TIMEOUT)
    assert trio.current_time() - start == pytest.approx(TIMEOUT)


async def test_silent_responder_times_out(autojump_clock: trio.testing.MockClock) -> None:
    ours, peer = trio.testing.memory_stream_pair()
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        await initiate(ours, ALICE, BOB.public.raw, CHAIN_ID, Channel.CONSENSUS, TIMEOUT)
    assert trio.current_time() - start == pytest.approx(TIMEOUT)
    assert (await peer.receive_some())[: HELLO.size] == ALICE_HELLO  # it did speak first


async def test_opening_dripped_slowly_times_out_for_the_whole_handshake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One byte a second never lets a read time out, but the handshake as a whole is bounded."""
    peer, ours = trio.testing.memory_stream_pair()
    opening = noise_opening(ALICE, ALICE.public.raw, BOB)

    async def drip() -> None:
        for value in opening:
            await peer.send_all(bytes([value]))
            await trio.sleep(1)

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drip)
        with pytest.raises(trio.TooSlowError):
            await accept(ours, BOB, CHAIN_ID, accept_all, TIMEOUT)
        nursery.cancel_scope.cancel()
    assert trio.current_time() - start == pytest.approx(TIMEOUT)


# ----- 6. garbage before the handshake -----

# X25519 points of small order (as an ephemeral key they make every DH output zero).
LOW_ORDER_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


def pre_handshake_garbage(prefix: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and random bytes behind a valid `prefix` (so the Noise layer is exercised too)."""
    return st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda tail: prefix + tail),
        st.binary(max_size=200).map(lambda body: prefix + record(body)),
        st.tuples(st.sampled_from(LOW_ORDER_POINTS), st.binary(max_size=64)).map(
            lambda parts: prefix + record(parts[0] + parts[1])
        ),
    )


@settings(max_examples=150, deadline=None)
@given(wire=pre_handshake_garbage(ALICE_HELLO))
def test_garbage_before_the_handshake_only_raises_link_error_at_the_responder(wire: bytes) -> None:
    outcome = trio.run(accept_raw, wire, clock=trio.testing.MockClock(autojump_threshold=0))
    assert link_error(outcome).reason == "handshake"


async def _initiate_against_garbage(wire: bytes) -> str:
    ours, peer = trio.testing.memory_stream_pair()
    await peer.send_all(wire)
    await peer.send_eof()
    with pytest.raises(LinkError) as caught:
        await initiate(ours, ALICE, BOB.public.raw, CHAIN_ID, Channel.CONSENSUS, TIMEOUT)
    return caught.value.reason


@settings(max_examples=100, deadline=None)
@given(wire=pre_handshake_garbage(b""))
def test_garbage_answer_only_raises_link_error_at_the_initiator(wire: bytes) -> None:
    reason = trio.run(_initiate_against_garbage, wire, clock=trio.testing.MockClock(autojump_threshold=0))
    assert reason == "handshake"


# ----- 7. domain separation -----


async def test_two_links_between_the_same_members_use_fresh_keys() -> None:
    first_end, _, first_link, _ = await _linked()
    second_end, _, second_link, _ = await _linked()
    assert first_end.sent[: HELLO.size] == second_end.sent[: HELLO.size] == ALICE_HELLO
    assert first_end.sent[HELLO.size :] != second_end.sent[HELLO.size :]  # fresh ephemeral keys
    plaintext = b"the same vote, twice"
    [first_record] = await held_records(first_link, first_end, [plaintext])
    [second_record] = await held_records(second_link, second_end, [plaintext])
    assert len(first_record) == len(second_record)
    assert first_record != second_record


async def test_each_direction_of_a_link_has_its_own_key() -> None:
    initiator_end, responder_end, initiator_link, responder_link = await _linked()
    plaintext = b"both sides send this as their first record"
    [from_initiator] = await held_records(initiator_link, initiator_end, [plaintext])
    [from_responder] = await held_records(responder_link, responder_end, [plaintext])
    assert from_initiator != from_responder  # same nonce (0) in both directions: the keys must differ


# ----- defects found in review, fixed: replayed openings, concurrent sends, bytearrays -----


async def test_replayed_opening_is_not_accepted(autojump_clock: trio.testing.MockClock) -> None:
    initiator_end, _, _, _ = await _linked()
    opening_length = FIRST_MESSAGE_OFFSET + RECORD_HEADER.unpack_from(initiator_end.sent, HELLO.size)[0]
    outcome = await accept_raw(bytes(initiator_end.sent[:opening_length]))
    assert not isinstance(outcome, SecureStream), "a replayed opening was accepted as a link from Alice"


async def test_a_rejected_concurrent_send_does_not_break_the_link() -> None:
    initiator_end, responder_end = tapped_pair(factory=trio.testing.lockstep_stream_pair)
    initiator_link, responder_link = await connect(initiator_end, responder_end)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(initiator_link.send_all, b"first")
        await trio.testing.wait_all_tasks_blocked()  # "first" is in flight: the stream is busy sending
        with pytest.raises(trio.BusyResourceError):
            await initiator_link.send_all(b"second")
        assert await read_exactly(responder_link, 5) == b"first"
    received: list[bytes | LinkError] = []

    async def receive_third(cancel_scope: trio.CancelScope) -> None:
        try:
            received.append(await read_exactly(responder_link, 5))
        except LinkError as error:
            received.append(error)
            cancel_scope.cancel()  # nobody reads any more: stop the lockstep sender

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive_third, nursery.cancel_scope)
        await initiator_link.send_all(b"third")
    # A rejected send must not use up a nonce, or every later record would fail as "bad_record".
    assert received == [b"third"]


async def test_send_all_accepts_a_bytearray() -> None:
    _, _, initiator_link, responder_link = await _linked()
    await initiator_link.send_all(bytearray(b"a frame buffer"))
    assert await read_exactly(responder_link, 14) == b"a frame buffer"
