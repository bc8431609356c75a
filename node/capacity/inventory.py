"""Inventory sources: the documented JSON/YAML file format, and the interface every source implements.

Theory: a file is untrusted input. It is read with a size bound, parsed as JSON (`.json`) or with the safe
YAML loader without aliases (anything else), and every field is checked where it stands, so an error names
its place (`hosts[3].ram_mb: must be a positive integer`). Unknown fields are errors too: a typo must not
silently become a default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import yaml

from node.capacity.errors import InventoryError
from node.capacity.model import MAX_RATIO, VM, Flavor, Host, Inventory

MAX_INVENTORY_FILE_BYTES = 64 * 1024 * 1024
FORMAT_VERSION = 1

_TOP_FIELDS = frozenset({"version", "regions", "flavors", "hosts", "vms"})
_FLAVOR_FIELDS = frozenset({"name", "vcpus", "ram_mb", "disk_gb", "gpus"})
_HOST_FIELDS = frozenset(
    {
        "name",
        "region",
        "vcpus",
        "ram_mb",
        "disk_gb",
        "gpus",
        "state",
        "disabled",
        "cpu_allocation_ratio",
        "ram_allocation_ratio",
        "disk_allocation_ratio",
    }
)
_VM_FIELDS = frozenset(
    {"id", "host", "flavor", "cpu_util_percent", "ram_used_mb", "pinned", "excluded", "live_migratable"}
)
_HOST_DEFAULT_RATIOS = {
    "cpu_allocation_ratio": Fraction(4),
    "ram_allocation_ratio": Fraction(1),
    "disk_allocation_ratio": Fraction(1),
}


class _StrictLoader(yaml.SafeLoader):
    """The safe loader without aliases: an inventory has no use for them, and they can blow a small file
    up into a huge document."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)


class InventorySource(Protocol):
    """Anything that yields an inventory: a file, a cloud API."""

    def load(self) -> Inventory: ...


def _mapping(value: object, where: str, allowed: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise InventoryError(f"{where}: must be a mapping")
    for key in value:
        if key not in allowed:
            raise InventoryError(f"{where}: unknown field {key!r} (allowed: {', '.join(sorted(allowed))})")
    return value


def _required(fields: Mapping[str, object], key: str, where: str) -> object:
    if key not in fields:
        raise InventoryError(f"{where}.{key}: missing")
    return fields[key]


def _integer(
    fields: Mapping[str, object], key: str, where: str, minimum: int, default: int | None = None
) -> int:
    value = _required(fields, key, where) if default is None else fields.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InventoryError(f"{where}.{key}: must be {kind}, got {value!r}")
    return value


def _text(fields: Mapping[str, object], key: str, where: str) -> str:
    value = _required(fields, key, where)
    if not isinstance(value, str) or not value:
        raise InventoryError(f"{where}.{key}: must be a non-empty text, got {value!r}")
    return value


def _flag(fields: Mapping[str, object], key: str, where: str, default: bool) -> bool:
    value = fields.get(key, default)
    if not isinstance(value, bool):
        raise InventoryError(f"{where}.{key}: must be true or false, got {value!r}")
    return value


def _ratio(fields: Mapping[str, object], key: str, where: str) -> Fraction:
    value = fields.get(key, _HOST_DEFAULT_RATIOS[key])
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InventoryError(f"{where}.{key}: must be a number, got {value!r}")
    try:
        ratio = Fraction(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise InventoryError(f"{where}.{key}: must be a number, got {value!r}") from None
    if not 0 < ratio <= MAX_RATIO:
        raise InventoryError(f"{where}.{key}: must be in (0, {MAX_RATIO}], got {value!r}")
    return ratio


def _flavor(value: object, where: str, named: Mapping[str, Flavor]) -> Flavor:
    if isinstance(value, str):
        if value not in named:
            raise InventoryError(f"{where}: unknown flavor {value!r}")
        return named[value]
    fields = _mapping(value, where, _FLAVOR_FIELDS)
    name = fields.get("name", "custom")
    if not isinstance(name, str):
        raise InventoryError(f"{where}.name: must be text, got {name!r}")
    return Flavor(
        name=name,
        vcpus=_integer(fields, "vcpus", where, 1),
        ram_mb=_integer(fields, "ram_mb", where, 1),
        disk_gb=_integer(fields, "disk_gb", where, 0, default=0),
        gpus=_integer(fields, "gpus", where, 0, default=0),
    )


def _host(value: object, where: str) -> Host:
    fields = _mapping(value, where, _HOST_FIELDS)
    state = fields.get("state", "up")
    if state not in ("up", "down"):
        raise InventoryError(f"{where}.state: must be 'up' or 'down', got {state!r}")
    return Host(
        name=_text(fields, "name", where),
        region=_text(fields, "region", where),
        vcpus=_integer(fields, "vcpus", where, 1),
        ram_mb=_integer(fields, "ram_mb", where, 1),
        disk_gb=_integer(fields, "disk_gb", where, 0),
        gpus=_integer(fields, "gpus", where, 0, default=0),
        up=state == "up",
        disabled=_flag(fields, "disabled", where, False),
        cpu_allocation_ratio=_ratio(fields, "cpu_allocation_ratio", where),
        ram_allocation_ratio=_ratio(fields, "ram_allocation_ratio", where),
        disk_allocation_ratio=_ratio(fields, "disk_allocation_ratio", where),
    )


def _vm(value: object, where: str, named: Mapping[str, Flavor]) -> VM:
    fields = _mapping(value, where, _VM_FIELDS)
    flavor = _flavor(_required(fields, "flavor", where), f"{where}.flavor", named)
    ram_used = fields.get("ram_used_mb")
    if ram_used is not None and (not isinstance(ram_used, int) or isinstance(ram_used, bool) or ram_used < 0):
        raise InventoryError(f"{where}.ram_used_mb: must be an integer >= 0, got {ram_used!r}")
    cpu_util = _integer(fields, "cpu_util_percent", where, 0, default=100)
    if cpu_util > 100:
        raise InventoryError(f"{where}.cpu_util_percent: must be at most 100, got {cpu_util}")
    return VM(
        id=_text(fields, "id", where),
        host=_text(fields, "host", where),
        flavor=flavor,
        cpu_util_percent=cpu_util,
        ram_used_mb=ram_used,
        pinned=_flag(fields, "pinned", where, False),
        excluded=_flag(fields, "excluded", where, False),
        live_migratable=_flag(fields, "live_migratable", where, flavor.gpus == 0),
    )


def _list(document: Mapping[str, object], key: str) -> list[object]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise InventoryError(f"{key}: must be a list")
    return value


def _regions(document: Mapping[str, object], given: Iterable[str] | None) -> tuple[str, ...]:
    listed = document.get("regions")
    if listed is not None and (not isinstance(listed, list) or not all(isinstance(r, str) for r in listed)):
        raise InventoryError("regions: must be a list of region names")
    if given is None:
        if not listed:
            raise InventoryError(
                "regions: missing (list the regions in the file or pass the genesis regions)"
            )
        return tuple(listed)
    known = tuple(given)
    for position, region in enumerate(listed or []):
        if region not in known:
            raise InventoryError(f"regions[{position}]: unknown region {region!r} (genesis: {list(known)})")
    return known


def parse_inventory(document: object, regions: Iterable[str] | None = None) -> Inventory:
    """An inventory from a parsed document; `regions` (the genesis regions) overrides the file's list."""
    top = _mapping(document, "inventory", _TOP_FIELDS)
    version = top.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise InventoryError(f"version: unsupported inventory format version {version!r}")
    flavors_field = top.get("flavors", {})
    if not isinstance(flavors_field, Mapping):
        raise InventoryError("flavors: must be a mapping from flavor name to sizes")
    named = {}
    for name, sizes in flavors_field.items():
        where = f"flavors.{name}"
        fields = _mapping(sizes, where, _FLAVOR_FIELDS - {"name"})
        named[str(name)] = _flavor({"name": str(name), **fields}, where, {})
    hosts = tuple(_host(item, f"hosts[{position}]") for position, item in enumerate(_list(top, "hosts")))
    vms = tuple(_vm(item, f"vms[{position}]", named) for position, item in enumerate(_list(top, "vms")))
    return Inventory(regions=_regions(top, regions), hosts=hosts, vms=vms)


def load_inventory_file(path: str | Path, regions: Iterable[str] | None = None) -> Inventory:
    """Read and check a JSON or YAML inventory file; every problem is an `InventoryError` naming its place."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INVENTORY_FILE_BYTES + 1)
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_INVENTORY_FILE_BYTES:
        raise InventoryError(f"{path}: larger than {MAX_INVENTORY_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        document = (
            json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader=_StrictLoader)
        )
    except UnicodeDecodeError:
        raise InventoryError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InventoryError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        place = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown place"
        raise InventoryError(f"{path}: {place}: not valid YAML/JSON: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML/JSON: {exc}") from None
    try:
        return parse_inventory(document, regions)
    except InventoryError as exc:
        raise InventoryError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class FileInventorySource:
    """An inventory file (JSON or YAML, format version 1, documented in docs/capacity.md)."""

    path: Path
    regions: tuple[str, ...] | None = None

    def load(self) -> Inventory:
        return load_inventory_file(self.path, self.regions)
