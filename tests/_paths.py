"""Where the tests find things outside the repository."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The offline data folder: ``$SIGPROP_TEST_DATA``, else ``<repo>/../shared/data``.

    It may not exist (a fresh clone); tests that need it skip.
    """
    env = os.environ.get("SIGPROP_TEST_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"
