"""From released hosts to market offers: the reserve, the resource-class mapping and the offer specs.

Theory: only whole released hosts are sold, so what is sold never competes with the datacenter's own VMs on
a shared host. Per region and resource the reserve is an absolute amount plus a per-mille share of the
region's schedulable capacity (active hosts, allocation ratios applied), rounded up; spare = released
capacity minus the reserve, never below zero. To turn spare into classes, the reserve is first carved out of
the released hosts in name order, then each host's remainder is cut into classes in the configured order,
so a bundle class (say 4 vCPU + 8 GiB) is only counted where it fits inside one host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from node.capacity.errors import CapacityError
from node.capacity.model import Host, Inventory
from node.capacity.plan import (
    RESOURCES,
    ActionPlan,
    ClassQuantity,
    RegionCapacity,
    Resources4,
    indicators,
    plan_hash,
)

MAX_RESOURCE_CLASSES = 64


@dataclass(frozen=True)
class Reserve:
    """Held back per region and resource: `absolute` plus `permille` of the region's schedulable capacity."""

    permille: Resources4 = (0, 0, 0, 0)
    absolute: Resources4 = (0, 0, 0, 0)

    def __post_init__(self) -> None:
        if any(not 0 <= p <= 1000 for p in self.permille) or any(a < 0 for a in self.absolute):
            raise CapacityError("reserve: per-mille shares must be in [0, 1000] and amounts non-negative")

    def amount(self, schedulable: Resources4) -> Resources4:
        parts = [
            a + -(-p * total // 1000)
            for p, a, total in zip(self.permille, self.absolute, schedulable, strict=True)
        ]
        return (parts[0], parts[1], parts[2], parts[3])


def parse_reserve(text: str) -> Reserve:
    """`10%` (every resource), or comma-separated `RESOURCE=N` / `RESOURCE=P%` with RESOURCE in
    vcpus, ram_mb, disk_gb, gpus, e.g. `vcpus=10%,ram_mb=65536,gpus=1`; percentages may have decimals."""
    permille = [0, 0, 0, 0]
    absolute = [0, 0, 0, 0]
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.rpartition("=")
        targets = range(4) if not name else [_resource_index(name.strip())]
        value = value.strip()
        try:
            if value.endswith("%"):
                share = Decimal(value[:-1]) * 10
                if share != share.to_integral_value():
                    raise CapacityError(f"reserve {part!r}: at most one decimal in a percentage")
                for index in targets:
                    permille[index] = int(share)
            elif name:
                for index in targets:
                    absolute[index] = int(value)
            else:
                raise CapacityError(f"reserve {part!r}: a bare value must be a percentage like 10%")
        except (InvalidOperation, ValueError):
            raise CapacityError(f"reserve {part!r}: not a number") from None
    return Reserve(
        (permille[0], permille[1], permille[2], permille[3]),
        (absolute[0], absolute[1], absolute[2], absolute[3]),
    )


def _resource_index(name: str) -> int:
    if name not in RESOURCES:
        raise CapacityError(f"reserve: unknown resource {name!r} (one of {', '.join(RESOURCES)})")
    return RESOURCES.index(name)


@dataclass(frozen=True)
class ResourceClass:
    """A market resource class as the host resources one unit of it takes."""

    name: str
    size: Resources4

    def __post_init__(self) -> None:
        if not self.name or any(s < 0 for s in self.size) or not any(self.size):
            raise CapacityError(
                f"resource class {self.name!r}: needs a name and a non-zero, non-negative size"
            )


DEFAULT_RESOURCE_CLASSES = (
    ResourceClass("vcpu", (1, 0, 0, 0)),
    ResourceClass("ram-gb", (0, 1024, 0, 0)),
    ResourceClass("disk-gb", (0, 0, 1, 0)),
    ResourceClass("gpu", (0, 0, 0, 1)),
)


def parse_resource_classes(config: Mapping[str, Mapping[str, int]]) -> tuple[ResourceClass, ...]:
    """Classes from a config mapping, in its order: `{"medium": {"vcpus": 2, "ram_mb": 4096}, ...}`."""
    if len(config) > MAX_RESOURCE_CLASSES:
        raise CapacityError(f"resource classes: at most {MAX_RESOURCE_CLASSES}")
    classes = []
    for name, sizes in config.items():
        unknown = set(sizes) - set(RESOURCES)
        if unknown:
            raise CapacityError(f"resource class {name!r}: unknown resources {sorted(unknown)}")
        values = [sizes.get(resource, 0) for resource in RESOURCES]
        if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            raise CapacityError(f"resource class {name!r}: sizes must be integers")
        classes.append(ResourceClass(name, (values[0], values[1], values[2], values[3])))
    return tuple(classes)


def _sum(vectors: Iterable[Resources4]) -> Resources4:
    total = [0, 0, 0, 0]
    for vector in vectors:
        for index, amount in enumerate(vector):
            total[index] += amount
    return (total[0], total[1], total[2], total[3])


def spare_capacity(
    inventory: Inventory,
    released: Iterable[str],
    reserve: Reserve,
    classes: tuple[ResourceClass, ...] = DEFAULT_RESOURCE_CLASSES,
) -> tuple[tuple[RegionCapacity, ...], tuple[ClassQuantity, ...]]:
    """Per region: released capacity, reserve and spare; then the class quantities the spare holds."""
    released_set = set(released)
    capacities: list[RegionCapacity] = []
    offers: list[ClassQuantity] = []
    for region in inventory.regions:
        active = [h for h in inventory.hosts if h.region == region and h.active]
        freed = sorted((h for h in active if h.name in released_set), key=lambda h: h.name)
        free = _sum(h.allocatable() for h in freed)
        reserve_amount = reserve.amount(_sum(h.allocatable() for h in active))
        spare_vector = [max(0, f - r) for f, r in zip(free, reserve_amount, strict=True)]
        spare = (spare_vector[0], spare_vector[1], spare_vector[2], spare_vector[3])
        capacities.append(RegionCapacity(region, free, reserve_amount, spare))
        for resource_class, quantity in _classes_in_hosts(freed, reserve_amount, classes):
            if quantity:
                offers.append(ClassQuantity(resource_class, region, quantity))
    return tuple(capacities), tuple(offers)


def _classes_in_hosts(
    hosts: list[Host], reserve_amount: Resources4, classes: tuple[ResourceClass, ...]
) -> list[tuple[str, int]]:
    to_hold = list(reserve_amount)
    counts = dict.fromkeys((c.name for c in classes), 0)
    for host in hosts:
        remaining = list(host.allocatable())
        for index in range(4):
            held = min(to_hold[index], remaining[index])
            to_hold[index] -= held
            remaining[index] -= held
        for resource_class in classes:
            fit = min(remaining[i] // s for i, s in enumerate(resource_class.size) if s)
            counts[resource_class.name] += fit
            for index, size in enumerate(resource_class.size):
                remaining[index] -= fit * size
    return list(counts.items())


@dataclass(frozen=True)
class OfferSpec:
    """What the CLI turns into one signed ledger offer."""

    resource_class: str
    region: str
    quantity: int
    min_price: int
    available_from: int
    available_until: int
    plan_hash: bytes
    indicators: tuple[tuple[str, int], ...]


def offer_specs(
    plan: ActionPlan, price_floors: Mapping[str, int], available_from: int, available_until: int
) -> list[OfferSpec]:
    """One offer spec per (class, region) with spare capacity; `price_floors` maps each class to its minimum
    price (micro-credits per unit-hour); times are whole seconds (Unix)."""
    if available_until <= available_from or available_from < 0:
        raise CapacityError("availability window: available_until must be after available_from (>= 0)")
    reference = plan_hash(plan)
    values = indicators(plan)
    specs = []
    for offer in plan.offers:
        floor = price_floors.get(offer.resource_class)
        if floor is None:
            raise CapacityError(f"no price floor for resource class {offer.resource_class!r}")
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 0:
            raise CapacityError(f"price floor for {offer.resource_class!r}: must be a non-negative integer")
        specs.append(
            OfferSpec(
                offer.resource_class,
                offer.region,
                offer.quantity,
                floor,
                available_from,
                available_until,
                reference,
                values,
            )
        )
    return specs
