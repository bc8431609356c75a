"""The OpenStack inventory source: Nova hypervisors and servers (openstacksdk), mapped to the model.

Theory: Nova reports what the planner needs except measured usage and GPUs. Sizes come from the hypervisor
records (vcpus, memory_size, local_disk_size: Nova API microversions below 2.88; later ones move them to
Placement, and a missing size is an error naming the hypervisor), flavors from the servers' embedded flavor
(microversion 2.47 and later). GPUs of a host and measured usage of a VM come from the caller (a telemetry
source); without usage a VM counts as fully busy, the safe side. openstacksdk is imported only in `load`, so
the rest of the planner works without the `openstack` extra.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

from node.capacity.errors import InventoryError
from node.capacity.model import VM, Flavor, Host, Inventory

_T = TypeVar("_T")
PINNED_KEY = "fedmarket:pinned"
EXCLUDED_KEY = "fedmarket:excluded"
GPU_RESOURCE_KEYS = ("resources:VGPU", "resources:PGPU")
MOVABLE_STATUSES = frozenset({"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"})


@dataclass(frozen=True)
class VmUsage:
    cpu_util_percent: int
    ram_used_mb: int


@dataclass(frozen=True)
class AllocationRatios:
    cpu: Fraction = Fraction(4)
    ram: Fraction = Fraction(1)
    disk: Fraction = Fraction(1)


def _size(record: Any, attribute: str, where: str, minimum: int) -> int:
    value = getattr(record, attribute, None)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InventoryError(f"{where}.{attribute}: not reported or invalid ({value!r})")
    return value


def _quiet(function: Callable[..., _T]) -> Callable[..., _T]:
    """Silence openstacksdk's deprecation warnings for the size fields we read on purpose (see above)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"openstack(\.|$)")
            return function(*args, **kwargs)

    return wrapper


@_quiet
def host_from_hypervisor(
    hypervisor: Any, where: str, region: str, ratios: AllocationRatios, gpus: int = 0
) -> Host:
    """A `Host` from an openstacksdk `Hypervisor` resource."""
    name = getattr(hypervisor, "name", None)
    if not isinstance(name, str) or not name:
        raise InventoryError(f"{where}.hypervisor_hostname: missing")
    where = f"{where} ({name})"
    return Host(
        name=name,
        region=region,
        vcpus=_size(hypervisor, "vcpus", where, 1),
        ram_mb=_size(hypervisor, "memory_size", where, 1),
        disk_gb=_size(hypervisor, "local_disk_size", where, 0),
        gpus=gpus,
        up=getattr(hypervisor, "state", "up") == "up",
        disabled=getattr(hypervisor, "status", "enabled") != "enabled",
        cpu_allocation_ratio=ratios.cpu,
        ram_allocation_ratio=ratios.ram,
        disk_allocation_ratio=ratios.disk,
    )


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


@_quiet
def vm_from_server(server: Any, where: str, usage: VmUsage | None = None) -> VM:
    """A `VM` from an openstacksdk `Server` resource with its embedded flavor."""
    server_id = getattr(server, "id", None)
    if not isinstance(server_id, str) or not server_id:
        raise InventoryError(f"{where}.id: missing")
    where = f"{where} ({server_id})"
    host = getattr(server, "hypervisor_hostname", None) or getattr(server, "compute_host", None)
    if not isinstance(host, str) or not host:
        raise InventoryError(f"{where}.hypervisor_hostname: missing (admin credentials are needed)")
    flavor = getattr(server, "flavor", None)
    if flavor is None:
        raise InventoryError(f"{where}.flavor: missing (Nova API microversion 2.47 or later embeds it)")
    extra_specs = getattr(flavor, "extra_specs", None) or {}
    gpus = sum(int(extra_specs.get(key, 0) or 0) for key in GPU_RESOURCE_KEYS)
    metadata = getattr(server, "metadata", None) or {}
    tags = set(getattr(server, "tags", None) or [])
    status = str(getattr(server, "status", "") or "").upper()
    return VM(
        id=server_id,
        host=host,
        flavor=Flavor(
            name=str(getattr(flavor, "original_name", None) or getattr(flavor, "name", None) or "unknown"),
            vcpus=_size(flavor, "vcpus", f"{where}.flavor", 1),
            ram_mb=_size(flavor, "ram", f"{where}.flavor", 1),
            disk_gb=_size(flavor, "disk", f"{where}.flavor", 0),
            gpus=gpus,
        ),
        cpu_util_percent=100 if usage is None else usage.cpu_util_percent,
        ram_used_mb=None if usage is None else usage.ram_used_mb,
        pinned=_truthy(metadata.get(PINNED_KEY, "")) or PINNED_KEY in tags,
        excluded=_truthy(metadata.get(EXCLUDED_KEY, ""))
        or EXCLUDED_KEY in tags
        or status not in MOVABLE_STATUSES,
        live_migratable=status == "ACTIVE" and gpus == 0,
    )


def inventory_from_openstack(
    hypervisors: Iterable[Any],
    servers: Iterable[Any],
    region: str,
    ratios: AllocationRatios | None = None,
    gpus_by_host: Mapping[str, int] | None = None,
    usage: Mapping[str, VmUsage] | None = None,
) -> Inventory:
    """Map Nova records of one cloud (one market region) to an inventory."""
    ratios = ratios or AllocationRatios()
    gpus_by_host = gpus_by_host or {}
    usage = usage or {}
    hosts = []
    for position, hypervisor in enumerate(hypervisors):
        name = getattr(hypervisor, "name", "")
        hosts.append(
            host_from_hypervisor(
                hypervisor, f"hypervisors[{position}]", region, ratios, gpus_by_host.get(name, 0)
            )
        )
    vms = []
    for position, server in enumerate(servers):
        server_id = getattr(server, "id", "")
        vms.append(vm_from_server(server, f"servers[{position}]", usage.get(server_id)))
    try:
        return Inventory(regions=(region,), hosts=tuple(hosts), vms=tuple(vms))
    except InventoryError as exc:  # name the places as Nova lists them
        text = str(exc)
        for ours, nova in (("hosts[", "hypervisors["), ("vms[", "servers[")):
            if text.startswith(ours):
                text = nova + text[len(ours) :]
        raise InventoryError(text) from None


@dataclass(frozen=True)
class OpenStackInventorySource:
    """Reads a cloud through openstacksdk (`clouds.yaml` entry `cloud`, or a ready `connection`)."""

    region: str
    cloud: str | None = None
    connection: Any = None
    ratios: AllocationRatios = field(default_factory=AllocationRatios)
    gpus_by_host: Mapping[str, int] = field(default_factory=dict)
    usage: Mapping[str, VmUsage] = field(default_factory=dict)

    def load(self) -> Inventory:
        connection = self.connection
        if connection is None:
            try:
                import openstack
            except ImportError:
                raise InventoryError(
                    "the OpenStack source needs openstacksdk: pip install 'fedmarket[openstack]'"
                ) from None
            try:
                connection = openstack.connect(cloud=self.cloud)
            except Exception as exc:  # openstacksdk raises many types for bad configuration
                raise InventoryError(f"cannot connect to cloud {self.cloud!r}: {exc}") from None
        try:
            hypervisors = list(connection.compute.hypervisors(details=True))
            servers = list(connection.compute.servers(details=True, all_projects=True))
        except Exception as exc:  # network and API errors of the cloud, reported as ours
            raise InventoryError(f"cannot read the inventory from the cloud: {exc}") from None
        return inventory_from_openstack(
            hypervisors, servers, self.region, self.ratios, self.gpus_by_host, self.usage
        )
