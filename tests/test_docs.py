"""The docs a comment sends a reader to: every section of docs/DECISIONS.md
the code cites exists, and every file a section says a rule lives in is
there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DECISIONS = (ROOT / "docs" / "DECISIONS.md").read_text()
CODE_DIRS = ("config", "api", "orders", "healing", "notifications", "dashboard", "demo", "tests")
_CITED = re.compile(r'docs/DECISIONS\.md\s+"([^"]+)"')
_PATH = re.compile(r"`((?:api|orders|healing|notifications|dashboard|config)/[\w/.*]+)`")


def sections() -> set[str]:
    return {line[3:].strip() for line in DECISIONS.splitlines() if line.startswith("## ")}


def cited_sections() -> dict[str, list[str]]:
    cited: dict[str, list[str]] = {}
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            for name in _CITED.findall(path.read_text()):
                cited.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return cited


def test_the_code_cites_the_decisions_it_follows():
    # Guard the guard: a broken pattern would pass the next test vacuously.
    assert {"Attempts", "Claim and lease", "Vendor time"} <= set(cited_sections())


def test_every_cited_section_exists():
    missing = {name: where for name, where in cited_sections().items() if name not in sections()}
    assert not missing, f"cited but not in docs/DECISIONS.md: {missing}"


def test_every_file_a_rule_lives_in_exists():
    paths = _PATH.findall(DECISIONS)
    assert len(paths) > 20
    missing = [p for p in paths if not any(ROOT.glob(p))]
    assert not missing, f"docs/DECISIONS.md names files that are not there: {missing}"
