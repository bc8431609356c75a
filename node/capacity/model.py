"""The inventory model: hosts, VMs and flavors with integer sizes, checked once at construction.

Theory: the planner bounds every host on two kinds of quantity. Allocation is what the flavors of its VMs
claim (vCPU, RAM, disk, GPU) against what Nova would schedule there (physical size times the allocation
ratio, floored); measured load is what the VMs really use (CPU, RAM) against a share of the physical size
(the load limits). Both are hard limits, so a plan never builds a host that Nova would refuse or that runs
hot. Every quantity is an integer: vectors of six integers are what strategies add and compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from ledger.codec import Value, encode
from ledger.hashing import tagged_hash
from node.capacity.errors import InventoryError

# The six dimensions of every capacity or demand vector, in this order.
DIMENSIONS = ("vcpus", "ram_mb", "disk_gb", "gpus", "cpu_load_milli", "ram_load_mb")
ALLOCATION_DIMENSIONS = 4

MAX_NAME_CHARS = 255
MAX_SIZE = 2**32  # bound of every size of a host or flavor (vCPU, MB, GB, GPU)
MAX_RATIO = Fraction(64)
INVENTORY_HASH_TAG = b"fedmarket/capacity-inventory/v1"

Vector = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class LoadLimits:
    """The share of a host's physical CPU and RAM that the measured load may reach, in per-mille."""

    cpu_permille: int = 800
    ram_permille: int = 1000

    def __post_init__(self) -> None:
        for name in ("cpu_permille", "ram_permille"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise InventoryError(f"load limit {name}: must be an integer in [1, 1000]")


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int = 0
    gpus: int = 0


@dataclass(frozen=True)
class Host:
    name: str
    region: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    gpus: int = 0
    up: bool = True
    disabled: bool = False
    cpu_allocation_ratio: Fraction = Fraction(4)
    ram_allocation_ratio: Fraction = Fraction(1)
    disk_allocation_ratio: Fraction = Fraction(1)

    @property
    def active(self) -> bool:
        """Up and enabled: the only hosts a plan may move VMs onto, and the ones it may release."""
        return self.up and not self.disabled

    def allocatable(self) -> tuple[int, int, int, int]:
        """What Nova schedules on this host: physical size times allocation ratio, floored."""
        return self._allocatable

    @cached_property
    def _allocatable(self) -> tuple[int, int, int, int]:
        return (
            int(self.vcpus * self.cpu_allocation_ratio),
            int(self.ram_mb * self.ram_allocation_ratio),
            int(self.disk_gb * self.disk_allocation_ratio),
            self.gpus,
        )

    def capacity(self, limits: LoadLimits) -> Vector:
        vcpus, ram_mb, disk_gb, gpus = self.allocatable()
        return (
            vcpus,
            ram_mb,
            disk_gb,
            gpus,
            self.vcpus * limits.cpu_permille,
            self.ram_mb * limits.ram_permille // 1000,
        )


@dataclass(frozen=True)
class VM:
    id: str
    host: str
    flavor: Flavor
    cpu_util_percent: int = 100
    ram_used_mb: int | None = None
    pinned: bool = False
    excluded: bool = False
    live_migratable: bool = True

    def demand(self) -> Vector:
        flavor = self.flavor
        ram_used = flavor.ram_mb if self.ram_used_mb is None else self.ram_used_mb
        return (
            flavor.vcpus,
            flavor.ram_mb,
            flavor.disk_gb,
            flavor.gpus,
            flavor.vcpus * self.cpu_util_percent * 10,
            ram_used,
        )


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE


def _check_name(value: object, where: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise InventoryError(f"{where}: must be a non-empty text of at most {MAX_NAME_CHARS} characters")


def _check_host(host: Host, where: str, regions: frozenset[str]) -> None:
    _check_name(host.name, f"{where}.name")
    if host.region not in regions:
        raise InventoryError(f"{where}.region: unknown region {host.region!r} (known: {sorted(regions)})")
    for name in ("vcpus", "ram_mb"):
        if not _positive(getattr(host, name)):
            raise InventoryError(f"{where}.{name}: must be a positive integer (at most {MAX_SIZE})")
    for name in ("disk_gb", "gpus"):
        if not _natural(getattr(host, name)):
            raise InventoryError(f"{where}.{name}: must be a non-negative integer (at most {MAX_SIZE})")
    for name in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
        ratio = getattr(host, name)
        if not isinstance(ratio, Fraction) or not 0 < ratio <= MAX_RATIO:
            raise InventoryError(f"{where}.{name}: must be a number in (0, {MAX_RATIO}]")


def _check_vm(vm: VM, where: str) -> None:
    _check_name(vm.id, f"{where}.id")
    flavor = vm.flavor
    for name in ("vcpus", "ram_mb"):
        if not _positive(getattr(flavor, name)):
            raise InventoryError(f"{where}.flavor.{name}: must be a positive integer (at most {MAX_SIZE})")
    for name in ("disk_gb", "gpus"):
        if not _natural(getattr(flavor, name)):
            raise InventoryError(
                f"{where}.flavor.{name}: must be a non-negative integer (at most {MAX_SIZE})"
            )
    if not _natural(vm.cpu_util_percent) or vm.cpu_util_percent > 100:
        raise InventoryError(f"{where}.cpu_util_percent: must be an integer in [0, 100]")
    if vm.ram_used_mb is not None and (not _natural(vm.ram_used_mb) or vm.ram_used_mb > flavor.ram_mb):
        raise InventoryError(f"{where}.ram_used_mb: must be an integer in [0, flavor ram_mb={flavor.ram_mb}]")


@dataclass(frozen=True)
class Inventory:
    """Regions, hosts and VMs; construction checks every rule and names the offending place."""

    regions: tuple[str, ...]
    hosts: tuple[Host, ...]
    vms: tuple[VM, ...]
    host_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.regions:
            raise InventoryError("regions: at least one region is needed")
        for position, region in enumerate(self.regions):
            _check_name(region, f"regions[{position}]")
        if len(set(self.regions)) != len(self.regions):
            raise InventoryError("regions: duplicate region names")
        known_regions = frozenset(self.regions)
        host_index: dict[str, int] = {}
        for position, host in enumerate(self.hosts):
            where = f"hosts[{position}]"
            _check_host(host, where, known_regions)
            if host.name in host_index:
                raise InventoryError(f"{where}.name: duplicate host name {host.name!r}")
            host_index[host.name] = position
        largest = [host.allocatable() for host in self.hosts]
        vm_ids: set[str] = set()
        for position, vm in enumerate(self.vms):
            where = f"vms[{position}]"
            _check_vm(vm, where)
            if vm.id in vm_ids:
                raise InventoryError(f"{where}.id: duplicate VM id {vm.id!r}")
            vm_ids.add(vm.id)
            if vm.host not in host_index:
                raise InventoryError(f"{where}.host: unknown host {vm.host!r}")
            need = vm.demand()[:ALLOCATION_DIMENSIONS]
            if not any(all(n <= c for n, c in zip(need, cap, strict=True)) for cap in largest):
                raise InventoryError(
                    f"{where}.flavor: {vm.flavor.vcpus} vCPU, {vm.flavor.ram_mb} MB RAM, "
                    f"{vm.flavor.disk_gb} GB disk, {vm.flavor.gpus} GPU is larger than any host"
                )
        object.__setattr__(self, "host_index", host_index)

    @cached_property
    def digest(self) -> bytes:
        """`inventory_hash` of this inventory, computed once (the inventory is immutable)."""
        return _inventory_digest(self)

    def host(self, name: str) -> Host:
        return self.hosts[self.host_index[name]]

    def movable(self, vm: VM, allow_cold: bool) -> bool:
        """In scope of a plan: not pinned or excluded, on an active host, and migratable as allowed."""
        if vm.pinned or vm.excluded or not self.host(vm.host).active:
            return False
        return vm.live_migratable or allow_cold


def _ratio(value: Fraction) -> Value:
    return [value.numerator, value.denominator]


def inventory_hash(inventory: Inventory) -> bytes:
    """Hash of the canonical encoding of the inventory: the plan names the inventory it was made from."""
    return inventory.digest


def _inventory_digest(inventory: Inventory) -> bytes:
    hosts: list[Value] = [
        [
            h.name,
            h.region,
            h.vcpus,
            h.ram_mb,
            h.disk_gb,
            h.gpus,
            h.up,
            h.disabled,
            _ratio(h.cpu_allocation_ratio),
            _ratio(h.ram_allocation_ratio),
            _ratio(h.disk_allocation_ratio),
        ]
        for h in inventory.hosts
    ]
    vms: list[Value] = [
        [
            v.id,
            v.host,
            [v.flavor.name, v.flavor.vcpus, v.flavor.ram_mb, v.flavor.disk_gb, v.flavor.gpus],
            v.cpu_util_percent,
            v.demand()[5],
            v.pinned,
            v.excluded,
            v.live_migratable,
        ]
        for v in inventory.vms
    ]
    regions: list[Value] = list(inventory.regions)
    return tagged_hash(INVENTORY_HASH_TAG, encode([1, regions, hosts, vms]))
