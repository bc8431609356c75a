"""Shared fixtures of the capacity planner tests: hypothesis strategies for inventories, and a brute force."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import strategies as st

from node.capacity import VM, Flavor, Host, Inventory, LoadLimits

REGIONS = ("eu-west", "eu-central")
RATIOS = (Fraction(1), Fraction(3, 2), Fraction(2), Fraction(4))


@st.composite
def _inventories(draw: st.DrawFn, max_hosts: int = 6, max_vms: int = 12) -> Inventory:
    host_count = draw(st.integers(1, max_hosts))
    hosts = []
    for index in range(host_count):
        state = draw(st.sampled_from(("active", "active", "active", "active", "down", "disabled")))
        hosts.append(
            Host(
                name=f"h{index}",
                region=draw(st.sampled_from(REGIONS)),
                vcpus=draw(st.integers(2, 16)),
                ram_mb=1024 * draw(st.integers(2, 32)),
                disk_gb=draw(st.integers(0, 200)),
                gpus=draw(st.integers(0, 2)),
                up=state != "down",
                disabled=state == "disabled",
                cpu_allocation_ratio=draw(st.sampled_from(RATIOS)),
                ram_allocation_ratio=draw(st.sampled_from(RATIOS[:2])),
            )
        )
    vms = []
    for index in range(draw(st.integers(0, max_vms))):
        host = draw(st.sampled_from(hosts))
        vcpus_cap, ram_cap, disk_cap, gpus_cap = host.allocatable()
        flavor = Flavor(
            name="f",
            vcpus=draw(st.integers(1, max(1, vcpus_cap // 2))),
            ram_mb=512 * draw(st.integers(1, max(1, ram_cap // 1024))),
            disk_gb=draw(st.integers(0, disk_cap // 2)),
            gpus=draw(st.integers(0, min(1, gpus_cap))),
        )
        vms.append(
            VM(
                id=f"vm{index}",
                host=host.name,
                flavor=flavor,
                cpu_util_percent=draw(st.integers(0, 100)),
                ram_used_mb=draw(st.integers(0, flavor.ram_mb)),
                pinned=draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()),
                excluded=draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()),
                live_migratable=flavor.gpus == 0 and draw(st.integers(0, 9)) > 0,
            )
        )
    return Inventory(REGIONS, tuple(hosts), tuple(vms))


@pytest.fixture(scope="session")
def inventories() -> Callable[..., st.SearchStrategy[Inventory]]:
    """`inventories(max_hosts, max_vms)`: random inventories, initial placements possibly over capacity."""
    return _inventories


@pytest.fixture(scope="session")
def load_limits() -> st.SearchStrategy[LoadLimits]:
    return st.builds(LoadLimits, st.integers(500, 1000), st.integers(700, 1000))


def _brute_force(inventory: Inventory, limits: LoadLimits, budget: int | None) -> int:
    """Fewest active hosts in use over every placement of the movable VMs (final state only)."""
    hosts = inventory.hosts
    capacity = {h.name: h.capacity(limits) for h in hosts}
    active = [h.name for h in hosts if h.active]
    movable = [vm for vm in inventory.vms if inventory.movable(vm, True)]
    fixed = [vm for vm in inventory.vms if not inventory.movable(vm, True)]
    best = len(active) + 1
    for choice in itertools.product(active, repeat=len(movable)):
        moves = sum(1 for vm, host in zip(movable, choice, strict=True) if host != vm.host)
        if budget is not None and moves > budget:
            continue
        load = {h.name: [0] * 6 for h in hosts}
        for vm, host in [*zip(movable, choice, strict=True), *((vm, vm.host) for vm in fixed)]:
            for d, amount in enumerate(vm.demand()):
                load[host][d] += amount
        within = all(u <= c for name in active for u, c in zip(load[name], capacity[name], strict=True))
        if within:
            best = min(best, sum(1 for name in active if any(load[name])))
    return best


@pytest.fixture(scope="session")
def brute_force() -> Callable[[Inventory, LoadLimits, int | None], int]:
    """`brute_force(inventory, limits, budget)`: the optimum number of active hosts in use."""
    return _brute_force
