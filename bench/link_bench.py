"""CPU per consensus message on the member links: two networks in one process ping-pong small messages.

Run: python -m bench.link_bench [--messages N] [--size BYTES]
Both ends run in this process, so the CPU per round trip is two sends and two receives through the whole
network layer (queue, writer task, Noise record, TCP on 127.0.0.1, frame reader, inbound channel). On the
libp2p streams that carried consensus before the member links (commit bfc9cdb), the same measure gave
1,886 us per round trip (median of 3, quiet machine; this code: 503 us).
"""

from __future__ import annotations

import argparse
import time
from contextlib import AsyncExitStack

import trio

from ledger.keys import PrivateKey
from node.devnet import free_ports
from node.p2p import Network, NetworkConfig, open_network, peer_id_of_member

WARM_UP = 50
CONNECT_TIMEOUT_S = 10.0
ROUND_TRIP_TIMEOUT_S = 5.0


def _configs() -> list[NetworkConfig]:
    seeds = [bytes([index + 1]) * 32 for index in range(2)]
    keys = [PrivateKey(seed).public.raw for seed in seeds]
    free = free_ports(4)
    ports = [(free[0], free[1]), (free[2], free[3])]
    p2p = [
        f"/ip4/127.0.0.1/tcp/{p}/p2p/{peer_id_of_member(k)}" for (p, _), k in zip(ports, keys, strict=True)
    ]
    links = [
        f"/ip4/127.0.0.1/tcp/{q}/p2p/{peer_id_of_member(k)}" for (_, q), k in zip(ports, keys, strict=True)
    ]
    return [
        NetworkConfig(
            seed=seeds[index],
            chain_id="bench-links",
            members={key: f"m{i}" for i, key in enumerate(keys)},
            listen_port=ports[index][0],
            bootstrap=(p2p[1 - index],),
            link_port=ports[index][1],
            member_links=(links[1 - index],),
        )
        for index in range(2)
    ]


def _linked(network: Network) -> bool:
    return any(len(row.links) == 4 for row in network.peers())


async def measure(messages: int, size: int) -> tuple[float, float]:
    """(wall us, CPU us) per round trip."""
    async with AsyncExitStack() as stack:
        first, second = [await stack.enter_async_context(open_network(config)) for config in _configs()]
        with trio.fail_after(CONNECT_TIMEOUT_S):
            while not (_linked(first) and _linked(second)):
                await trio.sleep(0.01)
        target = PrivateKey(second.config.seed).public.raw
        payload = b"x" * size

        async def echo() -> None:
            async for sender, message in second.inbound():
                second.send(sender, message)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            inbound = first.inbound()

            async def round_trips(count: int) -> None:
                for _ in range(count):
                    first.send(target, payload)
                    with trio.fail_after(ROUND_TRIP_TIMEOUT_S):
                        await inbound.receive()

            await round_trips(WARM_UP)
            wall, cpu = time.perf_counter(), time.process_time()
            await round_trips(messages)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            nursery.cancel_scope.cancel()
    return 1e6 * wall / messages, 1e6 * cpu / messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3_000)
    parser.add_argument("--size", type=int, default=300)
    args = parser.parse_args()
    wall, cpu = trio.run(measure, args.messages, args.size)
    print(
        f"{args.messages} round trips of {args.size} B: {wall:.0f} us wall, {cpu:.0f} us CPU per round trip"
    )


if __name__ == "__main__":
    main()
