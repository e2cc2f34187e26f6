"""The notebooks as Colab users meet them, offline.

Colab opens ``book/<chapter>.ipynb`` with a GPU runtime (the notebook's own metadata asks for
one) in a Python that already holds torch, numpy and the rest of the scientific stack, but not
sigprop. The chapter's first cell, the bootstrap of ``tools/new_chapter.py``, installs sigprop
then, keeping Colab's torch and numpy, so that no restart is needed.

The fast tests here check the metadata and that lib/pyproject.toml accepts the versions Colab
has (pip then leaves every one of them in place). The slower ones simulate Colab: a fresh
virtual environment holding only what Colab preinstalls that the book needs, never sigprop
(hard-linked from the project's own environment: no network, about 3 s; so the versions are
this environment's, newer than Colab's, and Python is this one, not Colab's 3.12). In it,
sigprop's wheel built from ``lib/`` is the bootstrap's source (``SIGPROP_INSTALL_SOURCE``) and
one chapter runs top to bottom in that environment's kernel; stand-in wheels check that the
bootstrap never replaces torch or numpy and says when a restart is needed. Pip runs with
``--no-index`` and none of this machine's pip configuration: whatever it would need beyond
the wheels given, it cannot fetch.

``SIGPROP_COLAB_NOTEBOOKS="ch01_xavier_he diagnose"`` runs other notebooks the same way.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import jupytext
import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from _paths import shared_data_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
# Every page that runs code: its Markdown source is where the metadata lives.
SOURCES = sorted(p for p in BOOK.glob("*.md") if p.name.startswith("ch") or p.stem in ("diagnose", "explore"))

_spec = importlib.util.spec_from_file_location("new_chapter", ROOT / "tools" / "new_chapter.py")
new_chapter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(new_chapter)

# What Colab's GPU runtime preinstalls, as its published `pip freeze` lists it
# (github.com/googlecolab/backend-info, pip-freeze.gpu.txt, mid-2026; Python 3.12), for the
# packages the book and its kernel use. Update it when Colab moves on.
COLAB_VERSIONS = {
    "torch": "2.11.0+cu128",
    "numpy": "2.0.2",
    "scipy": "1.16.3",
    "matplotlib": "3.10.0",
    "seaborn": "0.13.2",
    "pandas": "2.2.2",
    "scikit-learn": "1.6.1",
    "ipykernel": "6.17.1",
    "ipython": "7.34.0",
    "ipywidgets": "7.7.1",
    "tqdm": "4.67.3",
    "pyyaml": "6.0.2",
    "pip": "24.1.2",
    "setuptools": "75.2.0",
}

# The chapter the simulation runs: the quickest to run top to bottom at SIGPROP_SCALE=small
# (tools/execute_notebooks.py, one page after another on the shared 2-core machine: ch05 25 s,
# ch03 32 s, diagnose 49 s, ch06 59 s, ch02 85 s; explore 19 s, but it is not a chapter).
CHAPTER = "ch05_moments"

PIP_FREEZE = [sys.executable, "-m", "pip", "--disable-pip-version-check", "freeze", "--all"]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("path", SOURCES + NOTEBOOKS, ids=[p.name for p in SOURCES + NOTEBOOKS])
def test_notebook_opens_with_a_gpu_in_colab(path):
    meta = jupytext.read(path).metadata
    for key, value in new_chapter.COLAB_METADATA.items():
        assert meta.get(key) == value, (
            f"{_rel(path)}: Colab needs the notebook metadata {key}: {value!r} (found {meta.get(key)!r}). "
            "Copy the header of tools/new_chapter.py's TEMPLATE into the Markdown source, then "
            "`make notebooks` regenerates the .ipynb with it"
        )


@pytest.mark.parametrize("md", SOURCES, ids=[p.name for p in SOURCES])
def test_colab_metadata_survives_regenerating_the_notebook(md):
    """`make notebooks` writes the .ipynb from the .md: jupytext must carry the keys over."""
    nb = jupytext.reads(jupytext.writes(jupytext.read(md), fmt="ipynb"), fmt="ipynb")
    filtered = nb.metadata.get("jupytext", {}).get("notebook_metadata_filter", "")
    for key, value in new_chapter.COLAB_METADATA.items():
        assert nb.metadata.get(key) == value, (
            f"{_rel(md)}: {key} is lost when the notebook is regenerated; its jupytext header "
            f"needs `notebook_metadata_filter: accelerator,colab` (has {filtered!r})"
        )


# --------------------------------------------------------------------------- dependencies


def _library_requirements() -> list[Requirement]:
    data = tomllib.loads((ROOT / "lib" / "pyproject.toml").read_text(encoding="utf8"))
    return [Requirement(r) for r in data["project"]["dependencies"]]


@pytest.mark.parametrize("req", _library_requirements(), ids=str)
def test_colab_already_satisfies_library_dependency(req):
    """pip then installs sigprop alone: no package Colab has imported is replaced (no restart)."""
    name = canonicalize_name(req.name)
    assert name in COLAB_VERSIONS, (
        f"lib/pyproject.toml needs {req}, which Colab does not preinstall: the bootstrap cell would "
        "download it (add it to COLAB_VERSIONS here if Colab has it)"
    )
    colab = Version(COLAB_VERSIONS[name])
    assert req.specifier.contains(colab, prereleases=True), (
        f"lib/pyproject.toml requires {req}, but Colab has {req.name} {colab}: pip would replace it "
        "and the session would need a restart. Keep the bound loose enough for Colab's version"
    )


# --------------------------------------------------------------------------- Colab, simulated


def _closure(names) -> list[metadata.Distribution]:
    """The installed distributions ``names`` need, their dependencies included (no extras)."""
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        dists.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    todo, seen = [canonicalize_name(n) for n in names], {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in dists:
            pytest.skip(f"the test environment lacks {name}, which Colab preinstalls")
        seen[name] = dists[name]
        for line in dists[name].requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    assert "sigprop" not in seen, "a package Colab preinstalls depends on sigprop?"
    return list(seen.values())


def _colab_venv(where: Path) -> Path:
    """A fresh venv holding only COLAB_VERSIONS' packages and their dependencies, taken from
    this environment (hard links, else copies; console scripts left out); never sigprop."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip())
    for dist in _closure(COLAB_VERSIONS):
        if not dist.files:
            pytest.skip(f"{dist.metadata['Name']} has no RECORD: cannot copy it into the simulated Colab")
        base = Path(dist.locate_file(""))
        for file in dist.files:
            source = base / file
            if file.parts[0] == ".." or not source.is_file():  # bin/ scripts, share/ data
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)  # a later unlink in the venv leaves the original alone
            except OSError:
                shutil.copy2(source, target)
    return python


def _freeze(python: Path) -> dict[str, str]:
    """Name -> version (or ``@ url``) of everything installed in ``python``'s environment."""
    lines = subprocess.run([str(python), *PIP_FREEZE[1:]], capture_output=True, text=True, check=True).stdout
    pairs = [line.split("==", 1) if "==" in line else line.split(" @ ", 1) for line in lines.splitlines()]
    return {canonicalize_name(name.strip()): version.strip() for name, version in pairs}


def _wheel(source: Path, out: Path) -> Path:
    """The wheel of the project in ``source``, built offline with this environment's setuptools."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", str(source),
         "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True, env={**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull},
        capture_output=True, text=True,
    )
    return max(out.glob("*.whl"), key=lambda p: p.stat().st_mtime)


def _sigprop_wheel(where: Path) -> Path:
    """sigprop's wheel, built from a copy of lib/ (the working tree gets no build/ folder)."""
    source = where / "lib"
    shutil.copytree(ROOT / "lib", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    return _wheel(source, where / "wheels")


def _tiny_wheel(where: Path, name: str, version: str, requires: list[str]) -> Path:
    """A stand-in wheel of distribution ``name`` (an empty module of that name), written directly."""
    where.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests/test_colab.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{info}/RECORD"])
    wheel = where / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for arcname, text in files.items():
            archive.writestr(arcname, text)
    return wheel


def _colab_env(python: Path, source: Path, find_links: Path | None = None) -> dict[str, str]:
    """Colab's kernel, offline: the venv first on PATH, no PYTHONPATH, pip with no index and
    none of this machine's configuration, and sigprop's install source ``source``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(python.parent.parent),
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        SIGPROP_INSTALL_SOURCE=str(source),
    )
    if find_links is not None:
        env["PIP_FIND_LINKS"] = str(find_links)
    env.setdefault("SIGPROP_SCALE", "small")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run_bootstrap(python: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The bootstrap cell is plain Python (no magics): run it as a script in ``python``."""
    source = new_chapter.bootstrap_source(new_chapter.repository_url(ROOT))
    return subprocess.run([str(python), "-c", source], env=env, capture_output=True, text=True, timeout=300)


def test_bootstrap_keeps_torch_and_numpy_and_says_when_to_restart(tmp_path):
    """Stand-in sigprop wheels with other needs, in the simulated Colab (the bootstrap cell is
    plain Python, so it runs as a script). One that needs another numpy or torch, with that
    version at hand: pip must refuse (the installed ones are pinned), the cell stops with pip's
    message, and nothing changes. One that needs a newer tqdm: pip replaces tqdm, and the cell
    says, in its one sentence, to restart."""
    python = _colab_venv(tmp_path / "colab")
    before = _freeze(python)
    wheels = tmp_path / "wheels"
    for name in ("numpy", "torch", "tqdm"):
        _tiny_wheel(wheels, name, "999.0", [])
    for needs in ("numpy>=999", "torch>=999"):
        sigprop = _tiny_wheel(tmp_path / needs[:5], "sigprop", "0.0.1", [needs])
        run = _run_bootstrap(python, _colab_env(python, sigprop, find_links=wheels))
        assert run.returncode != 0, f"the bootstrap installed a sigprop that needs {needs}:\n{run.stdout}"
        assert "RuntimeError: pip could not install sigprop:" in run.stderr, run.stderr
        assert "ResolutionImpossible" in run.stderr or "conflict" in run.stderr.lower(), run.stderr
        assert _freeze(python) == before, f"a failed install changed the environment ({needs})"

    sigprop = _tiny_wheel(tmp_path / "tqdm", "sigprop", "0.0.1", ["tqdm>=999"])
    run = _run_bootstrap(python, _colab_env(python, sigprop, find_links=wheels))
    assert run.returncode == 0, run.stderr
    assert f"Installing sigprop from {sigprop} ..." in run.stdout, run.stdout
    assert (
        "Installing sigprop changed tqdm: restart the session (Runtime > Restart session), "
        "then run the notebook again." in run.stdout
    ), run.stdout
    after = _freeze(python)
    assert after["tqdm"] == "999.0" != before["tqdm"]
    assert after["numpy"] == before["numpy"] and after["torch"] == before["torch"]


def _notebooks_to_run() -> list[str]:
    return os.environ.get("SIGPROP_COLAB_NOTEBOOKS", CHAPTER).split()


@pytest.mark.parametrize("name", _notebooks_to_run())
def test_chapter_runs_in_a_simulated_colab(name, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    data = Path(os.environ.get("SIGPROP_DATA") or shared_data_dir())
    if not data.is_dir():
        pytest.skip(f"the chapters read real data offline from SIGPROP_DATA; {data} does not exist")

    python = _colab_venv(tmp_path / "colab")
    found = subprocess.run([str(python), "-c", "import sigprop"], capture_output=True, text=True)
    assert found.returncode != 0, "sigprop is importable in the simulated Colab before the bootstrap ran"
    before = _freeze(python)
    assert "sigprop" not in before
    wheel = _sigprop_wheel(tmp_path)

    # The kernel of the simulated Colab: its own python, ipykernel and environment.
    spec_dir = tmp_path / "kernels" / "colab"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab (simulated)",
        "language": "python",
    }))
    km = KernelManager(kernel_name="colab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]))

    # The notebook as `make notebooks` writes it from the Markdown source, outputs left out.
    nb = jupytext.read(BOOK / f"{name}.md")
    workdir = tmp_path / "book"
    workdir.mkdir()
    client = NotebookClient(nb, km=km, timeout=600, allow_errors=False, resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute(env={**_colab_env(python, wheel), "SIGPROP_DATA": str(data)})
    except CellExecutionError as error:  # the message holds the cell and its traceback
        pytest.fail(f"{name} failed in the simulated Colab:\n{str(error)[-4000:]}", pytrace=False)
    finally:
        if km.has_kernel:  # nbclient leaves a kernel manager it was given running
            km.shutdown_kernel(now=True)
        nbformat.write(nb, tmp_path / f"{name}.ipynb")

    # The bootstrap installed sigprop from the wheel, said nothing about a restart, and
    # changed nothing else: Colab's torch and numpy are the ones it started with.
    bootstrap = next(cell for cell in nb.cells if cell.cell_type == "code")
    printed = "".join(o.get("text", "") for o in bootstrap.get("outputs", []))
    assert f"Installing sigprop from {wheel}" in printed, f"the bootstrap did not install sigprop:\n{printed}"
    assert "restart" not in printed.lower(), f"the bootstrap asks for a restart:\n{printed}"
    after = _freeze(python)
    added = {k: v for k, v in after.items() if k not in before}
    changed = {k: (before[k], after.get(k)) for k in before if after.get(k) != before[k]}
    assert not changed, f"installing sigprop changed preinstalled packages (before, after): {changed}"
    assert set(added) == {"sigprop"}, f"the bootstrap installed {added}, not sigprop alone"
    direct_url = json.loads(subprocess.run(
        [str(python), "-c", "from importlib.metadata import distribution as d; print(d('sigprop').read_text('direct_url.json'))"],
        capture_output=True, text=True, check=True,
    ).stdout)
    assert direct_url["url"] == wheel.as_uri(), f"sigprop came from {direct_url['url']}, not the local wheel"
