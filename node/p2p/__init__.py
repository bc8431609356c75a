"""The node's network: direct member links (consensus, relay), libp2p gossip and requests, peer scoring."""

from node.p2p.config import (
    LinkAddress,
    NetworkConfig,
    NetworkLimits,
    member_key_of_peer,
    parse_bootstrap,
    parse_member_link,
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
    "ConfigError",
    "FrameError",
    "GossipBatchTooLarge",
    "LinkAddress",
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
    "parse_member_link",
    "peer_id_of_member",
]
