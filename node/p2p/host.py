"""The libp2p host of a node, configured for the pitfalls of py-libp2p 0.8.1.

Noise is the only security transport (the default also offers plaintext, where a dialer may claim any peer
id); one connection per peer (otherwise each dial waits an extra ~250 ms); libp2p's logger propagates to
ours (importing libp2p turns propagation off); gossipsub offers /meshsub/1.2.0 then 1.1.0 with strict
signing, its per-sender rate limit set from our limits rather than left at 10 msg/s. The swarm's
auto-connector (which dials any peer in the peerstore to keep 50 connections) is stopped: our own redial loop
decides whom to dial, and it must not redial a banned peer. Yamux sends a window update only when half the
window is consumed (go-yamux's rule): py-libp2p's default sends one after every read, which doubled the
number of writes (each a noise encryption and a syscall) under load. Identify tells peers the bound ports on
the advertised host (a node bound to every interface would otherwise advertise 0.0.0.0), and not the
addresses peers observed (an outbound connection's ephemeral port is no address to dial).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import multiaddr  # type: ignore[import-untyped]
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport

from node.p2p.config import NetworkConfig, ip_multiaddr, key_pair_from_seed

GOSSIP_DEGREE = 4
GOSSIP_DEGREE_LOW = 2
GOSSIP_DEGREE_HIGH = 8
GOSSIP_HEARTBEAT_SECONDS = 1
# Sized for one tx batch message (< 64 KiB) plus control traffic and a few queued messages.
GOSSIP_MAX_INBOUND_RPC_BYTES = 1024 * 1024


# py-libp2p reads this per read, so setting it before the first connection is enough.
YAMUX_RELEASE_ON_READ_ENV = "PY_YAMUX_RELEASE_ON_READ"


def enable_libp2p_log_propagation() -> None:
    logging.getLogger("libp2p").propagate = True


def build_host(config: NetworkConfig) -> IHost:
    enable_libp2p_log_propagation()
    os.environ.setdefault(YAMUX_RELEASE_ON_READ_ENV, "0")
    key_pair = key_pair_from_seed(config.seed)
    noise = NoiseTransport(key_pair, noise_privkey=new_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        connection_config=ConnectionConfig(max_connections_per_peer=1, min_connections=0),
        addrs_factory=on_public_host(config.public_host),
        disable_identify_address_discovery=True,
    )


def on_public_host(public_host: str) -> Callable[[list[multiaddr.Multiaddr]], list[multiaddr.Multiaddr]]:
    """The host's addresses as others must dial them: each bound TCP port on `public_host` (the node listens
    on TCP only; anything else is left out)."""
    public = ip_multiaddr(public_host)

    def advertised(bound: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
        tcp = [address for address in bound if any(p.name == "tcp" for p in address.protocols())]
        ports = dict.fromkeys(address.value_for_protocol("tcp") for address in tcp)
        return [multiaddr.Multiaddr(f"{public}/tcp/{port}") for port in ports]

    return advertised


async def stop_auto_connector(host: IHost) -> None:
    """Call once the host runs (`host.run` starts the auto-connector)."""
    await host.get_network().auto_connector.stop()  # type: ignore[attr-defined]


def listen_multiaddr(config: NetworkConfig) -> multiaddr.Multiaddr:
    return multiaddr.Multiaddr(f"{ip_multiaddr(config.listen_host)}/tcp/{config.listen_port}")


def build_gossip(host: IHost, config: NetworkConfig) -> tuple[Pubsub, GossipSub]:
    """Gossipsub for the one transaction topic of the chain.

    The spam limit counts our own publishes too, so it is twice the rate our publisher allows itself.
    Eclipse protection (mesh diversity by IP) is off: members are known by key, and a devnet shares one IP.
    """
    router = GossipSub(
        protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11],
        degree=GOSSIP_DEGREE,
        degree_low=GOSSIP_DEGREE_LOW,
        degree_high=GOSSIP_DEGREE_HIGH,
        heartbeat_interval=GOSSIP_HEARTBEAT_SECONDS,
        spam_protection_enabled=True,
        max_messages_per_topic_per_second=2 * config.limits.gossip_messages_per_second,
        eclipse_protection_enabled=False,
    )
    pubsub = Pubsub(
        host,
        router,
        strict_signing=True,
        max_inbound_rpc_size=GOSSIP_MAX_INBOUND_RPC_BYTES,
        allowed_topics={config.gossip_topic},
    )
    return pubsub, router
