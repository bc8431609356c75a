"""Heights per second decided by 4 replicas in one process over an in-memory network, real ed25519.

Run: python -m bench.consensus_bench [--heights N] [--txs-per-block K]
Prints heights per second, messages and signature checks per height (with 4 members PBFT needs about one
pre-prepare, 3 prepares and 4 commits, each broadcast to 3 others and verified once per receiver).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import deque

from consensus.crypto import Ed25519Signer, Ed25519Verifier
from consensus.events import (
    Action,
    Applied,
    Broadcast,
    Deliver,
    MessageReceived,
    Persist,
    ProposalReady,
    ReplicaConfig,
    RequestProposal,
    Send,
)
from consensus.replica import Replica
from ledger.codec import Value, decode, encode, expect_int, expect_list
from ledger.errors import LedgerError
from ledger.hashing import tagged_hash
from ledger.keys import PrivateKey
from ledger.validators import ValidatorSet

CHAIN = "bench-chain"


def validate(height: int, block: bytes, now_ms: int) -> bytes:
    fields = expect_list(decode(block, 1 << 22), 2, "bench block")
    if expect_int(fields[0], "height") != height:
        raise LedgerError("block for another height")
    return tagged_hash(b"bench/block", block)


def run(heights: int, txs_per_block: int, members: int = 4) -> dict[str, float]:
    keys = [PrivateKey(hashlib.sha256(b"bench-%d" % i).digest()) for i in range(members)]
    validators = ValidatorSet.of([(f"m{i}", k.public.raw) for i, k in enumerate(keys)])
    config = ReplicaConfig(CHAIN, validators, Ed25519Verifier(validators))
    replicas = [
        Replica(config, Ed25519Signer(k), validate, certified_digest=lambda h, b: validate(h, b, 0))
        for k in keys
    ]
    index = {k.public.raw: i for i, k in enumerate(keys)}
    payload: list[Value] = [b"\x00" * 200] * txs_per_block
    inbox: deque[tuple[int, int, bytes]] = deque()
    broadcasts = sends = deliveries = persisted = 0
    delivered = [0] * members

    def execute(i: int, actions: list[Action]) -> None:
        nonlocal broadcasts, sends, persisted
        applied = delivered[i]
        for action in actions:
            if isinstance(action, Persist):
                persisted += 1
            elif isinstance(action, Broadcast):
                broadcasts += 1
                inbox.extend((i, j, action.data) for j in range(members) if j != i)
            elif isinstance(action, Send):
                sends += 1
                inbox.append((i, index[action.to], action.data))
            elif isinstance(action, RequestProposal):
                block = encode([action.height, payload])
                execute(i, replicas[i].step(ProposalReady(action.height, action.view, block)))
            elif isinstance(action, Deliver):
                delivered[i] = action.height
        if delivered[i] > applied:
            execute(i, replicas[i].step(Applied(delivered[i])))

    started = time.perf_counter()
    for i, replica in enumerate(replicas):
        execute(i, replica.tick(0))
    while min(delivered) < heights:
        sender, receiver, data = inbox.popleft()
        deliveries += 1
        execute(receiver, replicas[receiver].step(MessageReceived(keys[sender].public.raw, data)))
    elapsed = time.perf_counter() - started
    checks = sum(r.counters["signature_checks"] for r in replicas)
    return {
        "heights": heights,
        "seconds": elapsed,
        "heights_per_second": heights / elapsed,
        "broadcasts_per_height": broadcasts / heights,
        "sends_per_height": sends / heights,
        "deliveries_per_height": deliveries / heights,
        "signature_checks_per_height": checks / heights,
        "persists_per_height": persisted / heights,
        "transactions_per_second": heights * txs_per_block / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, default=300)
    parser.add_argument("--txs-per-block", type=int, default=0)
    args = parser.parse_args()
    figures = run(args.heights, args.txs_per_block)
    print(f"4 replicas, real ed25519, in-memory network, {args.txs_per_block} opaque txs per block")
    for name, value in figures.items():
        print(f"  {name:30} {value:12.2f}")


if __name__ == "__main__":
    main()
