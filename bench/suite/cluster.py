"""The devnet under test: created in a work directory, its node processes started and always stopped, and
what the suite reads from them (CPU time from /proc, `node_metrics`, `node_status`, commit times)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.suite.rpc import KeepAliveRpc, RpcFailure
from ledger.genesis import BlockParams
from ledger.keys import PrivateKey
from ledger.quorum import Quorum
from node import devnet
from node.daemon import PROFILE_ENV

START_TIMEOUT_S = 90.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def own_cpu_s() -> float:
    """CPU time of this process, every thread included (the load generator and the suite's queries)."""
    times = os.times()
    return times.user + times.system


class Cluster:
    """A devnet of `members` nodes with `load_accounts` funded load accounts; `stop()` ends every process."""

    def __init__(self, directory: Path, members: int, load_accounts: int, block_params: BlockParams) -> None:
        self.directory = directory
        self.document = devnet.init(
            directory, members, load_accounts=load_accounts, block_params=block_params
        )
        self.block_params = block_params
        self.size = members
        self.quorum = Quorum(members).commit
        self.urls = [node["rpc_url"] for node in self.document["nodes"]]
        self.names = [node["name"] for node in self.document["nodes"]]
        self.homes = [Path(node["home"]) for node in self.document["nodes"]]
        self.addresses = [
            PrivateKey.from_key_file((home / "key.json").read_text()).address for home in self.homes
        ]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.dead: set[int] = set()
        self._client = [KeepAliveRpc(url, timeout=30.0) for url in self.urls]

    @property
    def chain_id(self) -> str:
        return str(self.document["chain_id"])

    def load_keys(self) -> list[PrivateKey]:
        return devnet.load_account_keys(self.document)

    def alive(self) -> list[int]:
        return [i for i in range(self.size) if i not in self.dead]

    def client(self, index: int) -> KeepAliveRpc:
        """The suite's own connection to a node (for the main thread only)."""
        return self._client[index]

    def start(self, profile: tuple[int, Path] | None = None) -> None:
        """Start every node and wait until all serve, see each other and committed a block. With `profile`
        (index, path) that member runs under cProfile and writes its stats to path when it stops."""
        for index, home in enumerate(self.homes):
            if profile is not None and profile[0] == index:
                os.environ[PROFILE_ENV] = str(profile[1])
            try:
                self.processes[index] = devnet.start_node(home)
            finally:
                os.environ.pop(PROFILE_ENV, None)
            self.document["nodes"][index]["pid"] = self.processes[index].pid
        devnet.save(self.directory, self.document)  # so `fedmarket devnet down --dir` finds any leftover
        devnet.wait_until(self._ready, START_TIMEOUT_S, "every member to serve RPC, see its peers and commit")

    def _ready(self) -> bool:
        for index, process in self.processes.items():
            if process.poll() is not None:
                raise devnet.DevnetError(
                    f"node {index} exited with {process.returncode}: {self.log_tail(index)}"
                )
        try:
            statuses = [self.client(i).call("node_status") for i in range(self.size)]
        except RpcFailure:
            return False
        return all(s["height"] >= 1 and s["peers"] >= self.size - 1 for s in statuses)

    def stop(self) -> None:
        """Stop every node started: SIGTERM to all at once, SIGKILL to any still running after a bound.
        Safe to call more than once."""
        for client in self._client:
            client.close()
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + devnet.STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=devnet.STOP_TIMEOUT_S)

    def kill(self, index: int) -> int:
        """SIGKILL one node; returns the wall-clock time of the kill (unix microseconds)."""
        self.dead.add(index)
        killed_us = time.time_ns() // 1_000
        os.kill(self.processes[index].pid, signal.SIGKILL)
        self.processes[index].wait(timeout=devnet.STOP_TIMEOUT_S)
        self._client[index].close()
        return killed_us

    def log_tail(self, index: int, lines: int = 20) -> str:
        path = self.homes[index] / "node.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(text[-lines:])

    def snapshot(self) -> dict[str, Any]:
        """Counters and CPU times of every live node, and this process's CPU time, at one moment."""
        alive = self.alive()
        return {
            "time": time.monotonic(),
            "own_cpu_s": own_cpu_s(),
            "cpu_s": {i: process_cpu_s(self.processes[i].pid) for i in alive},
            "metrics": {i: self.client(i).call("node_metrics") for i in alive},
        }

    def commit_times(self, index: int, from_height: int) -> dict[int, tuple[int, int]]:
        """Height -> (this node's commit time in unix microseconds, transactions), from `from_height` on."""
        found: dict[int, tuple[int, int]] = {}
        while True:
            page = self.client(index).call("node_commit_times", {"from_height": from_height})
            for entry in page["commits"]:
                found[entry["height"]] = (entry["time_us"], entry["txs"])
            if not page["truncated"] or not page["commits"]:
                return found
            from_height = page["commits"][-1]["height"] + 1

    def quorum_commit_times(
        self, from_height: int, members: list[int] | None = None
    ) -> dict[int, tuple[int, int]]:
        """Height -> (when 2f+1 members had committed it, its transactions)."""
        per_node = [self.commit_times(i, from_height) for i in (members or self.alive())]
        return quorum_times(per_node, self.quorum)


def quorum_times(per_node: list[dict[int, tuple[int, int]]], quorum: int) -> dict[int, tuple[int, int]]:
    """For every height that `quorum` nodes report, the `quorum`-th earliest of their commit times (and the
    block's transaction count)."""
    heights = set().union(*per_node) if per_node else set()
    result: dict[int, tuple[int, int]] = {}
    for height in sorted(heights):
        reports = sorted(node[height] for node in per_node if height in node)
        if len(reports) >= quorum:
            result[height] = (reports[quorum - 1][0], reports[0][1])
    return result
