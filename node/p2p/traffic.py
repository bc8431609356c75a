"""Network-wide counters of what this node writes and reads, kept by `Network` where the bytes are written.

Plain integer fields, bumped once per stream write or frame: cheap enough for every path. Consensus messages
are counted as frames (several go in one write when they are batched); gossip counts the transaction traffic:
every write of a member's relay links, and every gossipsub RPC that py-libp2p writes (our publishes, forwards
of others' messages and control messages alike).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Traffic:
    consensus_messages_out: int = 0
    consensus_messages_in: int = 0
    consensus_writes: int = 0
    consensus_bytes_out: int = 0
    gossip_writes: int = 0
    gossip_bytes_out: int = 0
    request_writes: int = 0  # requests we send and answers we serve
    request_bytes_out: int = 0

    @property
    def writes(self) -> int:
        return self.consensus_writes + self.gossip_writes + self.request_writes

    @property
    def bytes_out(self) -> int:
        return self.consensus_bytes_out + self.gossip_bytes_out + self.request_bytes_out
