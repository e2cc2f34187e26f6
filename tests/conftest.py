"""Project-wide pytest configuration.

Registers the ``book`` marker and runs the tests that carry it last: they build the whole
website (a few minutes), so every faster test, nbval included, reports first. Deselect them
with ``-m "not book"``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The same flags as `make book` (Makefile: JB_FLAGS); test_project.py checks them too.
BUILD_FLAGS = ["--all", "--warningiserror", "--keep-going"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "book: builds the website with jupyter-book (slow; runs after every other test)"
    )
    config.addinivalue_line(
        "markers", "timing: asserts a wall-clock or CPU-time budget; deselected unless the -m expression "
        "names timing (`make bench` runs them: pytest -m timing), so a busy machine cannot fail `make test`"
    )


def pytest_collection_modifyitems(config, items):
    # Budgets depend on how busy the machine is: only an explicit `-m timing` runs them.
    if "timing" not in (config.getoption("markexpr") or ""):
        timed = [item for item in items if item.get_closest_marker("timing") is not None]
        if timed:
            config.hook.pytest_deselected(items=timed)
            items[:] = [item for item in items if item.get_closest_marker("timing") is None]
    # A stable sort: the order within each group is kept.
    items.sort(key=lambda item: item.get_closest_marker("book") is not None)


@pytest.fixture(scope="session")
def built_book():
    """Builds the website into _build/html as `make book` does, once per session (the build
    test of test_project.py and the browser tests of test_site.py share it); returns the exit
    status and the log. With ``SIGPROP_REUSE_BUILD=1`` and an existing ``_build/html``, it
    does not build and reuses that site (e.g. to re-run tests/test_site.py after `make book`)."""
    if os.environ.get("SIGPROP_REUSE_BUILD") == "1" and (ROOT / "_build" / "html" / "index.html").exists():
        return 0, "reused _build/html (SIGPROP_REUSE_BUILD=1)"
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [str(jb) if jb.exists() else shutil.which("jupyter-book") or "jupyter-book", "build", ".", *BUILD_FLAGS]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    return proc.returncode, log
