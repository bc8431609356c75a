"""Plans as data: hash, indicators, JSON, table, offer specs, reserve and classes, checker refusals."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import pytest

from ledger.codec import decode
from node.capacity import (
    VM,
    CapacityError,
    Flavor,
    Host,
    Inventory,
    LoadLimits,
    Migration,
    PlanError,
    PlanOptions,
    Reserve,
    ResourceClass,
    format_plan,
    indicators,
    make_plan,
    offer_specs,
    parse_reserve,
    parse_resource_classes,
    plan_hash,
    plan_to_json,
    spare_capacity,
    validate_plan,
)
from node.capacity.plan import PLAN_HASH_TAG, _plan_value

FULL_LOAD = LoadLimits(1000, 1000)


def _inventory() -> Inventory:
    hosts = (
        Host("a", "eu", 8, 16384, 100, cpu_allocation_ratio=Fraction(1)),
        Host("b", "eu", 8, 16384, 100, cpu_allocation_ratio=Fraction(1)),
        Host("c", "eu", 8, 16384, 100, cpu_allocation_ratio=Fraction(1)),
        Host("d", "eu", 8, 16384, 100, cpu_allocation_ratio=Fraction(1), disabled=True),
    )
    vms = (
        VM("v1", "a", Flavor("s", 2, 2048, 10)),
        VM("v2", "b", Flavor("s", 2, 2048, 10)),
        VM("v3", "c", Flavor("s", 2, 2048, 10), pinned=True),
        VM("v4", "c", Flavor("s", 2, 2048, 10)),
    )
    return Inventory(("eu",), hosts, vms)


@pytest.fixture
def plan_and_inventory() -> tuple:  # type: ignore[type-arg]
    inventory = _inventory()
    return make_plan(inventory, "heuristic", PlanOptions(load_limits=FULL_LOAD)), inventory


def test_plan_releases_hosts_and_indicators_are_integers(plan_and_inventory: tuple) -> None:  # type: ignore[type-arg]
    plan, inventory = plan_and_inventory
    assert plan.hosts_to_disable == ("a", "b")
    assert {m.destination for m in plan.migrations} == {"c"}
    assert indicators(plan) == (
        ("compute_nodes_count", 3),
        ("released_compute_nodes_count", 2),
        ("instance_migrations_count", 2),
        ("released_nodes_ratio_permille", 666),
    )
    validate_plan(inventory, plan)


def test_plan_hash_is_stable_canonical_and_covers_every_field(plan_and_inventory: tuple) -> None:  # type: ignore[type-arg]
    plan, inventory = plan_and_inventory
    again = make_plan(inventory, "heuristic", PlanOptions(load_limits=FULL_LOAD))
    assert plan_hash(plan) == plan_hash(again) and len(plan_hash(plan)) == 32
    from ledger.codec import encode
    from ledger.hashing import tagged_hash

    encoded = encode(_plan_value(plan))
    assert decode(encoded, 1 << 20) == _plan_value(plan)
    assert plan_hash(plan) == tagged_hash(PLAN_HASH_TAG, encoded)
    for change in (
        {"migrations": plan.migrations[:1]},
        {"hosts_to_disable": ("a",)},
        {"strategy": "exact"},
        {"max_migrations": 5},
        {"offers": ()},
    ):
        assert plan_hash(dataclasses.replace(plan, **change)) != plan_hash(plan)


def test_json_and_table_views(plan_and_inventory: tuple) -> None:  # type: ignore[type-arg]
    plan, _ = plan_and_inventory
    view = json.loads(json.dumps(plan_to_json(plan)))
    assert view["plan_hash"] == plan_hash(plan).hex()
    assert view["indicators"]["released_compute_nodes_count"] == 2
    assert view["hosts_to_disable"] == ["a", "b"]
    assert view["capacity"][0]["spare"] == {"vcpus": 16, "ram_mb": 32768, "disk_gb": 200, "gpus": 0}
    assert {o["class"]: o["quantity"] for o in view["offers"]} == {"vcpu": 16, "ram-gb": 32, "disk-gb": 200}
    table = format_plan(plan)
    for text in (
        "released_compute_nodes_count",
        "hosts to disable (2): a, b",
        "ram-gb",
        plan_hash(plan).hex(),
    ):
        assert text in table


def test_offer_specs_carry_price_window_and_plan_reference(plan_and_inventory: tuple) -> None:  # type: ignore[type-arg]
    plan, _ = plan_and_inventory
    specs = offer_specs(plan, {"vcpu": 900, "ram-gb": 200, "disk-gb": 3}, 1_800_000_000, 1_800_086_400)
    assert [(s.resource_class, s.region, s.quantity, s.min_price) for s in specs] == [
        ("vcpu", "eu", 16, 900),
        ("ram-gb", "eu", 32, 200),
        ("disk-gb", "eu", 200, 3),
    ]
    assert all(s.plan_hash == plan_hash(plan) and s.indicators == indicators(plan) for s in specs)
    assert all((s.available_from, s.available_until) == (1_800_000_000, 1_800_086_400) for s in specs)
    with pytest.raises(CapacityError, match="no price floor for resource class 'disk-gb'"):
        offer_specs(plan, {"vcpu": 1, "ram-gb": 1}, 0, 10)
    with pytest.raises(CapacityError, match="availability window"):
        offer_specs(plan, {"vcpu": 1, "ram-gb": 1, "disk-gb": 1}, 10, 10)


def test_reserve_and_bundle_classes() -> None:
    inventory = _inventory()
    reserve = parse_reserve("10%,ram_mb=4096,gpus=1")
    assert reserve == Reserve((100, 100, 100, 100), (0, 4096, 0, 1))
    capacity, offers = spare_capacity(inventory, ["a", "b"], reserve)
    (region,) = capacity
    # 10% of 24 vCPU rounds up to 3; RAM: 4096 + ceil(4915.2) = 9012.
    assert region.reserve == (3, 9012, 30, 1)
    assert region.spare == (13, 32768 - 9012, 170, 0)
    bundles = parse_resource_classes({"medium": {"vcpus": 2, "ram_mb": 4096}, "vcpu": {"vcpus": 1}})
    _, offers = spare_capacity(inventory, ["a", "b"], Reserve(), bundles)
    # Each released host (8 vCPU, 16 GiB) holds 4 mediums and nothing left for single vCPUs.
    assert [(o.resource_class, o.quantity) for o in offers] == [("medium", 8)]
    for text in ("cpu=10", "vcpus=abc", "vcpus=12.55%", "5"):
        with pytest.raises(CapacityError):
            parse_reserve(text)
    with pytest.raises(CapacityError):
        parse_resource_classes({"bad": {"vcpu": 1}})
    with pytest.raises(CapacityError):
        ResourceClass("empty", (0, 0, 0, 0))


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda p: {"migrations": (Migration("v3", "c", "a", "live"),)}, "pinned or excluded"),
        (lambda p: {"migrations": (Migration("v1", "a", "d", "live"),)}, "unknown, down or disabled"),
        (lambda p: {"migrations": (Migration("v1", "b", "c", "live"),)}, "but the VM is on 'a'"),
        (lambda p: {"migrations": (Migration("v1", "a", "c", "warp"),)}, "unknown migration kind"),
        (lambda p: {"migrations": (*p.migrations, Migration("v1", "c", "b", "live"))}, "VMs remain on it"),
        (lambda p: {"hosts_to_disable": ("a",)}, "ends empty but is not released"),
        (lambda p: {"hosts_to_disable": ("a", "b", "c")}, "VMs remain on it"),
        (lambda p: {"max_migrations": 1}, "exceed the budget"),
        (lambda p: {"compute_nodes_count": 4}, "compute_nodes_count"),
        (lambda p: {"inventory_hash": bytes(32)}, "another inventory"),
    ],
)
def test_checker_refuses_broken_plans(plan_and_inventory: tuple, tamper, message: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    plan, inventory = plan_and_inventory
    with pytest.raises(PlanError, match=message):
        validate_plan(inventory, dataclasses.replace(plan, **tamper(plan)))


def test_checker_refuses_a_step_that_overloads_even_if_the_end_fits() -> None:
    # b is full; moving x onto b before y leaves it is an overload at that step, whatever the end state.
    hosts = tuple(Host(n, "eu", 4, 8192, 100, cpu_allocation_ratio=Fraction(1)) for n in ("a", "b", "c"))
    vms = (VM("x", "a", Flavor("s", 4, 1024)), VM("y", "b", Flavor("s", 4, 1024)))
    inventory = Inventory(("eu",), hosts, vms)
    plan = make_plan(inventory, "heuristic", PlanOptions(load_limits=FULL_LOAD))
    assert plan.migrations == ()
    bad_order = (Migration("x", "a", "b", "live"), Migration("y", "b", "c", "live"))
    good_order = bad_order[::-1]
    with pytest.raises(PlanError, match="over capacity after this step"):
        validate_plan(inventory, dataclasses.replace(plan, migrations=bad_order, hosts_to_disable=("a",)))
    validate_plan(inventory, dataclasses.replace(plan, migrations=good_order, hosts_to_disable=("a",)))


def test_progress_is_reported() -> None:
    hosts = tuple(Host(f"h{i}", "eu", 8, 16384, 100) for i in range(30))
    vms = tuple(VM(f"v{i}", f"h{i}", Flavor("s", 1, 1024)) for i in range(30))
    seen: list[tuple[str, int, int]] = []
    make_plan(Inventory(("eu",), hosts, vms), "heuristic", PlanOptions(), lambda *event: seen.append(event))
    assert seen[-1] == ("consolidate", 30, 30)
    assert all(done <= total for _, done, total in seen)


def test_unknown_strategy_and_bad_options() -> None:
    with pytest.raises(PlanError, match="unknown strategy"):
        make_plan(_inventory(), "greedy")
    with pytest.raises(PlanError):
        PlanOptions(max_migrations=-1)
