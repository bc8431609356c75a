"""Two members on the IPv6 loopback: run by test_p2p_ipv6.py inside a network namespace it creates.

usage: python tests/node/ipv6_members.py   (in a fresh network namespace: `unshare --net --map-root-user`)

It brings the namespace's loopback up, opens two member networks, the first on ::1, the second on every
interface (`::`, advertising ::1), sends a message over a member link, and prints one JSON line with the
addresses they advertise and what arrived; the test checks them.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct

import trio

from ledger.keys import PrivateKey
from node.p2p import NetworkConfig, open_network, peer_id_of_member

HOST = "::1"
EVERY_INTERFACE = "::"
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SEEDS = [bytes([index + 1]) * 32 for index in range(2)]


def bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def configs() -> list[NetworkConfig]:
    keys = [PrivateKey(seed).public.raw for seed in SEEDS]
    ports = [free_port() for _ in SEEDS]
    link_ports = [free_port() for _ in SEEDS]
    peers = [peer_id_of_member(key) for key in keys]
    return [
        NetworkConfig(
            seed=SEEDS[index],
            chain_id="fedmarket-ipv6-test",
            members={key: f"member-{i}" for i, key in enumerate(keys)},
            listen_host=(HOST, EVERY_INTERFACE)[index],
            advertise_host=HOST,
            listen_port=ports[index],
            bootstrap=(f"/ip6/{HOST}/tcp/{ports[1 - index]}/p2p/{peers[1 - index]}",),
            link_port=link_ports[index],
            member_links=(f"/ip6/{HOST}/tcp/{link_ports[1 - index]}/p2p/{peers[1 - index]}",),
        )
        for index in range(2)
    ]


async def main() -> dict[str, object]:
    first_config, second_config = configs()
    with trio.fail_after(30):
        async with open_network(first_config) as first, open_network(second_config) as second:
            second_key = PrivateKey(SEEDS[1]).public.raw
            first.send(second_key, b"vote over ipv6")
            sender, payload = await second.inbound().receive()
            return {
                "link_addrs": [first.link_addr, second.link_addr],
                "listen_addrs": first.listen_addrs + second.listen_addrs,
                "link_ports": [first.link_port, second.link_port],
                "peer_ids": [first.local_peer_id, second.local_peer_id],
                "received": [sender.hex(), payload.decode()],
                "first_key": PrivateKey(SEEDS[0]).public.raw.hex(),
            }


if __name__ == "__main__":
    bring_loopback_up()
    print(json.dumps(trio.run(main)))
