"""Properties of sigprop.data: the binary readers round-trip, the loaders read the
real offline files and say what they read, missing or corrupt files raise."""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sigprop import data

SHARED_DATA = Path(os.environ.get("SIGPROP_TEST_DATA")
                   or Path(__file__).resolve().parents[1].parent / "shared" / "data")
CIFAR_TEST_COUNTS = [83, 70, 88, 84, 76, 79, 97, 87, 88, 94]


def write_idx(path: Path, arr: np.ndarray, code: int, compress: bool) -> None:
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">i4").tobytes()
    payload = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_cifar(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    rec = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(labels), -1)], 1)
    path.write_bytes(rec.astype(np.uint8).tobytes())


def publish_md5(monkeypatch, folder: Path) -> None:
    """Makes the synthetic .gz files in ``folder`` pass as official: their MD5s become the
    published ones (every .gz file with a published sum is checked on first use)."""
    sums = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in folder.glob("*.gz")}
    monkeypatch.setattr(data, "MNIST_MD5", {**data.MNIST_MD5, **sums})


def fake_mnist(root: Path, n: int, prefix: str = "t10k") -> tuple:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    (root / "mnist").mkdir(parents=True, exist_ok=True)
    write_idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images, 0x08, True)
    write_idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels, 0x08, True)
    return images, labels


def fake_cifar(path: Path, n: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(n) % 10
    path.parent.mkdir(parents=True, exist_ok=True)
    write_cifar(path, images, labels)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.int32, 0x0C),
                                        (np.float32, 0x0D), (np.float64, 0x0E)])
def test_read_idx_round_trips_every_type(tmp_path, dtype, code, compress):
    arr = (np.arange(2 * 3 * 5) * 7 - 20).reshape(2, 3, 5).astype(dtype)
    if dtype == np.uint8:
        arr = np.abs(arr).astype(dtype)
    write_idx(tmp_path / "a.idx", arr, code, compress)
    out = data.read_idx(tmp_path / "a.idx")
    assert tuple(out.shape) == arr.shape
    np.testing.assert_array_equal(out.numpy(), arr)


def test_read_idx_rejects_bad_magic_and_truncated_payload(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok", np.zeros((4, 2), np.uint8), 0x08, False)
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-1])
    with pytest.raises(ValueError, match="payload"):
        data.read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "absent")


def test_read_cifar10_bin_round_trips_planes_and_labels(tmp_path):
    images, labels = fake_cifar(tmp_path / "b.bin", 7)
    x, y = data.read_cifar10_bin(tmp_path / "b.bin")
    assert x.dtype == torch.uint8 and tuple(x.shape) == (7, 3, 32, 32)
    np.testing.assert_array_equal(x.numpy(), images)
    np.testing.assert_array_equal(y.numpy(), labels)
    # The first byte after the label is the red value of the top-left pixel.
    raw = (tmp_path / "b.bin").read_bytes()
    assert raw[1] == x[0, 0, 0, 0] and raw[1 + 1024] == x[0, 1, 0, 0] and raw[2 + 32] == x[0, 0, 1, 1]


def test_read_cifar10_bin_rejects_partial_records_and_bad_labels(tmp_path):
    fake_cifar(tmp_path / "b.bin", 2)
    (tmp_path / "cut.bin").write_bytes((tmp_path / "b.bin").read_bytes()[:-5])
    with pytest.raises(ValueError, match="multiple"):
        data.read_cifar10_bin(tmp_path / "cut.bin")
    write_cifar(tmp_path / "lab.bin", np.zeros((1, 3, 32, 32), np.uint8), np.array([12]))
    with pytest.raises(ValueError, match="label"):
        data.read_cifar10_bin(tmp_path / "lab.bin")


def test_load_mnist_from_synthetic_root_scales_flattens_and_marks_partial(tmp_path, monkeypatch):
    images, labels = fake_mnist(tmp_path, 12)
    publish_md5(monkeypatch, tmp_path / "mnist")
    d = data.load("mnist", root=tmp_path, n=5, device="cpu")
    assert d.images.dtype == torch.float32 and tuple(d.images.shape) == (5, 1, 28, 28)
    np.testing.assert_allclose(d.images.numpy()[:, 0], images[:5] / 255.0, rtol=1e-6)
    assert d.labels.dtype == torch.int64 and d.labels.tolist() == labels[:5].tolist()
    assert "first 5 of 12" in d.source and "PARTIAL" in d.source and len(d) == 5
    flat = data.load_mnist(root=tmp_path, flatten=True, device="cpu")
    assert tuple(flat.images.shape) == (12, 784)
    with pytest.raises(ValueError, match="n=13"):
        data.load("mnist", root=tmp_path, n=13)


def test_load_reads_root_from_sigprop_data_env(tmp_path, monkeypatch):
    fake_mnist(tmp_path, 3)
    publish_md5(monkeypatch, tmp_path / "mnist")
    monkeypatch.setenv("SIGPROP_DATA", str(tmp_path))
    assert str(tmp_path) in data.load("mnist", device="cpu").source
    assert data.data_root() == tmp_path


def test_cifar_official_batch_wins_over_prefix_and_prefix_is_reported(tmp_path):
    fake_cifar(tmp_path / "cifar10" / "test_batch_first5.bin", 5, seed=1)
    d = data.load("cifar10", root=tmp_path, device="cpu")
    assert len(d) == 5 and "test_batch_first5.bin" in d.source and "PARTIAL" in d.source
    assert d.classes == data.CIFAR10_CLASSES and "built-in" in d.source
    fake_cifar(tmp_path / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin", 9, seed=2)
    d = data.load("cifar10", root=tmp_path, device="cpu")
    assert len(d) == 9 and "cifar-10-batches-bin" in d.source and "first5" not in d.source


def test_missing_files_raise_with_expected_paths_and_how_to_get_them(tmp_path):
    for name, split, expect in [("mnist", "test", "t10k-images-idx3-ubyte.gz"),
                                ("cifar10", "train", "data_batch_1.bin"),
                                ("cifar10", "test", "test_batch.bin")]:
        with pytest.raises(FileNotFoundError) as info:
            data.load(name, split=split, root=tmp_path)
        msg = str(info.value)
        assert expect in msg and str(tmp_path) in msg
        assert "download=True" in msg and "SIGPROP_DATA" in msg


def test_bad_arguments_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="name"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", split="valid", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        data.load("digits", split="train")
    with pytest.raises(ValueError, match="n must"):
        data.load("digits", n=0)


def test_download_verifies_md5_and_leaves_nothing_on_mismatch(tmp_path):
    src = tmp_path / "served.bin"
    src.write_bytes(b"not the real file")
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(data.ChecksumError, match="MD5"):
        data.download_file(src.as_uri(), dest, "0" * 32)
    assert not dest.exists() and not dest.with_name("file.bin.part").exists()
    good = hashlib.md5(src.read_bytes()).hexdigest()
    assert data.download_file(src.as_uri(), dest, good).read_bytes() == src.read_bytes()


def test_download_of_fake_mnist_mirror_fails_checksum(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    fake_mnist(mirror, 2)  # valid IDX files, but not the official bytes
    monkeypatch.setattr(data, "MNIST_MIRRORS", [(mirror / "mnist").as_uri() + "/"])
    with pytest.raises(data.ChecksumError):
        data.load("mnist", root=tmp_path / "root", download=True)
    assert not any((tmp_path / "root" / "mnist").glob("*.gz"))


def test_unreachable_url_raises_runtime_error_naming_destination(tmp_path):
    with pytest.raises(RuntimeError, match="SIGPROP_DATA"):
        data.download_file((tmp_path / "nowhere.gz").as_uri(), tmp_path / "x.gz", "0" * 32)


def test_digits_are_sklearn_test_set_scaled_to_unit_interval():
    d = data.load("digits", device="cpu")
    assert tuple(d.images.shape) == (1797, 1, 8, 8) and d.labels.shape == (1797,)
    assert float(d.images.min()) == 0.0 and float(d.images.max()) == 1.0
    assert d.classes == [str(i) for i in range(10)] and "load_digits" in d.source
    assert tuple(data.load_digits(flatten=True, n=10).images.shape) == (10, 64)


def test_class_balanced_subset_is_sorted_balanced_reproducible():
    d = data.load("digits", device="cpu")
    s1 = data.class_balanced_subset(d, 4, torch.Generator().manual_seed(3))
    s2 = data.class_balanced_subset(d, 4, torch.Generator().manual_seed(3))
    assert s1.labels.tolist() == sorted(s1.labels.tolist()) == [c for c in range(10) for _ in range(4)]
    assert torch.equal(s1.images, s2.images)
    flat = d.images.reshape(len(d), -1)
    for img in s1.images.reshape(40, -1):  # every picked image is one of the originals
        assert bool((flat == img).all(1).any())
    with pytest.raises(ValueError, match="per_class"):
        data.class_balanced_subset(d, 1000, torch.Generator())


def test_standardize_centres_features_and_gives_unit_mean_square():
    x = torch.rand(50, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x[:, 0, 0, 0] = 0.7  # a constant feature stays at 0
    z = data.standardize(x)
    assert z.shape == x.shape and z.dtype == x.dtype
    assert float(z.mean(0).abs().max()) < 1e-6 and float(z[:, 0, 0, 0].abs().max()) < 1e-6
    assert abs(float(z.double().pow(2).mean()) - 1.0) < 1e-6
    with pytest.raises(ValueError, match="images"):
        data.standardize(torch.ones(1, 5))


needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                  reason=f"offline test data not found at {SHARED_DATA}")


@needs_shared
def test_real_mnist_test_set_has_10000_images_28x28():
    if not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST test files absent")
    d = data.load("mnist", root=SHARED_DATA, device="cpu")
    assert tuple(d.images.shape) == (10000, 1, 28, 28) and "PARTIAL" not in d.source
    counts = torch.bincount(d.labels, minlength=10)
    assert int(counts.sum()) == 10000 and counts.tolist()[:2] == [980, 1135]
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) == 1.0


@needs_shared
def test_real_cifar_prefix_has_846_records_with_known_class_counts():
    if not (SHARED_DATA / "cifar10" / "test_batch_first846.bin").is_file():
        pytest.skip("CIFAR-10 prefix absent")
    d = data.load("cifar10", split="test", root=SHARED_DATA, device="cpu")
    assert tuple(d.images.shape) == (846, 3, 32, 32)
    assert torch.bincount(d.labels, minlength=10).tolist() == CIFAR_TEST_COUNTS
    assert d.classes == ["airplane", "automobile", "bird", "cat", "deer",
                         "dog", "frog", "horse", "ship", "truck"]
    assert "PARTIAL" in d.source and "846 of the 10000" in d.source
    assert "batches.meta.txt" in d.source


def test_as_labelled_accepts_pairs_and_datasets_and_names_the_argument_on_bad_input():
    import pytest
    import torch
    from sigprop.data import Dataset, as_labelled

    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 1, 0])
    ds = Dataset(x, y, ["a", "b", "c"], "toy/test", "made here")
    for data in ((x, y), ds):
        xs, ys = as_labelled(data, flatten=True)
        assert xs.shape == (5, 4) and ys.dtype == torch.int64
    for bad, what in [(x, "train must be a pair"), ((x, y[:-1]), "train: inputs must be"),
                      ((x.long(), y), "floating point"), ((x, y.double()), "labels"), ((x, y - 1), "labels")]:
        with pytest.raises(ValueError, match=what):
            as_labelled(bad, "train")


# ------------------------------------------------------------ nothing of the user's is changed or lost
def files_of(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def fake_cifar_archive(path: Path, with_test: bool = True) -> str:
    """A tar.gz in the official layout (synthetic records); returns its MD5."""
    import io
    import tarfile
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + (["test_batch.bin"] if with_test else [])
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate(names + ["batches.meta.txt"]):
            if name.endswith(".bin"):
                rng = np.random.default_rng(i)
                payload = np.concatenate([np.arange(4, dtype=np.uint8)[:, None] % 10,
                                          rng.integers(0, 256, (4, 3072), dtype=np.uint8)], 1).tobytes()
            else:
                payload = "\n".join(f"class{k}" for k in range(10)).encode()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar_download_keeps_the_users_batches_and_removes_its_archive(tmp_path, monkeypatch):
    served = tmp_path / "served.tar.gz"
    monkeypatch.setattr(data, "CIFAR10_URL", served.as_uri())
    monkeypatch.setattr(data, "CIFAR10_MD5", fake_cifar_archive(served))
    mine = tmp_path / "root" / "cifar10" / "cifar-10-batches-bin"
    fake_cifar(mine / "data_batch_1.bin", 3, seed=7)
    (mine / "batches.meta.txt").write_text("\n".join(f"mine{k}" for k in range(10)))
    before = files_of(mine)
    d = data.load("cifar10", "test", root=tmp_path / "root", download=True, device="cpu")
    after = files_of(mine)
    assert all(after[k] == v for k, v in before.items()), "the user's files must be kept byte for byte"
    assert len(d) == 4 and d.classes[0] == "mine0"
    assert not (tmp_path / "root" / "cifar10" / "cifar-10-binary.tar.gz").exists()
    assert not [p for p in (tmp_path / "root").rglob("*") if "sigprop-tmp" in p.name]
    d2 = data.load("cifar10", "train", root=tmp_path / "root", device="cpu")
    assert len(d2) == 3 + 4 * 4  # the user's batch 1 and the four extracted ones


def test_cifar_archive_is_kept_when_asked(tmp_path, monkeypatch):
    served = tmp_path / "served.tar.gz"
    monkeypatch.setattr(data, "CIFAR10_URL", served.as_uri())
    monkeypatch.setattr(data, "CIFAR10_MD5", fake_cifar_archive(served))
    data.load("cifar10", "test", root=tmp_path, download=True, keep_archive=True, device="cpu")
    assert (tmp_path / "cifar10" / "cifar-10-binary.tar.gz").read_bytes() == served.read_bytes()


def test_a_failed_download_leaves_a_preexisting_part_file(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MNIST_MIRRORS", [(tmp_path / "nowhere").as_uri() + "/"])
    part = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half of my own download")
    with pytest.raises(RuntimeError, match="mirror"):
        data.load("mnist", root=tmp_path, download=True)
    assert part.read_bytes() == b"half of my own download"
    assert sorted(p.name for p in part.parent.iterdir()) == [part.name]


def test_download_file_never_overwrites(tmp_path):
    src, dest = tmp_path / "a.bin", tmp_path / "b.bin"
    src.write_bytes(b"new")
    dest.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="does not overwrite"):
        data.download_file(src.as_uri(), dest, hashlib.md5(b"new").hexdigest())
    assert dest.read_bytes() == b"mine"


def test_truncated_gz_names_its_path_and_the_repair(tmp_path):
    fake_mnist(tmp_path, 4)
    gz = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:40])
    with pytest.raises(data.ChecksumError, match=r"t10k-images-idx3-ubyte\.gz.*rm '.*download=True"):
        data.load("mnist", root=tmp_path)
    with pytest.raises(ValueError, match=r"x\.gz: corrupt or truncated gzip.*delete the file"):
        gz.rename(gz.with_name("x.gz"))  # no published sum under this name: the reader catches it
        data.read_idx(gz.with_name("x.gz"))


def test_a_file_altered_after_first_use_is_caught(tmp_path):
    path = tmp_path / "cifar10" / "test_batch_first4.bin"
    fake_cifar(path, 4)
    assert len(data.load("cifar10", root=tmp_path, device="cpu")) == 4  # first use: MD5 recorded
    assert (tmp_path / "cifar10" / ".sigprop-verified.json").is_file()
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(data.ChecksumError, match="recorded when sigprop first read it"):
        data.load("cifar10", root=tmp_path)


def test_mnist_labels_out_of_range_are_caught(tmp_path, monkeypatch):
    fake_mnist(tmp_path, 5)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 12], np.uint8), 0x08, True)
    publish_md5(monkeypatch, tmp_path / "mnist")
    with pytest.raises(ValueError, match=r"labels range over 0\.\.12, outside MNIST's 0\.\.9"):
        data.load("mnist", root=tmp_path)


def test_a_damaged_file_sigprop_downloaded_is_repaired_by_download(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    fake_mnist(mirror, 3)
    publish_md5(monkeypatch, mirror / "mnist")
    monkeypatch.setattr(data, "MNIST_MIRRORS", [(mirror / "mnist").as_uri() + "/"])
    root = tmp_path / "root"
    assert len(data.load("mnist", root=root, download=True, device="cpu")) == 3
    gz = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-5])
    with pytest.raises(data.ChecksumError, match="sigprop downloaded it"):
        data.load("mnist", root=root)
    assert len(data.load("mnist", root=root, download=True, device="cpu")) == 3
