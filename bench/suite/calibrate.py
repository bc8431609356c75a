"""Calibration measured in the same run: ed25519 verifications per second on one core, and the loopback round
trip (a TCP echo on 127.0.0.1). Both run before the devnet starts, on a quiet process."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from typing import Any

import nacl.signing

MESSAGE_BYTES = 200  # about a transaction's signed payload


def verify_rate(count: int = 3_000, repeats: int = 3) -> dict[str, Any]:
    """pynacl `VerifyKey.verify` of `count` distinct signed messages in this thread: median of `repeats`."""
    key = nacl.signing.SigningKey(os.urandom(32))
    signed = [key.sign(os.urandom(MESSAGE_BYTES)) for _ in range(count)]
    verify = key.verify_key.verify
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for message in signed:
            verify(message)
        rates.append(count / (time.perf_counter() - started))
    return {"per_s": statistics.median(rates), "runs": sorted(rates), "count": count}


def loopback_rtt(pings: int = 500) -> dict[str, Any]:
    """Round trips of one small message over a TCP connection on 127.0.0.1 to an echo thread."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    thread = threading.Thread(target=_echo, args=(server,), daemon=True)
    thread.start()
    client = socket.create_connection(server.getsockname(), timeout=5.0)
    samples = []
    try:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(20 + pings):  # the first round trips warm up the path; they are not kept
            started = time.perf_counter()
            client.sendall(b"p" * 64)
            received = 0
            while received < 64:
                chunk = client.recv(64 - received)
                if not chunk:
                    raise OSError("the echo server closed the connection")
                received += len(chunk)
            samples.append(time.perf_counter() - started)
    finally:
        client.close()
        server.close()
        thread.join(timeout=5.0)
    kept = sorted(samples[20:])
    return {
        "p50_us": statistics.median(kept) * 1e6,
        "p99_us": kept[min(len(kept) - 1, int(0.99 * len(kept)))] * 1e6,
        "pings": len(kept),
    }


def _echo(server: socket.socket) -> None:
    try:
        connection, _ = server.accept()
    except OSError:
        return
    with connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := connection.recv(4096):
            connection.sendall(data)


def cores() -> dict[str, int]:
    return {"cpu_count": os.cpu_count() or 1, "usable": len(os.sched_getaffinity(0))}


def calibrate(verify_count: int, pings: int) -> dict[str, Any]:
    return {"verify": verify_rate(verify_count), "loopback": loopback_rtt(pings), "cores": cores()}
