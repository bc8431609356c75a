"""Network configuration and the identity mapping between ledger keys and libp2p peer ids.

A member's identity on both of its transports is its ledger ed25519 key: the 32-byte seed that signs its
votes also signs its libp2p Noise handshake (so the authenticated peer id names exactly one ledger public
key) and, mapped to X25519, is its static key on the direct member links (node/p2p/secure_channel.py).
Both addresses of a peer are multiaddrs ending in `/p2p/<peer id>`, so an address names whom it reaches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import multiaddr  # type: ignore[import-untyped]
from libp2p.crypto.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.peer.id import ID

from ledger.limits import MAX_CONSENSUS_MESSAGE_BYTES, MAX_TX_BYTES
from node.config import advertised_host
from node.p2p.errors import ConfigError

# One gossip message stays below 64 KiB once wrapped (protobuf envelope, signature, key, topic): see the
# yamux interleaving pitfall in docs/network.md.
MAX_GOSSIP_BATCH_BYTES = 60 * 1024
MAX_GOSSIP_BATCH_TXS = 2_000


@dataclass(frozen=True)
class NetworkLimits:
    """Every bound of the network layer; seconds are wall-clock durations of the trio clock."""

    max_frame_bytes: int = MAX_CONSENSUS_MESSAGE_BYTES
    max_write_batch_bytes: int = 256 * 1024
    outgoing_queue_messages: int = 4_096
    relay_queue_batches: int = 256  # transaction batches waiting for one member's relay link
    inbound_queue_messages: int = 4_096
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    keepalive_interval: float = 2.0
    # A libp2p connection's liveness ping; under py-libp2p's 10 s wait for the next ping on a stream
    # (libp2p/host/ping.py, RESP_TIMEOUT), so one stream serves every ping of a peer.
    ping_interval: float = 8.0
    dial_timeout: float = 5.0
    redial_min_delay: float = 0.1
    redial_max_delay: float = 5.0
    frames_per_second: float = 2_000.0
    frame_burst: float = 4_000.0
    bytes_per_second: float = 32 * 1024 * 1024
    byte_burst: float = 2 * MAX_CONSENSUS_MESSAGE_BYTES
    flood_penalty: float = 1.0
    oversized_frame_penalty: float = 100.0
    bad_gossip_penalty: float = 25.0
    ban_threshold: float = -100.0
    ban_seconds: float = 60.0
    score_recovery_per_second: float = 1.0
    max_gossip_batch_bytes: int = MAX_GOSSIP_BATCH_BYTES
    max_gossip_batch_txs: int = MAX_GOSSIP_BATCH_TXS
    max_tx_bytes: int = MAX_TX_BYTES
    gossip_messages_per_second: float = 50.0
    inbound_gossip_batches: int = 256
    max_request_bytes: int = 64 * 1024
    max_response_bytes: int = MAX_CONSENSUS_MESSAGE_BYTES * 4
    handler_timeout: float = 10.0
    request_stream_idle: float = (
        30.0  # a server keeps a request stream this long for the client's next request
    )
    max_pending_links: int = 16  # member-link connections still in their handshake


@dataclass(frozen=True)
class NetworkConfig:
    """What a node needs to join the federation's network.

    `members` comes from genesis (raw 32-byte ed25519 public key -> member name); `bootstrap` (libp2p) and
    `member_links` (the other members' direct-link addresses) come from the node's own config, as multiaddrs
    ending in `/p2p/<peer id>`, so a datacenter can move without a new chain. A member listens for links on
    `link_port` (0: any free port). It advertises `advertise_host` (empty: `listen_host`), which a node
    listening on every interface must name (`node.config.advertised_host`).
    """

    seed: bytes
    chain_id: str
    members: Mapping[bytes, str]
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    bootstrap: tuple[str, ...] = ()
    link_port: int = 0
    member_links: tuple[str, ...] = ()
    advertise_host: str = ""
    limits: NetworkLimits = field(default_factory=NetworkLimits)

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ConfigError("the identity seed must be 32 bytes")
        try:
            advertised_host(self.listen_host, self.advertise_host)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for port in (self.listen_port, self.link_port):
            if not 0 <= port <= 65535:
                raise ConfigError(f"listen port {port} out of range")
        for key in self.members:
            if len(key) != 32:
                raise ConfigError("member keys must be raw 32-byte ed25519 public keys")
        for address in self.bootstrap:
            parse_bootstrap(address)
        self.link_addresses()

    def link_addresses(self) -> dict[bytes, LinkAddress]:
        """The direct-link address of each member listed in `member_links`, by member key."""
        addresses: dict[bytes, LinkAddress] = {}
        for text in self.member_links:
            member_key, address = parse_member_link(text)
            if member_key not in self.members:
                raise ConfigError(f"member link {text!r} names a peer that is not a genesis member")
            if member_key in addresses:
                raise ConfigError(f"member link {text!r}: a second address for the same member")
            addresses[member_key] = address
        return addresses

    @property
    def public_host(self) -> str:
        """The address other nodes dial: `advertise_host`, or the listen address (checked at creation)."""
        return self.advertise_host or self.listen_host

    @property
    def gossip_topic(self) -> str:
        return f"/fedmarket/{self.chain_id}/txs/1"


@dataclass(frozen=True)
class LinkAddress:
    host: str
    port: int


def parse_member_link(text: str) -> tuple[bytes, LinkAddress]:
    """`/ip4/<host>/tcp/<port>/p2p/<peer id>` (or ip6, dns4, dns6, dns) as (member key, address)."""
    peer_id, transport = parse_bootstrap(text)
    member_key = member_key_of_peer(peer_id)
    if member_key is None:
        raise ConfigError(f"member link {text!r}: the peer id does not embed an ed25519 key")
    values = {
        protocol.name: transport.value_for_protocol(protocol.code) for protocol in transport.protocols()
    }
    host = next((values[name] for name in ("ip4", "ip6", "dns4", "dns6", "dns") if name in values), None)
    if host is None or "tcp" not in values or len(values) != 2:
        raise ConfigError(f"member link {text!r}: expected /ip4|ip6|dns/<host>/tcp/<port>/p2p/<peer id>")
    return member_key, LinkAddress(str(host), int(values["tcp"]))


def key_pair_from_seed(seed: bytes) -> KeyPair:
    """The libp2p key pair of a ledger identity seed."""
    try:
        private = Ed25519PrivateKey.new(seed)
    except ValueError as error:
        raise ConfigError(f"unusable identity seed: {error}") from error
    return KeyPair(private, private.get_public_key())


def peer_id_of_member(member_key: bytes) -> str:
    """The libp2p peer id (base58 text) of a ledger public key."""
    if len(member_key) != 32:
        raise ConfigError("a member key is a raw 32-byte ed25519 public key")
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(member_key)).to_base58()


def member_key_of_peer(peer_id: str) -> bytes | None:
    """The ledger public key behind a peer id, or None when the peer id does not embed an ed25519 key."""
    try:
        public = ID.from_base58(peer_id).extract_public_key()
    except (ValueError, KeyError):
        return None
    if public is None or public.get_type() != KeyType.Ed25519:
        return None
    return public.to_bytes()


def ip_multiaddr(host: str) -> str:
    """`/ip4/<host>` or `/ip6/<host>` for an IP address literal (a host name is refused: a node listens on an
    address, and its peers dial the one it advertises)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"listen host {host!r} is not an IPv4 or IPv6 address") from None
    return f"/ip{address.version}/{address.compressed}"


def parse_bootstrap(address: str) -> tuple[str, multiaddr.Multiaddr]:
    """Split `/ip4/.../tcp/.../p2p/<id>` into the peer id text and the dialable address."""
    try:
        full = multiaddr.Multiaddr(address)
        peer_id = full.value_for_protocol("p2p")
    except Exception as error:
        raise ConfigError(f"bad bootstrap multiaddr {address!r}: {error}") from error
    if not peer_id:
        raise ConfigError(f"bootstrap multiaddr {address!r} lacks /p2p/<peer id>")
    transport = full.decapsulate(multiaddr.Multiaddr(f"/p2p/{peer_id}"))
    return str(peer_id), transport
