"""Printing results: JSON for scripts (`--json`), aligned plain-text tables and fields for people.

Theory: the JSON output is the node's answer as is, so scripts see exactly the documented RPC fields. The text
output is derived from the same data by a few generic rules, so a field the node adds later still shows:
nested objects flatten to dotted names (`header.height`), a list of objects becomes a table whose columns are
the union of their fields, and scalars print plainly (no value is ever shortened: ids must stay copyable).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

EMPTY = "-"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def print_text(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cell(value: Any) -> str:
    """A scalar as text; lists of scalars comma-joined; anything nested as compact JSON."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value if value.isprintable() else json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(_is_scalar(item) for item in value):
        return ", ".join(cell(item) for item in value) if value else EMPTY
    return json.dumps(value, separators=(",", ":"))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects folded into dotted keys; other values kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned with two spaces; integer columns aligned right."""
    text_rows = [[cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in text_rows:
        widths = [max(width, len(text)) for width, text in zip(widths, row, strict=True)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int) and not isinstance(row[i], bool) for row in rows)
        for i in range(len(headers))
    ]
    lines = ["  ".join(header.upper().ljust(width) for header, width in zip(headers, widths, strict=True))]
    for row in text_rows:
        padded = [
            text.rjust(width) if right else text.ljust(width)
            for text, width, right in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(padded))
    return "\n".join(line.rstrip() for line in lines)


def render_records(records: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()) -> str:
    """A table of objects: `columns` first (those present), then every other field in order of appearance."""
    if not records:
        return "(none)"
    flat = [flatten(record) for record in records]
    seen = [column for column in columns if any(column in row for row in flat)]
    for row in flat:
        seen.extend(key for key in row if key not in seen)
    return render_table(seen, [[row.get(key) for key in seen] for row in flat])


def render_fields(data: Mapping[str, Any]) -> str:
    """`name  value` lines for the scalar fields, then a titled table for each list of objects."""
    flat = flatten(data)
    scalars = {key: value for key, value in flat.items() if not _is_table(value)}
    width = max((len(key) for key in scalars), default=0)
    blocks = ["\n".join(f"{key.ljust(width)}  {cell(value)}".rstrip() for key, value in scalars.items())]
    for key, value in flat.items():
        if _is_table(value):
            blocks.append(f"{key}:\n{render_records(value)}")
    return "\n\n".join(block for block in blocks if block)


def render(data: Any, columns: Sequence[str] = ()) -> str:
    """The readable form of any JSON result."""
    if isinstance(data, Mapping):
        return render_fields(data) or "(empty)"
    if isinstance(data, list) and all(isinstance(item, Mapping) for item in data):
        return render_records(data, columns)
    return cell(data)
