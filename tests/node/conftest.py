"""Fixtures for network tests: member identities, free ports on 127.0.0.1, and running federations."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import replace

import pytest
import trio

from ledger.keys import PrivateKey
from node.p2p import Network, NetworkConfig, NetworkLimits, open_network, peer_id_of_member

CHAIN_ID = "fedmarket-test"
CONNECT_TIMEOUT = 10.0

# Small timers so that bans, redials and timeouts happen within a test's budget.
TEST_LIMITS = NetworkLimits(
    read_timeout=3.0,
    keepalive_interval=0.5,
    ping_interval=0.5,
    dial_timeout=2.0,
    redial_min_delay=0.05,
    redial_max_delay=0.5,
    ban_seconds=30.0,
)


@pytest.fixture
def test_limits() -> NetworkLimits:
    """The limits the member configs use by default (short timers)."""
    return TEST_LIMITS


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    return _free_port


def member_seed(index: int) -> bytes:
    return bytes([index + 1]) * 32


def member_key(index: int) -> bytes:
    return PrivateKey(member_seed(index)).public.raw


@pytest.fixture
def member_configs() -> Callable[..., list[NetworkConfig]]:
    """`member_configs(n)`: configs of n genesis members, each bootstrapping from all the others."""

    def build(count: int, limits: NetworkLimits = TEST_LIMITS) -> list[NetworkConfig]:
        members = {member_key(index): f"member-{index}" for index in range(count)}
        ports = [_free_port() for _ in range(count)]
        link_ports = [_free_port() for _ in range(count)]
        addresses = [
            f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_of_member(member_key(index))}"
            for index, port in enumerate(ports)
        ]
        link_addresses = [
            f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_of_member(member_key(index))}"
            for index, port in enumerate(link_ports)
        ]
        return [
            NetworkConfig(
                seed=member_seed(index),
                chain_id=CHAIN_ID,
                members=members,
                listen_port=ports[index],
                bootstrap=tuple(address for other, address in enumerate(addresses) if other != index),
                link_port=link_ports[index],
                member_links=tuple(address for other, address in enumerate(link_addresses) if other != index),
                limits=limits,
            )
            for index in range(count)
        ]

    return build


@pytest.fixture
def outsider_config() -> Callable[[NetworkConfig], NetworkConfig]:
    """A config with a key outside the member set, same genesis and bootstrap as `config`."""

    def build(config: NetworkConfig) -> NetworkConfig:
        return replace(config, seed=b"\xee" * 32, listen_port=0)

    return build


async def _wait_until(predicate: Callable[[], bool], timeout: float = CONNECT_TIMEOUT) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """`await wait_until(predicate, timeout)`: poll a condition every 10 ms, failing after the bound."""
    return _wait_until


ALL_LINKS = ("consensus-in", "consensus-out", "relay-in", "relay-out")


def fully_connected(networks: list[Network]) -> bool:
    """Every pair connected over libp2p, and every pair of members linked both ways on both channels."""
    members = {network.local_peer_id for network in networks}
    return all(
        {
            row.peer_id
            for row in network.peers()
            if row.connected and (row.links == ALL_LINKS or not network.is_member or row.member_key is None)
        }
        >= members - {network.local_peer_id}
        for network in networks
    )


@asynccontextmanager
async def _federation(configs: list[NetworkConfig]) -> AsyncIterator[list[Network]]:
    async with AsyncExitStack() as stack:
        networks = [await stack.enter_async_context(open_network(config)) for config in configs]
        await _wait_until(lambda: fully_connected(networks))
        yield networks


@pytest.fixture
def federation() -> Callable[[list[NetworkConfig]], AbstractAsyncContextManager[list[Network]]]:
    """`async with federation(configs) as networks`: running networks, all connected to each other."""
    return _federation
