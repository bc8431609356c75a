"""The node's libp2p network layer: consensus links, transaction gossip, request/response, peer scoring."""

from node.p2p.config import (
    PBFT_PROTOCOL,
    TXRELAY_PROTOCOL,
    NetworkConfig,
    NetworkLimits,
    member_key_of_peer,
    parse_bootstrap,
    peer_id_of_member,
)
from node.p2p.errors import (
    ConfigError,
    FrameError,
    GossipBatchTooLarge,
    NetworkError,
    RequestFailed,
    RequestTimeout,
)
from node.p2p.network import Network, RequestHandler, open_network
from node.p2p.peers import PeerStatus
from node.p2p.traffic import Traffic

__all__ = [
    "PBFT_PROTOCOL",
    "TXRELAY_PROTOCOL",
    "ConfigError",
    "FrameError",
    "GossipBatchTooLarge",
    "Network",
    "NetworkConfig",
    "NetworkError",
    "NetworkLimits",
    "PeerStatus",
    "RequestFailed",
    "RequestHandler",
    "RequestTimeout",
    "Traffic",
    "member_key_of_peer",
    "open_network",
    "parse_bootstrap",
    "peer_id_of_member",
]
