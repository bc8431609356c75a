"""A local federation on 127.0.0.1: create it, start and stop its node processes, report their state.

Layout under the devnet directory: `node-<i>/` homes (key, genesis, config, data, log), `accounts/` with the
funded demo key files (one provider per member, a few consumers), and `devnet.json` listing every node (name,
home, pid, rpc url, p2p multiaddr) and account. Ports are chosen free at `init` and kept in the configs.
Load generators may ask `init` for many more funded accounts (`load_accounts`): their key files go to
`accounts/load/` and `devnet.json` records only their count and directory (`load_account_keys` reads them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.genesis import Genesis
from ledger.keys import PrivateKey
from ledger.limits import MAX_GENESIS_BYTES
from ledger.validators import ValidatorSet
from node.commands.keys import write_key_file
from node.config import NodeConfig
from node.p2p import peer_id_of_member

DEVNET_FILE = "devnet.json"
CHAIN_ID = "fedmarket-devnet"
RESOURCE_CLASSES = ("vcpu", "ram-gb", "disk-gb", "gpu")
REGIONS = ("eu-west", "eu-central", "us-east")
CONSUMERS = 3
ACCOUNT_FUNDS = 1_000_000_000_000  # one million credits, in micro-credits
LOAD_ACCOUNT_FUNDS = 10_000_000_000  # ten thousand credits for each load account
LOAD_DIR = "load"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class DevnetError(Exception):
    """A devnet operation that cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class NodeEntry:
    name: str
    home: Path
    rpc_url: str
    p2p: str


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def init(
    directory: Path,
    nodes: int,
    *,
    genesis_time_ms: int | None = None,
    load_accounts: int = 0,
    **params: Any,
) -> dict[str, Any]:
    """Create a devnet of `nodes` members; refuses to overwrite an existing one. `load_accounts` extra
    accounts (none by default) are funded with `LOAD_ACCOUNT_FUNDS` each, for load generators."""
    if nodes < 4:
        raise DevnetError("a federation needs at least 4 members (it tolerates f = (n - 1) // 3 faults)")
    if load_accounts < 0:
        raise DevnetError("load_accounts must be 0 or more")
    if (directory / DEVNET_FILE).exists():
        raise DevnetError(
            f"{directory / DEVNET_FILE} exists; run `fedmarket devnet down` and remove {directory}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "accounts").mkdir(exist_ok=True)
    members = [PrivateKey(os.urandom(32)) for _ in range(nodes)]
    names = [f"dc-{i}" for i in range(nodes)]
    accounts = []
    for i in range(nodes):
        accounts.append(("provider", f"provider-{i}", PrivateKey(os.urandom(32))))
    for i in range(CONSUMERS):
        accounts.append(("consumer", f"consumer-{i}", PrivateKey(os.urandom(32))))
    loaders = [PrivateKey(os.urandom(32)) for _ in range(load_accounts)]
    genesis_value = Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=genesis_time_ms if genesis_time_ms is not None else time.time_ns() // 1_000_000,
        validators=ValidatorSet.of([(n, k.public.raw) for n, k in zip(names, members, strict=True)]),
        resource_classes=RESOURCE_CLASSES,
        regions=REGIONS,
        balances=(
            *((k.public.raw, ACCOUNT_FUNDS) for _, _, k in accounts),
            *((k.public.raw, LOAD_ACCOUNT_FUNDS) for k in loaders),
        ),
        **params,
    )
    genesis_text = genesis_value.to_json()
    if len(genesis_text) > MAX_GENESIS_BYTES:
        raise DevnetError(
            f"a genesis with {load_accounts} load accounts is over {MAX_GENESIS_BYTES} bytes: ask for fewer"
        )
    ports = free_ports(3 * nodes)
    p2p_addrs = [
        f"/ip4/127.0.0.1/tcp/{ports[3 * i]}/p2p/{peer_id_of_member(k.public.raw)}"
        for i, k in enumerate(members)
    ]
    link_addrs = [
        f"/ip4/127.0.0.1/tcp/{ports[3 * i + 2]}/p2p/{peer_id_of_member(k.public.raw)}"
        for i, k in enumerate(members)
    ]
    entries = []
    for i, (name, key) in enumerate(zip(names, members, strict=True)):
        home = directory / f"node-{i}"
        home.mkdir()
        write_key_file(home / "key.json", key, force=False)
        (home / "genesis.json").write_text(genesis_text)
        config = NodeConfig(
            name=name,
            home=home,
            p2p_port=ports[3 * i],
            rpc_port=ports[3 * i + 1],
            bootstrap=tuple(a for j, a in enumerate(p2p_addrs) if j != i),
            link_port=ports[3 * i + 2],
            member_links=tuple(a for j, a in enumerate(link_addrs) if j != i),
        )
        config.write()
        entries.append(
            {
                "name": name,
                "home": str(home.resolve()),
                "pid": None,
                "rpc_url": config.rpc_url,
                "p2p": p2p_addrs[i],
                "member_link": link_addrs[i],
            }
        )
    account_entries = []
    for role, name, key in accounts:
        path = directory / "accounts" / f"{name}.key"
        write_key_file(path, key, force=False)
        account_entries.append(
            {"name": name, "role": role, "key_file": str(path.resolve()), "address": key.address}
        )
    document: dict[str, Any] = {"chain_id": CHAIN_ID, "nodes": entries, "accounts": account_entries}
    if loaders:
        load_dir = directory / "accounts" / LOAD_DIR
        load_dir.mkdir()
        for index, key in enumerate(loaders):
            write_key_file(load_dir / f"load-{index}.key", key, force=False)
        document["load_accounts"] = {"count": len(loaders), "directory": str(load_dir.resolve())}
    save(directory, document)
    return document


def load_account_keys(document: dict[str, Any]) -> list[PrivateKey]:
    """The keys of a devnet's load accounts (see `init`), in order; empty when it has none."""
    entry = document.get("load_accounts")
    if not entry:
        return []
    directory = Path(entry["directory"])
    return [
        PrivateKey.from_key_file((directory / f"load-{index}.key").read_text())
        for index in range(int(entry["count"]))
    ]


def load(directory: Path) -> dict[str, Any]:
    path = directory / DEVNET_FILE
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise DevnetError(f"no devnet at {directory} (run `fedmarket devnet init`)") from None
    except (OSError, ValueError) as exc:
        raise DevnetError(f"{path}: unreadable: {exc}") from None
    return document


def save(directory: Path, document: dict[str, Any]) -> None:
    path = directory / DEVNET_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return True


def start_node(home: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Start `fedmarket node run --home HOME` in its own session, logging to HOME/node.log."""
    (home / "status.json").unlink(missing_ok=True)
    log = open(home / "node.log", "ab")  # noqa: SIM115 - handed to the child process
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli", "node", "run", "--home", str(home), *extra],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` with a short back-off until it holds; DevnetError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while not condition():
        if time.monotonic() > deadline:
            raise DevnetError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def up(directory: Path) -> dict[str, Any]:
    """Start every node that is not running and wait until each one serves RPC."""
    document = load(directory)
    started = []
    for entry in document["nodes"]:
        if alive(entry.get("pid")):
            continue
        process = start_node(Path(entry["home"]))
        entry["pid"] = process.pid
        started.append((entry, process))
    save(directory, document)
    for entry, process in started:
        home = Path(entry["home"])

        def ready(home: Path = home, process: subprocess.Popen[bytes] = process) -> bool:
            if process.poll() is not None:
                raise DevnetError(
                    f"node {home.name} exited with {process.returncode}; see {home / 'node.log'}"
                )
            return (home / "status.json").exists()

        wait_until(ready, START_TIMEOUT_S, f"node {entry['name']} to start")
    return document


def down(directory: Path) -> list[str]:
    """Stop every node (SIGTERM, then SIGKILL after a bound); returns the names stopped."""
    document = load(directory)
    stopped = []
    for entry in document["nodes"]:
        pid = entry.get("pid")
        if alive(pid):
            stop_pid(pid)
            stopped.append(entry["name"])
        entry["pid"] = None
    save(directory, document)
    return stopped


def stop_pid(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait_until(lambda: not alive(pid), timeout_s, f"process {pid} to stop")
    except DevnetError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
