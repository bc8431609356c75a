"""A real 4-member devnet of node processes on 127.0.0.1 for integration tests.

Every process a test starts is killed in the fixture's teardown, even when the test fails. Waits poll a
condition with a bound; no test sleeps to wait for something to happen.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.genesis import BlockParams
from ledger.keys import PrivateKey
from ledger.tx import Body, Transfer, sign_transaction
from node import devnet
from node.commands.rpc_client import RpcClient, RpcError

WAIT_S = 60.0


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll `condition` (a node that does not answer yet counts as False) until it holds, within a bound."""

    def holds() -> bool:
        try:
            return condition()
        except RpcError:
            return False

    try:
        devnet.wait_until(holds, timeout_s, what)
    except devnet.DevnetError as exc:
        raise AssertionError(str(exc)) from None


class Devnet:
    def __init__(self, directory: Path, nodes: int = 4) -> None:
        self.directory = directory
        self.document = devnet.init(
            directory, nodes, block_params=BlockParams(empty_block_interval_ms=500, clock_bound_ms=5_000)
        )
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.accounts = {
            a["name"]: PrivateKey.from_key_file(Path(a["key_file"]).read_text())
            for a in self.document["accounts"]
        }
        self.nonces: dict[str, int] = {}
        self.chain_id = self.document["chain_id"]

    @property
    def size(self) -> int:
        return len(self.document["nodes"])

    def home(self, index: int) -> Path:
        return Path(self.document["nodes"][index]["home"])

    def client(self, index: int, timeout: float = 10.0) -> RpcClient:
        return RpcClient(self.document["nodes"][index]["rpc_url"], timeout=timeout)

    def start(self, index: int, *extra: str) -> None:
        self.processes[index] = devnet.start_node(self.home(index), tuple(extra))

    def start_all(self) -> None:
        for index in range(self.size):
            self.start(index)
        for index in range(self.size):
            self.wait_serving(index)

    def wait_serving(self, index: int) -> None:
        def serving() -> bool:
            process = self.processes[index]
            if process.poll() is not None:
                raise AssertionError(f"node {index} exited with {process.returncode}: {self.log_tail(index)}")
            return bool(self.client(index, timeout=2.0).call("node_status"))

        wait_for(serving, f"node {index} to serve RPC")

    def log_tail(self, index: int, lines: int = 30) -> str:
        text = (self.home(index) / "node.log").read_text(errors="replace").splitlines()
        return "\n".join([line for line in text if "libp2p" not in line][-lines:])

    def signal(self, index: int, signum: int) -> None:
        os.kill(self.processes[index].pid, signum)

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    def stop(self, index: int) -> int:
        """SIGTERM and wait: returns the exit code (the daemon must stop within its bound)."""
        process = self.processes[index]
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=15)

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGCONT)
                except ProcessLookupError:
                    continue
                process.kill()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue

    def height(self, index: int) -> int:
        return int(self.client(index).call("chain_head")["height"])

    def heights(self, indexes: list[int]) -> list[int]:
        return [self.height(i) for i in indexes]

    wait_for = staticmethod(wait_for)

    def wait_height(self, indexes: list[int], target: int, timeout_s: float = WAIT_S) -> None:
        wait_for(
            lambda: min(self.heights(indexes)) >= target,
            f"nodes {indexes} to reach height {target}",
            timeout_s,
        )

    def sign(self, account: str, body: Body, via: int = 0) -> bytes:
        """Sign at the next nonce: ours, or member `via`'s if another client (the demo) used the account."""
        key = self.accounts[account]
        reported = int(self.client(via).call("account_get", {"address": key.address})["next_nonce"])
        nonce = max(self.nonces.get(account, 0), reported)
        self.nonces[account] = nonce + 1
        return sign_transaction(key, self.chain_id, nonce, body).encoded

    def transfer(self, source: str, target: str, amount: int, via: int = 0) -> bytes:
        return self.sign(source, Transfer(self.accounts[target].public.raw, amount), via)

    def submit(self, index: int, raw: bytes, wait: str = "none", timeout: float = 30.0) -> Any:
        return self.client(index, timeout=timeout).call("tx_submit", {"tx": raw.hex(), "wait": wait})

    def block_hash(self, index: int, height: int) -> str:
        return str(self.client(index).call("chain_block", {"height": height})["hash"])

    def proposer_index(self, index: int) -> int:
        status = self.client(index).call("node_status")
        keys = [
            PrivateKey.from_key_file((self.home(i) / "key.json").read_text()).address
            for i in range(self.size)
        ]
        return keys.index(status["proposer"])


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("devnet") / "dn")
    try:
        net.start_all()
        net.wait_height(list(range(net.size)), 1)
        yield net
    finally:
        net.kill_all()
