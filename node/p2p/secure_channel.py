"""An authenticated, encrypted byte stream between two federation members (Noise KK over a trio stream).

Theory: both ends of a member link already know each other's long-term key from genesis, so the link needs
neither certificates nor a key exchange of identities: Noise's KK pattern (`-> e, es, ss` then
`<- e, ee, se`) proves to each side that the other holds the private half of its genesis key, and gives
forward-secret transport keys with implicit per-direction nonces (a record replayed, dropped or reordered
fails to decrypt). KK's first message can be replayed, so the responder accepts a link only once the
initiator's first transport record (empty: key confirmation) decrypts, which needs this handshake's keys.
A member's static Noise key is its ed25519 ledger key mapped to X25519 (libsodium's birational map), so a
member has one identity. The responder must know which key to expect before the first handshake message,
so the initiator first sends a cleartext hello: a magic with the version, the link channel and its member
key. The hello and the chain id form the Noise prologue, which both sides hash into the handshake: a hello
altered in flight, another chain, or another channel makes the handshake fail (domain separation). After
the handshake the stream is a sequence of records, each a 2-byte big-endian length and at most 65,535
bytes of ciphertext (Noise's message limit); plaintext is cut into records on send, and reassembled on
receive.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum

import trio
from cryptography.exceptions import InvalidTag
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]
from noise.exceptions import (  # type: ignore[import-untyped]
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseMaxNonceError,
    NoiseValueError,
)

from ledger.errors import LedgerError
from ledger.keys import PrivateKey, PublicKey, public_key
from node.p2p.errors import NetworkError

NOISE_PROTOCOL = b"Noise_KK_25519_ChaChaPoly_SHA256"
LINK_MAGIC = b"FMLINK\x00\x01"  # protocol name and version 1
PROLOGUE_TAG = b"fedmarket/member-link/1"
MEMBER_KEY_BYTES = 32
HELLO = struct.Struct(f">{len(LINK_MAGIC)}sB{MEMBER_KEY_BYTES}s")
RECORD_HEADER = struct.Struct(">H")
MAX_RECORD_BYTES = 65_535
TAG_BYTES = 16
MAX_RECORD_PLAINTEXT = MAX_RECORD_BYTES - TAG_BYTES
RECEIVE_CHUNK_BYTES = 256 * 1024


class Channel(IntEnum):
    """What a link carries: each channel has its own connection, so a batch of txs never delays a vote."""

    CONSENSUS = 1
    RELAY = 2


class LinkError(NetworkError):
    """A link that failed: handshake refused or broken, or a record that does not decrypt.

    `reason` is "handshake", "refused" (not a member, or not now), "bad_record" or "truncated". None of them
    is blamed on the member named in the hello: before the handshake the name is only a claim, and after it
    a record that fails to decrypt may come from anyone on the path.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


IsAcceptable = Callable[[bytes, Channel], bool]


class SecureStream(trio.abc.AsyncResource):
    """Send and receive plaintext bytes over an established link; `remote_key` is the peer's member key."""

    def __init__(
        self, stream: trio.abc.Stream, noise: NoiseConnection, remote_key: bytes, channel: Channel
    ) -> None:
        self._stream = stream
        self._noise = noise
        self.remote_key = remote_key
        self.channel = channel
        self._raw = bytearray()
        self._plain = bytearray()
        self._ended = False
        self._sending = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this link")
        self._sending = True
        try:
            await self._stream.send_all(self._seal(bytes(data)))
        finally:
            self._sending = False

    def _seal(self, data: bytes) -> bytes:
        """`data` as records; encrypting uses nonces, so only the one task allowed to send may call this."""
        records = []
        for start in range(0, len(data), MAX_RECORD_PLAINTEXT):
            ciphertext = self._noise.encrypt(data[start : start + MAX_RECORD_PLAINTEXT])
            records.append(RECORD_HEADER.pack(len(ciphertext)))
            records.append(ciphertext)
        return b"".join(records)

    async def receive_some(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` (>= 1) of plaintext; b"" once the peer closed the stream between records."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        while not self._plain:
            if not self._decrypt_buffered():
                if self._ended:
                    if self._raw:
                        raise LinkError("link ended inside a record", reason="truncated")
                    return b""
                chunk = await self._stream.receive_some(RECEIVE_CHUNK_BYTES)
                if not chunk:
                    self._ended = True
                self._raw += chunk
        data = bytes(self._plain[:max_bytes])
        del self._plain[:max_bytes]
        return data

    def _decrypt_buffered(self) -> bool:
        """Decrypt every whole record in the raw buffer; False when there was none."""
        found = False
        raw = self._raw
        offset = 0
        while len(raw) - offset >= RECORD_HEADER.size:
            (length,) = RECORD_HEADER.unpack_from(raw, offset)
            end = offset + RECORD_HEADER.size + length
            if len(raw) < end:
                break
            try:
                self._plain += self._noise.decrypt(bytes(raw[offset + RECORD_HEADER.size : end]))
            except (NoiseInvalidMessage, NoiseMaxNonceError) as error:
                raise LinkError(f"a record failed to decrypt: {error}", reason="bad_record") from None
            offset = end
            found = True
        del raw[:offset]
        return found

    async def aclose(self) -> None:
        await self._stream.aclose()


def _new_noise(
    initiator: bool, local: PrivateKey, remote: PublicKey, chain_id: str, hello: bytes
) -> NoiseConnection:
    noise = NoiseConnection.from_name(NOISE_PROTOCOL)
    if initiator:
        noise.set_as_initiator()
    else:
        noise.set_as_responder()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, local.x25519_private().encode())
    noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote.x25519())
    noise.set_prologue(PROLOGUE_TAG + b"\x00" + chain_id.encode() + b"\x00" + hello)
    noise.start_handshake()
    return noise


async def _send_record(stream: trio.abc.Stream, payload: bytes) -> None:
    await stream.send_all(RECORD_HEADER.pack(len(payload)) + payload)


async def _receive_exactly(stream: trio.abc.Stream, count: int, buffer: bytearray) -> bytes:
    while len(buffer) < count:
        chunk = await stream.receive_some(count - len(buffer))
        if not chunk:
            raise LinkError("link closed during the handshake", reason="handshake")
        buffer += chunk
    data = bytes(buffer[:count])
    del buffer[:count]
    return data


async def _receive_record(stream: trio.abc.Stream, buffer: bytearray) -> bytes:
    (length,) = RECORD_HEADER.unpack(await _receive_exactly(stream, RECORD_HEADER.size, buffer))
    return await _receive_exactly(stream, length, buffer)


@contextmanager
def _broken_is_a_failed_handshake() -> Iterator[None]:
    """A peer that resets the connection during the handshake (e.g. on refusing us) fails the handshake."""
    try:
        yield
    except trio.BrokenResourceError as error:
        raise LinkError(f"link broken during the handshake: {error!r}", reason="handshake") from None


def _read_handshake(noise: NoiseConnection, message: bytes) -> None:
    try:
        noise.read_message(message)
    except (NoiseInvalidMessage, NoiseHandshakeError, NoiseValueError, InvalidTag, ValueError) as error:
        raise LinkError(f"handshake refused: {error!r}", reason="handshake") from None


async def initiate(
    stream: trio.abc.Stream,
    local: PrivateKey,
    remote_key: bytes,
    chain_id: str,
    channel: Channel,
    timeout: float,
) -> SecureStream:
    """Open a link to the member whose ledger key is `remote_key`; LinkError or TooSlowError otherwise."""
    hello = HELLO.pack(LINK_MAGIC, channel, local.public.raw)
    noise = _new_noise(True, local, public_key(remote_key), chain_id, hello)
    buffer = bytearray()
    with trio.fail_after(timeout), _broken_is_a_failed_handshake():
        await stream.send_all(hello)
        await _send_record(stream, noise.write_message())
        _read_handshake(noise, await _receive_record(stream, buffer))
        _require_finished(noise)
        await _send_record(stream, noise.encrypt(b""))
    return _established(stream, noise, remote_key, channel, buffer)


async def accept(
    stream: trio.abc.Stream, local: PrivateKey, chain_id: str, is_acceptable: IsAcceptable, timeout: float
) -> SecureStream:
    """Answer a link that a member opened; `is_acceptable(member key, channel)` says who may connect."""
    buffer = bytearray()
    with trio.fail_after(timeout), _broken_is_a_failed_handshake():
        hello = await _receive_exactly(stream, HELLO.size, buffer)
        magic, channel_number, remote_key = HELLO.unpack(hello)
        if magic != LINK_MAGIC:
            raise LinkError("not a fedmarket member link (bad magic or version)", reason="handshake")
        try:
            channel = Channel(channel_number)
            remote = public_key(remote_key)
        except (ValueError, LedgerError) as error:
            raise LinkError(f"bad link hello: {error}", reason="handshake") from None
        if not is_acceptable(remote_key, channel):
            raise LinkError("link refused: not a member, or not accepted now", reason="refused")
        noise = _new_noise(False, local, remote, chain_id, hello)
        _read_handshake(noise, await _receive_record(stream, buffer))
        await _send_record(stream, noise.write_message())
        _require_finished(noise)
        confirmation = await _receive_record(stream, buffer)
        try:
            confirmed = noise.decrypt(confirmation) == b""
        except (NoiseInvalidMessage, NoiseMaxNonceError):
            confirmed = False
        if not confirmed:
            raise LinkError("the initiator did not confirm the handshake's keys", reason="handshake")
    return _established(stream, noise, remote_key, channel, buffer)


def _require_finished(noise: NoiseConnection) -> None:
    if not noise.handshake_finished:
        raise LinkError("handshake did not finish in two messages", reason="handshake")


def _established(
    stream: trio.abc.Stream, noise: NoiseConnection, remote_key: bytes, channel: Channel, buffer: bytearray
) -> SecureStream:
    secure = SecureStream(stream, noise, remote_key, channel)
    secure._raw += buffer
    return secure
