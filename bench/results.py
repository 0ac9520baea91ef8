"""``bench/RESULTS.md``: each benchmark script owns one section of it, between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->``, and rewrites only that one."""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of section ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace section ``name`` of ``path`` with ``markdown`` (appended when missing;
    the file is created when absent); every other section is left as it is."""
    start, end = markers(name)
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        path.write_text(head + block + tail)
    else:
        path.write_text(text.rstrip("\n") + "\n\n" + block + "\n")


def parse_round_args(description: str, argv: list[str] | None) -> argparse.Namespace:
    """``--rounds``, ``--duration`` and ``--no-write``, as the interleaved HTTP benchmarks take them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per HTTP round and side (default 5)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch RESULTS.md")
    args = parser.parse_args(argv)
    if not (1 <= args.rounds <= 20 and 1 <= args.duration <= 120):
        parser.error("--rounds must be 1..20 and --duration 1..120 seconds")
    return args


def publish(name: str, section: str, *, no_write: bool) -> None:
    """Print ``section``; unless ``no_write``, write it as section ``name`` of RESULTS.md."""
    print()
    print(section)
    if not no_write:
        write_section(name, section)
        print(f"written to {RESULTS.relative_to(RESULTS.parents[1])}")
