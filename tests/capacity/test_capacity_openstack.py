"""The OpenStack source maps openstacksdk's own resource objects (built locally, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
from openstack.compute.v2.hypervisor import Hypervisor
from openstack.compute.v2.server import Server

from node.capacity import InventoryError, PlanOptions, make_plan
from node.capacity.openstack_source import (
    AllocationRatios,
    OpenStackInventorySource,
    VmUsage,
    inventory_from_openstack,
)

# Building resources with the pre-2.88 size fields makes openstacksdk warn that they are deprecated.
pytestmark = pytest.mark.filterwarnings(r"ignore::Warning:openstack\..*")


def _hypervisors() -> list[Hypervisor]:
    return [
        Hypervisor(
            name="cmp-1", vcpus=32, memory_size=131072, local_disk_size=2000, state="up", status="enabled"
        ),
        Hypervisor(
            name="cmp-2", vcpus=32, memory_size=131072, local_disk_size=2000, state="up", status="enabled"
        ),
        Hypervisor(
            name="cmp-3", vcpus=32, memory_size=131072, local_disk_size=2000, state="down", status="enabled"
        ),
        Hypervisor(
            name="gpu-1", vcpus=32, memory_size=262144, local_disk_size=2000, state="up", status="disabled"
        ),
    ]


def _server(server_id: str, host: str, **extra: Any) -> Server:
    flavor = {"original_name": "m1.large", "vcpus": 4, "ram": 8192, "disk": 80, "extra_specs": {}}
    flavor.update(extra.pop("flavor", {}))
    return Server(
        id=server_id, hypervisor_hostname=host, status=extra.pop("status", "ACTIVE"), flavor=flavor, **extra
    )


def _servers() -> list[Server]:
    return [
        _server("s1", "cmp-1"),
        _server("s2", "cmp-2", metadata={"fedmarket:pinned": "true"}),
        _server("s3", "cmp-2", status="SHUTOFF"),
        _server("s4", "cmp-1", status="ERROR"),
        _server("s5", "gpu-1", flavor={"extra_specs": {"resources:VGPU": "1"}}, tags=["fedmarket:excluded"]),
    ]


def test_mapping_of_hypervisors_and_servers() -> None:
    usage = {"s1": VmUsage(25, 4096)}
    inventory = inventory_from_openstack(
        _hypervisors(), _servers(), "eu-west", AllocationRatios(cpu=Fraction(2)), {"gpu-1": 2}, usage
    )
    assert inventory.regions == ("eu-west",)
    cmp1, _, cmp3, gpu1 = inventory.hosts
    assert (cmp1.vcpus, cmp1.ram_mb, cmp1.disk_gb, cmp1.allocatable()[0]) == (32, 131072, 2000, 64)
    assert not cmp3.up and gpu1.disabled and gpu1.gpus == 2
    s1, s2, s3, s4, s5 = inventory.vms
    assert (s1.flavor.name, s1.flavor.vcpus, s1.flavor.ram_mb, s1.flavor.disk_gb) == ("m1.large", 4, 8192, 80)
    assert (s1.cpu_util_percent, s1.ram_used_mb, s1.live_migratable) == (25, 4096, True)
    assert s2.pinned and (s2.cpu_util_percent, s2.ram_used_mb) == (100, None)  # no usage: counted fully busy
    assert not s3.live_migratable and not s3.excluded  # stopped: cold migration only
    assert s4.excluded  # in error: never moved
    assert s5.excluded and s5.flavor.gpus == 1 and not s5.live_migratable


def test_openstack_inventory_plans_like_any_other() -> None:
    inventory = inventory_from_openstack(_hypervisors(), _servers()[:3], "eu-west")
    plan = make_plan(inventory, "heuristic", PlanOptions())
    assert plan.compute_nodes_count == 2
    assert [(m.vm_id, m.source, m.destination) for m in plan.migrations] == [("s1", "cmp-1", "cmp-2")]
    assert plan.hosts_to_disable == ("cmp-1",)


def test_missing_sizes_name_the_hypervisor() -> None:
    newer_api = [Hypervisor(name="cmp-1", state="up", status="enabled")]  # microversion 2.88+: no sizes
    with pytest.raises(InventoryError, match=r"hypervisors\[0\] \(cmp-1\)\.vcpus: not reported"):
        inventory_from_openstack(newer_api, [], "eu-west")
    with pytest.raises(InventoryError, match=r"servers\[0\] \(s9\)\.hypervisor_hostname: missing"):
        inventory_from_openstack(_hypervisors(), [Server(id="s9", flavor={"vcpus": 1, "ram": 1})], "eu-west")
    with pytest.raises(InventoryError, match=r"servers\[0\]\.host: unknown host 'cmp-9'"):
        inventory_from_openstack(_hypervisors(), [_server("s1", "cmp-9")], "eu-west")


@dataclass
class _Compute:
    """The two calls the source makes on `connection.compute`, answering with local resource objects."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def hypervisors(self, **query: Any) -> Iterator[Hypervisor]:
        self.calls.append(query)
        return iter(_hypervisors())

    def servers(self, **query: Any) -> Iterator[Server]:
        self.calls.append(query)
        return iter(_servers())


@dataclass
class _Connection:
    compute: _Compute = field(default_factory=_Compute)


def test_source_reads_details_of_all_projects() -> None:
    connection = _Connection()
    source = OpenStackInventorySource(region="eu-west", connection=connection, gpus_by_host={"gpu-1": 2})
    inventory = source.load()
    assert len(inventory.hosts) == 4 and len(inventory.vms) == 5
    assert connection.compute.calls == [{"details": True}, {"details": True, "all_projects": True}]
