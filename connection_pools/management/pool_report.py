"""``manage.py poolstats`` as text: every group's entries in their kind's lines (the descriptors'
:class:`~connection_pools.core.figures.TextBlock`), with each pool's health, then the recommendations.

It reads what :meth:`~connection_pools.service.ConnectionPoolService.pool_stats` answers (the public
JSON, by its public keys), as the dashboard does; it branches on no kind.
"""

from __future__ import annotations

import string
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..core.figures import TextBlock, TextLine
from ..core.kinds import OTHER_GROUP, PoolKind
from ..core.responses import Entry, HealthJSON
from ..sources.kinds import groups, kind_of


def ms(seconds: object) -> str:
    return "-" if not isinstance(seconds, int | float) else f"{seconds * 1000:.2f} ms"


class _Formatter(string.Formatter):
    """``str.format`` with ``:ms`` (seconds shown as milliseconds) and ``-`` for a null value."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "ms":
            return ms(value)
        if value is None:
            return "-"
        return str(super().format_field(value, format_spec))


_formatter = _Formatter()


def render(line: TextLine, entry: Mapping[str, object], **extra: object) -> str:
    """One line of an entry: its template, then each tail whose value is not null."""
    values = {**entry, **extra}
    text = _formatter.vformat(line.template, (), values)
    return text + "".join(_formatter.vformat(tail, (), values) for key, tail in line.tails
                          if entry.get(key) is not None)


def pool_groups(stats: Mapping[str, object]) -> Iterator[tuple[str, dict[str, Entry]]]:
    """The groups of pools in a stats body, in the registered order (then ``other_pools``)."""
    for group in (*groups(), OTHER_GROUP):
        entries = stats.get(group)
        if isinstance(entries, dict):
            yield group, entries


def entry_kind(group: str, entry: Mapping[str, object]) -> PoolKind:
    """The kind of an entry: its ``kind`` (a database group holds two), else its group's."""
    kind = entry.get("kind")
    if isinstance(kind, str):
        return kind_of(kind)
    registered = groups().get(group)
    return registered[0] if registered else kind_of(group)


def health_text(health: HealthJSON | None, pool: object) -> str:
    check = health.get("pools", {}).get(str(pool)) if health is not None and pool is not None else None
    if check is None:
        return "health unknown"
    text = "healthy" if check.get("healthy") else "UNHEALTHY"
    latency = check.get("latency_ms")
    if isinstance(latency, int | float):
        text += f" ({latency:.1f} ms)"
    if check.get("error"):
        text += f": {check['error']}"
    return text


def group_lines(group: str, entries: Mapping[str, Entry], health: HealthJSON | None) -> list[str]:
    """A group's block: each entry's lines (by key), under the group's heading."""
    lines: list[str] = []
    heading: str | None = None
    for key, entry in sorted(entries.items()):
        block: TextBlock | None = entry_kind(group, entry).poolstats
        if block is None:
            continue
        if block.heading and heading is None:
            heading = block.heading
            lines.append(heading)
        lines += [render(line, entry, key=key, health=health_text(health, entry.get("pool"))) for line in block.lines]
        if block.separate:
            lines.append("")
    if heading is not None:
        lines.append("")
    return lines


def format_report(stats: Mapping[str, object], health: HealthJSON | None) -> str:
    """The human table: one block per pool, by group, then the recommendations."""
    processes = stats.get("processes")
    count = processes.get("count", 0) if isinstance(processes, dict) else 0
    generated = stats.get("generated_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                         time.gmtime(generated if isinstance(generated, int | float) else time.time()))
    status = health.get("status", "unknown") if health is not None else "unknown"
    lines = [f"Connection pools: {count} process(es) reporting, overall {status}, at {when}", ""]
    for group, entries in pool_groups(stats):
        lines += group_lines(group, entries, health)
    recs = recommendations(stats)
    lines.append("Recommendations:" if recs else "Recommendations: none")
    for rec in recs:
        lines.append(f"  [{str(rec.get('severity', '')).upper()}] {rec.get('pool')}: {rec.get('issue')} - "
                     f"{rec.get('suggestion')}")
    return "\n".join(lines)


def recommendations(stats: Mapping[str, object]) -> list[dict[str, object]]:
    found = stats.get("recommendations")
    return [rec for rec in found if isinstance(rec, dict)] if isinstance(found, list) else []
