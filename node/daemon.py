"""`fedmarket node run`: open the chain, join the network, serve JSON-RPC, stop cleanly on SIGINT/SIGTERM.

The daemon writes `status.json` in its home once its RPC and p2p addresses are bound (the devnet reads it),
logs one structured line per event (libp2p's logger included), and shuts down within a bound: a signal
cancels the root nursery, and every task, stream and the LevelDB handle close under that cancellation.
"""

from __future__ import annotations

import cProfile
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path

import trio

from ledger.chain import Chain
from ledger.genesis import Genesis
from ledger.keys import PrivateKey
from node.config import NodeConfig, load_config
from node.metrics import COLLECTOR
from node.p2p import NetworkConfig, open_network
from node.p2p.host import enable_libp2p_log_propagation
from node.rpc.methods import rpc_methods
from node.rpc.protocol import Dispatcher
from node.rpc.server import RpcServer
from node.runtime import NodeRuntime
from node.service import NodeService

STATUS_FILE = "status.json"
# A file path: run the node under cProfile and write its stats there. The profile counts wall time (a CPU-time
# clock is a system call per profiled call, which slowed a node so much that it missed its proposals); on a
# busy machine a system call is charged for the other processes that ran meanwhile.
PROFILE_ENV = "FEDMARKET_PROFILE"
SHUTDOWN_BOUND_S = 5.0
# Signature checks run in worker threads and take the GIL back after each signature (pynacl releases it while
# it verifies); with CPython's default 5 ms switch interval, a busy event loop makes each take-back wait up to
# 5 ms, so a batch of 100 checks could take 500 ms. A shorter interval bounds that wait.
GIL_SWITCH_INTERVAL_S = 0.0005
# CPython collects its young generation every 700 net allocations of container objects; a node executing
# blocks makes hundreds per transaction, and each collection that promotes survivors brings the full one
# (which walks every record of the state) nearer. Replaying a 2,000-block catch-up in one process spent 13 %
# of its CPU in the collector with the default (5.5 s of 41 s, growing with the state) and 0.65 s with these.
# Reference counting frees almost everything a node drops; only cycles wait for a collection.
GC_THRESHOLDS = (50_000, 20, 10)

logger = logging.getLogger("fedmarket.node")


def setup_logging(config: NodeConfig) -> None:
    enable_libp2p_log_propagation()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"ts=%(asctime)s node={config.name} level=%(levelname)s logger=%(name)s msg=%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level)
    logging.getLogger("libp2p").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("hypercorn").setLevel(logging.WARNING)


def load_node(home: Path, observer: bool) -> tuple[NodeConfig, Genesis, PrivateKey]:
    config = load_config(home)
    if observer and not config.observer:
        config = NodeConfig(**{**config.__dict__, "observer": True})
    genesis = Genesis.from_json(config.genesis_file.read_text())
    key = PrivateKey.from_key_file(config.key_file.read_text())
    if not config.observer and key.public.raw not in genesis.validators:
        raise SystemExit(f"{config.key_file}: this key is not a genesis member; run with --observer")
    return config, genesis, key


async def run_node(config: NodeConfig, genesis: Genesis, key: PrivateKey) -> None:
    chain = Chain.open(config.data_dir, genesis)
    try:
        members = {m.public_key.raw: m.name for m in genesis.validators}
        network_config = NetworkConfig(
            seed=key.seed,
            chain_id=genesis.chain_id,
            members=members,
            listen_host=config.p2p_host,
            listen_port=config.p2p_port,
            bootstrap=config.bootstrap,
            link_port=config.link_port,
            member_links=config.member_links,
            advertise_host=config.p2p_advertise_host,
        )
        async with open_network(network_config) as network, trio.open_nursery() as nursery:
            runtime = NodeRuntime(config, genesis, key, chain, network)
            await nursery.start(runtime.run)
            dispatcher = Dispatcher(
                rpc_methods(NodeService(runtime)), operator_enabled=config.operator_methods
            )
            server = RpcServer(dispatcher, config.rpc_port, host=config.rpc_host)
            url = await nursery.start(server.run)
            write_status(config, url, network.listen_addrs, network.link_addr)
            logger.info(
                "node %s up: rpc %s p2p %s member link %s height %d",
                config.name,
                url,
                network.listen_addrs,
                network.link_addr,
                chain.head().height,
            )
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
    finally:
        chain.close()
        logger.info("node %s stopped", config.name)


def write_status(config: NodeConfig, rpc_url: str, p2p_addrs: list[str], link_addr: str | None) -> None:
    status = {
        "name": config.name,
        "pid": os.getpid(),
        "rpc_url": rpc_url.rstrip("/"),
        "p2p": p2p_addrs,
        "member_link": link_addr,
    }
    path = config.home / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=2) + "\n")
    tmp.replace(path)


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            logger.info("signal %s: shutting down", signal.Signals(signum).name)
            scope.deadline = trio.current_time() + SHUTDOWN_BOUND_S
            scope.cancel()
            return


def tune_interpreter() -> None:
    """The interpreter settings a node runs with: the GIL switch interval and the collector's thresholds;
    the collector's pauses are counted from here on (`node_metrics.collector_counters`)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)
    COLLECTOR.install()


def main(home: Path, observer: bool) -> int:
    config, genesis, key = load_node(home, observer)
    setup_logging(config)
    tune_interpreter()
    profile_path = os.environ.get(PROFILE_ENV)
    profiler = cProfile.Profile() if profile_path else None
    try:
        if profiler is None:
            trio.run(run_node, config, genesis, key)
        else:
            profiler.runcall(trio.run, run_node, config, genesis, key)
    except Exception:
        logger.exception("node %s stopped on an internal error", config.name)
        raise
    finally:
        if profiler is not None and profile_path:
            profiler.dump_stats(profile_path)
    return 0
