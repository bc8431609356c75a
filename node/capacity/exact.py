"""The exact strategy: fewest hosts in use under a migration budget, solved with OR-Tools CP-SAT.

Theory. The model: a Boolean x[v,h] per movable VM v and candidate host h, exactly one host per VM, per host
and dimension the sum of demands within capacity (hard limits of `node.capacity.model`, minus what fixed VMs
take), a host is in use if some VM is on it, and the number of VMs not on their original host within the
budget. The objective is lexicographic through weights: hosts in use first, then migrations. The heuristic's
placement is given as a hint and kept as the incumbent, and only strictly better solutions that can be
executed within the budget (ordering and staging included, see `order_moves`) replace it, so under the same
budget this strategy never ends with more hosts than the heuristic. Small inventories are
solved as one model (optimal when the solver proves it in time); large ones by large neighbourhood search:
windows of the least loaded hosts in use, each solved exactly, repeated while it helps and budget remains.
Determinism: one worker, a fixed seed, and a deterministic-time budget; the wall-clock limit is a safety net
(if it binds first, results can vary with machine load).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.capacity.errors import PlanError
from node.capacity.heuristic import HeuristicStrategy, host_score
from node.capacity.model import DIMENSIONS, Inventory
from node.capacity.plan import ActionPlan
from node.capacity.strategy import (
    Layout,
    PlanOptions,
    ProgressCallback,
    Step,
    build_layout,
    finish_plan,
    order_moves,
)

SOLVER_SEED = 20240601
MAX_SOLVE_DETERMINISTIC_TIME = 2.0
MAX_TIGHTENING_ROUNDS = 3


def _cp_model() -> Any:
    try:
        from ortools.sat.python import cp_model
    except ImportError:
        raise PlanError("the exact strategy needs OR-Tools: pip install 'fedmarket[planner]'") from None
    return cp_model


@dataclass
class _Budget:
    wall: float
    deterministic: float

    def exhausted(self) -> bool:
        return self.wall <= 0 or self.deterministic <= 0


@dataclass(frozen=True)
class _Score:
    hosts: int
    migrations: int

    def better_than(self, other: _Score) -> bool:
        return (self.hosts, self.migrations) < (other.hosts, other.migrations)


class _Search:
    def __init__(self, initial: Layout, options: PlanOptions) -> None:
        self.cp_model = _cp_model()
        self.initial = initial
        self.origin = list(initial.host_of)
        self.options = options
        self.budget = _Budget(options.exact_time_limit_s, options.exact_deterministic_limit)

    def layout_of(self, placement: Sequence[int]) -> Layout:
        layout = build_layout(self.initial.inventory, self.options)
        for vm, host in enumerate(placement):
            if host != layout.host_of[vm]:
                layout.move(vm, host)
        return layout

    def solve(
        self, placement: list[int], hosts: list[int], budget: int | None, excluded: list[list[int]]
    ) -> list[int] | None:
        """Re-place the movable VMs now on `hosts` among `hosts`, avoiding the `excluded` placements; the
        solver's placement, or None."""
        cp_model = self.cp_model
        initial = self.initial
        window = set(hosts)
        free_vms = [v for v, h in enumerate(placement) if h in window and initial.movable[v]]
        if not free_vms:
            return None
        reserved = {h: [0] * len(DIMENSIONS) for h in hosts}
        pinned_hosts = set()
        for vm, host in enumerate(placement):
            if host in window and not initial.movable[vm]:
                pinned_hosts.add(host)
                for d, amount in enumerate(initial.demand[vm]):
                    reserved[host][d] += amount
        room = {h: [c - r for c, r in zip(initial.capacity[h], reserved[h], strict=True)] for h in hosts}
        model = cp_model.CpModel()
        x: dict[tuple[int, int], Any] = {}
        for vm in free_vms:
            demand = initial.demand[vm]
            for host in hosts:
                if all(q <= r for q, r in zip(demand, room[host], strict=True)):
                    x[vm, host] = model.new_bool_var(f"x{vm}_{host}")
            if (vm, placement[vm]) not in x:
                return None
        in_use = {h: model.new_bool_var(f"u{h}") for h in hosts}
        for host in pinned_hosts:
            model.add(in_use[host] == 1)
        for vm in free_vms:
            model.add_exactly_one(x[vm, h] for h in hosts if (vm, h) in x)
        for host in hosts:
            on_host = [(vm, x[vm, host]) for vm in free_vms if (vm, host) in x]
            for _, var in on_host:
                model.add_implication(var, in_use[host])
            for d in range(len(DIMENSIONS)):
                terms = [(initial.demand[vm][d], var) for vm, var in on_host if initial.demand[vm][d]]
                if terms and sum(q for q, _ in terms) > room[host][d]:
                    model.add(sum(q * var for q, var in terms) <= room[host][d])
        stays = [x[vm, self.origin[vm]] for vm in free_vms if (vm, self.origin[vm]) in x]
        moved_outside = sum(1 for v, h in enumerate(placement) if h not in window and h != self.origin[v])
        moves = len(free_vms) - sum(stays)
        if budget is not None:
            model.add(moved_outside + moves <= budget)
        for other in excluded:
            same = [x[vm, other[vm]] for vm in free_vms if (vm, other[vm]) in x]
            model.add(sum(same) <= len(free_vms) - 1)
        model.minimize((len(free_vms) + 1) * sum(in_use.values()) + moves)
        for (vm, host), var in x.items():
            model.add_hint(var, placement[vm] == host)
        occupied = set(placement)
        for host, var in in_use.items():
            model.add_hint(var, host in occupied)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = SOLVER_SEED
        solver.parameters.max_time_in_seconds = self.budget.wall
        solver.parameters.max_deterministic_time = min(
            self.budget.deterministic, MAX_SOLVE_DETERMINISTIC_TIME
        )
        status = solver.solve(model)
        self.budget.wall -= solver.wall_time
        self.budget.deterministic -= solver.response_proto.deterministic_time
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        result = list(placement)
        for (vm, host), var in x.items():
            if solver.boolean_value(var):
                result[vm] = host
        return result

    def run(self, placement: list[int], progress: ProgressCallback | None) -> list[int]:
        """Improve `placement` while the budget lasts; every accepted placement can be executed."""
        initial = self.initial
        active = [h for h in range(len(initial.capacity)) if initial.active[h]]
        budget = self.options.max_migrations
        best = list(placement)
        best_score = self.evaluate(best)
        if len(active) * sum(initial.movable) <= self.options.exact_full_model_max_pairs:
            layout = self.layout_of(best)
            hosts = [h for h in active if not layout.over(h)]
            excluded: list[list[int]] = []
            for _ in range(MAX_TIGHTENING_ROUNDS):
                candidate = self.solve(best, hosts, budget, excluded)
                if candidate is None:
                    break
                score = self.evaluate(candidate)
                if score.better_than(best_score):
                    best, best_score = candidate, score
                if score.migrations == sum(1 for v, h in enumerate(candidate) if h != self.origin[v]):
                    break
                excluded.append(candidate)  # staging was needed: look for another placement as good
            return best
        size = self.options.exact_neighbourhood_hosts
        start = 0
        in_use = self.in_use_by_load(best, active)
        while not self.budget.exhausted():
            if start >= len(in_use) - 1:
                break
            if progress is not None:
                progress("exact", start, len(in_use))
            candidate = self.solve(best, in_use[start : start + size], budget, [])
            if candidate is not None and self.evaluate(candidate).better_than(best_score):
                best, best_score = candidate, self.evaluate(candidate)
                in_use = self.in_use_by_load(best, active)
                start = 0
            else:
                start += max(1, size // 2)
        return best

    def in_use_by_load(self, placement: list[int], active: list[int]) -> list[int]:
        """Active hosts in use under `placement` and within capacity, least loaded first."""
        layout = self.layout_of(placement)
        occupied = set(placement)
        return sorted(
            (h for h in active if h in occupied and not layout.over(h)),
            key=lambda h: (host_score(layout, h), self.initial.inventory.hosts[h].name),
        )

    def evaluate(self, placement: list[int]) -> _Score:
        """Hosts in use and migrations of the executable plan reaching `placement`; the worst score if there
        is none within the budget."""
        steps = order_moves(self.initial, placement, [])
        budget = self.options.max_migrations
        if steps is None or (budget is not None and len(steps) > budget):
            return _Score(len(placement) + len(self.initial.capacity) + 1, 0)
        in_use = {h for h in placement if self.initial.active[h]}
        return _Score(len(in_use), len(steps))


class ExactStrategy:
    name = "exact"

    def plan(
        self, inventory: Inventory, options: PlanOptions, progress: ProgressCallback | None = None
    ) -> ActionPlan:
        search = _Search(build_layout(inventory, options), options)
        heuristic = HeuristicStrategy().plan(inventory, options, progress)
        vm_index = {vm.id: index for index, vm in enumerate(inventory.vms)}
        heuristic_steps: list[Step] = [
            (vm_index[m.vm_id], inventory.host_index[m.source], inventory.host_index[m.destination])
            for m in heuristic.migrations
        ]
        start = list(search.origin)
        for vm, _, destination in heuristic_steps:
            start[vm] = destination
        best = search.run(start, progress)
        steps = order_moves(search.initial, best, []) if best != start else None
        return finish_plan(self.name, inventory, options, search.initial, steps or heuristic_steps)
