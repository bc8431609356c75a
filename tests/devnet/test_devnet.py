"""Issue 4 acceptance on a real 4-member devnet: node processes on 127.0.0.1, killed, paused and restarted.

The tests share one devnet (starting four processes costs seconds); each leaves all four members running.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import plyvel

from ledger.keys import PrivateKey
from ledger.schema import block_key
from ledger.tx import BidBody
from node import devnet
from node.commands.rpc_client import RpcClient, RpcError
from node.config import NodeConfig
from node.p2p import peer_id_of_member

ALL = [0, 1, 2, 3]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def assert_same_blocks(network: Any, indexes: list[int], up_to: int) -> None:
    for height in range(1, up_to + 1):
        hashes = {network.block_hash(i, height) for i in indexes}
        assert len(hashes) == 1, f"members disagree at height {height}: {hashes}"


class Load:
    """Transfers submitted with wait=commit from a thread to the given members; remembers what was acked."""

    def __init__(self, network: Any, targets: list[int], account: str) -> None:
        self.network = network
        self.targets = targets
        self.account = account
        self.acknowledged: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            target = self.targets[turn % len(self.targets)]
            turn += 1
            try:
                raw = self.network.transfer(self.account, "provider-0", 1, via=target)
            except RpcError as exc:
                self.errors.append(str(exc))
                continue
            try:
                result = self.network.submit(target, raw, wait="commit", timeout=60.0)
            except RpcError as exc:  # not admitted (or not yet committed): the next sign asks the node again
                self.errors.append(str(exc))
                self.network.nonces[self.account] -= 1
                continue
            self.acknowledged.append(result["hash"])


def test_transactions_to_different_members_commit_and_every_member_agrees(network: Any) -> None:
    senders = ["consumer-0", "consumer-1", "consumer-2", "provider-1"]
    hashes = []
    for index, sender in enumerate(senders):
        raw = network.transfer(sender, "provider-0", 1_000 + index, via=index)
        result = network.submit(index, raw, wait="commit")
        assert result["receipt"]["status"] == "ok", result
        hashes.append(result["hash"])
    top = max(network.client(0).call("chain_tx", {"hash": h})["height"] for h in hashes)
    network.wait_height(ALL, top)
    assert_same_blocks(network, ALL, top)
    genesis = str(network.home(0) / "genesis.json")
    for index in ALL:
        url = network.document["nodes"][index]["rpc_url"]
        verified = cli("chain", "verify", "--genesis", genesis, "--rpc", url, "--json")
        assert verified.returncode == 0, verified.stderr
        assert '"mode": "light"' in verified.stdout


def test_each_member_checks_each_transaction_signature_once(network: Any) -> None:
    metrics_before = [network.client(i).call("node_metrics") for i in ALL]
    senders = ["consumer-0", "consumer-1", "consumer-2", "provider-1"]
    raws = [network.transfer(sender, "provider-2", 7, via=index) for index, sender in enumerate(senders)]
    forged = raws[0][:-1] + bytes([raws[0][-1] ^ 1])
    refused = network.client(0).call("tx_submit", {"txs": [forged.hex()], "wait": "none"})["results"]
    assert refused[0]["error"]["data"]["reason_code"] == "BAD_SIGNATURE", refused
    hashes = [network.submit(index, raw)["hash"] for index, raw in enumerate(raws)]

    def committed_everywhere() -> bool:
        try:
            return all(network.client(i).call("chain_tx", {"hash": h}) for i in ALL for h in hashes)
        except RpcError:
            return False

    network.wait_for(committed_everywhere, "the four transactions to commit on every member")
    for index in ALL:
        before, after = metrics_before[index], network.client(index).call("node_metrics")
        assert after["txs_committed"] - before["txs_committed"] == len(raws)
        checks = len(raws) + (1 if index == 0 else 0)  # member 0 also checked the forged one
        assert after["signature_checks"] - before["signature_checks"] == checks, index
        assert after["worker_signature_checks"] - before["worker_signature_checks"] == checks, index


def test_full_verification_passes_on_a_data_dir_and_fails_on_an_altered_block(
    network: Any, tmp_path: Path
) -> None:
    victim = 3
    network.wait_height(ALL, 3)
    stopping = time.monotonic()
    assert network.stop(victim) == 0, "SIGTERM must stop the daemon cleanly"
    assert time.monotonic() - stopping < 6.0, "the daemon stops within its 5 s bound"
    good = tmp_path / "good"
    shutil.copytree(network.home(victim), good)
    network.start(victim)
    verified = cli("chain", "verify", "--home", str(good), "--json")
    assert verified.returncode == 0, verified.stderr
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    db = plyvel.DB(str(bad / "data"))
    try:
        block = bytearray(db.get(block_key(2)))
        block[-1] ^= 0x01
        db.put(block_key(2), bytes(block), sync=True)
    finally:
        db.close()
    refused = cli("chain", "verify", "--home", str(bad))
    assert refused.returncode != 0
    assert "block 2" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    network.wait_serving(victim)


def test_sigkill_of_a_non_proposer_under_load_loses_nothing_acknowledged(network: Any) -> None:
    proposer = network.proposer_index(0)
    victim = next(i for i in ALL if i != proposer)
    others = [i for i in ALL if i != victim]
    start = min(network.heights(others))
    with Load(network, others, "consumer-0") as load:
        network.wait_for(lambda: len(load.acknowledged) >= 3, "load to commit")
        network.kill(victim)
        network.wait_height(others, start + 4)
        network.start(victim)
        network.wait_serving(victim)
        network.wait_for(lambda: len(load.acknowledged) >= 10, "load to keep committing")
    target = min(network.heights(others))
    network.wait_height([victim], target)
    assert_same_blocks(network, ALL, target)
    for tx_hash in load.acknowledged:
        for index in ALL:
            assert network.client(index).call("chain_tx", {"hash": tx_hash})["receipt"]["status"] == "ok"
    for index in ALL:  # honest proposals under load: no member judged one invalid
        counters = network.client(index).call("node_metrics")["consensus_counters"]
        assert "dropped_invalid_block" not in counters, (index, counters)


def test_sigkill_of_the_proposer_changes_view_and_commits_continue(network: Any) -> None:
    network.wait_height(ALL, min(network.heights(ALL)) + 1)
    proposer = network.proposer_index(0)
    others = [i for i in ALL if i != proposer]
    start = min(network.heights(others))
    network.kill(proposer)
    raw = network.transfer("consumer-1", "provider-0", 7, via=others[0])
    result = network.submit(others[0], raw, wait="commit", timeout=90.0)
    assert result["receipt"]["status"] == "ok"
    network.wait_height(others, start + 3)
    logs = [(network.home(i) / "node.log").read_text(errors="replace") for i in others]
    assert all("view change at height" in log for log in logs), "the survivors changed view"
    network.start(proposer)
    network.wait_serving(proposer)
    target = min(network.heights(others))
    network.wait_height([proposer], target)
    assert_same_blocks(network, ALL, target)


def test_a_paused_member_does_not_stop_the_others_and_catches_up(network: Any) -> None:
    paused = 2
    others = [i for i in ALL if i != paused]
    start = min(network.heights(others))
    network.signal(paused, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        network.wait_height(others, start + 3)
        network.wait_for(lambda: time.monotonic() - stopped_at >= 10.0, "10 s of pause", timeout_s=20.0)
        network.wait_height(others, start + 5)
    finally:
        network.signal(paused, signal.SIGCONT)
    target = min(network.heights(others))
    network.wait_height([paused], target)
    assert_same_blocks(network, ALL, target)


def test_a_frozen_member_fails_the_ping_is_disconnected_and_reconnected_after(network: Any) -> None:
    frozen = 1
    others = [i for i in ALL if i != frozen]
    peer_id = network.document["nodes"][frozen]["p2p"].rsplit("/p2p/", 1)[1]

    def row(index: int) -> dict[str, Any]:
        found = peer_row(network, index, peer_id)
        assert found is not None, f"node {index} does not list node {frozen}"
        return found

    dead_before = {i: row(i)["counters"].get("dead_connections", 0) for i in others}
    network.signal(frozen, signal.SIGSTOP)  # its kernel keeps the connections open; nothing answers
    try:
        network.wait_for(
            lambda: all(
                row(i)["counters"].get("dead_connections", 0) > dead_before[i] and not row(i)["connected"]
                for i in others
            ),
            f"the others to find node {frozen} dead and disconnect it",
        )
    finally:
        network.signal(frozen, signal.SIGCONT)
    network.wait_for(lambda: all(row(i)["connected"] for i in others), f"node {frozen} to be redialed")


def test_the_demo_plays_a_market_round(network: Any) -> None:
    played = cli("devnet", "demo", "--dir", str(network.directory))
    assert played.returncode == 0, played.stderr
    out = played.stdout
    assert "credits/unit-hour" in out
    assert "opens it: ssh" in out
    assert "it cannot open the grant" in out
    assert "is closed" in out
    assert ": yes" in out.splitlines()[-1]


INVENTORY = """
version: 1
regions: [eu-central]
flavors:
  m1.medium: {vcpus: 2, ram_mb: 4096, disk_gb: 40}
hosts:
  - {name: cmp-0, region: eu-central, vcpus: 8, ram_mb: 32768, disk_gb: 200, cpu_allocation_ratio: 1.0}
  - {name: cmp-1, region: eu-central, vcpus: 8, ram_mb: 32768, disk_gb: 200, cpu_allocation_ratio: 1.0}
  - {name: cmp-2, region: eu-central, vcpus: 8, ram_mb: 32768, disk_gb: 200, cpu_allocation_ratio: 1.0}
vms:
  - {id: vm-0, host: cmp-0, flavor: m1.medium, cpu_util_percent: 10, ram_used_mb: 1024}
  - {id: vm-1, host: cmp-1, flavor: m1.medium, cpu_util_percent: 10, ram_used_mb: 1024}
  - {id: vm-2, host: cmp-2, flavor: m1.medium, cpu_util_percent: 10, ram_used_mb: 1024}
"""


def test_published_capacity_offers_trade_like_any_other(network: Any, tmp_path: Path) -> None:
    inventory = tmp_path / "dc.yaml"
    inventory.write_text(INVENTORY)
    prices = tmp_path / "prices.yaml"
    prices.write_text("vcpu: 50000000\nram-gb: 1000000\ndisk-gb: 10000\ngpu: 1000000000\n")
    provider = network.document["accounts"][3]
    url = network.document["nodes"][0]["rpc_url"]
    planned = cli("capacity", "plan", "--inventory", str(inventory), "--reserve", "0%", "--json")
    assert json.loads(planned.stdout)["indicators"]
    assert planned.returncode == 0, planned.stderr
    plan_args = ["--inventory", str(inventory), "--reserve", "0%"]
    offer_args = ["--key", provider["key_file"], "--prices", str(prices), "--duration", "4h", "--from", "now"]
    published = cli("capacity", "publish", *plan_args, *offer_args, "--wait", "--rpc", url, "--json")
    assert published.returncode == 0, published.stderr
    result = json.loads(published.stdout)
    vcpu = next(o for o in result["offers"] if o["class"] == "vcpu")
    assert vcpu["quantity"] >= 8  # at least one whole 8-vCPU host was released
    placed = network.client(0).call("chain_tx", {"hash": vcpu["order_id"]})  # the node that acknowledged
    assert placed["tx"]["body"]["plan"]["plan_hash"] == result["plan_hash"]
    raw = network.sign(
        "consumer-2",
        BidBody("vcpu", "eu-central", 4, 60_000_000, 3600, int(time.time()) + 3600, bytes(32)),
    )
    assert network.submit(2, raw, wait="commit")["receipt"]["status"] == "ok"
    buyer = network.accounts["consumer-2"].address
    leases = network.client(2).call("lease_list", {"owner": buyer})["leases"]
    assert any(lease["offer_id"] == vcpu["order_id"] for lease in leases)


def test_an_observer_follows_and_verifies_the_chain_without_voting(network: Any, tmp_path: Path) -> None:
    home = tmp_path / "observer"
    home.mkdir()
    shutil.copy(network.home(0) / "genesis.json", home / "genesis.json")
    (home / "key.json").write_text(PrivateKey(b"\x55" * 32).to_key_file())
    port, rpc_port = devnet.free_ports(2)
    bootstrap = tuple(n["p2p"] for n in network.document["nodes"])
    NodeConfig(
        name="auditor", home=home, p2p_port=port, rpc_port=rpc_port, bootstrap=bootstrap, observer=True
    ).write()
    observer = devnet.start_node(home)
    try:
        client = RpcClient(f"http://127.0.0.1:{rpc_port}", timeout=5.0)
        target = min(network.heights(ALL))
        network.wait_for(lambda: client.call("chain_head")["height"] >= target, "the observer to catch up")
        status = client.call("node_status")
        assert status["role"] == "observer"
        assert client.call("chain_block", {"height": target})["hash"] == network.block_hash(0, target)
    finally:
        observer.kill()
        observer.wait(timeout=10)


def run_rogue(network: Any, seed: bytes, seconds: float, skip: int | None) -> subprocess.Popen[str]:
    """The rogue's output goes to `rogue.log` in the devnet directory (shown when a rogue test fails)."""
    bootstrap = [n["p2p"] for i, n in enumerate(network.document["nodes"]) if i != skip]
    links = [n["member_link"] for i, n in enumerate(network.document["nodes"]) if i != skip]
    script = Path(__file__).with_name("rogue.py")
    genesis = str(network.home(0) / "genesis.json")
    with open(network.directory / "rogue.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, str(script), genesis, seed.hex(), str(seconds), *bootstrap, "--", *links],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def peer_row(network: Any, index: int, peer_id: str) -> dict[str, Any] | None:
    peers = network.client(index).call("node_peers")["peers"]
    return next((p for p in peers if p["peer_id"] == peer_id), None)


def test_an_outsider_cannot_speak_consensus(network: Any) -> None:
    outsider = PrivateKey(b"\x77" * 32)
    start = min(network.heights(ALL))
    rogue = run_rogue(network, outsider.seed, 30.0, None)
    try:

        def refused_everywhere() -> bool:
            return all(
                network.client(i).call("node_metrics")["network_counters"].get("links_refused", 0) > 0
                for i in ALL
            )

        network.wait_for(refused_everywhere, "every member to refuse the outsider's member links")
        network.wait_height(ALL, start + 3)
        assert "let an outsider in" not in (network.directory / "rogue.log").read_text()
    finally:
        rogue.kill()
        rogue.wait(timeout=10)


def test_a_member_sending_garbage_is_cut_off_and_the_others_keep_committing(network: Any) -> None:
    """Last in this module: the honest member restarted with the banned key stays banned for `ban_seconds`."""
    bad = 1
    others = [i for i in ALL if i != bad]
    key = PrivateKey.from_key_file((network.home(bad) / "key.json").read_text())
    peer_id = peer_id_of_member(key.public.raw)
    failures = {i: (peer_row(network, i, peer_id) or {"counters": {}})["counters"] for i in others}
    network.kill(bad)

    def everyone_saw_it_die() -> bool:
        rows = {i: peer_row(network, i, peer_id) for i in others}
        return all(
            row is not None
            and not row["connected"]
            and row["counters"].get("dial_failures", 0) > failures[i].get("dial_failures", 0)
            for i, row in rows.items()
        )

    # As for a real restart, the impostor comes up once the others noticed the member is gone.
    network.wait_for(everyone_saw_it_die, "the other members to notice the member is down")
    before = {i: (peer_row(network, i, peer_id) or {"counters": {}})["counters"] for i in others}
    rogue = run_rogue(network, key.seed, 30.0, bad)
    try:
        rows: dict[int, Any] = {}

        def cut_off() -> bool:
            """Every member that took frames from the impostor banned it, and at least one did (py-libp2p
            sometimes refuses the impostor's connection outright while the old one is being torn down)."""
            rows.update({i: peer_row(network, i, peer_id) for i in others})
            got = {
                i: r["counters"].get("frames_in", 0) > before[i].get("frames_in", 0) for i, r in rows.items()
            }
            banned = {i: r["counters"].get("bans", 0) > before[i].get("bans", 0) for i, r in rows.items()}
            return any(banned.values()) and all(banned[i] or not got[i] for i in others)

        try:
            network.wait_for(cut_off, "the members that heard the garbage sender to ban it")
        except AssertionError as exc:
            log = (network.directory / "rogue.log").read_text(errors="replace").splitlines()[-5:]
            raise AssertionError(f"{exc}; peer rows: {rows}; rogue log: {log}") from None
        start = min(network.heights(others))
        network.wait_height(others, start + 3)
    finally:
        rogue.kill()
        rogue.wait(timeout=10)
    network.start(bad)
    network.wait_serving(bad)
