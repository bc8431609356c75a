"""The strategy interface, the options every strategy takes, and the steps they share.

Theory: a strategy only decides where each VM ends. Turning that into a plan is common work: order the
migrations so that every destination has room when its VM arrives (a migration waits until some move frees
its destination; a cycle of full hosts is broken by staging one VM on a host with room, which costs one more
migration), release the hosts that end empty, price the spare capacity, and have the independent checker
accept the plan.
Strategies are pure: no clock, no randomness; the same inventory and options give the same plan.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from node.capacity.errors import PlanError
from node.capacity.model import DIMENSIONS, Inventory, LoadLimits, Vector, inventory_hash
from node.capacity.plan import ActionPlan, Migration, validate_plan
from node.capacity.spare import DEFAULT_RESOURCE_CLASSES, Reserve, ResourceClass, spare_capacity

ProgressCallback = Callable[[str, int, int], None]
Step = tuple[int, int, int]  # (vm index, source host index, destination host index)


@dataclass(frozen=True)
class PlanOptions:
    """Options of every strategy; the `exact_*` ones only matter to the exact strategy."""

    max_migrations: int | None = None
    allow_cold: bool = True
    load_limits: LoadLimits = field(default_factory=LoadLimits)
    reserve: Reserve = field(default_factory=Reserve)
    classes: tuple[ResourceClass, ...] = DEFAULT_RESOURCE_CLASSES
    exact_time_limit_s: float = 60.0
    exact_deterministic_limit: float = 30.0
    exact_neighbourhood_hosts: int = 24
    exact_full_model_max_pairs: int = 4000

    def __post_init__(self) -> None:
        if self.max_migrations is not None and self.max_migrations < 0:
            raise PlanError("max_migrations: must be >= 0")
        if self.exact_time_limit_s <= 0 or self.exact_deterministic_limit <= 0:
            raise PlanError("exact time limits: must be positive")
        if self.exact_neighbourhood_hosts < 2:
            raise PlanError("exact_neighbourhood_hosts: must be at least 2")


class Strategy(Protocol):
    name: str

    def plan(
        self, inventory: Inventory, options: PlanOptions, progress: ProgressCallback | None = None
    ) -> ActionPlan: ...


@dataclass
class Layout:
    """The inventory as index-based integer arrays, the form strategies compute on."""

    inventory: Inventory
    capacity: list[Vector]
    used: list[list[int]]
    demand: list[Vector]
    host_of: list[int]
    movable: list[bool]
    active: list[bool]

    def fits(self, host: int, vm: int) -> bool:
        used, cap = self.used[host], self.capacity[host]
        return all(u + q <= c for u, q, c in zip(used, self.demand[vm], cap, strict=True))

    def over(self, host: int) -> bool:
        return any(u > c for u, c in zip(self.used[host], self.capacity[host], strict=True))

    def move(self, vm: int, destination: int) -> None:
        source = self.host_of[vm]
        for d, amount in enumerate(self.demand[vm]):
            self.used[source][d] -= amount
            self.used[destination][d] += amount
        self.host_of[vm] = destination


def build_layout(inventory: Inventory, options: PlanOptions) -> Layout:
    capacity = [h.capacity(options.load_limits) for h in inventory.hosts]
    used = [[0] * len(DIMENSIONS) for _ in inventory.hosts]
    demand = [vm.demand() for vm in inventory.vms]
    host_of = [inventory.host_index[vm.host] for vm in inventory.vms]
    for vm_index, host in enumerate(host_of):
        for d, amount in enumerate(demand[vm_index]):
            used[host][d] += amount
    movable = [inventory.movable(vm, options.allow_cold) for vm in inventory.vms]
    active = [h.active for h in inventory.hosts]
    return Layout(inventory, capacity, used, demand, host_of, movable, active)


def order_moves(layout: Layout, final: list[int], preference: list[int]) -> list[Step] | None:
    """Steps that take every VM from where it is in `layout` to `final`, each destination having room on
    arrival. A VM moves straight to its final host once some departure has made room there; when the rest
    wait on each other in a cycle (two full hosts swapping VMs), the first waiting VM is staged on another
    active host with room and moves on later. None if no host can take a staged VM."""
    location = list(layout.host_of)
    used = [list(u) for u in layout.used]
    rank: dict[int, int] = {}
    for vm in [*preference, *range(len(final))]:
        if vm not in rank and final[vm] != location[vm]:
            rank[vm] = len(rank)
    pending: deque[int] = deque(sorted(rank, key=rank.__getitem__))
    waiting: dict[int, list[int]] = {}
    steps: list[Step] = []
    remaining = len(rank)
    staged = 0

    def room(vm: int, host: int) -> bool:
        demand, load, cap = layout.demand[vm], used[host], layout.capacity[host]
        return all(u + q <= c for u, q, c in zip(load, demand, cap, strict=True))

    def move(vm: int, destination: int) -> None:
        source = location[vm]
        for d, amount in enumerate(layout.demand[vm]):
            used[destination][d] += amount
            used[source][d] -= amount
        steps.append((vm, source, destination))
        location[vm] = destination
        pending.extendleft(reversed(waiting.pop(source, [])))

    while remaining:
        while pending:
            vm = pending.popleft()
            if room(vm, final[vm]):
                move(vm, final[vm])
                remaining -= 1
            else:
                waiting.setdefault(final[vm], []).append(vm)
        if not remaining:
            break
        if staged >= len(rank):
            return None
        blocked = sorted((vm for group in waiting.values() for vm in group), key=rank.__getitem__)
        choice = next(
            (
                (vm, host)
                for vm in blocked
                for host in range(len(used))
                if layout.active[host] and host not in (location[vm], final[vm]) and room(vm, host)
            ),
            None,
        )
        if choice is None:
            return None
        vm, host = choice
        waiting[final[vm]].remove(vm)
        staged += 1
        move(vm, host)
        pending.append(vm)
    return steps


def finish_plan(
    name: str, inventory: Inventory, options: PlanOptions, layout: Layout, steps: list[Step]
) -> ActionPlan:
    """Replay `steps` on a fresh layout, release the hosts that end empty, price the spare, check it all."""
    final = build_layout(inventory, options)
    migrations = []
    for vm, source, destination in steps:
        final.move(vm, destination)
        kind = "live" if inventory.vms[vm].live_migratable else "cold"
        migrations.append(
            Migration(
                inventory.vms[vm].id, inventory.hosts[source].name, inventory.hosts[destination].name, kind
            )
        )
    occupied = set(final.host_of)
    hosts = inventory.hosts
    released = tuple(hosts[h].name for h in range(len(hosts)) if final.active[h] and h not in occupied)
    overloads = tuple(sorted(hosts[h].name for h in range(len(hosts)) if final.over(h)))
    capacity, offers = spare_capacity(inventory, released, options.reserve, options.classes)
    plan = ActionPlan(
        strategy=name,
        inventory_hash=inventory_hash(inventory),
        load_limits=options.load_limits,
        max_migrations=options.max_migrations,
        migrations=tuple(migrations),
        hosts_to_disable=released,
        compute_nodes_count=sum(layout.active),
        unresolved_overloads=overloads,
        capacity=capacity,
        offers=offers,
    )
    validate_plan(inventory, plan, options.allow_cold)
    return plan


def get_strategy(name: str) -> Strategy:
    """`heuristic` (Watcher's vm_workload_consolidation phases) or `exact` (CP-SAT, needs ortools)."""
    if name == "heuristic":
        from node.capacity.heuristic import HeuristicStrategy

        return HeuristicStrategy()
    if name == "exact":
        from node.capacity.exact import ExactStrategy

        return ExactStrategy()
    raise PlanError(f"unknown strategy {name!r} (heuristic or exact)")


STRATEGY_NAMES = ("heuristic", "exact")


def make_plan(
    inventory: Inventory,
    strategy: str = "heuristic",
    options: PlanOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ActionPlan:
    """The CLI's entry point: plan `inventory` with the named strategy."""
    return get_strategy(strategy).plan(inventory, options or PlanOptions(), progress)
