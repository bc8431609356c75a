"""Worked examples with known optimal answers (brute force), including the one in docs/capacity.md."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from node.capacity import (
    VM,
    Flavor,
    Host,
    Inventory,
    LoadLimits,
    PlanOptions,
    get_strategy,
    indicators,
    load_inventory_file,
    make_plan,
    parse_reserve,
    validate_plan,
)
from node.capacity.strategy import build_layout, finish_plan, order_moves

DOC_EXAMPLE = """\
version: 1
regions: [eu-west]
flavors:
  c2: {vcpus: 2, ram_mb: 4096, disk_gb: 20}
  c3: {vcpus: 3, ram_mb: 6144, disk_gb: 20}
  c4: {vcpus: 4, ram_mb: 8192, disk_gb: 20}
hosts:
  - {name: cmp-0, region: eu-west, vcpus: 8, ram_mb: 32768, disk_gb: 400, cpu_allocation_ratio: 1.0}
  - {name: cmp-1, region: eu-west, vcpus: 8, ram_mb: 32768, disk_gb: 400, cpu_allocation_ratio: 1.0}
  - {name: cmp-2, region: eu-west, vcpus: 8, ram_mb: 32768, disk_gb: 400, cpu_allocation_ratio: 1.0}
  - {name: cmp-3, region: eu-west, vcpus: 8, ram_mb: 32768, disk_gb: 400, cpu_allocation_ratio: 1.0}
vms:
  - {id: vm-1, host: cmp-3, flavor: c3, cpu_util_percent: 50, ram_used_mb: 3072}
  - {id: vm-2, host: cmp-1, flavor: c4, cpu_util_percent: 50, ram_used_mb: 4096}
  - {id: vm-3, host: cmp-0, flavor: c2, cpu_util_percent: 50, ram_used_mb: 2048}
  - {id: vm-4, host: cmp-1, flavor: c3, cpu_util_percent: 50, ram_used_mb: 3072}
  - {id: vm-5, host: cmp-3, flavor: c4, cpu_util_percent: 50, ram_used_mb: 4096}
"""
FULL_LOAD = LoadLimits(1000, 1000)


def _cpu_only(
    host_vcpus: list[int], placement: list[tuple[int, int]], pinned: frozenset[int] = frozenset()
) -> Inventory:
    """Hosts with only vCPU binding (RAM and load generous); placement: (vcpus, host index) per VM."""
    hosts = tuple(
        Host(f"h{i}", "r", vcpus, 1 << 20, 1000, cpu_allocation_ratio=Fraction(1))
        for i, vcpus in enumerate(host_vcpus)
    )
    vms = tuple(
        VM(f"v{j}", f"h{host}", Flavor(f"c{size}", size, 1024), cpu_util_percent=10, pinned=j in pinned)
        for j, (size, host) in enumerate(placement)
    )
    return Inventory(("r",), hosts, vms)


@pytest.fixture
def doc_example(tmp_path: Path) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(DOC_EXAMPLE)
    return load_inventory_file(path)


def test_doc_example_heuristic_and_exact(doc_example: Inventory, brute_force: Callable) -> None:  # type: ignore[type-arg]
    options = PlanOptions(load_limits=FULL_LOAD, reserve=parse_reserve("vcpus=2,ram_mb=8192"))
    assert brute_force(doc_example, FULL_LOAD, None) == 2
    heuristic = make_plan(doc_example, "heuristic", options)
    assert heuristic.hosts_in_use == 3 and heuristic.migrations == ()
    exact = make_plan(doc_example, "exact", options)
    assert exact.hosts_in_use == 2
    assert exact.hosts_to_disable == ("cmp-2", "cmp-3")
    assert [(m.vm_id, m.source, m.destination, m.kind) for m in exact.migrations] == [
        ("vm-1", "cmp-3", "cmp-0", "live"),
        ("vm-4", "cmp-1", "cmp-0", "live"),
        ("vm-5", "cmp-3", "cmp-1", "live"),
    ]
    assert dict(indicators(exact)) == {
        "compute_nodes_count": 4,
        "released_compute_nodes_count": 2,
        "instance_migrations_count": 3,
        "released_nodes_ratio_permille": 500,
    }
    (capacity,) = exact.capacity
    assert (capacity.free, capacity.reserve, capacity.spare) == (
        (16, 65536, 800, 0),
        (2, 8192, 0, 0),
        (14, 57344, 800, 0),
    )
    assert {(o.resource_class, o.quantity) for o in exact.offers} == {
        ("vcpu", 14),
        ("ram-gb", 56),
        ("disk-gb", 800),
    }


def test_doc_example_under_budgets(doc_example: Inventory, brute_force: Callable) -> None:  # type: ignore[type-arg]
    for budget, optimum in ((3, 2), (2, 3), (0, 3)):
        assert brute_force(doc_example, FULL_LOAD, budget) == optimum
        exact = make_plan(doc_example, "exact", PlanOptions(load_limits=FULL_LOAD, max_migrations=budget))
        assert exact.hosts_in_use == optimum
        assert len(exact.migrations) <= budget


def test_a_swap_between_full_hosts_is_staged_on_a_host_with_room() -> None:
    # h0 and h1 are full; the target swaps a 4 of h0 with a 4 of h1 (which no direct order allows).
    inventory = _cpu_only([8, 8, 8], [(4, 0), (4, 0), (4, 1), (4, 1)])
    options = PlanOptions(load_limits=FULL_LOAD)
    layout = build_layout(inventory, options)
    final = [1, 0, 0, 1]
    steps = order_moves(layout, final, [])
    assert steps is not None and len(steps) == 3
    assert steps[0] == (0, 0, 2)  # v0 waits on h2, the only host with room
    plan = finish_plan("exact", inventory, options, layout, steps)
    validate_plan(inventory, plan)
    assert [m.destination for m in plan.migrations] == ["h2", "h0", "h1"]


def test_a_swap_with_no_room_anywhere_has_no_order() -> None:
    inventory = _cpu_only([8, 8], [(4, 0), (4, 0), (4, 1), (4, 1)])
    layout = build_layout(inventory, PlanOptions(load_limits=FULL_LOAD))
    assert order_moves(layout, [1, 0, 0, 1], []) is None


@pytest.mark.parametrize(
    ("hosts", "placement", "budget", "optimum"),
    [
        # Three half-empty hosts: two of them fit in one.
        ([8, 8, 8], [(4, 0), (2, 1), (2, 2)], None, 1),
        # Same with a budget of one migration: only one host can be emptied.
        ([8, 8, 8], [(4, 0), (2, 1), (2, 2)], 1, 2),
        # First fit by host order strands the 5; the optimum pairs 5+3 and 4+4.
        ([8, 8, 8, 8], [(5, 0), (4, 1), (4, 2), (3, 3)], None, 2),
        # A big host takes everything.
        ([4, 4, 16], [(3, 0), (3, 1), (2, 2)], None, 1),
    ],
)
def test_small_instances_reach_the_brute_force_optimum(
    hosts: list[int],
    placement: list[tuple[int, int]],
    budget: int | None,
    optimum: int,
    brute_force: Callable,  # type: ignore[type-arg]
) -> None:
    inventory = _cpu_only(hosts, placement)
    options = PlanOptions(max_migrations=budget, load_limits=FULL_LOAD)
    assert brute_force(inventory, FULL_LOAD, budget) == optimum
    exact = get_strategy("exact").plan(inventory, options)
    heuristic = get_strategy("heuristic").plan(inventory, options)
    assert exact.hosts_in_use == optimum
    assert optimum <= heuristic.hosts_in_use
    validate_plan(inventory, exact)


def test_pinned_vm_keeps_its_host_in_use_and_receives_the_others(brute_force: Callable) -> None:  # type: ignore[type-arg]
    inventory = _cpu_only([8, 8, 8], [(2, 0), (2, 1), (2, 2)], pinned=frozenset({2}))
    options = PlanOptions(load_limits=FULL_LOAD)
    for name in ("heuristic", "exact"):
        plan = get_strategy(name).plan(inventory, options)
        assert plan.hosts_in_use == 1 == brute_force(inventory, FULL_LOAD, None)
        assert {m.destination for m in plan.migrations} == {"h2"}
        assert all(m.vm_id != "v2" for m in plan.migrations)


def test_overloaded_host_is_offloaded_first() -> None:
    # h0 runs 10 vCPUs worth of flavors on 8 (the inventory breaks its own ratio); h1 has room.
    hosts = (
        Host("h0", "r", 8, 65536, 100, cpu_allocation_ratio=Fraction(1)),
        Host("h1", "r", 8, 65536, 100, cpu_allocation_ratio=Fraction(1)),
    )
    vms = (
        VM("a", "h0", Flavor("c6", 6, 1024), cpu_util_percent=10),
        VM("b", "h0", Flavor("c4", 4, 1024), cpu_util_percent=10),
    )
    inventory = Inventory(("r",), hosts, vms)
    plan = make_plan(inventory, "heuristic", PlanOptions(load_limits=FULL_LOAD))
    assert plan.unresolved_overloads == ()
    assert len(plan.migrations) == 1 and plan.migrations[0].source == "h0"
    assert plan.hosts_in_use == 2


def test_down_and_disabled_hosts_never_receive_and_their_vms_stay() -> None:
    hosts = (
        Host("up", "r", 8, 65536, 100, cpu_allocation_ratio=Fraction(1)),
        Host("off", "r", 8, 65536, 100, disabled=True, cpu_allocation_ratio=Fraction(1)),
        Host("dead", "r", 8, 65536, 100, up=False, cpu_allocation_ratio=Fraction(1)),
        Host("spare", "r", 8, 65536, 100, cpu_allocation_ratio=Fraction(1)),
    )
    vms = (
        VM("a", "up", Flavor("c2", 2, 1024)),
        VM("b", "off", Flavor("c2", 2, 1024)),
        VM("c", "dead", Flavor("c2", 2, 1024)),
        VM("d", "spare", Flavor("c2", 2, 1024)),
    )
    inventory = Inventory(("r",), hosts, vms)
    for name in ("heuristic", "exact"):
        plan = get_strategy(name).plan(inventory, PlanOptions(load_limits=FULL_LOAD))
        assert plan.compute_nodes_count == 2
        assert plan.hosts_in_use == 1
        assert [m.vm_id for m in plan.migrations] in (["a"], ["d"])
        assert all(m.destination in ("up", "spare") for m in plan.migrations)


def test_gpu_vm_moves_cold_and_not_at_all_when_cold_is_refused() -> None:
    hosts = (
        Host("g0", "r", 16, 65536, 100, gpus=2, cpu_allocation_ratio=Fraction(1)),
        Host("g1", "r", 16, 65536, 100, gpus=2, cpu_allocation_ratio=Fraction(1)),
    )
    vms = (
        VM("gpu", "g0", Flavor("g", 4, 8192, 0, 1), live_migratable=False),
        VM("cpu", "g1", Flavor("c", 4, 8192)),
    )
    inventory = Inventory(("r",), hosts, vms)
    cold = make_plan(inventory, "heuristic", PlanOptions(load_limits=FULL_LOAD))
    assert cold.hosts_in_use == 1
    assert {(m.vm_id, m.kind) for m in cold.migrations} in ({("gpu", "cold")}, {("cpu", "live")})
    live_only = make_plan(inventory, "heuristic", PlanOptions(load_limits=FULL_LOAD, allow_cold=False))
    assert [(m.vm_id, m.kind) for m in live_only.migrations] == [("cpu", "live")]


def test_measured_load_limit_keeps_busy_vms_apart() -> None:
    # Allocation would allow both on one host (ratio 4), but both are 100% busy: 8 cores on an 8-core host
    # exceeds an 80% load limit, so nothing moves; at a 100% limit they share.
    hosts = tuple(Host(f"h{i}", "r", 8, 65536, 100) for i in range(2))
    vms = tuple(VM(f"v{i}", f"h{i}", Flavor("c4", 4, 4096), cpu_util_percent=100) for i in range(2))
    inventory = Inventory(("r",), hosts, vms)
    assert make_plan(inventory, "exact", PlanOptions(load_limits=LoadLimits(800, 1000))).hosts_in_use == 2
    assert make_plan(inventory, "exact", PlanOptions(load_limits=LoadLimits(1000, 1000))).hosts_in_use == 1
