"""Length-prefixed frames on a byte stream.

A frame is a 4-byte big-endian length followed by that many bytes. A zero-length frame is a keepalive: it
carries nothing and only proves the peer is alive, so that a per-read timeout can tell a paused peer from a
quiet one. Many frames go out in one write (the cost of a py-libp2p write is per call, not per byte), and the
reader checks the length against a cap before it buffers anything.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Iterable

import trio

from node.p2p.errors import FrameError

HEADER_BYTES = 4
KEEPALIVE = b"\x00\x00\x00\x00"
READ_CHUNK_BYTES = 64 * 1024
MAX_FRAME_FIELD = 2**32 - 1

ReceiveSome = Callable[[int], Awaitable[bytes]]


def encode_frame(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_FIELD:
        raise FrameError("payload too large for a frame")
    return struct.pack(">I", len(payload)) + payload


def encode_frames(payloads: Iterable[bytes]) -> bytes:
    return b"".join(encode_frame(payload) for payload in payloads)


class FrameReader:
    """Reads frames from `receive_some(max_bytes)`, which returns b"" once the stream has ended.

    Every wait for bytes is bounded by `read_timeout`: a peer that stops sending (even keepalives) raises
    FrameError(reason="silent") instead of holding the reader forever. With `read_timeout=None` the caller
    bounds the reads itself (a member link's watchdog: a cancel scope per read is costly on a busy link).
    """

    def __init__(self, receive_some: ReceiveSome, max_frame_bytes: int, read_timeout: float | None) -> None:
        self._receive_some = receive_some
        self._max_frame_bytes = max_frame_bytes
        self._read_timeout = read_timeout
        self._buffer = bytearray()
        self._ended = False

    async def read_frame(self) -> bytes | None:
        """The next frame (b"" for a keepalive), or None when the stream ended cleanly between frames."""
        if not await self._fill(HEADER_BYTES):
            if self._buffer:
                raise FrameError("stream ended inside a frame header", reason="truncated")
            return None
        (length,) = struct.unpack(">I", self._buffer[:HEADER_BYTES])
        if length > self._max_frame_bytes:
            cap = self._max_frame_bytes
            raise FrameError(f"frame of {length} bytes over the cap {cap}", reason="oversized")
        if not await self._fill(HEADER_BYTES + length):
            raise FrameError("stream ended inside a frame", reason="truncated")
        frame = bytes(self._buffer[HEADER_BYTES : HEADER_BYTES + length])
        del self._buffer[: HEADER_BYTES + length]
        return frame

    async def _fill(self, wanted: int) -> bool:
        while len(self._buffer) < wanted:
            if self._ended:
                return False
            size = max(READ_CHUNK_BYTES, wanted - len(self._buffer))
            if self._read_timeout is None:
                chunk = await self._receive_some(size)
            else:
                try:
                    with trio.fail_after(self._read_timeout):
                        chunk = await self._receive_some(size)
                except trio.TooSlowError:
                    raise FrameError(f"no bytes for {self._read_timeout} s", reason="silent") from None
            if not chunk:
                self._ended = True
                return False
            self._buffer += chunk
        return True
