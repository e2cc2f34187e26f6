"""Measure the book's side of "the paper beside the book" tables (``make reference``).

    python tools/reference.py --scale medium ch05            # execute, measure, store
    python tools/reference.py --scale small ch01 ch02 ...
    python tools/reference.py --scale small --from-dump ch05  # re-measure a stored run
    python tools/reference.py --workers 4 ch01 ch02 ch04 ch05 ch06  # on a Dask LocalCluster
    python tools/reference.py --scheduler tcp://host:8786 ch02      # on a running Dask cluster

For each chapter named, a temporary copy of ``book/<chapter>*.md`` is converted to a
notebook and executed top to bottom (its own folder as working directory, as on the
website) with ``SIGPROP_SCALE`` set to the scale asked for. A last cell, added to the
copy only, stores the chapter's variables (numbers, arrays, tensors, containers of them)
in a pickle. Each row of ``book/reference/<chapter>.yaml`` carries a ``measure`` snippet:
Python evaluated in a namespace made of those variables plus ``np``, ``torch`` and the
``sigprop`` modules, that sets ``value`` and ``se`` (standard error, ``None`` for a
number without sampling error) and may set ``size`` (a few words on the sizes used).
The results are written back into the row under ``book: {<scale>: ...}``.

The chapters and ``book/*.ipynb`` are never written. Nothing here runs under ``make test``;
``tests/test_reference.py`` checks the stored values against the papers'.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
TABLES = BOOK / "reference"
DUMPS = Path(os.environ.get("SIGPROP_REFERENCE_DUMPS", Path(tempfile.gettempdir()) / "sigprop-reference"))

DUMP_CELL = r'''
import pickle as _pickle, types as _types
_keep = {}
for _name, _value in list(globals().items()):
    if _name.startswith("_") or isinstance(_value, (_types.ModuleType, _types.FunctionType, type)):
        continue
    try:
        _blob = _pickle.dumps(_value)
    except Exception:
        continue
    if len(_blob) < 400_000_000:
        _keep[_name] = _value
with open(%r, "wb") as _f:
    _pickle.dump(_keep, _f)
'''


def chapter_source(chapter: str) -> Path:
    matches = sorted(BOOK.glob(f"{chapter}_*.md"))
    if len(matches) != 1:
        raise SystemExit(f"chapter must name one of book/chNN_*.md; got {chapter!r}")
    return matches[0]


def execute(chapter: str, scale: str, timeout: int = 3600) -> Path:
    """Execute a temporary copy of the chapter at ``scale``; return the pickle of its variables."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    DUMPS.mkdir(parents=True, exist_ok=True)
    dump = DUMPS / f"{chapter}-{scale}.pkl"
    work = Path(tempfile.mkdtemp(prefix=f"sigprop-ref-{chapter}-"))
    try:
        src = chapter_source(chapter)
        nb = jupytext.read(src)
        # the copy does not check the stored values it is about to replace
        nb.cells = [c for c in nb.cells if "reference.stale(" not in c.source]
        nb.cells.append(nbformat.v4.new_code_cell(DUMP_CELL % str(dump)))
        # the copy runs with book/ as working directory, as the chapter does on the website
        env_scale = os.environ.get("SIGPROP_SCALE")
        os.environ["SIGPROP_SCALE"] = scale
        try:
            client = NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                record_timing=False,
                resources={"metadata": {"path": str(BOOK)}},
            )
            start = time.perf_counter()
            client.execute()
            elapsed = time.perf_counter() - start
        finally:
            if env_scale is None:
                os.environ.pop("SIGPROP_SCALE", None)
            else:
                os.environ["SIGPROP_SCALE"] = env_scale
        nbformat.write(nb, work / (src.stem + ".ipynb"))
        print(f"{chapter}: executed at scale {scale} in {elapsed:.0f} s", flush=True)
        (DUMPS / f"{chapter}-{scale}.seconds").write_text(f"{elapsed:.0f}\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dump


def namespace(dump: Path) -> dict:
    """The chapter's variables stored by a run."""
    with open(dump, "rb") as f:
        return pickle.load(f)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the measure snippets) as literal blocks; no anchors."""

    def ignore_aliases(self, data):
        return True


def _str(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(table: dict) -> str:
    """The YAML text of a table, as ``tools/reference.py`` writes it."""
    return yaml.dump(table, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def measure(chapter: str, scale: str, dump: Path) -> list[str]:
    """Evaluate every row's ``measure`` snippet (:func:`sigprop.reference.measure`) on a
    stored run and store the results in the chapter's table."""
    from sigprop import reference

    path = TABLES / f"{chapter}.yaml"
    table = yaml.safe_load(path.read_text())
    measured = reference.measure(chapter, namespace(dump), root=ROOT)
    lines = []
    seconds = DUMPS / f"{chapter}-{scale}.seconds"
    for row in table["rows"]:
        if row["id"] not in measured:
            continue
        entry = measured[row["id"]]
        entry["date"] = _dt.date.today().isoformat()
        if seconds.exists():
            entry["chapter_seconds"] = int(seconds.read_text())
        row.setdefault("book", {})[scale] = entry
        lines.append(f"{chapter} {row['id']}: book {entry['value']} ± {entry['se']} "
                     f"({scale}), paper {row['paper'].get('value')}")
    path.write_text(to_yaml(table))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", help="ch01 ... ch06")
    parser.add_argument("--scale", default="medium", choices=("small", "medium", "paper"))
    parser.add_argument("--from-dump", action="store_true",
                        help="measure a stored run instead of executing the chapter again")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--workers", type=int, default=0,
                        help="execute the chapters at once on a Dask LocalCluster of this many "
                             "worker processes (default 0: one after another, here)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler (e.g. on a Slurm cluster, "
                             "dask-jobqueue) to execute the chapters on")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error(f"--workers must be >= 0; got {args.workers}")
    if not args.from_dump and (args.workers or args.scheduler):
        _execute_on_dask(args)
    for chapter in args.chapters:
        dump = DUMPS / f"{chapter}-{args.scale}.pkl"
        if not args.from_dump and not (args.workers or args.scheduler):
            dump = execute(chapter, args.scale, args.timeout)
        for line in measure(chapter, args.scale, dump):
            print(line, flush=True)
    return 0


def _execute_remote(chapter: str, scale: str, timeout: int, root: str) -> tuple:
    """One chapter's run as a task: execute it where the task runs and send back its variables
    (the pickle) and its time, so that the worker's disk does not have to be this machine's."""
    sys.path.insert(0, str(Path(root) / "tools"))
    import reference as _ref

    dump = _ref.execute(chapter, scale, timeout)
    seconds = (_ref.DUMPS / f"{chapter}-{scale}.seconds").read_text()
    return dump.read_bytes(), seconds


def _execute_on_dask(args) -> None:
    """Execute the chapters as tasks of a Dask cluster (sigprop.sweep): in parallel, a lost
    worker's chapter re-run by Dask, each result stored here as it arrives."""
    from distributed import Client, LocalCluster

    from sigprop import sweep

    tasks = {(c, args.scale): dict(chapter=c, scale=args.scale, timeout=args.timeout, root=str(ROOT))
             for c in args.chapters}
    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    try:
        done = sweep.run(_execute_remote, tasks, executor=client.get_executor(retries=1),
                         desc="reference runs")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    DUMPS.mkdir(parents=True, exist_ok=True)
    for (chapter, scale), (blob, seconds) in done.items():
        (DUMPS / f"{chapter}-{scale}.pkl").write_bytes(blob)
        (DUMPS / f"{chapter}-{scale}.seconds").write_text(seconds)


if __name__ == "__main__":
    sys.exit(main())
