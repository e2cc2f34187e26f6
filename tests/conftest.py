"""Project-wide pytest configuration.

Registers the ``book`` marker and runs the tests that carry it last: they need the whole
website built (several minutes), so every faster test, nbval included, reports first. Deselect
them with ``-m "not book"``.

The build itself starts in the background as soon as the tests are collected, when a selected
test needs it: `make test` runs one BLAS thread per process, so the build (one process, one
core) and the other tests (the other core) run side by side instead of one after the other.
The book tests then wait for it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
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
    if any("built_book" in getattr(item, "fixturenames", ()) for item in items) and not _reuse_build():
        _Build.start()


BUILD_TIMEOUT = 1800  # seconds, from the start of the build


def _reuse_build() -> bool:
    return os.environ.get("SIGPROP_REUSE_BUILD") == "1" and (ROOT / "_build" / "html" / "index.html").exists()


class _Build:
    """The one build of the website of this session, run as `make book` does, in the background."""

    proc = None
    log = None
    started = 0.0

    @classmethod
    def start(cls):
        if cls.proc is not None:
            return
        jb = Path(sys.executable).with_name("jupyter-book")
        command = [str(jb) if jb.exists() else shutil.which("jupyter-book") or "jupyter-book", "build", ".",
                   *BUILD_FLAGS]
        cls.log = tempfile.TemporaryFile(mode="w+", encoding="utf8")  # a file, not a pipe: a pipe can fill up
        cls.started = time.monotonic()
        cls.proc = subprocess.Popen(command, cwd=ROOT, stdout=cls.log, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)

    @classmethod
    def result(cls):
        cls.start()
        try:
            cls.proc.wait(timeout=max(1.0, BUILD_TIMEOUT - (time.monotonic() - cls.started)))
        except subprocess.TimeoutExpired:
            cls.stop()
            raise
        cls.log.seek(0)
        return cls.proc.returncode, re.sub(r"\x1b\[[0-9;]*m", "", cls.log.read())

    @classmethod
    def stop(cls):
        if cls.proc is not None and cls.proc.poll() is None:
            os.killpg(cls.proc.pid, 9)  # the build and the kernels it started
            cls.proc.wait()


def pytest_unconfigure(config):
    _Build.stop()  # a session that ends early (-x, Ctrl-C) does not leave a build running


@pytest.fixture(scope="session")
def built_book():
    """The website built into _build/html as `make book` does, once per session (the build
    test of test_project.py and the browser tests of test_site.py share it; the build started
    when the tests were collected); returns the exit status and the log. With
    ``SIGPROP_REUSE_BUILD=1`` and an existing ``_build/html``, it does not build and reuses that
    site (e.g. to re-run tests/test_site.py after `make book`)."""
    if _reuse_build():
        return 0, "reused _build/html (SIGPROP_REUSE_BUILD=1)"
    return _Build.result()
