"""The heuristic strategy: the four phases of OpenStack Watcher's vm_workload_consolidation.

Theory. Watcher (server_consolidation goal) runs: (1) offload: move VMs off overloaded hosts, best fit;
(2) consolidation: take hosts from least to most loaded and move their VMs onto the most loaded hosts that
still have room; (3) optimise: collapse chains of migrations (A->B->C becomes A->C); (4) release: disable the
hosts left empty. Two changes make it free more hosts with fewer migrations:
- a host is drained all or nothing: its VMs move only if every one of them finds room (else nothing moves),
  where Watcher may move half a host and release nothing;
- room means the hard limits of `node.capacity.model`: flavor allocation within Nova's allocatable size and
  measured load within the load limits, on every dimension. Load orders hosts (score); allocation bounds them.
Destinations are tried most loaded first, in a fixed order, with a segment tree that finds the first host
where a VM fits in logarithmic time in the common case, which keeps 10,000 hosts within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.capacity.model import Inventory, Vector
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

_CLOSED: Vector = (-1, -1, -1, -1, -1, -1)
_SCORED_DIMENSIONS = (0, 1, 4)  # vCPU allocation, RAM allocation, measured CPU load
PROGRESS_STEPS = 100


def host_score(layout: Layout, host: int) -> int:
    """Load of a host in per-mille, summed over vCPU allocation, RAM allocation and measured CPU load."""
    used, cap = layout.used[host], layout.capacity[host]
    return sum(used[d] * 1000 // cap[d] for d in _SCORED_DIMENSIONS if cap[d] > 0)


FIELD_BITS = 48  # each dimension's free capacity, plus one, in a 48-bit field of one packed integer
_GUARDS = sum(1 << (FIELD_BITS * d + FIELD_BITS - 1) for d in range(6))
MAX_REMEMBERED_SHAPES = 4096
LOAD_CPU_STEP = 1000  # milli-vCPU
LOAD_RAM_STEP = 4096  # MB


def _pack(vector: Vector) -> int:
    """Six values, each at least -1 and shifted by one, in the fields of one integer (sizes are bounded by
    `MAX_SIZE` of the model, far below a field's range)."""
    return (
        (max(vector[0], -1) + 1)
        | (max(vector[1], -1) + 1) << FIELD_BITS
        | (max(vector[2], -1) + 1) << (2 * FIELD_BITS)
        | (max(vector[3], -1) + 1) << (3 * FIELD_BITS)
        | (max(vector[4], -1) + 1) << (4 * FIELD_BITS)
        | (max(vector[5], -1) + 1) << (5 * FIELD_BITS)
    )


class FirstFitTree:
    """Segment tree over hosts in a fixed order; each node holds the per-dimension maximum free capacity of
    its leaves, so subtrees where some dimension cannot fit are skipped. The maxima are packed into one
    integer with a guard bit per field, so `all(free >= demand)` is one subtraction (SWAR). For each demand
    shape the tree remembers the first position that may still have room for it: free capacity only shrinks
    while packing, and any growth at a position resets the memory there."""

    def __init__(self, free: list[Vector]) -> None:
        size = 1
        while size < max(1, len(free)):
            size *= 2
        self.size = size
        self.nodes: list[Vector] = [_CLOSED] * (2 * size)
        self.nodes[size : size + len(free)] = free
        for node in range(size - 1, 0, -1):
            self.nodes[node] = self._join(node)
        self.packed = [_pack(vector) for vector in self.nodes]
        self.starts: dict[tuple[int, ...], int] = {}

    def _join(self, node: int) -> Vector:
        a, b = self.nodes[2 * node], self.nodes[2 * node + 1]
        return (
            max(a[0], b[0]),
            max(a[1], b[1]),
            max(a[2], b[2]),
            max(a[3], b[3]),
            max(a[4], b[4]),
            max(a[5], b[5]),
        )

    def set(self, position: int, free: Vector) -> None:
        node = self.size + position
        if any(new > old for new, old in zip(free, self.nodes[node], strict=True)):
            for shape, start in self.starts.items():
                if start > position:
                    self.starts[shape] = position
        self.nodes[node] = free
        self.packed[node] = _pack(free)
        node //= 2
        while node:
            joined = self._join(node)
            if joined == self.nodes[node]:
                break
            self.nodes[node] = joined
            self.packed[node] = _pack(joined)
            node //= 2

    def first_fit(self, demand: Vector) -> int:
        """Position of the first leaf whose free capacity covers `demand`, or -1."""
        packed, size, guards = self.packed, self.size, _GUARDS
        wanted = _pack(demand)
        shape = _shape(demand)
        wanted_shape = _pack(shape)
        start = self.starts.get(shape, 0)
        if start >= size:
            return -1
        node = start + size
        advancing = True
        while True:
            guarded = packed[node] | guards
            if (guarded - wanted) & guards == guards:
                if node >= size:
                    break
                node *= 2
                continue
            if advancing:
                if (guarded - wanted_shape) & guards != guards:
                    level = node.bit_length() - 1
                    start = (node - (1 << level) + 1) * (size >> level)
                else:
                    advancing = False
            while node & 1:
                node >>= 1
            if node == 0:
                break
            node += 1
        if len(self.starts) >= MAX_REMEMBERED_SHAPES and shape not in self.starts:
            self.starts.clear()
        self.starts[shape] = start
        return node - size if node else -1


def _shape(demand: Vector) -> Vector:
    """The demand rounded down to its shape (flavor and coarse load): a place without room for the shape has
    no room for the demand, so a position learned for a shape holds for every demand of that shape."""
    return (
        demand[0],
        demand[1],
        demand[2],
        demand[3],
        demand[4] - demand[4] % LOAD_CPU_STEP,
        demand[5] - demand[5] % LOAD_RAM_STEP,
    )


def _free(layout: Layout, host: int) -> Vector:
    used, cap = layout.used[host], layout.capacity[host]
    return (
        cap[0] - used[0],
        cap[1] - used[1],
        cap[2] - used[2],
        cap[3] - used[3],
        cap[4] - used[4],
        cap[5] - used[5],
    )


@dataclass
class _Packer:
    layout: Layout
    order: list[int]  # host index at each tree position
    position: list[int]  # tree position of each host index (-1: not a destination)
    tree: FirstFitTree

    def free(self, host: int) -> Vector:
        return _free(self.layout, host)

    def close(self, host: int) -> None:
        if self.position[host] >= 0:
            self.tree.set(self.position[host], _CLOSED)

    def open(self, host: int) -> None:
        if self.position[host] >= 0:
            self.tree.set(self.position[host], self.free(host))

    def destination(self, vm: int) -> int:
        found = self.tree.first_fit(self.layout.demand[vm])
        return -1 if found < 0 else self.order[found]

    def move(self, vm: int, destination: int) -> None:
        """Move a VM off a closed host (one being offloaded or drained) onto `destination`."""
        self.layout.move(vm, destination)
        self.open(destination)


def _packer(layout: Layout, hosts: list[int], anchored: set[int]) -> _Packer:
    """Destinations in order: anchored hosts (they stay in use anyway) first, then the most loaded."""
    scores = {h: host_score(layout, h) for h in hosts}
    inventory = layout.inventory
    count = [0] * len(layout.capacity)
    for host in layout.host_of:
        count[host] += 1
    order = sorted(hosts, key=lambda h: (h not in anchored, -count[h], -scores[h], inventory.hosts[h].name))
    position = [-1] * len(layout.capacity)
    for index, host in enumerate(order):
        position[host] = index
    return _Packer(layout, order, position, FirstFitTree([_free(layout, h) for h in order]))


class HeuristicStrategy:
    name = "heuristic"

    def plan(
        self, inventory: Inventory, options: PlanOptions, progress: ProgressCallback | None = None
    ) -> ActionPlan:
        layout = build_layout(inventory, options)
        steps = consolidate(layout, options, progress)
        final = list(layout.host_of)
        initial_layout = build_layout(inventory, options)
        collapsed = order_moves(initial_layout, final, [vm for vm, _, _ in steps])
        if collapsed is not None and len(collapsed) <= len(steps):
            steps = collapsed
        return finish_plan(self.name, inventory, options, initial_layout, steps)


def consolidate(layout: Layout, options: PlanOptions, progress: ProgressCallback | None = None) -> list[Step]:
    """Phases 1 and 2 on `layout` (changed in place); returns the migrations in the order they were made."""
    budget = len(layout.demand) if options.max_migrations is None else options.max_migrations
    hosts = range(len(layout.capacity))
    active = [h for h in hosts if layout.active[h]]
    on_host: list[set[int]] = [set() for _ in hosts]
    for vm, host in enumerate(layout.host_of):
        on_host[host].add(vm)
    steps: list[Step] = []
    received: set[int] = set()

    def move(packer: _Packer, vm: int, destination: int) -> None:
        source = layout.host_of[vm]
        packer.move(vm, destination)
        on_host[source].discard(vm)
        on_host[destination].add(vm)
        steps.append((vm, source, destination))

    anchored = {host for vm, host in enumerate(layout.host_of) if not layout.movable[vm]}

    # Phase 1: offload overloaded hosts, busiest VMs first, onto the most loaded hosts with room.
    packer = _packer(layout, active, anchored)
    overloaded = [h for h in packer.order if layout.over(h)]
    for host in overloaded:
        packer.close(host)
        movable = sorted(
            (vm for vm in on_host[host] if layout.movable[vm]),
            key=lambda vm: (-layout.demand[vm][4], -layout.demand[vm][0], vm),
        )
        for vm in movable:
            if not layout.over(host) or len(steps) >= budget:
                break
            destination = packer.destination(vm)
            if destination >= 0:
                move(packer, vm, destination)
                received.add(destination)
        packer.open(host)

    # Phase 2: drain hosts from the least loaded, all or nothing, onto the most loaded hosts with room.
    occupied = [h for h in active if on_host[h]]
    packer = _packer(layout, occupied, anchored)
    sources = sorted(
        (h for h in packer.order if h not in received and h not in anchored and not layout.over(h)),
        key=lambda h: (len(on_host[h]), host_score(layout, h), layout.inventory.hosts[h].name),
    )
    report_every = max(1, len(sources) // PROGRESS_STEPS)
    for done, host in enumerate(sources):
        if progress is not None and done % report_every == 0:
            progress("consolidate", done, len(sources))
        vms = sorted(on_host[host], key=lambda vm: (-layout.demand[vm][0], -layout.demand[vm][1], vm))
        if host in received or len(steps) + len(vms) > budget:
            continue
        packer.close(host)
        made = len(steps)
        for vm in vms:
            destination = packer.destination(vm)
            if destination < 0:
                break
            move(packer, vm, destination)
        if on_host[host]:
            for vm, source, _ in reversed(steps[made:]):
                layout_move_back(packer, on_host, vm, source)
            del steps[made:]
            packer.open(host)
        else:
            received.update(destination for _, _, destination in steps[made:])
    if progress is not None:
        progress("consolidate", len(sources), len(sources))
    return steps


def layout_move_back(packer: _Packer, on_host: list[set[int]], vm: int, source: int) -> None:
    """Undo a tentative move of `vm` (used when a host cannot be drained entirely)."""
    layout = packer.layout
    destination = layout.host_of[vm]
    layout.move(vm, source)
    on_host[destination].discard(vm)
    on_host[source].add(vm)
    packer.open(destination)
