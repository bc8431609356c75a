"""Inventory files: the documented format loads, and every bad file gets an error naming its place."""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.capacity import FileInventorySource, InventoryError, load_inventory_file, parse_inventory

GOOD: dict[str, Any] = {
    "version": 1,
    "regions": ["eu-west", "eu-central"],
    "flavors": {"m1.large": {"vcpus": 4, "ram_mb": 8192, "disk_gb": 80}},
    "hosts": [
        {"name": "cmp-1", "region": "eu-west", "vcpus": 32, "ram_mb": 262144, "disk_gb": 2000},
        {
            "name": "cmp-2",
            "region": "eu-central",
            "vcpus": 16,
            "ram_mb": 131072,
            "disk_gb": 1000,
            "gpus": 2,
            "state": "down",
            "disabled": True,
            "cpu_allocation_ratio": "1.5",
            "ram_allocation_ratio": 1.0,
        },
    ],
    "vms": [
        {"id": "vm-1", "host": "cmp-1", "flavor": "m1.large", "cpu_util_percent": 35, "ram_used_mb": 6000},
        {
            "id": "vm-2",
            "host": "cmp-2",
            "flavor": {"vcpus": 8, "ram_mb": 16384, "gpus": 1},
            "pinned": True,
            "excluded": False,
        },
    ],
}


def _with(path: str, value: object) -> dict[str, Any]:
    """GOOD with one field replaced (value None: removed); path like 'hosts/0/ram_mb'."""
    document = copy.deepcopy(GOOD)
    *parents, last = path.split("/")
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is None:
        del node[key]
    else:
        node[key] = value
    return document


def test_yaml_and_json_files_load_the_same_inventory(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "inv.json").write_text(json.dumps(GOOD))
    from_yaml = load_inventory_file(tmp_path / "inv.yaml")
    from_json = FileInventorySource(tmp_path / "inv.json").load()
    assert from_yaml == from_json
    assert from_yaml.regions == ("eu-west", "eu-central")
    host = from_yaml.host("cmp-2")
    assert (host.up, host.disabled, host.cpu_allocation_ratio) == (False, True, Fraction(3, 2))
    assert host.allocatable() == (24, 131072, 1000, 2)
    vm1, vm2 = from_yaml.vms
    assert vm1.flavor.name == "m1.large" and vm1.demand() == (4, 8192, 80, 0, 1400, 6000)
    assert vm2.pinned and not vm2.live_migratable  # GPU flavors default to cold migration
    assert from_yaml.host("cmp-1").cpu_allocation_ratio == Fraction(4)  # Nova's default


def test_genesis_regions_replace_the_file_list() -> None:
    inventory = parse_inventory(_with("regions", None), regions=["eu-west", "eu-central", "us-east"])
    assert inventory.regions == ("eu-west", "eu-central", "us-east")


@pytest.mark.parametrize(
    ("document", "regions", "message"),
    [
        (_with("hosts/1/ram_mb", None), None, "hosts[1].ram_mb: missing"),
        (_with("hosts/0/ram_mb", -4), None, "hosts[0].ram_mb: must be a positive integer"),
        (_with("hosts/0/vcpus", "32"), None, "hosts[0].vcpus: must be a positive integer"),
        (_with("hosts/0/disk_gb", -1), None, "hosts[0].disk_gb: must be an integer >= 0"),
        (_with("hosts/0/cpu_allocation_ratio", 0), None, "hosts[0].cpu_allocation_ratio: must be in"),
        (_with("hosts/0/state", "sleeping"), None, "hosts[0].state: must be 'up' or 'down'"),
        (_with("hosts/0/ram_gb", 4), None, "hosts[0]: unknown field 'ram_gb'"),
        (_with("hosts/1/region", "mars"), None, "hosts[1].region: unknown region 'mars'"),
        (_with("hosts/1/name", "cmp-1"), None, "hosts[1].name: duplicate host name 'cmp-1'"),
        (_with("vms/1/id", "vm-1"), None, "vms[1].id: duplicate VM id 'vm-1'"),
        (_with("vms/0/host", "cmp-9"), None, "vms[0].host: unknown host 'cmp-9'"),
        (_with("vms/0/flavor", "m9.huge"), None, "vms[0].flavor: unknown flavor 'm9.huge'"),
        (_with("vms/1/flavor", {"vcpus": 512, "ram_mb": 1024}), None, "vms[1].flavor: 512 vCPU"),
        (_with("vms/1/flavor", {"vcpus": 2, "ram_mb": 1024, "gpus": 3}), None, "larger than any host"),
        (_with("vms/1/flavor", {"vcpus": 2}), None, "vms[1].flavor.ram_mb: missing"),
        (_with("vms/0/cpu_util_percent", 140), None, "vms[0].cpu_util_percent: must be at most 100"),
        (_with("vms/0/ram_used_mb", 9000), None, "vms[0].ram_used_mb: must be an integer in"),
        (_with("vms/0/pinned", "yes"), None, "vms[0].pinned: must be true or false"),
        (
            _with("flavors/m1.large", {"vcpus": 0, "ram_mb": 1}),
            None,
            "flavors.m1.large.vcpus: must be a positive",
        ),
        (_with("regions", None), None, "regions: missing"),
        (_with("version", 2), None, "version: unsupported"),
        (_with("hosts", {"a": 1}), None, "hosts: must be a list"),
        (GOOD, ["eu-west"], "regions[1]: unknown region 'eu-central'"),
        ([1, 2], None, "inventory: must be a mapping"),
    ],
)
def test_bad_documents_name_the_place(document: object, regions: list[str] | None, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(document, regions)
    assert message in str(caught.value)


def test_bad_files_name_the_file_and_the_place(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(_with("hosts/0/ram_mb", -1)))
    with pytest.raises(InventoryError, match=r"inv\.yaml: hosts\[0\]\.ram_mb: must be a positive integer"):
        load_inventory_file(path)
    path.write_text("hosts:\n  - name: a\n    vcpus: [1,\n")
    with pytest.raises(InventoryError, match=r"inv\.yaml: line \d+, column \d+: not valid YAML/JSON"):
        load_inventory_file(path)
    path.write_text("a: &x [1, 2]\nb: *x\n")
    with pytest.raises(
        InventoryError, match="line 2, column 4: not valid YAML/JSON: aliases are not allowed"
    ):
        load_inventory_file(path)
    bad_json = tmp_path / "inv.json"
    bad_json.write_text('{"hosts": [1,]}')
    with pytest.raises(InventoryError, match=r"inv\.json: line 1, column 14: not valid JSON"):
        load_inventory_file(bad_json)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory_file(path)
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory_file(tmp_path / "missing.yaml")
