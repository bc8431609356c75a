"""The action plan, its on-chain reference (hash and indicators), its renderings and its independent checker.

Theory: a plan is only as good as the proof that executing it, step by step, never overloads a host. The
checker replays the migrations in order on a fresh copy of the inventory and tests every rule at every step,
sharing no code with the strategies beyond the inventory model, so a bug in a strategy cannot hide itself.
What goes on-chain is integers and text only: the tagged hash of the plan's canonical encoding, and the
efficacy indicators as (name, integer) pairs (the released ratio in per-mille).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ledger.codec import Value, encode
from ledger.hashing import tagged_hash
from node.capacity.errors import PlanError
from node.capacity.model import DIMENSIONS, Inventory, LoadLimits, inventory_hash

PLAN_HASH_TAG = b"fedmarket/capacity-plan/v1"
PLAN_FORMAT_VERSION = 1
MIGRATION_KINDS = ("live", "cold")
RESOURCES = DIMENSIONS[:4]

Resources4 = tuple[int, int, int, int]


@dataclass(frozen=True)
class Migration:
    vm_id: str
    source: str
    destination: str
    kind: str  # "live" or "cold"


@dataclass(frozen=True)
class RegionCapacity:
    """Per region, in (vcpus, ram_mb, disk_gb, gpus): released capacity, the reserve held back, the rest."""

    region: str
    free: Resources4
    reserve: Resources4
    spare: Resources4


@dataclass(frozen=True)
class ClassQuantity:
    resource_class: str
    region: str
    quantity: int


@dataclass(frozen=True)
class ActionPlan:
    strategy: str
    inventory_hash: bytes
    load_limits: LoadLimits
    max_migrations: int | None
    migrations: tuple[Migration, ...]
    hosts_to_disable: tuple[str, ...]
    compute_nodes_count: int
    unresolved_overloads: tuple[str, ...]
    capacity: tuple[RegionCapacity, ...]
    offers: tuple[ClassQuantity, ...]

    @property
    def hosts_in_use(self) -> int:
        return self.compute_nodes_count - len(self.hosts_to_disable)


def indicators(plan: ActionPlan) -> tuple[tuple[str, int], ...]:
    """Watcher's efficacy indicators, integers only; the ratio is released / compute nodes in per-mille."""
    released = len(plan.hosts_to_disable)
    ratio = released * 1000 // plan.compute_nodes_count if plan.compute_nodes_count else 0
    return (
        ("compute_nodes_count", plan.compute_nodes_count),
        ("released_compute_nodes_count", released),
        ("instance_migrations_count", len(plan.migrations)),
        ("released_nodes_ratio_permille", ratio),
    )


def _plan_value(plan: ActionPlan) -> Value:
    migrations: list[Value] = [[m.vm_id, m.source, m.destination, m.kind] for m in plan.migrations]
    capacity: list[Value] = [[c.region, list(c.free), list(c.reserve), list(c.spare)] for c in plan.capacity]
    offers: list[Value] = [[o.resource_class, o.region, o.quantity] for o in plan.offers]
    values: list[Value] = [[name, value] for name, value in indicators(plan)]
    return [
        PLAN_FORMAT_VERSION,
        plan.strategy,
        plan.inventory_hash,
        [plan.load_limits.cpu_permille, plan.load_limits.ram_permille],
        -1 if plan.max_migrations is None else plan.max_migrations,
        migrations,
        list(plan.hosts_to_disable),
        list(plan.unresolved_overloads),
        capacity,
        offers,
        values,
    ]


def plan_hash(plan: ActionPlan) -> bytes:
    """Tagged SHA-256 of the plan's canonical encoding (ledger.codec): the offer's plan reference."""
    return tagged_hash(PLAN_HASH_TAG, encode(_plan_value(plan)))


def plan_to_json(plan: ActionPlan) -> dict[str, object]:
    """A JSON-ready view of the plan (hashes as lowercase hex, every number an integer)."""
    return {
        "strategy": plan.strategy,
        "plan_hash": plan_hash(plan).hex(),
        "inventory_hash": plan.inventory_hash.hex(),
        "load_limits_permille": {"cpu": plan.load_limits.cpu_permille, "ram": plan.load_limits.ram_permille},
        "max_migrations": plan.max_migrations,
        "indicators": dict(indicators(plan)),
        "hosts_in_use": plan.hosts_in_use,
        "migrations": [
            {"vm": m.vm_id, "source": m.source, "destination": m.destination, "kind": m.kind}
            for m in plan.migrations
        ],
        "hosts_to_disable": list(plan.hosts_to_disable),
        "unresolved_overloads": list(plan.unresolved_overloads),
        "capacity": [
            {
                "region": c.region,
                "free": dict(zip(RESOURCES, c.free, strict=True)),
                "reserve": dict(zip(RESOURCES, c.reserve, strict=True)),
                "spare": dict(zip(RESOURCES, c.spare, strict=True)),
            }
            for c in plan.capacity
        ],
        "offers": [
            {"class": o.resource_class, "region": o.region, "quantity": o.quantity} for o in plan.offers
        ],
    }


def plan_to_json_text(plan: ActionPlan) -> str:
    return json.dumps(plan_to_json(plan), indent=2)


def _table(headers: tuple[str, ...], rows: list[tuple[object, ...]]) -> list[str]:
    cells = [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    lines = [line, "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines


def format_plan(plan: ActionPlan, max_migrations_shown: int = 50) -> str:
    """A readable plain-text report: indicators, migrations, released hosts, spare capacity and offers."""
    lines = [f"strategy {plan.strategy}   plan {plan_hash(plan).hex()}", ""]
    lines += _table(("indicator", "value"), [(*pair,) for pair in indicators(plan)])
    lines += ["", f"hosts in use after the plan: {plan.hosts_in_use}"]
    if plan.unresolved_overloads:
        lines.append(f"hosts still over capacity (pinned load): {', '.join(plan.unresolved_overloads)}")
    shown = plan.migrations[:max_migrations_shown]
    if shown:
        lines += [
            "",
            *_table(
                ("#", "vm", "source", "destination", "kind"),
                [(i + 1, m.vm_id, m.source, m.destination, m.kind) for i, m in enumerate(shown)],
            ),
        ]
        if len(plan.migrations) > len(shown):
            lines.append(f"... {len(plan.migrations) - len(shown)} more migrations (see --json)")
    if plan.hosts_to_disable:
        lines += ["", f"hosts to disable ({len(plan.hosts_to_disable)}): {', '.join(plan.hosts_to_disable)}"]
    if plan.capacity:
        rows: list[tuple[object, ...]] = []
        for c in plan.capacity:
            for label, values in (("free", c.free), ("reserve", c.reserve), ("spare", c.spare)):
                rows.append((c.region, label, *values))
        lines += ["", *_table(("region", "", *RESOURCES), rows)]
    if plan.offers:
        lines += [
            "",
            *_table(
                ("class", "region", "quantity"),
                [(o.resource_class, o.region, o.quantity) for o in plan.offers],
            ),
        ]
    return "\n".join(lines)


def _fits(load: list[int], capacity: tuple[int, ...]) -> bool:
    return all(used <= limit for used, limit in zip(load, capacity, strict=True))


def validate_plan(inventory: Inventory, plan: ActionPlan, allow_cold: bool = True) -> None:
    """Replay the plan on the inventory and raise `PlanError` at the first broken rule.

    Rules: each migration moves a VM that is in scope (not pinned, not excluded, on an active host, live
    migrations only for live-migratable VMs, cold ones only if allowed) from where it is to another active
    host (up and enabled; a host released at the end may hold a VM on its way); after every step the
    destination is within capacity on every dimension; no VM's host is lost; released hosts end empty and
    every active host that ends empty is released; the budget and the indicators agree with the migrations.
    """
    if plan.inventory_hash != inventory_hash(inventory):
        raise PlanError("plan was made for another inventory (inventory hash differs)")
    if plan.load_limits.cpu_permille > 1000 or plan.load_limits.ram_permille > 1000:
        raise PlanError("load limits above the physical size")
    capacity = {h.name: h.capacity(plan.load_limits) for h in inventory.hosts}
    active = {h.name for h in inventory.hosts if h.active}
    released = set(plan.hosts_to_disable)
    if len(released) != len(plan.hosts_to_disable):
        raise PlanError("a host is listed twice in hosts_to_disable")
    location = {vm.id: vm.host for vm in inventory.vms}
    by_id = {vm.id: vm for vm in inventory.vms}
    load = {h.name: [0] * len(DIMENSIONS) for h in inventory.hosts}
    for placed in inventory.vms:
        for d, amount in enumerate(placed.demand()):
            load[placed.host][d] += amount
    initially_over = {name for name in load if not _fits(load[name], capacity[name])}
    for step, migration in enumerate(plan.migrations, start=1):
        where = f"migration {step} ({migration.vm_id})"
        vm = by_id.get(migration.vm_id)
        if vm is None:
            raise PlanError(f"{where}: unknown VM")
        if vm.pinned or vm.excluded:
            raise PlanError(f"{where}: the VM is pinned or excluded and must not move")
        if inventory.host(vm.host).name not in active:
            raise PlanError(f"{where}: the VM sits on a down or disabled host, outside the plan's scope")
        if migration.kind not in MIGRATION_KINDS:
            raise PlanError(f"{where}: unknown migration kind {migration.kind!r}")
        if migration.kind == "live" and not vm.live_migratable:
            raise PlanError(f"{where}: the VM cannot be live-migrated")
        if migration.kind == "cold" and not allow_cold:
            raise PlanError(f"{where}: cold migrations are not allowed")
        if migration.source != location[vm.id]:
            raise PlanError(f"{where}: source {migration.source!r} but the VM is on {location[vm.id]!r}")
        destination = migration.destination
        if destination not in active:
            raise PlanError(f"{where}: destination {destination!r} is unknown, down or disabled")
        if destination == migration.source:
            raise PlanError(f"{where}: destination equals source")
        demand = vm.demand()
        for d, amount in enumerate(demand):
            load[destination][d] += amount
            load[migration.source][d] -= amount
        if not _fits(load[destination], capacity[destination]):
            raise PlanError(f"{where}: host {destination!r} over capacity after this step")
        location[vm.id] = destination
    occupied = set(location.values())
    if any(host not in capacity for host in occupied):
        raise PlanError("a VM ends on an unknown host")
    for name in released:
        if name not in active:
            raise PlanError(f"host {name!r} released but it is not an active host")
        if name in occupied:
            raise PlanError(f"host {name!r} released but VMs remain on it")
    for name in sorted(active - occupied - released):
        raise PlanError(f"host {name!r} ends empty but is not released")
    over = sorted(name for name in capacity if not _fits(load[name], capacity[name]))
    if any(name not in initially_over for name in over):
        raise PlanError(f"hosts over capacity after the plan: {over}")
    if tuple(over) != plan.unresolved_overloads:
        raise PlanError(f"unresolved overloads reported {plan.unresolved_overloads}, found {tuple(over)}")
    if plan.max_migrations is not None and len(plan.migrations) > plan.max_migrations:
        raise PlanError(f"{len(plan.migrations)} migrations exceed the budget of {plan.max_migrations}")
    if plan.compute_nodes_count != len(active):
        raise PlanError(f"compute_nodes_count {plan.compute_nodes_count} but {len(active)} active hosts")
