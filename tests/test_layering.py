"""The dependency rule of DESIGN.md, checked on the source: ``connectors`` uses none of omnidesk's
other packages, ``store`` uses only ``connectors``, ``router`` uses only ``store`` and ``connectors``,
``brokers`` (the broker's construction) only ``store``'s settings; ``pacing`` (send slots) only
``connectors``' contract types, and no connector imports it; ``fetching`` (the fetch job's work)
``connectors`` and ``store``; ``delivery`` (the deliver job's work) those, ``pacing`` and ``fetching``'s backoff;
nothing shipped imports ``bench`` or ``tests``. Read from the code's imports (module level and
inside functions), so a lazy import cannot slip past."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP = {"connectors", "store", "router", "web", "workers", "brokers", "pacing", "fetching", "delivery", "cli", "bench",
       "tests"}

FORBIDDEN = {
    "connectors": {"store", "router", "web", "workers", "pacing", "fetching", "delivery", "cli", "bench", "tests"},
    "store": {"router", "web", "workers", "pacing", "fetching", "delivery", "cli", "bench", "tests"},
    "router": {"web", "workers", "pacing", "fetching", "delivery", "cli", "bench", "tests"},
    "web": {"cli", "bench", "tests"},
    "workers": {"web", "cli", "bench", "tests"},
    "brokers": {"connectors", "router", "web", "workers", "delivery", "cli", "bench", "tests"},
    "pacing": {"store", "router", "web", "workers", "fetching", "delivery", "cli", "bench", "tests"},
    "fetching": {"router", "web", "workers", "pacing", "delivery", "cli", "bench", "tests"},
    "delivery": {"router", "web", "workers", "cli", "bench", "tests"},
}


def imported_packages(path: Path) -> set[str]:
    """The omnidesk top-level names a file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in TOP)
    return found


def sources(package: str) -> list[Path]:
    if package in ("workers", "brokers", "pacing", "fetching", "delivery"):
        return [ROOT / f"{package}.py"]
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts or p.name == "env.py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sources(package)
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: a lazy import inside a function is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from store.db import get_engine\n    import web.app\n")
    assert imported_packages(sample) == {"store", "web"}
