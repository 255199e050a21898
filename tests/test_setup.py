"""What a new user runs besides the server: the settings, the environment scripts, the built
package and the benchmarks' entry points."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from store.settings import Settings, secret_key
from tests.test_cli import clean_env

ROOT = Path(__file__).resolve().parents[1]


def test_the_secret_key_is_never_shown_and_a_generated_one_lives_beside_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNIDESK_SECRET_KEY", raising=False)  # the PostgreSQL fixtures set one
    configured = Settings(secret_key="k" * 40, database_url="sqlite:///omnidesk.db")
    assert "k" * 40 not in repr(configured) and "k" * 40 not in str(configured.model_dump())
    assert secret_key(configured) == "k" * 40

    # Run from anywhere, a database named by its absolute path gets the key kept beside it.
    settings = Settings(database_url=f"sqlite:///{tmp_path}/shop/omnidesk.db")
    assert settings.key_file() == tmp_path / "shop" / ".omnidesk" / "secret_key"
    (tmp_path / "shop").mkdir()
    key = secret_key(settings)
    assert (tmp_path / "shop" / ".omnidesk" / "secret_key").read_text() == key
    assert secret_key(Settings(database_url=f"sqlite:///{tmp_path}/shop/omnidesk.db")) == key


def test_the_log_level_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIDESK_LOG_LEVEL", "warning")
    assert Settings().log_level == "WARNING"
    assert logging.getLevelName(Settings().log_level) == logging.WARNING
    monkeypatch.setenv("OMNIDESK_LOG_LEVEL", "chatty")
    with pytest.raises(ValidationError, match="unknown log level"):
        Settings()


def test_the_database_is_named_without_its_password() -> None:
    assert Settings(database_url="postgresql://shop:pw@db.internal:5433/desk").database_label() == \
        "PostgreSQL db.internal:5433/desk"
    assert Settings(database_url="sqlite:///./omnidesk.db").database_label() == f"SQLite {Path.cwd() / 'omnidesk.db'}"


def test_setup_env_reuses_the_test_environment_for_run() -> None:
    """scripts/run after scripts/test must not reinstall (it did, every time, each undoing the other)."""
    stamps = sorted(p.name for p in (ROOT / ".venv").glob(".installed-*"))
    assert any(name.endswith("-test") for name in stamps), stamps  # made by scripts/test, which runs this
    done = subprocess.run([str(ROOT / "scripts" / "setup-env")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr
    assert sorted(p.name for p in (ROOT / ".venv").glob(".installed-*")) == stamps


def test_the_wheel_builds_quietly_without_bench_or_tests(tmp_path: Path) -> None:
    """The licence is an SPDX string (the table form made setuptools warn on each of three build
    steps), and bench/ and tests/ stay in the checkout."""
    source = tmp_path / "src"
    skip = shutil.ignore_patterns(".venv", ".git", "*.db*", "__pycache__", "node_modules", ".pytest_cache")
    shutil.copytree(ROOT, source, ignore=skip)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    assert "license" not in built.stderr.lower(), built.stderr
    [wheel] = (tmp_path / "dist").glob("omnidesk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"cli.py", "cli_startup.py", "workers.py", "store/settings.py"} <= set(names)
    assert not [n for n in names if n.startswith(("bench/", "tests/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: AGPL-3.0-or-later" in zipfile.ZipFile(wheel).read(metadata).decode()


def test_a_benchmark_runs_by_path_from_any_directory(tmp_path: Path) -> None:
    for script in ("ingest.py", "email_ingest.py"):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--help"], cwd=tmp_path,
                              capture_output=True, text=True, env=clean_env(), timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: omnidesk bench")


def test_omnidesk_bench_from_a_checkout_and_outside_one(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cli", "bench", "ingest", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.returncode == 0 and "--concurrency" in done.stdout, done.stderr  # the benchmark's own help

    # The same command installed without the checkout beside it: a clear message, no traceback.
    installed = tmp_path / "site"
    installed.mkdir()
    shutil.copy(ROOT / "cli.py", installed / "cli.py")
    env = clean_env(PYTHONPATH=f"{installed}")
    done = subprocess.run([sys.executable, "-m", "cli", "bench", "email"], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "run from its source checkout" in done.stderr
