"""Property tests: every plan of both strategies passes the rules, the spare is exact, exact <= heuristic."""

from __future__ import annotations

import math
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.capacity import (
    Inventory,
    LoadLimits,
    PlanOptions,
    Reserve,
    get_strategy,
    indicators,
    validate_plan,
)

QUICK_EXACT = {"exact_time_limit_s": 5.0, "exact_deterministic_limit": 1.0}
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _replay_rules(inventory: Inventory, options: PlanOptions, plan_migrations: tuple) -> dict[str, str]:  # type: ignore[type-arg]
    """A second, minimal replay: where each VM ends, checking the step rules the issue lists."""
    hosts = {h.name: h for h in inventory.hosts}
    location = {vm.id: vm.host for vm in inventory.vms}
    by_id = {vm.id: vm for vm in inventory.vms}
    load = {name: [0] * 6 for name in hosts}
    for vm in inventory.vms:
        for d, amount in enumerate(vm.demand()):
            load[vm.host][d] += amount
    for migration in plan_migrations:
        vm = by_id[migration.vm_id]
        assert not vm.pinned and not vm.excluded
        destination = hosts[migration.destination]
        assert destination.up and not destination.disabled
        assert location[vm.id] == migration.source
        for d, amount in enumerate(vm.demand()):
            load[migration.source][d] -= amount
            load[destination.name][d] += amount
        capacity = destination.capacity(options.load_limits)
        assert all(u <= c for u, c in zip(load[destination.name], capacity, strict=True))
        location[vm.id] = destination.name
    assert set(location) == set(by_id)
    return location


@st.composite
def _options(draw: st.DrawFn, limits: st.SearchStrategy[LoadLimits]) -> PlanOptions:
    budget = draw(st.one_of(st.none(), st.integers(0, 8)))
    reserve = Reserve(
        permille=tuple(draw(st.integers(0, 1000)) for _ in range(4)),  # type: ignore[arg-type]
        absolute=tuple(draw(st.integers(0, 64)) for _ in range(4)),  # type: ignore[arg-type]
    )
    return PlanOptions(
        max_migrations=budget,
        allow_cold=draw(st.booleans()),
        load_limits=draw(limits),
        reserve=reserve,
        **QUICK_EXACT,  # type: ignore[arg-type]
    )


def test_heuristic_plans_keep_every_rule(inventories: Callable, load_limits: st.SearchStrategy) -> None:  # type: ignore[type-arg]
    @settings(FAST, max_examples=250)
    @given(inventories(8, 16), _options(load_limits))
    def check(inventory: Inventory, options: PlanOptions) -> None:
        plan = get_strategy("heuristic").plan(inventory, options)
        validate_plan(inventory, plan, options.allow_cold)
        location = _replay_rules(inventory, options, plan.migrations)
        moved = {m.vm_id for m in plan.migrations}
        assert len(moved) == len(plan.migrations), "each VM moves at most once (chains collapsed)"
        assert all(inventory.movable(vm, options.allow_cold) for vm in inventory.vms if vm.id in moved)
        if options.max_migrations is not None:
            assert len(plan.migrations) <= options.max_migrations
        occupied = set(location.values())
        released = {h.name for h in inventory.hosts if h.active and h.name not in occupied}
        assert set(plan.hosts_to_disable) == released
        assert all(isinstance(value, int) for _, value in indicators(plan))

    check()


def test_exact_plans_keep_every_rule_and_never_lose_to_the_heuristic(
    inventories: Callable,  # type: ignore[type-arg]
    load_limits: st.SearchStrategy,  # type: ignore[type-arg]
) -> None:
    @settings(FAST, max_examples=60)
    @given(inventories(6, 10), _options(load_limits))
    def check(inventory: Inventory, options: PlanOptions) -> None:
        heuristic = get_strategy("heuristic").plan(inventory, options)
        exact = get_strategy("exact").plan(inventory, options)
        validate_plan(inventory, exact, options.allow_cold)
        _replay_rules(inventory, options, exact.migrations)
        assert exact.hosts_in_use <= heuristic.hosts_in_use
        if options.max_migrations is not None:
            assert len(exact.migrations) <= options.max_migrations

    check()


def test_spare_capacity_is_what_the_plan_frees_minus_the_reserve(
    inventories: Callable,  # type: ignore[type-arg]
    load_limits: st.SearchStrategy,  # type: ignore[type-arg]
) -> None:
    @settings(FAST, max_examples=150)
    @given(inventories(8, 14), _options(load_limits))
    def check(inventory: Inventory, options: PlanOptions) -> None:
        plan = get_strategy("heuristic").plan(inventory, options)
        released = set(plan.hosts_to_disable)
        by_region = {c.region: c for c in plan.capacity}
        offers = {(o.resource_class, o.region): o.quantity for o in plan.offers}
        for region in inventory.regions:
            active = [h for h in inventory.hosts if h.region == region and h.active]
            freed = [h for h in active if h.name in released]

            def sizes(host) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
                return (
                    math.floor(host.vcpus * host.cpu_allocation_ratio),
                    math.floor(host.ram_mb * host.ram_allocation_ratio),
                    math.floor(host.disk_gb * host.disk_allocation_ratio),
                    host.gpus,
                )

            free = [sum(sizes(h)[r] for h in freed) for r in range(4)]
            total = [sum(sizes(h)[r] for h in active) for r in range(4)]
            reserve = [
                options.reserve.absolute[r] + math.ceil(options.reserve.permille[r] * total[r] / 1000)
                for r in range(4)
            ]
            spare = [max(0, free[r] - reserve[r]) for r in range(4)]
            assert list(by_region[region].free) == free
            assert list(by_region[region].reserve) == reserve
            assert list(by_region[region].spare) == spare
            assert offers.get(("vcpu", region), 0) == spare[0]
            assert offers.get(("disk-gb", region), 0) == spare[2]
            assert offers.get(("gpu", region), 0) == spare[3]
            ram_gb = offers.get(("ram-gb", region), 0)
            assert spare[1] // 1024 - len(freed) <= ram_gb <= spare[1] // 1024

    check()


def test_exact_reaches_the_brute_force_optimum_on_tiny_inventories(
    inventories: Callable,  # type: ignore[type-arg]
    brute_force: Callable,  # type: ignore[type-arg]
) -> None:
    @settings(FAST, max_examples=40)
    @given(inventories(4, 6), st.one_of(st.none(), st.integers(0, 4)))
    def check(inventory: Inventory, budget: int | None) -> None:
        options = PlanOptions(max_migrations=budget, **QUICK_EXACT)  # type: ignore[arg-type]
        exact = get_strategy("exact").plan(inventory, options)
        heuristic = get_strategy("heuristic").plan(inventory, options)
        if exact.unresolved_overloads:
            return
        optimum = brute_force(inventory, options.load_limits, budget)
        assert optimum <= exact.hosts_in_use <= heuristic.hosts_in_use
        if budget is None:
            # The brute force looks at end states only; without a budget, staging makes them executable.
            assert exact.hosts_in_use == optimum

    check()
