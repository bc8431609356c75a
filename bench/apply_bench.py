"""Apply cost of the market mix per transaction, in one process, in CPU time.

usage: python -m bench.apply_bench [--quick] [--blocks N] [--txs-per-block M] [--runs R]
                                   [--profile PART] [--profile-out FILE] [--default-gc]

Method. A chain of `blocks` full blocks of the `market` mix of bench.catchup (60% transfers, 15% offers,
15% bids that partly cross them, 10% cancels; same planner, same seed, same block spacing) is built once into
a temporary LevelDB with `Chain.build_block` and `Chain.commit`, with commit certificates signed by 2f+1
member keys. The transactions carry a placeholder signature and are marked verified: signature checks are not
measured here (a node checks each one once, elsewhere). Then, each a median of `runs`, with the minimum and
the maximum, all in CPU seconds of this process (`time.process_time`, so the waits of synced writes do not
count, their CPU does), divided by the transactions:
- decode: `Block.decode` of the stored bytes, `Transaction.decode` of every transaction and the tx root;
- validate: `Chain.validate_block` of each block on a fresh store, the transactions already in the
  verified cache as decoded objects (what a live member's mempool leaves there): links, tx root, the
  committed-transaction lookups and the execution with its state root;
- commit: `Chain.commit` of each validated block: certificate check, receipts, one synced batch;
- catch-up: `Chain.apply_certified(..., verify_signatures=False)` of the stored bytes on a fresh store in
  groups of at most 1,000 transactions or 32 blocks, as node.runtime does: all-in (block and transaction
  decoding, certificates, execution, receipts, one synced batch per group).
The objects of the built chain are moved out of the collector's reach (`gc.freeze`) before the runs: a
node holds no such copy, and rescanning it would charge the ledger for the bench's memory.
The runs use the interpreter settings of a node (`node.daemon.tune_interpreter`: the collector's
thresholds among them); `--default-gc` keeps CPython's default thresholds instead.
`--profile PART` runs that part once more under cProfile and prints the top functions by internal time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.catchup import ACCOUNTS, BLOCK_SPACING_MS, Planner
from ledger.block import Block, tx_root
from ledger.chain import Chain
from ledger.genesis import BlockParams, Genesis
from ledger.keys import PrivateKey
from ledger.tx import Transaction
from ledger.validators import ValidatorSet
from ledger.votes import Certificate, sign_commit
from node import devnet
from node.daemon import tune_interpreter

CHAIN_ID = "fedmarket-apply-bench"
GENESIS_TIME_MS = 1_750_000_000_000
BALANCE = 10**12
MEMBERS = [PrivateKey((7000 + i).to_bytes(32, "big")) for i in range(4)]
USERS = [PrivateKey((20_000 + i).to_bytes(32, "big")) for i in range(ACCOUNTS)]
PLACEHOLDER_SIGNATURE = b"\x00" * 64
GROUP_TXS = 1_000  # node.runtime.CATCH_UP_GROUP_TXS
GROUP_BLOCKS = 32  # node.runtime.CATCH_UP_GROUP_BLOCKS
PARTS = ("decode", "validate", "commit", "catch-up")
DEFAULT_GC_THRESHOLDS = (700, 10, 10)  # CPython 3.11


def make_genesis(txs_per_block: int) -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=GENESIS_TIME_MS,
        validators=ValidatorSet.of([(f"member-{i}", k.public.raw) for i, k in enumerate(MEMBERS)]),
        resource_classes=devnet.RESOURCE_CLASSES,
        regions=devnet.REGIONS,
        balances=tuple((k.public.raw, BALANCE) for k in USERS),
        block_params=BlockParams(max_block_txs=txs_per_block, clock_bound_ms=10**12),
    )


def certify(genesis: Genesis, block: Block) -> Certificate:
    quorum = genesis.validators.quorum.commit
    votes = tuple(sign_commit(k, CHAIN_ID, block.height, 0, block.hash) for k in MEMBERS[:quorum])
    return Certificate(block.height, 0, block.hash, votes)


@dataclass
class Built:
    """The stored chain: each block's bytes and certificate, and its transactions decoded."""

    genesis: Genesis
    blocks: list[tuple[bytes, Certificate]]
    txs: list[list[Transaction]]

    @property
    def tx_count(self) -> int:
        return sum(len(txs) for txs in self.txs)


def build(directory: Path, blocks: int, txs_per_block: int) -> Built:
    genesis = make_genesis(txs_per_block)
    planner = Planner("market", [k.public.raw for k in USERS], txs_per_block)
    chain = Chain.open(directory / "built", genesis)
    built = Built(genesis, [], [])
    try:
        for height in range(1, blocks + 1):
            timestamp_ms = GENESIS_TIME_MS + height * BLOCK_SPACING_MS
            txs = [
                Transaction(body.kind, CHAIN_ID, USERS[sender].public.raw, nonce, body, PLACEHOLDER_SIGNATURE)
                for sender, nonce, body in planner.block(timestamp_ms)
            ]
            planner.signed(txs)
            for tx in txs:
                chain.mark_verified(tx)
            proposer = genesis.validators.proposer(height, 0).public_key.raw
            block, execution = chain.build_block(txs, timestamp_ms, proposer)
            if len(block.txs) != len(txs):
                raise RuntimeError(f"block {height} left out {len(txs) - len(block.txs)} transactions")
            certificate = certify(genesis, block)
            chain.commit(block, certificate, execution)
            built.blocks.append((block.encoded, certificate))
            built.txs.append(txs)
    finally:
        chain.close()
    return built


def cpu_seconds(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def run_decode(built: Built, _: Path) -> dict[str, float]:
    def decode_all() -> None:
        for raw, _certificate in built.blocks:
            block = Block.decode(raw)
            txs = [Transaction.decode(data) for data in block.txs]
            if tx_root([tx.hash for tx in txs]) != block.header.tx_root:
                raise RuntimeError(f"block {block.height}: tx root mismatch")

    return {"decode": cpu_seconds(decode_all)}


def run_validate_commit(built: Built, directory: Path) -> dict[str, float]:
    """Validate then commit each block on a fresh store; the two parts are timed separately."""
    chain = Chain.open(directory, built.genesis)
    validate = commit = 0.0
    try:
        blocks = [Block.decode(raw) for raw, _ in built.blocks]
        for block, (_, certificate), txs in zip(blocks, built.blocks, built.txs, strict=True):
            for tx in txs:  # per block: the chain's cache keeps only the most recent VERIFIED_CACHE_SIZE
                chain.mark_verified(tx)
            started = time.process_time()
            execution = chain.validate_block(block, block.header.timestamp_ms)
            middle = time.process_time()
            chain.commit(block, certificate, execution)
            ended = time.process_time()
            validate += middle - started
            commit += ended - middle
        check_head(chain, built)
    finally:
        chain.close()
    return {"validate": validate, "commit": commit}


def run_catch_up(built: Built, directory: Path) -> dict[str, float]:
    chain = Chain.open(directory, built.genesis)
    try:
        groups: list[list[tuple[Block | bytes, Certificate]]] = [[]]
        txs = 0
        for (raw, certificate), block_txs in zip(built.blocks, built.txs, strict=True):
            groups[-1].append((raw, certificate))
            txs += len(block_txs)
            if txs >= GROUP_TXS or len(groups[-1]) >= GROUP_BLOCKS:
                groups.append([])
                txs = 0

        def apply_all() -> None:
            for group in groups:
                if group:
                    chain.apply_certified(group, None, verify_signatures=False)

        seconds = cpu_seconds(apply_all)
        check_head(chain, built)
    finally:
        chain.close()
    return {"catch-up": seconds}


def check_head(chain: Chain, built: Built) -> None:
    head = chain.head()
    last = Block.decode(built.blocks[-1][0])
    if head.height != last.height or head.block_hash != last.hash:
        raise RuntimeError("the replayed chain does not end at the built head")


RUNNERS: dict[str, Callable[[Built, Path], dict[str, float]]] = {
    "decode": run_decode,
    "validate": run_validate_commit,
    "commit": run_validate_commit,
    "catch-up": run_catch_up,
}


def measure(built: Built, workdir: Path, runs: int) -> dict[str, list[float]]:
    """us per transaction of each part, one figure per run."""
    figures: dict[str, list[float]] = {part: [] for part in PARTS}
    for number in range(runs):
        for runner in (run_decode, run_validate_commit, run_catch_up):
            gc.collect()
            result = runner(built, workdir / f"run-{number}-{runner.__name__}")
            for part, seconds in result.items():
                figures[part].append(seconds * 1e6 / built.tx_count)
    return figures


def profile(built: Built, workdir: Path, part: str, out: Path | None) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    RUNNERS[part](built, workdir / "profile")
    profiler.disable()
    if out is not None:
        profiler.dump_stats(str(out))
    print(f"\nprofile of {part}, top 30 functions by internal time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="60 blocks, 3 runs: a smoke run")
    parser.add_argument("--blocks", type=int, help="full blocks to build (default 500; quick 60)")
    parser.add_argument("--txs-per-block", type=int, default=200, help="transactions per block")
    parser.add_argument("--runs", type=int, default=3, help="runs per part (median, min, max; default 3)")
    parser.add_argument("--profile", choices=PARTS, help="profile this part once more (cProfile)")
    parser.add_argument("--profile-out", type=Path, help="also write the profile's stats to this file")
    parser.add_argument("--default-gc", action="store_true", help="CPython default collector thresholds")
    args = parser.parse_args()
    tune_interpreter()
    if args.default_gc:
        gc.set_threshold(*DEFAULT_GC_THRESHOLDS)
    blocks = args.blocks or (60 if args.quick else 500)
    with tempfile.TemporaryDirectory(prefix="fedmarket-apply-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        built = build(workdir, blocks, args.txs_per_block)
        gc.collect()
        gc.freeze()  # the built chain is the bench's, not the ledger's: the collector need not rescan it
        print(
            f"built {len(built.blocks):,} blocks, {built.tx_count:,} txs of the market mix "
            f"in {time.perf_counter() - started:.1f} s"
        )
        figures = measure(built, workdir, args.runs)
        print(f"\nCPU us per transaction, median (min-max) of {args.runs} runs")
        print(f"{'part':<10} {'median':>8}  {'min-max':>15}")
        for part in PARTS:
            values = figures[part]
            print(f"{part:<10} {statistics.median(values):8.1f}  {min(values):7.1f}-{max(values):<7.1f}")
        total = [sum(figures[p][i] for p in ("decode", "validate", "commit")) for i in range(args.runs)]
        print(f"{'d+v+c':<10} {statistics.median(total):8.1f}  {min(total):7.1f}-{max(total):<7.1f}")
        if args.profile:
            profile(built, workdir, args.profile, args.profile_out)


if __name__ == "__main__":
    main()
