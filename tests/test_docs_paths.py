"""Every file the README and docs/ name exists: a page must not send a reader to a module that was moved
(docs/observability.md once named ``dashboard.py`` and ``dashboard_urls.py`` long after they were gone)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]
#: A file name as the pages write one: ``connection_pools/api/docs.py``, ``docs/adopting.md``, ``LICENSE`` aside.
NAMED = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.(?:py|md|yml|yaml|txt|html|js|css|toml|sh|png))"
                   r"(?![\w/])")
#: Named on purpose though not in this repository: Django's test runner, files tests write, an adopter's own
#: project in the examples.
ELSEWHERE = ("runtests.py", "test-artifacts/", "myproject/")


def tracked() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode()
    return set(filter(None, listed.split("\0")))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_file_a_page_names_exists(page: Path) -> None:
    files = tracked()
    missing = []
    for name in sorted(set(NAMED.findall(page.read_text()))):
        if name.startswith(ELSEWHERE) or (page.parent / name).resolve().exists() or (SHARED / name).exists():
            continue  # a link relative to the page (../bench/RESULTS.md), or the shared design beside the checkout
        # A path as written from the root, or the tail of one (``sources/census.py`` in a list of sources).
        if not any(path == name or path.endswith("/" + name) for path in files):
            missing.append(name)
    assert missing == [], f"{page.relative_to(ROOT)} names files that do not exist: {missing}"
