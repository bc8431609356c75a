"""First load run on a 4-member devnet: committed tx/s, commit latency, and where one node spends its time.

usage: python -m bench.devnet_load [--seconds 20] [--batch 100] [--profile]

It creates a devnet in a temporary directory, pre-signs transfers from the funded demo accounts (signing is
not measured), submits them in batches (`tx_submit` with `txs`) spread over the members, and meanwhile
samples commit latency with single `wait: "commit"` submissions. Committed throughput is read from the chain
(transactions per block over the block timestamps). With --profile, member 1 (which serves no queries of
this script) runs under cProfile and the top functions by internal time are printed. Every node is stopped
at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import tempfile
import threading
import time
from pathlib import Path

from ledger.genesis import BlockParams
from ledger.keys import PrivateKey
from ledger.tx import Transfer, sign_transaction
from node import devnet
from node.commands.rpc_client import RpcClient, RpcError
from node.daemon import PROFILE_ENV

PROFILED = 1


def presign(accounts: list[PrivateKey], chain_id: str, per_account: int, to: bytes) -> list[list[bytes]]:
    return [
        [sign_transaction(key, chain_id, nonce, Transfer(to, 1)).encoded for nonce in range(per_account)]
        for key in accounts
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to submit")
    parser.add_argument("--batch", type=int, default=100, help="transactions per tx_submit call")
    parser.add_argument("--per-account", type=int, default=900, help="pre-signed transactions per account")
    parser.add_argument("--profile", action="store_true", help="profile member 0 with cProfile")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedmarket-load-") as tmp:
        directory = Path(tmp) / "dn"
        document = devnet.init(directory, 4, block_params=BlockParams(empty_block_interval_ms=500))
        processes = []
        profile_path = Path(tmp) / "member.prof"
        try:
            for index, node in enumerate(document["nodes"]):
                if args.profile and index == PROFILED:
                    os.environ[PROFILE_ENV] = str(profile_path)
                processes.append(devnet.start_node(Path(node["home"])))
                os.environ.pop(PROFILE_ENV, None)
            clients = [RpcClient(n["rpc_url"], timeout=60.0) for n in document["nodes"]]
            devnet.wait_until(lambda: _serving(clients), 60.0, "the devnet to serve RPC")
            keys = [PrivateKey.from_key_file(Path(a["key_file"]).read_text()) for a in document["accounts"]]
            sampler, loaders = keys[0], keys[1:]
            sink = keys[0].public.raw
            t0 = time.perf_counter()
            signed = presign(loaders, document["chain_id"], args.per_account, sink)
            print(f"pre-signed {sum(map(len, signed))} transfers in {time.perf_counter() - t0:.1f} s")
            start_height = clients[0].call("chain_head")["height"]
            latencies: list[float] = []
            stop = threading.Event()
            sampler_thread = threading.Thread(
                target=_sample_latency,
                args=(clients[1], sampler, document["chain_id"], sink, latencies, stop),
            )
            sampler_thread.start()
            submitted = _submit(clients, signed, args.batch, args.seconds)
            stop.set()
            sampler_thread.join()
            counter = CommitCounter(clients[0], start_height)
            devnet.wait_until(lambda: counter.committed() >= submitted, 120.0, "every submission to commit")
            _report(clients[0], start_height, submitted, latencies)
        except BaseException:
            for node in document["nodes"]:
                lines = (Path(node["home"]) / "node.log").read_text(errors="replace").splitlines()
                print(f"--- {node['name']} log tail", *lines[-40:], sep="\n")
            raise
        finally:
            for process in processes:
                devnet.stop_pid(process.pid)
        if args.profile and profile_path.exists():
            print(f"\nmember {PROFILED}, top 25 functions by internal time:")
            pstats.Stats(str(profile_path)).sort_stats("tottime").print_stats(25)


def _serving(clients: list[RpcClient]) -> bool:
    try:
        return all(c.call("chain_head")["height"] >= 1 for c in clients)
    except RpcError:
        return False


def _submit(clients: list[RpcClient], signed: list[list[bytes]], batch: int, seconds: float) -> int:
    """Interleave accounts so each batch holds consecutive nonces of several senders; round-robin members."""
    queue = [tx for column in zip(*signed, strict=True) for tx in column]
    deadline = time.monotonic() + seconds
    sent = 0
    turn = 0
    while sent < len(queue) and time.monotonic() < deadline:
        chunk = queue[sent : sent + batch]
        result = clients[turn % len(clients)].call(
            "tx_submit", {"txs": [t.hex() for t in chunk], "wait": "none"}
        )
        refused = [r for r in result["results"] if r.get("error")]
        if refused:
            print(f"refused {len(refused)}: {refused[0]['error']}")
        sent += len(chunk)
        turn += 1
    return sent


def _sample_latency(
    client: RpcClient, key: PrivateKey, chain_id: str, to: bytes, out: list[float], stop: threading.Event
) -> None:
    nonce = 0
    while not stop.is_set():
        raw = sign_transaction(key, chain_id, nonce, Transfer(to, 1)).encoded
        t0 = time.perf_counter()
        client.call("tx_submit", {"tx": raw.hex(), "wait": "commit"})
        out.append((time.perf_counter() - t0) * 1000)
        nonce += 1


class CommitCounter:
    """Transactions committed after `start_height`, reading each new block once."""

    def __init__(self, client: RpcClient, start_height: int) -> None:
        self.client = client
        self.height = start_height
        self.count = 0

    def committed(self) -> int:
        head = self.client.call("chain_head")["height"]
        for height in range(self.height + 1, head + 1):
            self.count += len(self.client.call("chain_block", {"height": height})["txs"])
        self.height = head
        return self.count


def _report(client: RpcClient, start_height: int, submitted: int, latencies: list[float]) -> None:
    head = client.call("chain_head")["height"]
    blocks = [client.call("chain_block", {"height": h}) for h in range(start_height + 1, head + 1)]
    busy = [b for b in blocks if b["txs"]]
    txs = sum(len(b["txs"]) for b in busy)
    span_ms = busy[-1]["header"]["timestamp_ms"] - busy[0]["header"]["timestamp_ms"] if len(busy) > 1 else 1
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    report = {
        "submitted": submitted,
        "committed_txs": txs,
        "blocks_with_txs": len(busy),
        "committed_tx_per_s": round(txs / (span_ms / 1000), 1),
        "mean_block_txs": round(txs / max(1, len(busy)), 1),
        "latency_samples": len(latencies),
        "latency_ms_p50": round(quantiles[49], 1),
        "latency_ms_p99": round(quantiles[98], 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
