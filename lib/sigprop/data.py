"""Real data sets in their own binary formats: MNIST, CIFAR-10 and scikit-learn's digits.

One loader signature, ``load(name, split, root, download, n, flatten, device)``,
returns a :class:`Dataset` whose ``source`` says which files were read, so that a
notebook can print exactly which data it used. Nothing is ever substituted: a
missing file raises, and a partial file (such as the 846-record prefix of the
CIFAR-10 test set kept for offline tests) is marked PARTIAL in ``source``.

Files live under a root folder: the ``root`` argument, else the environment
variable ``SIGPROP_DATA``, else ``~/.cache/sigprop``::

    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz      (or uncompressed)
    cifar10/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin, batches.meta.txt
        (or the same files directly in cifar10/)
    cifar10/test_batch_first<N>.bin, batches.meta.txt     (first N records of test_batch.bin)

Checksums. Downloads (``download=True`` only) are checked against the published MD5 sums,
and so is every file that has one (the four MNIST ``.gz`` files, the CIFAR-10 archive) the
first time it is read; a file without a published sum (an extracted CIFAR-10 batch, an
uncompressed copy, the offline prefix) has its MD5 recorded the first time. Each folder
keeps what it verified in a stamp, ``.sigprop-verified.json`` (size, modification time, MD5),
so that later loads hash a file again only when it changed, and a file altered since is
caught (:class:`ChecksumError`, with the path and the command that repairs it). In a
read-only folder nothing is recorded and every load verifies again.

Files. The library writes only through a temporary file in the target folder followed by an
atomic rename, never overwrites a file it did not create (a CIFAR-10 extraction skips batch
files already on disk; a download whose destination exists is refused) and deletes only its
own temporary files (a pre-existing ``.part`` file is left alone). The CIFAR-10 archive is
deleted after extraction unless ``keep_archive=True``; an archive already on disk is used
(after its checksum) and kept.
No pickle is read anywhere: CIFAR-10 comes from its binary version.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

from . import runtime
from ._checks import check_path

__all__ = [
    "Dataset", "ChecksumError", "load", "load_mnist", "load_cifar10", "load_digits",
    "read_idx", "read_cifar10_bin", "download_file", "data_root",
    "class_balanced_subset", "standardize", "as_labelled", "NAMES",
]

Tensor = torch.Tensor
PathLike = Union[str, os.PathLike]

#: Data set names :func:`load` understands.
NAMES = ("mnist", "cifar10", "digits")
#: MNIST mirrors tried in order (yann.lecun.com no longer serves the files reliably).
MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/"]
#: Published MD5 sums of the four MNIST files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: The CIFAR-10 binary archive and the MD5 published on Krizhevsky's page.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_PER_BATCH = 10_000
_CIFAR_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
_MNIST_PREFIX = {"train": "train", "test": "t10k"}
_MNIST_SIZE = {"train": 60_000, "test": 10_000}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ChecksumError(RuntimeError):
    """A file does not have its published MD5 sum, or no longer has the MD5 recorded the first
    time it was read (see the module's docstring)."""


@dataclass(frozen=True)
class Dataset:
    """Images (float32 in [0, 1], ``[N, C, H, W]`` or flattened ``[N, C*H*W]``), int64
    ``labels`` indexing ``classes`` (names in label order), ``name`` such as
    ``"mnist/test"``, and ``source``: the files read and how many records were taken."""

    images: Tensor
    labels: Tensor
    classes: List[str]
    name: str
    source: str
    #: What a reader is told, without any path: "CIFAR-10 test set, 846 of 10,000 images
    #: (offline subset)". ``source`` keeps the file names for debugging.
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or self.images.ndim < 1 or self.images.is_complex():
            raise ValueError(f"images must be a real tensor of shape [N, ...]; got {type(self.images).__name__} "
                             f"{tuple(getattr(self.images, 'shape', ()))}")
        if (not isinstance(self.labels, torch.Tensor) or self.labels.ndim != 1
                or self.labels.shape[0] != self.images.shape[0] or self.labels.is_floating_point()):
            raise ValueError(f"labels must be an integer tensor of shape [N] with N = {self.images.shape[0]} "
                             f"(one per image); got {type(self.labels).__name__} {tuple(getattr(self.labels, 'shape', ()))}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def as_labelled(data, name: str = "data", flatten: bool = False) -> Tuple[Tensor, Tensor]:
    """``(inputs, labels)`` from a :class:`Dataset` or a pair ``(x, y)``, checked.

    The one place where the training functions (:mod:`sigprop.train`,
    :mod:`sigprop.trainability`) accept labelled data.  ``x`` must be floating point of
    shape ``(N, ...)`` with ``N >= 1``; ``y`` integer class labels ``>= 0`` of shape ``(N,)``,
    returned as int64.  With ``flatten=True`` the inputs come back as ``(N, features)``.

    Raises
    ------
    ValueError
        Naming ``name`` (the caller's argument), if ``data`` is neither a Dataset nor a
        pair, if the shapes disagree, if ``x`` is not floating point, or if ``y`` does not
        hold non-negative integer labels.
    """
    if hasattr(data, "images") and hasattr(data, "labels"):
        x, y = data.images, data.labels
    else:
        try:
            x, y = data
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a pair (inputs, labels) or a sigprop.data.Dataset; "
                             f"got {type(data).__name__}") from None
    try:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name}: inputs and labels must be tensors (or convertible to tensors)") from None
    if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] < 1:
        raise ValueError(f"{name}: inputs must be (N, ...) and labels (N,) with N >= 1; "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: inputs must be floating point; got {x.dtype}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or bool((y < 0).any()):
        raise ValueError(f"{name}: labels must be integer class indices >= 0; got dtype {y.dtype}")
    if flatten:
        x = x.reshape(x.shape[0], -1)
    return x, y.to(torch.int64)


def data_root(root: Optional[PathLike] = None) -> Path:
    """The data folder: ``root``, else ``$SIGPROP_DATA``, else ``~/.cache/sigprop``."""
    if root is not None:
        root = check_path(root, "root")
    if root is None:
        root = os.environ.get("SIGPROP_DATA") or Path.home() / ".cache" / "sigprop"
    return Path(root).expanduser()


def read_idx(path: PathLike) -> Tensor:
    """Read an IDX file (the MNIST format), gzip-compressed or raw.

    Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a
    type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), a byte ``ndim``, ``ndim`` big-endian int32 sizes, then the data
    in big-endian C order. Compression is detected from the gzip magic bytes.

    Returns
    -------
    CPU tensor of the stored type (native byte order) and shape.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the header is not IDX or the payload size does not match it.
    """
    path = check_path(path, "path")
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:  # truncated, or corrupt (BadGzipFile is an OSError)
            raise ValueError(f"path {path}: corrupt or truncated gzip data ({exc}); delete the file "
                             "and fetch it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"path {path} is not an IDX file (magic bytes {raw[:4]!r})")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise ValueError(f"path {path}: IDX header truncated ({len(raw)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"path {path}: IDX payload has {len(raw) - header} bytes, header "
                         f"{shape} of {dtype} needs {expected}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(arr.astype(dtype.newbyteorder("="), copy=True))


def read_cifar10_bin(path: PathLike) -> Tuple[Tensor, Tensor]:
    """Read a CIFAR-10 binary batch (any number of records, so a prefix works).

    Each record is 3073 bytes: one label byte (0..9), then the 1024 red, 1024
    green and 1024 blue values of a 32x32 image, row-major (Krizhevsky 2009,
    https://www.cs.toronto.edu/~kriz/cifar.html, "binary version").

    Returns
    -------
    images : uint8 ``[N, 3, 32, 32]``;  labels : int64 ``[N]`` (CPU tensors).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file size is not a positive multiple of 3073 or a label exceeds 9.
    """
    path = check_path(path, "path")
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 binary file not found: {path}")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise ValueError(f"path {path}: size {raw.size} bytes is not a positive multiple of the "
                         f"{_CIFAR_RECORD}-byte CIFAR-10 record")
    rec = raw.reshape(-1, _CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"path {path}: label {labels.max()} out of range 0..9; not CIFAR-10")
    return torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: PathLike, md5: str) -> Path:
    """Download ``url`` to ``dest`` and check its MD5; nothing is left at ``dest`` on failure.

    The bytes go to a temporary file of a unique name in ``dest``'s folder, renamed to ``dest``
    only once their MD5 is right; any other file (a ``dest.part`` of your own included) is never
    touched, and an existing ``dest`` is never overwritten.

    Raises
    ------
    FileExistsError
        If ``dest`` exists (delete it first to fetch it again).
    RuntimeError
        If the URL cannot be reached (the message says where to put the file by hand).
    ChecksumError
        If the downloaded bytes do not have MD5 ``md5``.
    """
    if not isinstance(url, str) or not re.match(r"^[a-z][a-z0-9+.-]*://", url):
        raise ValueError(f"url must be a URL string (https://... or file://...); got {url!r}")
    if not isinstance(md5, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise ValueError(f"md5 must be 32 hexadecimal digits; got {md5!r}")
    return _fetch(url, check_path(dest, "dest"), md5, replace=False)


def _fetch(url: str, dest: Path, md5: str, replace: bool) -> Path:
    """:func:`download_file`; ``replace=True`` only for a file the library created itself."""
    if dest.exists() and not replace:
        raise FileExistsError(f"{dest} exists; sigprop does not overwrite files it did not create: "
                              f"delete it (rm '{dest}') to fetch it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_in(dest.parent, dest.name)
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"could not download {url} ({exc}); without network, copy the file "
                               f"to {dest} by hand, or set SIGPROP_DATA to a folder holding it") from exc
        got = _md5(tmp)
        if got != md5.lower():
            raise ChecksumError(f"MD5 of {url} is {got}, expected {md5}: the download is corrupt "
                                f"or the mirror changed; nothing was written to {dest}")
        _publish(tmp, dest, replace)
    finally:
        tmp.unlink(missing_ok=True)
    _record(dest, got, created=True)
    return dest


def _temp_in(folder: Path, name: str) -> Path:
    """A new, empty temporary file of a unique name in ``folder`` (so the rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".sigprop-tmp", dir=folder)
    os.close(fd)
    return Path(tmp)


def _publish(tmp: Path, dest: Path, replace: bool) -> None:
    """Atomically give ``tmp`` the name ``dest``; without ``replace`` an existing ``dest`` wins."""
    if replace:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # fails if dest exists: never overwrites
    except FileExistsError:
        raise FileExistsError(f"{dest} appeared while sigprop was writing it; it was left as it is") from None
    except OSError:  # a file system without hard links
        if dest.exists():
            raise FileExistsError(f"{dest} exists; sigprop does not overwrite it") from None
        os.replace(tmp, dest)


# ------------------------------------------------------------------ checksums remembered in a stamp
_STAMP = ".sigprop-verified.json"


def _read_stamp(folder: Path) -> dict:
    try:
        stamp = json.loads((folder / _STAMP).read_text())
        return stamp if isinstance(stamp, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_stamp(folder: Path, stamp: dict) -> None:
    try:
        tmp = _temp_in(folder, _STAMP)
    except OSError:
        return  # a read-only folder: every load verifies again
    try:
        tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True))
        os.replace(tmp, folder / _STAMP)
    except OSError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _record(path: Path, md5: str, created: bool) -> None:
    stamp = _read_stamp(path.parent)
    st = path.stat()
    old = stamp.get(path.name) or {}
    stamp[path.name] = {"md5": md5, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                        "created_by_sigprop": bool(created or (old.get("created_by_sigprop") and old.get("md5") == md5))}
    _write_stamp(path.parent, stamp)


def _created_by_us(path: Path) -> bool:
    return bool((_read_stamp(path.parent).get(path.name) or {}).get("created_by_sigprop"))


def _repair(path: Path, name: str, split: str) -> str:
    """The command that repairs ``path``, a file of data set ``name`` under its root."""
    root = next((p.parent for p in path.parents if p.name == name), path.parent)
    call = f"sigprop.data.load({name!r}, {split!r}, root={str(root)!r}, download=True)"
    if _created_by_us(path):
        return f"sigprop downloaded it, so {call} fetches a verified copy in its place"
    return f"To repair it: rm '{path}', then {call}; or copy an intact file there"


def _verify(path: Path, published: Optional[str], name: str, split: str) -> None:
    """Checks ``path`` against its published MD5 (or the MD5 recorded the first time it was
    read); remembers a success in the folder's stamp, so an unchanged file is not hashed again."""
    entry = _read_stamp(path.parent).get(path.name) or {}
    st = path.stat()
    if entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns and (
            published is None or entry.get("md5") == published):
        return
    got = _md5(path)
    expected = published or entry.get("md5")
    if expected and got != expected:
        what = "its published MD5" if published else "the MD5 recorded when sigprop first read it"
        raise ChecksumError(f"{path} has MD5 {got}, not {what} {expected}: the file is corrupt, truncated "
                            f"or was altered. {_repair(path, name, split)}")
    _record(path, got, created=False)


def _missing(what: str, expected: List[Path], name: str) -> FileNotFoundError:
    listing = "\n  ".join(str(p) for p in expected)
    return FileNotFoundError(
        f"{what} not found; expected\n  {listing}\nPass download=True to load({name!r}, ...) "
        f"to fetch it (checksummed), or point root= or the SIGPROP_DATA environment variable "
        f"at a folder holding {name}/ in this layout.")


def _mnist(split: str, root: Path, download: bool, keep_archive: bool = False):
    folder, files = root / "mnist", []
    for kind in ("images-idx3", "labels-idx1"):
        gz = folder / f"{_MNIST_PREFIX[split]}-{kind}-ubyte.gz"
        if not gz.is_file() and gz.with_suffix("").is_file():
            gz = gz.with_suffix("")  # an uncompressed copy
        elif not gz.is_file() and download:
            _download_mnist(gz.name, folder)
        files.append(gz)
    if not all(f.is_file() for f in files):
        raise _missing(f"MNIST {split} split", files, "mnist")
    arrays = []
    for f in files:
        published = MNIST_MD5.get(f.name)
        try:
            _verify(f, published, "mnist", split)
            arrays.append(read_idx(f))
        except (ChecksumError, ValueError) as exc:
            if not (download and published and _created_by_us(f)):
                if isinstance(exc, ChecksumError):
                    raise
                raise ValueError(f"{exc}. {_repair(f, 'mnist', split)}") from None
            _download_mnist(f.name, folder, replace=True)  # our own download, damaged: fetch it again
            _verify(f, published, "mnist", split)
            arrays.append(read_idx(f))
    images, labels = arrays
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f"MNIST files {files} have inconsistent shapes "
                         f"{tuple(images.shape)}, {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise ValueError(f"{files[1]}: labels range over {int(labels.min())}..{int(labels.max())}, outside "
                         f"MNIST's 0..9; not MNIST labels. {_repair(files[1], 'mnist', split)}")
    return (images[:, None], labels, [str(i) for i in range(10)],
            f"{files[0]} + {files[1].name}", _MNIST_SIZE[split], "", "")


def _download_mnist(fname: str, folder: Path, replace: bool = False) -> None:
    errors = []
    for mirror in MNIST_MIRRORS:
        try:
            _fetch(mirror + fname, folder / fname, MNIST_MD5[fname], replace=replace)
            return
        except ChecksumError:
            raise
        except RuntimeError as exc:
            errors.append(str(exc))
    raise RuntimeError("every MNIST mirror failed:\n" + "\n".join(errors))


def _cifar_files(folder: Path, split: str) -> Tuple[List[Path], bool]:
    """The official batch files (extracted folder, or directly in ``folder``), else for the
    test split the longest ``test_batch_first<N>.bin`` prefix; the flag says 'prefix'."""
    for d in (folder / "cifar-10-batches-bin", folder):
        files = [d / f for f in _CIFAR_FILES[split]]
        if all(f.is_file() for f in files):
            return files, False
    prefixes = sorted(folder.glob("test_batch_first*.bin") if split == "test" else [],
                      key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    if prefixes:
        return [prefixes[-1]], True
    return [folder / "cifar-10-batches-bin" / f for f in _CIFAR_FILES[split]], False


def _cifar10(split: str, root: Path, download: bool, keep_archive: bool = False):
    folder = root / "cifar10"
    files, prefix = _cifar_files(folder, split)
    if download and (prefix or not all(f.is_file() for f in files)):
        _download_cifar10(folder, keep_archive)  # the full set, also when only a prefix is on disk
        files, prefix = _cifar_files(folder, split)
    if not all(f.is_file() for f in files):
        raise _missing(f"CIFAR-10 {split} split (binary version)", files, "cifar10")
    parts = []
    for f in files:
        _verify(f, None, "cifar10", split)
        try:
            parts.append(read_cifar10_bin(f))
        except ValueError as exc:
            raise ValueError(f"{exc}. {_repair(f, 'cifar10', split)}") from None
    meta = next((m for m in (files[0].parent / "batches.meta.txt", folder / "batches.meta.txt")
                 if m.is_file()), None)
    if meta is not None:
        _verify(meta, None, "cifar10", split)
    classes = ([c.strip() for c in meta.read_text().splitlines() if c.strip()]
               if meta is not None else list(CIFAR10_CLASSES))
    if len(classes) != 10:
        raise ValueError(f"{meta} lists {len(classes)} class names; CIFAR-10 has 10")
    return (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), classes,
            ", ".join(str(f) for f in files), _CIFAR_PER_BATCH * len(_CIFAR_FILES[split]),
            "its first records, in order" if prefix else "",
            f"; class names from {meta if meta is not None else 'the built-in list'}")


def _download_cifar10(folder: Path, keep_archive: bool = False) -> None:
    """Extract the batch files that are missing from the official archive: the one already in
    ``folder`` (checked, and kept), else a fresh download (kept only with ``keep_archive``).
    Files already on disk are never replaced; each new file is written to a temporary file
    and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "cifar-10-binary.tar.gz"
    own = None
    if archive.is_file():
        _verify(archive, CIFAR10_MD5, "cifar10", "test")
    else:
        own = _temp_in(folder, archive.name)
        own.unlink()
        _fetch(CIFAR10_URL, own, CIFAR10_MD5, replace=False)
    try:
        wanted = {f"cifar-10-batches-bin/{f}" for f in
                  _CIFAR_FILES["train"] + _CIFAR_FILES["test"] + ["batches.meta.txt"]}
        with tarfile.open(own or archive, "r:gz") as tar:
            for member in tar.getmembers():  # only the known regular files, by exact name
                target = folder / member.name
                if member.name not in wanted or not member.isfile() or target.exists():
                    continue  # a file already there is the user's (or ours): kept as it is
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = _temp_in(target.parent, target.name)
                try:
                    with tar.extractfile(member) as src, open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out)
                    _publish(tmp, target, replace=False)
                finally:
                    tmp.unlink(missing_ok=True)
                _record(target, _md5(target), created=True)
        if own is not None and keep_archive:
            _publish(own, archive, replace=False)
            _record(archive, CIFAR10_MD5, created=True)
    finally:
        if own is not None:
            own.unlink(missing_ok=True)
            stamp = _read_stamp(folder)
            if stamp.pop(own.name, None) is not None:
                _write_stamp(folder, stamp)


def _digits(split: str, root: Path, download: bool, keep_archive: bool = False):
    try:  # lazy: only this loader needs scikit-learn
        from sklearn import datasets as skd
    except ImportError as exc:
        raise RuntimeError("load('digits') needs scikit-learn: pip install scikit-learn") from exc
    bunch = skd.load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32)[:, None] / 16.0)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return (images, labels, [str(c) for c in bunch.target_names],
            "scikit-learn sklearn.datasets.load_digits (the UCI optdigits test set)",
            int(images.shape[0]), "", "")


_READERS = {"mnist": (_mnist, ("train", "test")), "cifar10": (_cifar10, ("train", "test")),
            "digits": (_digits, ("test",))}


def load(name: str, split: str = "test", root: Optional[PathLike] = None, download: bool = False,
         n: Optional[int] = None, flatten: bool = False, device=None, keep_archive: bool = False) -> Dataset:
    """Load a real data set as float32 images in [0, 1] with int64 labels.

    * ``"mnist"`` (LeCun et al. 1998): 28x28x1, IDX files; 60,000 train, 10,000 test.
    * ``"cifar10"`` (Krizhevsky 2009): 32x32x3, binary version; 50,000 train, 10,000
      test. For the test split, when the official file is absent, a file
      ``cifar10/test_batch_first<N>.bin`` holding the first N official records is
      read and ``source`` marks the result PARTIAL (the offline test subset).
    * ``"digits"`` (scikit-learn; Alpaydin & Kaynak 1998): 8x8x1 pixel counts 0..16
      divided by 16. It is the UCI *test* set, so ``split="test"`` only; ``root``
      and ``download`` are unused.

    Parameters
    ----------
    name : ``"mnist"``, ``"cifar10"`` or ``"digits"``.
    split : ``"train"`` or ``"test"``.
    root : data folder; default ``$SIGPROP_DATA``, else ``~/.cache/sigprop``.
    download : fetch missing files from the official source, checking MD5 sums.
    n : take the first ``n`` records (file order); asking for more than exist raises.
    flatten : images as ``[N, C*H*W]`` instead of ``[N, C, H, W]``.
    device : where the tensors go (default :func:`sigprop.runtime.device`).
    keep_archive : keep the CIFAR-10 archive that ``download`` fetched (default: deleted
        once the batch files are extracted).

    Raises
    ------
    ValueError
        Unknown ``name`` or ``split``, bad ``n``, malformed, truncated or corrupt files, labels
        out of range (the message names the file and the command that repairs it).
    ChecksumError
        A file without its published MD5, or altered since it was first read.
    FileNotFoundError
        Files absent and ``download=False``; the message lists the paths expected.
    RuntimeError
        Download failed (no network); :class:`ChecksumError` when a checksum mismatches.
    """
    if name not in _READERS:
        raise ValueError(f"name must be one of {NAMES}; got {name!r}")
    reader, splits = _READERS[name]
    if split not in splits:
        raise ValueError(f"split must be one of {splits} for {name}; got {split!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n must be a positive integer or None; got {n!r}")
    images, labels, classes, desc, official, hint, extra = reader(split, data_root(root), download, keep_archive)
    total = int(images.shape[0])
    k = total if n is None else int(n)
    if k > total:
        raise ValueError(f"n={n} exceeds the {total} records available in {desc}")
    source = f"{desc}: first {k} of {total} records"
    if total != official:
        source += (f" (PARTIAL: {total} of the {official} records of the official {name} "
                   f"{split} set{', ' + hint if hint else ''})")
    x = images[:k].to(torch.float32) / (255.0 if images.dtype == torch.uint8 else 1.0)
    if flatten:
        x = x.reshape(k, -1)
    dev = device if isinstance(device, torch.device) else runtime.device(device)
    return Dataset(x.contiguous().to(dev), labels[:k].to(torch.int64).to(dev),
                   list(classes), f"{name}/{split}", source + extra,
                   _describe(name, split, k, total, official))


_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "digits": "scikit-learn digits"}


def _describe(name: str, split: str, k: int, total: int, official: int) -> str:
    """A reader's description of what was loaded: set, split and count, never a path."""
    text = f"{_TITLES.get(name, name)} {split} set, {k:,} of {official:,} images"
    if total != official:
        text += f" (offline subset of {total:,})" if k < total else " (offline subset)"
    return text


def load_mnist(split: str = "test", **kwargs) -> Dataset:
    """MNIST: ``load("mnist", split, ...)``; see :func:`load`."""
    return load("mnist", split, **kwargs)


def load_cifar10(split: str = "test", **kwargs) -> Dataset:
    """CIFAR-10 from its binary version: ``load("cifar10", split, ...)``; see :func:`load`."""
    return load("cifar10", split, **kwargs)


def load_digits(split: str = "test", **kwargs) -> Dataset:
    """scikit-learn's 8x8 digits: ``load("digits", split, ...)``; see :func:`load`."""
    return load("digits", split, **kwargs)


def class_balanced_subset(dataset: Dataset, per_class: int, generator: torch.Generator) -> Dataset:
    """``per_class`` random samples of every class, sorted by class.

    Within a class the chosen samples keep their order in ``dataset``. Sorting by
    class makes a correlation matrix of the subset block-structured, as needed
    by :func:`sigprop.stats.class_correlation_matrix`.

    Raises
    ------
    ValueError
        If ``per_class`` is not a positive integer or a class has fewer samples.
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset must be a sigprop.data.Dataset (from sigprop.data.load); got {type(dataset).__name__}")
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer; got {per_class!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    labels, chosen = dataset.labels, []
    for c in range(len(dataset.classes)):
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() < per_class:
            raise ValueError(f"per_class={per_class} but class {c} ({dataset.classes[c]!r}) "
                             f"has only {idx.numel()} samples in {dataset.name}")
        pick = torch.randperm(idx.numel(), generator=generator, device=generator.device)
        chosen.append(torch.sort(idx[pick[:per_class].to(idx.device)]).values)
    order = torch.cat(chosen)
    return replace(dataset, images=dataset.images[order], labels=labels[order],
                   source=f"{dataset.source}; class-balanced subset, {per_class} per class",
                   description=(f"{dataset.description}; class-balanced subset of {per_class} per class"
                                if dataset.description else ""))


def standardize(images: Tensor) -> Tensor:
    """Centre every feature over the samples, then scale to unit mean square per feature.

    With ``x`` of shape ``[N, ...]`` (features: everything after the first axis,
    d of them)::

        x_ai <- (x_ai - m_i) / s,  m_i = (1/N) sum_a x_ai,  s^2 = (1/(N d)) sum_{a,i} (x_ai - m_i)^2

    so that ``(1/N) sum_a ||x_a||^2 / d = 1``: the input length ``q^0 = 1`` of
    mean-field theory (Poole et al. 2016). One scale ``s`` shared by all features
    keeps constant pixels (MNIST borders) at 0 instead of dividing them by 0.

    Raises
    ------
    ValueError
        If ``images`` has fewer than 2 samples or does not vary at all.
    """
    if not isinstance(images, torch.Tensor) or images.is_complex():
        raise ValueError(f"images must be a real tensor of shape [N, ...]; got {type(images).__name__}")
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        raise ValueError(f"images must be finite; got {int((~torch.isfinite(images)).sum())} nan or inf value(s)")
    if images.ndim < 2 or images.shape[0] < 2:
        raise ValueError(f"images must have shape [N, ...] with N >= 2; got {tuple(images.shape)}")
    x = images.to(torch.float64)
    x = x - x.mean(dim=0, keepdim=True)
    s = x.pow(2).mean().sqrt()
    if not bool(s > 0):
        raise ValueError("images must vary across samples; every feature is constant")
    return (x / s).to(images.dtype if images.is_floating_point() else torch.float32)
