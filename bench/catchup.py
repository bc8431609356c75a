"""Catch-up speed: a member restarted far behind, timed until it holds the others' head.

usage: python -m bench.catchup [--blocks 10000] [--txs-per-block 200] [--members 4]
                               [--mix market|transfers] [--repeat N] [--profile FILE] [--workdir DIR]

Method. A devnet of `members` is created whose genesis funds `ACCOUNTS` extra accounts and sets
`max_block_txs` to the transactions per block, so every built block is full. The chain is built offline
before any node runs: transactions are pre-signed in worker processes (signing is not measured), each block
is made with `ledger.chain.Chain.build_block` on member 0's store and committed with a commit certificate
signed by 2f+1 member keys, exactly what the federation would have stored. Member 0's data directory is
then copied to every other member but the last, which starts from genesis. The up-to-date members are
started first; the clock starts when the lagging member's process starts and stops when its `chain_head`
equals the others' (polled over JSON-RPC), so the figure includes the process start, the discovery of the
peers' height, the fetches, the certificate checks, execution, and the synced writes. The live members keep
deciding (empty) blocks meanwhile; those count as blocks with no transactions.

The `market` mix (the default) is 60% transfers, 15% offers, 15% bids that partly cross the offers (leases
are created, and cancelled for lack of an access grant), 10% cancels of earlier orders; `transfers` is
transfers only. Every process started is stopped on the way out, also on failure.

Besides tx/s and blocks/s, the result gives the lagging member's CPU seconds (and tx per CPU second) and the
ed25519 verifications per second of one core measured just before and after the catch-up: on a shared
machine that calibration says how loaded it was (about 16.7k/s when idle, docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import random
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import exit_on_sigterm
from ledger.block import Block
from ledger.chain import Chain
from ledger.genesis import BlockParams, Genesis
from ledger.keys import PrivateKey
from ledger.tx import BidBody, Body, Cancel, OfferBody, Transaction, Transfer, sign_transaction
from ledger.votes import Certificate, sign_commit
from node import devnet
from node.commands.rpc_client import RpcClient, RpcError
from node.daemon import PROFILE_ENV

ACCOUNTS = 1_000
PROVIDERS = 200  # accounts[:PROVIDERS] place offers, the next CONSUMERS place bids
CONSUMERS = 300
BLOCK_SPACING_MS = 100  # block time of the built chain, which ends a minute before the build starts
CHUNK_BLOCKS = 10  # blocks signed per worker task
POLL_S = 0.2
CATCH_UP_TIMEOUT_S = 3_600.0
MIXES = ("market", "transfers")

Spec = tuple[int, int, Body]  # (account index, nonce, body)


@dataclass
class Planner:
    """The transactions of each block: senders with consecutive nonces, bodies for the chosen mix."""

    mix: str
    accounts: list[bytes]
    txs_per_block: int
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    nonces: list[int] = field(default_factory=list)
    orders: deque[tuple[int, bytes]] = field(default_factory=deque)  # (owner index, order id) to cancel
    turn: int = 0
    index: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nonces = [0] * len(self.accounts)
        self.index = {address: i for i, address in enumerate(self.accounts)}

    def _next(self, low: int, high: int) -> int:
        """The next sender in [low, high), round-robin, so each account's nonces stay spread."""
        self.turn += 1
        return low + self.turn % (high - low)

    def _spec(self, sender: int, body: Body) -> Spec:
        nonce = self.nonces[sender]
        self.nonces[sender] += 1
        return sender, nonce, body

    def block(self, timestamp_ms: int) -> list[Spec]:
        rng, now = self.rng, timestamp_ms // 1000
        specs: list[Spec] = []
        for position in range(self.txs_per_block):
            roll = position % 20 if self.mix == "market" else 0
            if roll in (1, 2, 3):
                body: Body = OfferBody(
                    rng.choice(devnet.RESOURCE_CLASSES),
                    rng.choice(devnet.REGIONS),
                    rng.randint(1, 20),
                    rng.randint(80, 120),
                    now - 60,
                    now + 900,
                )
                specs.append(self._spec(self._next(0, PROVIDERS), body))
            elif roll in (4, 5, 6):
                body = BidBody(
                    rng.choice(devnet.RESOURCE_CLASSES),
                    rng.choice(devnet.REGIONS),
                    rng.randint(1, 10),
                    rng.randint(60, 130),
                    rng.choice((600, 1_800, 3_600)),
                    now + 300,
                    rng.randbytes(32),
                )
                specs.append(self._spec(self._next(PROVIDERS, PROVIDERS + CONSUMERS), body))
            elif roll in (7, 8) and self.orders:
                owner, order_id = self.orders.popleft()
                specs.append(self._spec(owner, Cancel(order_id)))
            else:
                to = self.accounts[rng.randrange(len(self.accounts))]
                specs.append(
                    self._spec(self._next(0, len(self.accounts)), Transfer(to, rng.randint(1, 1_000)))
                )
        return specs

    def signed(self, txs: list[Transaction]) -> None:
        """Remember some of the orders just signed as candidates for later cancels."""
        for tx in txs:
            if isinstance(tx.body, OfferBody | BidBody) and self.rng.random() < 0.5:
                self.orders.append((self.index[tx.sender], tx.hash))
        while len(self.orders) > 50 * self.txs_per_block:
            self.orders.popleft()


_worker_keys: list[PrivateKey] = []


def _init_worker(seeds: list[bytes]) -> None:
    _worker_keys[:] = [PrivateKey(seed) for seed in seeds]


def _sign_chunk(chain_id: str, blocks: list[list[Spec]]) -> list[list[Transaction]]:
    return [
        [sign_transaction(_worker_keys[sender], chain_id, nonce, body) for sender, nonce, body in specs]
        for specs in blocks
    ]


def build_chain(
    home: Path,
    genesis: Genesis,
    member_keys: list[PrivateKey],
    account_keys: list[PrivateKey],
    blocks: int,
    planner: Planner,
    say: Callable[[str], None],
) -> int:
    """Build and commit `blocks` full certified blocks into the store of `home`; returns their txs."""
    quorum = genesis.validators.quorum.commit
    signers = {k.public.raw: k for k in member_keys}
    chain = Chain.open(home / "data", genesis)
    started = last_report = time.perf_counter()
    txs_total = 0
    try:
        with ProcessPoolExecutor(
            max_workers=os.cpu_count() or 2,
            initializer=_init_worker,
            initargs=([k.seed for k in account_keys],),
        ) as pool:
            for height, txs in _signed_blocks(pool, genesis, blocks, planner):
                timestamp = genesis.genesis_time_ms + height * BLOCK_SPACING_MS
                for tx in txs:
                    chain.mark_verified(tx)
                proposer = genesis.validators.proposer(height, 0).public_key.raw
                block, execution = chain.build_block(txs, timestamp, proposer)
                if len(block.txs) != len(txs):
                    raise RuntimeError(f"block {height} left out {len(txs) - len(block.txs)} transactions")
                chain.commit(block, _certify(block, genesis, signers, quorum), execution)
                txs_total += len(block.txs)
                now = time.perf_counter()
                if now - last_report > 5.0 or height == blocks:
                    last_report = now
                    say(f"  built {height:,}/{blocks:,} blocks ({txs_total:,} txs) in {now - started:.0f} s")
    finally:
        chain.close()
    return txs_total


def _signed_blocks(
    pool: ProcessPoolExecutor, genesis: Genesis, blocks: int, planner: Planner
) -> Iterator[tuple[int, list[Transaction]]]:
    """Signed transactions of each block in height order, signing a few chunks ahead in the pool."""
    pending: deque[Future[list[list[Transaction]]]] = deque()
    planned = 0
    height = 0
    while height < blocks:
        while planned < blocks and len(pending) < 4:
            count = min(CHUNK_BLOCKS, blocks - planned)
            plans = [
                planner.block(genesis.genesis_time_ms + (planned + i + 1) * BLOCK_SPACING_MS)
                for i in range(count)
            ]
            pending.append(pool.submit(_sign_chunk, genesis.chain_id, plans))
            planned += count
        for txs in pending.popleft().result():
            planner.signed(txs)
            height += 1
            yield height, txs


def _certify(block: Block, genesis: Genesis, signers: dict[bytes, PrivateKey], quorum: int) -> Certificate:
    """COMMIT votes of `quorum` members, starting with the proposer (any 2f+1 members would do)."""
    members = [m.public_key.raw for m in genesis.validators]
    first = members.index(block.header.proposer)
    voters = [members[(first + i) % len(members)] for i in range(quorum)]
    votes = tuple(sign_commit(signers[v], genesis.chain_id, block.height, 0, block.hash) for v in voters)
    return Certificate(block.height, 0, block.hash, votes)


def _head(client: RpcClient) -> int | None:
    try:
        height: int = client.call("chain_head")["height"]
    except RpcError:
        return None
    return height


def run(
    members: int,
    blocks: int,
    txs_per_block: int,
    workdir: Path,
    *,
    mix: str = "market",
    repeat: int = 1,
    profile: Path | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, float]:
    """Build `blocks` full blocks, start the members, and time the last one catching up from genesis;
    with `repeat` > 1 the catch-up is timed that many times on the same built chain (the stores are restored
    each time) and the figures are those of the median run, with the minimum and maximum tx/s beside them."""
    if mix not in MIXES:
        raise ValueError(f"mix must be one of {MIXES}")
    genesis_time_ms = time.time_ns() // 1_000_000 - blocks * BLOCK_SPACING_MS - 60_000
    directory = workdir / "devnet"
    document = devnet.init(
        directory,
        members,
        genesis_time_ms=genesis_time_ms,
        load_accounts=ACCOUNTS,
        block_params=BlockParams(max_block_txs=txs_per_block),
    )
    account_keys = devnet.load_account_keys(document)
    accounts = [k.public.raw for k in account_keys]
    homes = [Path(node["home"]) for node in document["nodes"]]
    genesis = Genesis.from_json((homes[0] / "genesis.json").read_text())
    member_keys = [PrivateKey.from_key_file((home / "key.json").read_text()) for home in homes]
    say(f"building {blocks:,} blocks of {txs_per_block} txs ({mix} mix) for {members} members")
    started = time.perf_counter()
    txs = build_chain(
        homes[0], genesis, member_keys, account_keys, blocks, Planner(mix, accounts, txs_per_block), say
    )
    built = workdir / "built-data"
    shutil.move(homes[0] / "data", built)
    build_s = time.perf_counter() - started
    say(f"built in {build_s:.0f} s")
    clients = [RpcClient(node["rpc_url"], timeout=10.0) for node in document["nodes"]]
    trials = []
    for number in range(1, repeat + 1):
        trial = _catch_up_once(homes, clients, built, blocks, profile, say)
        trial |= {"txs": float(txs), "tx_per_s": txs / trial["seconds"], "tx_per_cpu_s": txs / trial["cpu_s"]}
        say(f"run {number}/{repeat}: {trial['tx_per_s']:,.0f} tx/s in {trial['seconds']:.1f} s")
        trials.append(trial)
    rates = sorted(t["tx_per_s"] for t in trials)
    median = next(t for t in trials if t["tx_per_s"] == rates[(len(rates) - 1) // 2])
    return {
        "members": float(members),
        "full_blocks": float(blocks),
        "runs": float(repeat),
        **median,
        "tx_per_s_min": rates[0],
        "tx_per_s_max": rates[-1],
        "tx_per_s_over_verify_per_s": median["tx_per_s"] / median["verify_per_s"],
        "build_s": build_s,
    }


def _catch_up_once(
    homes: list[Path],
    clients: list[RpcClient],
    built: Path,
    blocks: int,
    profile: Path | None,
    say: Callable[[str], None],
) -> dict[str, float]:
    """Give every member but the last a copy of the built chain and the last an empty store, start them,
    and time the last one until it holds the others' head. Every process started is stopped."""
    for home in homes:
        shutil.rmtree(home / "data", ignore_errors=True)
    for home in homes[:-1]:
        shutil.copytree(built, home / "data")
    say(f"starting {len(homes) - 1} members, then the lagging one")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes += [devnet.start_node(home) for home in homes[:-1]]
        devnet.wait_until(
            lambda: all((_head(c) or 0) >= blocks for c in clients[:-1]), 120.0, "the members to serve"
        )
        verify_before = verify_rate()
        if profile is not None:
            os.environ[PROFILE_ENV] = str(profile)
        try:
            t0 = time.perf_counter()
            processes.append(devnet.start_node(homes[-1]))
        finally:
            os.environ.pop(PROFILE_ENV, None)
        height, seconds, first_s = _time_catch_up(clients, t0, processes[-1], say)
        cpu_s = _cpu_seconds(processes[-1].pid)
        verify_per_s = (verify_before + verify_rate()) / 2
    except BaseException:
        for home in homes:
            log = home / "node.log"
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            say("\n".join([f"--- {home.name} log tail", *lines[-15:]]))
        raise
    finally:
        for process in processes:
            devnet.stop_pid(process.pid)
    return {
        "blocks": float(height),
        "seconds": seconds,
        "blocks_per_s": height / seconds,
        "first_block_s": first_s,
        "cpu_s": cpu_s,
        "verify_per_s": verify_per_s,
    }


def verify_rate(seconds: float = 0.5) -> float:
    """ed25519 verifications per second on one core right now: the calibration of a shared machine (the
    architecture guide measured about 16.7k/s on an idle one)."""
    key = PrivateKey(b"\x07" * 32)
    payload = b"calibration"
    signature = key.sign(b"fedmarket/bench", "calibration", payload)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        key.public.is_valid_signature(b"fedmarket/bench", "calibration", payload, signature)
        count += 1
    return count / (time.perf_counter() - started)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time_catch_up(
    clients: list[RpcClient], t0: float, lagging: subprocess.Popen[bytes], say: Callable[[str], None]
) -> tuple[int, float, float]:
    """Poll until the lagging member's head equals the others'; (its head, seconds, first block seconds)."""
    first_s = 0.0
    last_report = t0
    while True:
        if lagging.poll() is not None:
            raise RuntimeError(f"the lagging member exited with {lagging.returncode}")
        height = _head(clients[-1])
        now = time.perf_counter()
        if height:
            first_s = first_s or now - t0
            others = [h for h in (_head(c) for c in clients[:-1]) if h is not None]
            if others and height >= max(others):
                return height, now - t0, first_s
        if now - last_report > 5.0:
            last_report = now
            say(f"  lagging member at height {height} after {now - t0:.0f} s")
        if now - t0 > CATCH_UP_TIMEOUT_S:
            raise RuntimeError(f"no catch-up within {CATCH_UP_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=10_000, help="blocks the lagging member lacks")
    parser.add_argument("--txs-per-block", type=int, default=200, help="transactions in each (full) block")
    parser.add_argument("--members", type=int, default=4, help="federation size (at least 4)")
    parser.add_argument("--mix", choices=MIXES, default="market", help="transaction mix")
    parser.add_argument("--repeat", type=int, default=1, help="time the catch-up this many times (median)")
    parser.add_argument("--profile", type=Path, help="run the lagging member under cProfile, stats to FILE")
    parser.add_argument("--workdir", type=Path, help="keep the devnet here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fedmarket-catchup-") as tmp:
        workdir = args.workdir or Path(tmp)
        result = run(
            args.members,
            args.blocks,
            args.txs_per_block,
            workdir,
            mix=args.mix,
            repeat=args.repeat,
            profile=args.profile,
        )
    print(json.dumps(result, indent=2))
    print(
        f"catch-up of {result['full_blocks']:,.0f} full blocks ({result['txs']:,.0f} txs): "
        f"{result['tx_per_s']:,.0f} tx/s (median of {result['runs']:.0f}, min {result['tx_per_s_min']:,.0f}, "
        f"max {result['tx_per_s_max']:,.0f}), {result['blocks_per_s']:,.1f} blocks/s "
        f"({result['seconds']:.1f} s from process start; first block after {result['first_block_s']:.1f} s); "
        f"lagging member's CPU {result['cpu_s']:.1f} s, {result['tx_per_cpu_s']:,.0f} tx per CPU second; "
        f"ed25519 verify on one core meanwhile {result['verify_per_s']:,.0f}/s"
    )
    if args.profile is not None and args.profile.exists():
        print("\nlagging member, top 25 functions by internal time:")
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    exit_on_sigterm()
    main()
