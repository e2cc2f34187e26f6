"""Execute chapter notebooks in place and store their outputs (used by `make notebooks`).

    python tools/execute_notebooks.py book/ch01_xavier_he.ipynb [...]

Each notebook runs top to bottom in a fresh kernel of the current Python environment, with
its own folder as working directory, as on the website and under nbval. A cell tagged
``raises-exception`` (an exercise stub) may raise; any other error stops with a non-zero exit.
Cell timing metadata is not recorded, so re-running a notebook changes only its outputs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",  # python3 resolves to the interpreter running this script
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        print(f"executing {path} ...", flush=True)
        elapsed = execute(path, args.timeout)
        print(f"  done in {elapsed:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
