"""Ledger benchmark: apply rate, clearing after one new order on a 100k-order book, synced block commits.

Run `python -m bench.ledger_bench` (full: tens of minutes on two shared cores), `--quick`, or `--parts`.
Figures, each the median of the runs:
- apply rate without signature checks (`LedgerState.execute` of decoded transfers), and through the member's
  path `Chain.validate_block` with a warm signature cache (the mempool verified the transactions) and with a
  cold one (every signature checked: the real cost of a block whose transactions a member never saw);
- clearing: executing a block whose one new bid crosses a book of N resting orders (the block's execution is
  dominated by the clearing of that book);
- synced commit (`Chain.commit`: certificate check, results, one synced LevelDB batch) p50, p99 and max over a
  run of blocks of 1,000 transfers.
Commit runs use transactions with placeholder signatures marked verified, so the blocks are executed and
stored for real but no time goes to signing two million transactions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ledger.block import Block
from ledger.chain import Chain
from ledger.genesis import BlockParams, Genesis, MarketParams
from ledger.keys import PrivateKey
from ledger.limits import MAX_BLOCK_TXS
from ledger.receipts import EventKind
from ledger.state import BlockContext, LedgerState
from ledger.tx import BidBody, OfferBody, Transaction, Transfer, TxKind, sign_transaction
from ledger.validators import ValidatorSet
from ledger.votes import Certificate, sign_commit

CHAIN_ID = "fedmarket-bench"
GENESIS_TIME_MS = 1_750_000_000_000
HOUR = 3_600
ACCOUNTS = 1_000
BALANCE = 10**11
VALIDATORS = [PrivateKey((9000 + i).to_bytes(32, "big")) for i in range(4)]
USERS = [PrivateKey((10_000 + i).to_bytes(32, "big")) for i in range(ACCOUNTS)]
PLACEHOLDER_SIGNATURE = b"\x00" * 64
APPLY_GOAL_TX_S = 80_000
CLEARING_GOAL_MS = 20
COMMIT_GOAL_MS = 250
PARTS = ("apply", "clearing", "commit")


def make_genesis() -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=GENESIS_TIME_MS,
        validators=ValidatorSet.of([(f"member-{i}", k.public.raw) for i, k in enumerate(VALIDATORS)]),
        resource_classes=("cpu",),
        regions=("eu",),
        balances=tuple((k.public.raw, BALANCE) for k in USERS),
        block_params=BlockParams(max_block_txs=MAX_BLOCK_TXS, clock_bound_ms=10**12),
        market_params=MarketParams(max_matches_per_block=10_000, max_clearing_steps=1_000_000),
    )


class Traffic:
    """Transfers with the right nonces, signed for real or with a placeholder signature."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.nonces = [0] * ACCOUNTS

    def unsigned(self, count: int) -> list[Transaction]:
        txs = []
        for _ in range(count):
            sender = self.rng.randrange(ACCOUNTS)
            body = Transfer(USERS[self.rng.randrange(ACCOUNTS)].public.raw, self.rng.randint(1, 100))
            nonce = self.nonces[sender]
            self.nonces[sender] += 1
            txs.append(
                Transaction(
                    TxKind.TRANSFER, CHAIN_ID, USERS[sender].public.raw, nonce, body, PLACEHOLDER_SIGNATURE
                )
            )
        return txs


def certify(block: Block) -> Certificate:
    votes = tuple(sign_commit(k, CHAIN_ID, block.height, 0, block.hash) for k in VALIDATORS[:3])
    return Certificate(block.height, 0, block.hash, votes)


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def apply_without_signatures(genesis: Genesis, runs: int, blocks: int, block_txs: int) -> float:
    state, _ = LedgerState.from_genesis(genesis)
    traffic = Traffic(1)
    clock = [GENESIS_TIME_MS]

    def measure() -> float:
        prepared = [traffic.unsigned(block_txs) for _ in range(blocks)]
        started = time.perf_counter()
        for txs in prepared:
            clock[0] += 1_000
            state.execute(BlockContext(state.height + 1, clock[0], VALIDATORS[0].public.raw), txs)
        return blocks * block_txs / (time.perf_counter() - started)

    return median_of(runs, measure)


def validate_rate(chain: Chain, runs: int, block_txs: int, warm_cache: bool) -> float:
    """Transactions per second through `Chain.validate_block` (decode, tx root, signatures, execute)."""
    proposer_key = VALIDATORS[1].public.raw
    rng = random.Random(4)

    def measure() -> float:
        head = chain.head()
        nonces = {k.public.raw: chain.state.account(k.public.raw).next_nonce for k in USERS}
        txs = []
        for position in range(block_txs):
            key = USERS[position % ACCOUNTS]
            body = Transfer(USERS[(position * 7 + 1) % ACCOUNTS].public.raw, rng.randint(1, 100))
            txs.append(sign_transaction(key, CHAIN_ID, nonces[key.public.raw], body))
            nonces[key.public.raw] += 1
        block, execution = chain.build_block(txs, head.timestamp_ms + 1_000, proposer_key)
        chain.discard(execution)
        member = Chain(chain.store, chain.state)
        if warm_cache:
            for tx in txs:
                member.mark_verified(tx)
        started = time.perf_counter()
        execution = member.validate_block(block.encoded, block.header.timestamp_ms)
        elapsed = time.perf_counter() - started
        member.discard(execution)
        return block_txs / elapsed

    return median_of(runs, measure)


def order_book_state(genesis: Genesis, orders: int, seed: int) -> tuple[LedgerState, int]:
    """A state whose one book holds `orders` resting orders that do not trade with each other: long offers
    priced above every bid, short offers that cross long bids in price but cannot hold them (window)."""
    rng = random.Random(seed)
    state, _ = LedgerState.from_genesis(genesis)
    timestamp_ms = GENESIS_TIME_MS + 1_000
    now = timestamp_ms // 1000
    nonces = [0] * ACCOUNTS
    pending: list[Transaction] = []
    for number in range(orders):
        sender = number % ACCOUNTS
        if number % 2:
            if rng.random() < 0.9:
                body: OfferBody | BidBody = OfferBody(
                    "cpu", "eu", rng.randint(1, 50), rng.randint(1_000, 2_000), now - HOUR, now + 48 * HOUR
                )
            else:
                body = OfferBody(
                    "cpu", "eu", rng.randint(1, 50), rng.randint(500, 999), now - HOUR, now + HOUR
                )
        elif rng.random() < 0.7:
            duration = rng.choice((HOUR // 2, 2 * HOUR))
            body = BidBody(
                "cpu",
                "eu",
                rng.randint(1, 50),
                rng.randint(100, 499),
                duration,
                now + 90 * HOUR,
                b"\x01" * 32,
            )
        else:
            body = BidBody(
                "cpu",
                "eu",
                rng.randint(1, 50),
                rng.randint(700, 950),
                24 * HOUR,
                now + 90 * HOUR,
                b"\x01" * 32,
            )
        pending.append(
            Transaction(
                body.kind, CHAIN_ID, USERS[sender].public.raw, nonces[sender], body, PLACEHOLDER_SIGNATURE
            )
        )
        nonces[sender] += 1
        if len(pending) == MAX_BLOCK_TXS or number == orders - 1:
            state.execute(BlockContext(state.height + 1, timestamp_ms, VALIDATORS[0].public.raw), pending)
            timestamp_ms += 1
            pending = []
    return state, timestamp_ms


def clearing_time(genesis: Genesis, runs: int, orders: int) -> tuple[float, int, int]:
    state, timestamp_ms = order_book_state(genesis, orders, seed=3)
    resting = len(state.market)
    buyer = USERS[0].public.raw
    body = BidBody("cpu", "eu", 400, 5_000, 2 * HOUR, timestamp_ms // 1000 + HOUR, b"\x01" * 32)
    nonce = state.account(buyer).next_nonce
    new_bid = Transaction(body.kind, CHAIN_ID, buyer, nonce, body, PLACEHOLDER_SIGNATURE)
    trades = [0]

    def measure() -> float:
        ctx = BlockContext(state.height + 1, timestamp_ms + 1_000, VALIDATORS[0].public.raw)
        started = time.perf_counter()
        execution = state.execute(ctx, [new_bid])
        elapsed = time.perf_counter() - started
        trades[0] = sum(1 for event in execution.events if event.kind == EventKind.LEASE_CREATED)
        state.rollback(execution)
        return elapsed

    return median_of(runs, measure), resting, trades[0]


def commit_times(genesis: Genesis, directory: Path, blocks: int, block_txs: int) -> list[float]:
    chain = Chain.open(directory, genesis)
    traffic = Traffic(2)
    times = []
    try:
        for _ in range(blocks):
            txs = traffic.unsigned(block_txs)
            for tx in txs:
                chain.mark_verified(tx)
            head = chain.head()
            block, execution = chain.build_block(txs, head.timestamp_ms + 1_000, VALIDATORS[0].public.raw)
            certificate = certify(block)
            started = time.perf_counter()
            chain.commit(block, certificate, execution)
            times.append(time.perf_counter() - started)
    finally:
        chain.close()
    return times


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description="fedmarket ledger benchmark")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--runs", type=int, default=5, help="median of this many runs (default 5)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    parser.add_argument("--commit-blocks", type=int, help="blocks per commit run (default 2,000; quick 100)")
    parser.add_argument("--commit-runs", type=int, help="commit runs (default --runs; quick 1)")
    args = parser.parse_args()
    runs = args.runs
    genesis = make_genesis()
    print(f"ledger bench ({'quick' if args.quick else 'full'}), each figure the median of {runs} runs")
    if "apply" in args.parts:
        report_apply(genesis, runs, apply_blocks=3 if args.quick else 10)
    if "clearing" in args.parts:
        report_clearing(genesis, runs, orders=20_000 if args.quick else 100_000)
    if "commit" in args.parts:
        blocks = args.commit_blocks or (100 if args.quick else 2_000)
        report_commit(genesis, args.commit_runs or (1 if args.quick else runs), blocks)


def report_apply(genesis: Genesis, runs: int, apply_blocks: int) -> None:
    rate = apply_without_signatures(genesis, runs, apply_blocks, 1_000)
    print(f"apply, no signature checks (state.execute): {rate:,.0f} tx/s (goal >= {APPLY_GOAL_TX_S:,})")
    with tempfile.TemporaryDirectory() as directory:
        chain = Chain.open(Path(directory) / "apply", genesis)
        try:
            warm = validate_rate(chain, runs, 1_000, warm_cache=True)
            cold = validate_rate(chain, runs, 1_000, warm_cache=False)
        finally:
            chain.close()
    print(f"apply via validate_block, signatures cached by the mempool: {warm:,.0f} tx/s")
    print(f"apply via validate_block, every signature checked: {cold:,.0f} tx/s")


def report_clearing(genesis: Genesis, runs: int, orders: int) -> None:
    seconds, resting, trades = clearing_time(genesis, runs, orders)
    print(
        f"clearing: block with one new crossing bid on a book of {resting:,} resting orders: "
        f"{seconds * 1e3:.2f} ms ({trades} leases created; goal <= {CLEARING_GOAL_MS} ms)"
    )


def report_commit(genesis: Genesis, commit_runs: int, blocks: int) -> None:
    summaries: list[tuple[float, float, float]] = []
    for _ in range(commit_runs):
        with tempfile.TemporaryDirectory() as directory:
            times = sorted(commit_times(genesis, Path(directory) / "commit", blocks, 1_000))
        summaries.append((percentile(times, 0.5), percentile(times, 0.99), times[-1]))
    p50, p99, worst = (statistics.median(column) * 1e3 for column in zip(*summaries, strict=True))
    print(
        f"synced commit of a 1,000-tx block over {blocks:,} blocks (median of {commit_runs} runs): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms (goal: max <= {COMMIT_GOAL_MS} ms)"
    )


if __name__ == "__main__":
    main()
