"""The capacity planner: inventory, consolidation strategies, action plans and the offers they free.

Entry points for the CLI: `load_inventory_file` (or an `InventorySource`), `make_plan`, `format_plan` /
`plan_to_json`, `plan_hash` / `indicators` (the on-chain plan reference) and `offer_specs`.
"""

from node.capacity.errors import CapacityError, InventoryError, PlanError
from node.capacity.inventory import FileInventorySource, InventorySource, load_inventory_file, parse_inventory
from node.capacity.model import VM, Flavor, Host, Inventory, LoadLimits, inventory_hash
from node.capacity.plan import (
    ActionPlan,
    ClassQuantity,
    Migration,
    RegionCapacity,
    format_plan,
    indicators,
    plan_hash,
    plan_to_json,
    plan_to_json_text,
    validate_plan,
)
from node.capacity.spare import (
    DEFAULT_RESOURCE_CLASSES,
    OfferSpec,
    Reserve,
    ResourceClass,
    offer_specs,
    parse_reserve,
    parse_resource_classes,
    spare_capacity,
)
from node.capacity.strategy import (
    STRATEGY_NAMES,
    PlanOptions,
    ProgressCallback,
    Strategy,
    get_strategy,
    make_plan,
)

__all__ = [
    "DEFAULT_RESOURCE_CLASSES",
    "STRATEGY_NAMES",
    "VM",
    "ActionPlan",
    "CapacityError",
    "ClassQuantity",
    "FileInventorySource",
    "Flavor",
    "Host",
    "Inventory",
    "InventoryError",
    "InventorySource",
    "LoadLimits",
    "Migration",
    "OfferSpec",
    "PlanError",
    "PlanOptions",
    "ProgressCallback",
    "RegionCapacity",
    "Reserve",
    "ResourceClass",
    "Strategy",
    "format_plan",
    "get_strategy",
    "indicators",
    "inventory_hash",
    "load_inventory_file",
    "make_plan",
    "offer_specs",
    "parse_inventory",
    "parse_reserve",
    "parse_resource_classes",
    "plan_hash",
    "plan_to_json",
    "plan_to_json_text",
    "spare_capacity",
    "validate_plan",
]
