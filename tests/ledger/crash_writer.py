"""A chain kit for the store, chain and crash tests, and the crash test's writer.

The writer opens a real chain, reports `ready H` with the head height, then commits certified blocks of real
signed transactions forever, reporting each new height once its synced batch has returned. The crash test runs
it in a forked child (no interpreter start-up per run) and kills it with SIGKILL at random moments.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import NoReturn

from ledger.block import Block
from ledger.chain import Chain
from ledger.genesis import BlockParams, Genesis
from ledger.keys import PrivateKey
from ledger.state import Execution, LedgerState
from ledger.tx import BidBody, Cancel, OfferBody, Transaction, Transfer, sign_transaction
from ledger.validators import ValidatorSet
from ledger.votes import Certificate, sign_commit

CHAIN_ID = "fedmarket-chain-test"
GENESIS_TIME_MS = 1_750_000_000_000
BLOCK_INTERVAL_MS = 1_000
CLASSES = ("cpu.small", "gpu.a100")
REGIONS = ("eu-west", "us-east")
START_BALANCE = 10**12
VALIDATOR_KEYS = [PrivateKey((7000 + i).to_bytes(32, "big")) for i in range(4)]
USER_KEYS = [PrivateKey((8000 + i).to_bytes(32, "big")) for i in range(6)]


def make_genesis(chain_id: str = CHAIN_ID, clock_bound_ms: int = 5_000) -> Genesis:
    return Genesis(
        chain_id=chain_id,
        genesis_time_ms=GENESIS_TIME_MS,
        validators=ValidatorSet.of([(f"member-{i}", k.public.raw) for i, k in enumerate(VALIDATOR_KEYS)]),
        resource_classes=CLASSES,
        regions=REGIONS,
        balances=tuple((k.public.raw, START_BALANCE) for k in USER_KEYS),
        block_params=BlockParams(clock_bound_ms=clock_bound_ms),
    )


def certify(
    block: Block, signers: Sequence[PrivateKey] = VALIDATOR_KEYS[:3], view: int = 0, chain_id: str = CHAIN_ID
) -> Certificate:
    votes = tuple(sign_commit(k, chain_id, block.height, view, block.hash) for k in signers)
    return Certificate(block.height, view, block.hash, votes)


def traffic(state: LedgerState, rng: random.Random, count: int, now_s: int) -> list[Transaction]:
    """`count` valid-looking signed transactions (transfers, offers, bids, cancels) with the next nonces."""
    nonces = {k.public.raw: state.account(k.public.raw).next_nonce for k in USER_KEYS}
    placed: list[tuple[PrivateKey, bytes]] = []
    txs: list[Transaction] = []
    for _ in range(count):
        key = rng.choice(USER_KEYS)
        roll = rng.random()
        resource_class, region = rng.choice(CLASSES), rng.choice(REGIONS)
        body: Transfer | OfferBody | BidBody | Cancel
        if roll < 0.6:
            body = Transfer(rng.choice(USER_KEYS).public.raw, rng.randint(1, 1_000))
        elif roll < 0.75:
            start = now_s - rng.randint(0, 60)
            body = OfferBody(
                resource_class, region, rng.randint(1, 8), rng.randint(5, 50), start, start + 86_400
            )
        elif roll < 0.9:
            expires = now_s + rng.randint(30, 600)
            body = BidBody(
                resource_class,
                region,
                rng.randint(1, 4),
                rng.randint(5, 60),
                3_600,
                expires,
                key.public.x25519(),
            )
        elif placed:
            owner, order_id = placed.pop(rng.randrange(len(placed)))
            key, body = owner, Cancel(order_id)
        else:
            body = Transfer(rng.choice(USER_KEYS).public.raw, 1)
        address = key.public.raw
        tx = sign_transaction(key, CHAIN_ID, nonces[address], body)
        nonces[address] += 1
        if isinstance(body, OfferBody | BidBody):
            placed.append((key, tx.hash))
        txs.append(tx)
    return txs


def next_block(chain: Chain, rng: random.Random, count: int) -> tuple[Block, Execution]:
    """Build the next block on `chain` (pending, not committed) with `count` transactions of traffic."""
    head = chain.head()
    timestamp_ms = head.timestamp_ms + BLOCK_INTERVAL_MS
    proposer = chain.genesis.validators.proposer(head.height + 1, 0).public_key.raw
    txs = traffic(chain.state, rng, count, timestamp_ms // 1000)
    return chain.build_block(txs, timestamp_ms, proposer)


def commit_next(chain: Chain, rng: random.Random, count: int) -> Block:
    block, execution = next_block(chain, rng, count)
    chain.commit(block, certify(block, chain_id=chain.chain_id), execution)
    return block


def write_blocks_forever(path: str, seed: int, count: int, out_fd: int) -> NoReturn:
    """The crash test's writer (run in a forked child): commit blocks of `count` transactions forever,
    writing `ready H` once open and then each new height to `out_fd` after its synced batch returned."""
    try:
        chain = Chain.open(path, make_genesis())
        rng = random.Random(seed)
        os.write(out_fd, f"ready {chain.head().height}\n".encode())
        while True:
            block = commit_next(chain, rng, count)
            os.write(out_fd, f"{block.height}\n".encode())
    finally:
        os._exit(1)
