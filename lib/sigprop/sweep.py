r"""Sweeps: a grid of independent runs, in this process or on any executor.

The book's heaviest work is a grid of independent runs (trainability over
:math:`(\sigma_w, L)`, many seeds of one measurement). :func:`run` maps a function over
such a grid:

* ``executor=None`` runs the points one after another in this process (what the book and
  the tests do); any :class:`concurrent.futures.Executor` runs them elsewhere: a
  :class:`~concurrent.futures.ProcessPoolExecutor`, or a Dask cluster through
  ``distributed.Client(...).get_executor()``, on one machine (``LocalCluster``) or on
  Slurm/Kubernetes (``dask_jobqueue.SLURMCluster``, ``dask_kubernetes``). The engine
  schedules, retries a failed or lost task (Dask reruns the tasks of a worker that died;
  ``get_executor(retries=n)`` retries failures), and this module only submits and collects.
* Every point carries its own seed (:func:`task_seed`), derived from the sweep's seed and
  the point's key, so a sweep gives the same numbers wherever and in whatever order its
  points run.
* With ``store=<folder>`` each result is written as it arrives (a temporary file renamed
  into place), and a sweep started again skips the points already stored: an interrupted
  sweep resumes where it stopped.
* A progress bar (``tqdm.auto``: a terminal bar or a notebook widget) counts finished points.

Example (``sigprop.trainability.train_grid`` uses this module)::

    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster) as client:
        grid = trainability.train_grid(..., seed=0, executor=client.get_executor(retries=2),
                                       store="sweeps/ch02")
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Union

import numpy as np
import torch

__all__ = ["run", "task_seed", "SweepError"]

PathLike = Union[str, os.PathLike]


class SweepError(RuntimeError):
    """Some points of a sweep failed; ``failures`` maps each key to its exception. The
    points that finished are in ``results`` (and in the store, when one was given)."""

    def __init__(self, failures: Dict[Hashable, BaseException], results: Dict[Hashable, Any]):
        self.failures, self.results = failures, results
        listing = "; ".join(f"{k!r}: {type(e).__name__}: {e}" for k, e in list(failures.items())[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(
            f"{len(failures)} of {len(failures) + len(results)} sweep points failed: {listing}{more}. "
            "The finished points are kept; with store=... running the sweep again computes only the rest."
        )


def task_seed(seed: int, *key: int) -> int:
    r"""The seed of one point of a sweep: a 63-bit integer derived from the sweep's ``seed``
    and the point's integer ``key`` by NumPy's ``SeedSequence`` (independent streams for
    different keys; the same number on every machine and in every order).

    Raises
    ------
    ValueError
        If ``seed`` or an entry of ``key`` is not a non-negative integer.
    """
    for name, v in [("seed", seed)] + [(f"key[{i}]", k) for i, k in enumerate(key)]:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer; got {v!r}")
    state = np.random.SeedSequence([int(seed), *map(int, key)]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _file(store: Path, key: Hashable) -> Path:
    return store / (hashlib.sha256(repr(key).encode()).hexdigest()[:32] + ".pt")


def _save(store: Path, key: Hashable, result: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=store, prefix=".partial-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"key": repr(key), "result": result}, fh)
        os.replace(tmp, _file(store, key))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(store: Path, key: Hashable):
    path = _file(store, key)
    if not path.exists():
        return False, None
    blob = torch.load(path, weights_only=False)
    if blob.get("key") != repr(key):  # a hash collision or a foreign file: recompute
        return False, None
    return True, blob["result"]


def _call(fn: Callable, kwargs: Mapping[str, Any]):
    # One positional argument: a Dask ClientExecutor merges submit()'s keyword arguments with
    # its own (key=, retries=, ...), so the task's arguments travel inside a dict.
    return fn(**kwargs)


def run(
    fn: Callable[..., Any],
    tasks: Mapping[Hashable, Mapping[str, Any]],
    *,
    executor: Optional[cf.Executor] = None,
    store: Optional[PathLike] = None,
    progress: bool = True,
    desc: str = "sweep",
) -> Dict[Hashable, Any]:
    r"""``{key: fn(**tasks[key])}`` for every point of a sweep.

    Parameters
    ----------
    fn : callable
        A module-level function (an executor in another process must be able to pickle it).
    tasks : mapping
        Point key (hashable, with a stable ``repr``, e.g. a tuple of ints) to the keyword
        arguments of ``fn`` at that point. Put each point's seed (:func:`task_seed`) in them.
    executor : concurrent.futures.Executor, optional
        Where the points run; ``None``: one after another in this process.
    store : path, optional
        Folder where each result is saved as it arrives; points already there are not
        recomputed. Created if missing; files of its own only (``*.pt``).
    progress : bool
        Show a progress bar of finished points.
    desc : str
        The progress bar's label.

    Returns
    -------
    dict
        Results in the order of ``tasks``.

    Raises
    ------
    ValueError
        If ``tasks`` is not a mapping of keyword-argument mappings, or ``executor`` is not an
        Executor.
    SweepError
        When points failed (after the engine's own retries); it holds the finished results.
    """
    if not callable(fn):
        raise ValueError(f"fn must be a function (a module-level callable); got {fn!r} ({type(fn).__name__})")
    if not isinstance(tasks, Mapping) or not all(isinstance(v, Mapping) for v in tasks.values()):
        raise ValueError(f"tasks must be a mapping {{key: {{argument: value}}}}; got {type(tasks).__name__}"
                         + ("" if not isinstance(tasks, Mapping) else " with a value that is not a mapping"))
    if store is not None and not isinstance(store, (str, os.PathLike)):
        raise ValueError(f"store must be a folder path (str or pathlib.Path) or None; got {store!r}")
    if executor is not None and not isinstance(executor, cf.Executor) and not hasattr(executor, "submit"):
        raise ValueError(f"executor must be a concurrent.futures.Executor or None; got {type(executor).__name__}")
    folder = None
    if store is not None:
        folder = Path(store)
        folder.mkdir(parents=True, exist_ok=True)
    results: Dict[Hashable, Any] = {}
    todo = []
    for key in tasks:
        done, value = _load(folder, key) if folder is not None else (False, None)
        if done:
            results[key] = value
        else:
            todo.append(key)
    failures: Dict[Hashable, BaseException] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, leave=False)

    def finish(key, value):
        results[key] = value
        if folder is not None:
            _save(folder, key, value)
        if bar is not None:
            bar.update(1)

    try:
        if executor is None:
            for key in todo:
                try:
                    value = _call(fn, tasks[key])
                except Exception as exc:  # reported with the others at the end
                    failures[key] = exc
                    continue
                finish(key, value)
        else:
            futures = {executor.submit(_call, fn, dict(tasks[key])): key for key in todo}
            for fut in cf.as_completed(futures):
                key = futures[fut]
                try:
                    value = fut.result()
                except Exception as exc:
                    failures[key] = exc
                    continue
                finish(key, value)
    finally:
        if bar is not None:
            bar.close()
    ordered = {k: results[k] for k in tasks if k in results}
    if failures:
        raise SweepError(failures, ordered)
    return ordered
