"""Sweeps on an executor (sigprop.sweep, trainability.train_grid): the same numbers in this
process and on a Dask cluster of worker processes, resumed from a store, and complete when a
worker dies mid-sweep."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from sigprop import data, sweep, trainability

distributed = pytest.importorskip("distributed")


def _grid_data():
    ds = data.load("digits")
    x = data.standardize(ds.images.reshape(len(ds), -1).double()).float()
    return x[:600], ds.labels[:600]


GRID = dict(sigma_ws=[0.8, 1.6], sigma_b=0.1, width=16, steps=30, lr=0.05, batch_size=32, n_seeds=2)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-12, msg=f"{k} differs")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as c:
        yield c


def test_task_seed_is_stable_and_distinct():
    assert sweep.task_seed(0, 1) == sweep.task_seed(0, 1)
    seeds = {sweep.task_seed(s, i, j) for s in range(3) for i in range(4) for j in range(4)}
    assert len(seeds) == 48
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed"):
            sweep.task_seed(bad)


def test_train_grid_same_in_process_and_on_a_dask_cluster(client):
    x, y = _grid_data()
    local = trainability.train_grid((x, y), "tanh", depths=[2, 5, 9], seed=7, device="cpu", **GRID)
    remote = trainability.train_grid((x, y), "tanh", depths=[2, 5, 9], seed=7, device="cpu",
                                     executor=client.get_executor(retries=2), **GRID)
    _assert_same(local, remote)
    # and the seed matters: another seed gives other networks
    other = trainability.train_grid((x, y), "tanh", depths=[2, 5, 9], seed=8, device="cpu", **GRID)
    assert not torch.equal(other["final_loss"], local["final_loss"])


def test_a_resumed_sweep_computes_only_the_missing_points(tmp_path):
    x, y = _grid_data()
    store = tmp_path / "grid"
    full = trainability.train_grid((x, y), "tanh", depths=[2, 5], seed=3, device="cpu", store=store, **GRID)
    files = sorted(store.glob("*.pt"))
    assert len(files) == 2
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[0].unlink()  # as if the sweep had been interrupted after one depth
    again = trainability.train_grid((x, y), "tanh", depths=[2, 5], seed=3, device="cpu", store=store, **GRID)
    _assert_same(full, again)
    assert files[1].stat().st_mtime_ns == stamps[files[1]], "a stored point was recomputed"
    assert files[0].exists()


def test_failed_points_are_reported_and_the_rest_kept(tmp_path):
    tasks = {(i,): {"seed": v} for i, v in enumerate([1, 2, -3, 4])}  # task_seed refuses -3
    with pytest.raises(sweep.SweepError, match="1 of 4 sweep points failed") as info:
        sweep.run(sweep.task_seed, tasks, store=tmp_path, progress=False)
    assert set(info.value.failures) == {(2,)}
    assert info.value.results == {(i,): sweep.task_seed(v) for i, v in [(0, 1), (1, 2), (3, 4)]}
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_bad_arguments_are_refused():
    x, y = _grid_data()
    with pytest.raises(ValueError, match="need seed"):
        trainability.train_grid((x, y), "tanh", depths=[2], store="never", **GRID)
    with pytest.raises(ValueError, match="either generator or seed"):
        trainability.train_grid((x, y), "tanh", depths=[2], seed=0, generator=torch.Generator(), **GRID)
    with pytest.raises(ValueError, match="tasks must be a mapping"):
        sweep.run(int, [1, 2])


def test_a_worker_killed_mid_sweep_loses_no_point(client, tmp_path):
    x, y = _grid_data()
    args = dict(GRID, steps=150)
    depths = [3, 4, 5, 6, 7, 8]
    store = tmp_path / "killed"
    killed = []

    def kill_one_busy_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy and len(list(store.glob("*.pt"))) >= 1:
                pids = client.run(os.getpid, workers=[busy[0]])
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    grid = trainability.train_grid((x, y), "tanh", depths=depths, seed=11, device="cpu",
                                   executor=client.get_executor(retries=2), store=store, **args)
    killer.join(timeout=5)
    assert killed, "no worker was busy while the sweep ran: the test did not kill anything"
    assert len(list(store.glob("*.pt"))) == len(depths)
    local = trainability.train_grid((x, y), "tanh", depths=depths, seed=11, device="cpu", **args)
    _assert_same(local, grid)
