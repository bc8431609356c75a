"""Durations as people type them: `90s`, `30m`, `2h`, `3d`, or a combination such as `1h30m`.

Theory: the ledger counts whole seconds; a person counts minutes, hours and days. A duration is one or more
`<digits><unit>` parts with units d, h, m, s, each at most once and from the largest unit down, so every text
has one meaning and `format_duration` gives the canonical spelling of a number of seconds (`1h30m`). Zero,
negative numbers, bare numbers without a unit, and anything else are rejected with a message saying what is
accepted.
"""

from __future__ import annotations

import re

from ledger.tx import MAX_DURATION_S

UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
MAX_DURATION_TEXT = 40
_DURATION = re.compile(r"(?:([0-9]{1,12})d)?(?:([0-9]{1,12})h)?(?:([0-9]{1,12})m)?(?:([0-9]{1,12})s)?")
ACCEPTED = "a duration like 90s, 30m, 2h, 3d or 1h30m"


class DurationError(ValueError):
    """A text that is not a positive duration within the ledger's bound."""


def parse_duration(text: str, max_seconds: int = MAX_DURATION_S) -> int:
    """Seconds in `text`; raises `DurationError` unless it is a positive duration of at most `max_seconds`."""
    match = _DURATION.fullmatch(text) if len(text) <= MAX_DURATION_TEXT else None
    if not text or match is None:
        hint = " (add a unit: s, m, h or d)" if text.isdigit() else ""
        raise DurationError(f"{text!r} is not {ACCEPTED}{hint}")
    seconds = sum(
        int(count) * UNIT_SECONDS[unit]
        for count, unit in zip(match.groups(), UNIT_SECONDS, strict=True)
        if count is not None
    )
    if seconds == 0:
        raise DurationError(f"{text!r} is zero; a duration must be positive")
    if seconds > max_seconds:
        raise DurationError(f"{text!r} is longer than the limit of {format_duration(max_seconds)}")
    return seconds


def format_duration(seconds: int) -> str:
    """The canonical text (largest units first) that `parse_duration` reads back as `seconds` (> 0)."""
    if seconds <= 0:
        raise DurationError(f"{seconds} is not a positive number of seconds")
    parts = []
    for unit, size in UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
