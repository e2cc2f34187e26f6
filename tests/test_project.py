"""Consistency of the project: environments, notebooks, chapters, the two commands, the book build.

These tests read files only, except the two marked ``book`` at the end, which build the
website with the same command as ``make book`` (they run after every other test; see
conftest.py). Each failure message says how to fix it.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import jupytext
import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CHAPTERS = sorted(BOOK.glob("ch*.md"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
REPO_URL = CONFIG["repository"]["url"].rstrip("/")

# conda-forge names of PyPI packages, where they differ.
CONDA_NAMES = {"torch": "pytorch"}
# The Python of environment.yml, against which requirement markers are evaluated.
ENV_PYTHON = "3.11"

# The same command as `make book` (Makefile: JB_FLAGS).
BUILD_FLAGS = ["--all", "--warningiserror", "--keep-going"]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _ids(paths):
    return [p.name for p in paths]


# --------------------------------------------------------------------------- environments

def _pyproject_requirements() -> list[Requirement]:
    data = tomllib.loads((ROOT / "lib" / "pyproject.toml").read_text(encoding="utf8"))
    return [Requirement(r) for r in data["project"]["dependencies"]]


def _book_requirements() -> list[Requirement]:
    lines = (ROOT / "requirements-book.txt").read_text(encoding="utf8").splitlines()
    reqs = [Requirement(line.split(" #")[0].strip()) for line in lines if line.strip() and not line.startswith("#")]
    env = {"python_version": ENV_PYTHON, "python_full_version": ENV_PYTHON + ".0"}
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def _environment() -> tuple[dict[str, Requirement], dict[str, Requirement], list[str]]:
    """conda requirements, pip requirements (by canonical name), and pip's other lines."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf8"))
    conda, pip, pip_other = {}, {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                if line.startswith("-"):
                    pip_other.append(line)
                else:
                    req = Requirement(line)
                    pip[canonicalize_name(req.name)] = req
        elif not re.match(r"^(python|pip)\b(?![-_.\w])", dep):
            req = Requirement(dep)
            conda[canonicalize_name(req.name)] = req
    return conda, pip, pip_other


def _lower_bounds(spec: SpecifierSet) -> list[Version]:
    return [Version(s.version) for s in spec if s.operator in (">=", ">", "==", "~=")]


def _upper_bounds(spec: SpecifierSet) -> list[Version]:
    return [Version(s.version) for s in spec if s.operator in ("<", "<=", "==")]


def _incompatibility(env_spec: SpecifierSet, wanted: SpecifierSet) -> str | None:
    """Why ``env_spec`` may install a version that ``wanted`` excludes, or None."""
    if _lower_bounds(wanted):
        lows = _lower_bounds(env_spec)
        if not lows:
            return f"has no lower bound, but {wanted} is required"
        for low in lows:
            if not wanted.contains(low, prereleases=True):
                return f"allows {low}, outside {wanted}"
    if _upper_bounds(wanted):
        highs = _upper_bounds(env_spec)
        if not highs or max(highs) > max(_upper_bounds(wanted)):
            return f"has no upper bound at or below {max(_upper_bounds(wanted))}, but {wanted} is required"
    return None


def _find_in_environment(req: Requirement):
    conda, pip, _ = _environment()
    name = canonicalize_name(req.name)
    conda_name = canonicalize_name(CONDA_NAMES.get(name, name))
    return pip.get(name) or conda.get(conda_name)


@pytest.mark.parametrize("req", _pyproject_requirements(), ids=str)
def test_environment_yml_lists_library_dependency_with_compatible_bound(req):
    found = _find_in_environment(req)
    assert found is not None, (
        f"lib/pyproject.toml needs {req}, environment.yml lacks it "
        f"(conda name: {CONDA_NAMES.get(req.name, req.name)})"
    )
    why = _incompatibility(found.specifier, req.specifier)
    assert why is None, f"environment.yml's {found} {why} (lib/pyproject.toml: {req})"


@pytest.mark.parametrize("req", _book_requirements(), ids=str)
def test_environment_yml_lists_book_tool_with_compatible_bound(req):
    found = _find_in_environment(req)
    assert found is not None, f"requirements-book.txt installs {req}, environment.yml lacks it"
    why = _incompatibility(found.specifier, req.specifier)
    assert why is None, f"environment.yml's {found} {why} (requirements-book.txt: {req})"


def test_environment_yml_installs_the_library():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf8"))
    _, _, pip_other = _environment()
    assert env["name"] == "sigprop"
    assert "conda-forge" in env["channels"]
    assert "-e ./lib" in pip_other, "environment.yml's pip section must install the library: - -e ./lib"


def test_jupyter_book_stays_on_the_1x_line():
    (jb,) = [r for r in _book_requirements() if canonicalize_name(r.name) == "jupyter-book"]
    assert not jb.specifier.contains("2.0.0"), "jupyter-book 2.x ignores _config.yml/_toc.yml: keep <2"
    assert jb.specifier.contains("1.0.4.post1")


# --------------------------------------------------------------------------- notebooks

def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (cell.cell_type, cell.source.strip(), tuple(sorted(cell.metadata.get("tags", []))))
        for cell in nb.cells
    ]


def test_there_is_at_least_one_notebook():
    assert NOTEBOOKS, "book/ has no .ipynb: every chapter is a jupytext pair (see CONTRIBUTING.md)"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_and_markdown_twin_are_in_sync(ipynb):
    md = ipynb.with_suffix(".md")
    assert md.exists(), f"{_rel(ipynb)} has no MyST twin {_rel(md)}: run `jupytext --set-formats ipynb,md:myst {_rel(ipynb)}`"
    from_md, from_ipynb = jupytext.read(md), jupytext.read(ipynb)
    formats = from_md.metadata.get("jupytext", {}).get("formats", "")
    assert "ipynb" in formats and "md:myst" in formats, f"{_rel(md)} must be paired: formats: ipynb,md:myst"
    a, b = _cells(from_md), _cells(from_ipynb)
    for i, (cell_md, cell_nb) in enumerate(zip(a, b)):
        assert cell_md == cell_nb, (
            f"cell {i} differs between {md.name} and {ipynb.name} (type, source or tags):\n"
            f"  md:    {cell_md!r:.300}\n  ipynb: {cell_nb!r:.300}\n"
            f"run `jupytext --sync {_rel(md)}` (the newer file wins), then `make notebooks`"
        )
    assert len(a) == len(b), (
        f"{md.name} has {len(a)} cells, {ipynb.name} {len(b)}: run `jupytext --sync {_rel(md)}`"
    )


@pytest.mark.parametrize("md", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_source_has_its_notebook(md):
    assert md.with_suffix(".ipynb").exists(), (
        f"{_rel(md)} has no notebook: run `jupytext --sync {_rel(md)}` and `make notebooks`"
    )


def _first_code_cell(nb):
    return next(cell for cell in nb.cells if cell.cell_type == "code")


INSTALL_URL = re.compile(r"git\+(?P<url>[^\s\"'#@]+?)(?:\.git)?(?:@[^\s\"'#]+)?#subdirectory=lib")


# Every notebook with a bootstrap cell: the chapters, and the pages that run code (diagnose,
# explore). tools/new_chapter.py's bootstrap_source is the one source of their first cell.
BOOTSTRAPPED = sorted({*NOTEBOOKS, *CHAPTERS, *(p for p in (BOOK / "diagnose.md", BOOK / "explore.md") if p.exists())})


def _new_chapter_tool():
    spec = importlib.util.spec_from_file_location("new_chapter", ROOT / "tools" / "new_chapter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bootstrap_source_installs_from_the_repository_url():
    src = _new_chapter_tool().bootstrap_source(REPO_URL)
    assert re.search(r"^try:\s*\n\s+import sigprop\s*$", src, re.M), "the bootstrap must try `import sigprop` first"
    assert re.search(r"^except ImportError:", src, re.M), "the bootstrap must install sigprop on ImportError"
    assert '[sys.executable, "-m", "pip", "install"' in src, "the bootstrap must install with the kernel's own pip"
    urls = [m["url"] for m in INSTALL_URL.finditer(src)]
    assert urls == [REPO_URL], (
        f"the bootstrap must install \"sigprop @ git+{REPO_URL}#subdirectory=lib\" by default, "
        f"the repository.url of _config.yml; found {urls}"
    )
    assert "SIGPROP_INSTALL_SOURCE" in src, "the bootstrap's install source must be overridable (SIGPROP_INSTALL_SOURCE)"


@pytest.mark.parametrize("path", BOOTSTRAPPED, ids=_ids(BOOTSTRAPPED))
def test_first_code_cell_is_the_colab_bootstrap(path):
    nb = jupytext.read(path)
    cell = _first_code_cell(nb)
    where = f"{_rel(path)}, first code cell"
    assert "remove-cell" in cell.metadata.get("tags", []), f"{where}: tag it remove-cell (hidden on the website)"
    expected = _new_chapter_tool().bootstrap_source(REPO_URL)
    assert cell.source.strip() == expected.strip(), (
        f"{where} differs from the bootstrap of tools/new_chapter.py (bootstrap_source), which "
        f"installs from _config.yml's repository.url {REPO_URL}: paste that cell in unchanged, "
        "then `jupytext --sync` the pair"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_every_install_url_is_the_repository_url(path):
    text = path.read_text(encoding="utf8")
    urls = {m["url"] for m in INSTALL_URL.finditer(text.replace('\\"', '"'))}
    assert urls <= {REPO_URL}, f"{_rel(path)} installs from {urls - {REPO_URL}}; the repository is {REPO_URL}"


def test_repository_url_is_the_same_everywhere():
    """Where the URL must be spelled out (notebooks, docs), it is _config.yml's."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "environment.yml", ROOT / "lib" / "README.md",
             ROOT / "lib" / "pyproject.toml", *BOOK.glob("*.md"), *NOTEBOOKS, *(ROOT / "tools").glob("*.py")]
    pattern = re.compile(r"https?://github\.com/[\w.-]+/sigprop\b[\w.-]*")
    wrong = {}
    for path in files:
        if path.exists():
            found = {u.removesuffix(".git") for u in pattern.findall(path.read_text(encoding="utf8"))}
            if found - {REPO_URL}:
                wrong[_rel(path)] = sorted(found - {REPO_URL})
    assert not wrong, f"repository URLs that differ from _config.yml's {REPO_URL}: {wrong}"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_stored_notebook_was_executed_cleanly(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{_rel(ipynb)}: kernelspec must be python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        tags = cell.metadata.get("tags", [])
        assert cell.get("execution_count") is not None or "skip-execution" in tags, (
            f"{_rel(ipynb)} cell {i} was never executed: run `make notebooks` so that Colab and "
            "nbval see outputs of the current code"
        )
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors or "raises-exception" in tags, (
            f"{_rel(ipynb)} cell {i} stored an error ({errors[0].get('ename')}); only cells tagged "
            "raises-exception (exercise stubs) may raise"
        )


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_exercise_stubs_are_tagged_raises_exception(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and re.search(r"^\s*raise NotImplementedError", cell.source, re.M):
            assert "raises-exception" in cell.metadata.get("tags", []), (
                f"{_rel(ipynb)} cell {i} raises NotImplementedError (an exercise stub): tag it raises-exception"
            )


# --------------------------------------------------------------------------- chapters

@pytest.mark.parametrize("md", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_ends_with_exercises(md):
    text = md.read_text(encoding="utf8")
    assert re.search(r"^(`{3,}|:{3,})\{exercise\}", text, re.M), f"{_rel(md)} has no {{exercise}} directive"
    sections = re.findall(r"^## +(.+?)\s*$", text, re.M)
    assert "Exercises" in sections, f"{_rel(md)} needs a '## Exercises' section"
    after = sections[sections.index("Exercises") + 1:]
    allowed = {"References", "Solutions", "Further reading"}
    assert set(after) <= allowed, (
        f"{_rel(md)}: only {sorted(allowed)} may follow '## Exercises'; found {after}"
    )


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        if "root" in node:
            files.append(node["root"])
        for value in node.values():
            files += _toc_files(value)
    elif isinstance(node, list):
        for value in node:
            files += _toc_files(value)
    return files


def test_toc_entries_exist_and_every_chapter_is_listed():
    listed = _toc_files(TOC)
    assert TOC["format"] == "jb-book" and TOC["root"] == "book/intro"
    missing = [f for f in listed if not (ROOT / f"{f}.md").exists()]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"
    unlisted = [_rel(md)[:-3] for md in CHAPTERS if _rel(md)[:-3] not in listed]
    assert not unlisted, f"chapters missing from _toc.yml (only_build_toc_files would drop them): {unlisted}"


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(encoding="utf8"), re.M))


def test_every_cited_key_is_in_references_bib():
    keys = _bib_keys()
    cite = re.compile(r"\{(?:foot)?cite(?::\w+)?\}`([^`]+)`")
    missing = {}
    for md in sorted(BOOK.glob("*.md")):
        for group in cite.findall(md.read_text(encoding="utf8")):
            for key in (k.strip() for k in group.split(",")):
                if key not in keys:
                    missing.setdefault(_rel(md), []).append(key)
    assert not missing, f"keys cited but absent from references.bib: {missing}"


def _api_pages() -> dict[str, list[str]]:
    """book/api/<page>.md -> the modules it documents with automodule (one page per module)."""
    return {md.stem: re.findall(r"^\.\. automodule:: (sigprop[\w.]*)\s*$", md.read_text(encoding="utf8"), re.M)
            for md in sorted((BOOK / "api").glob("*.md"))}


def test_api_reference_has_one_page_per_library_module():
    package = ROOT / "lib" / "sigprop"
    modules = {p.stem for p in package.glob("*.py") if not p.name.startswith("_")}
    modules |= {p.parent.name for p in package.glob("*/__init__.py") if not p.parent.name.startswith("_")}
    pages = _api_pages()
    documented = {m.split(".")[1] for mods in pages.values() for m in mods if m.count(".") == 1}
    assert modules - documented == set(), f"book/api/ lacks a page (automodule) for {sorted(modules - documented)}"
    assert documented - modules == set(), f"book/api/ documents modules that do not exist: {sorted(documented - modules)}"
    for stem, mods in pages.items():
        if stem != "index":
            assert mods, f"book/api/{stem}.md documents no module (an automodule in an eval-rst block)"
    listed = _toc_files(TOC)
    unlisted = [f"book/api/{stem}" for stem in pages if f"book/api/{stem}" not in listed]
    assert not unlisted, f"API pages missing from _toc.yml: {unlisted}"
    index = (BOOK / "api" / "index.md").read_text(encoding="utf8")
    unlinked = [stem for stem in pages if stem != "index" and f"<{stem}>`" not in index]
    assert not unlinked, f"book/api/index.md does not link to {unlinked}"


def test_config_reads_markdown_and_not_the_paired_notebooks():
    excluded = CONFIG["exclude_patterns"]
    for pattern in ("book/**.ipynb", ".venv", "_build", "README.md", "CONTRIBUTING.md", "lib", "tests", "benchmarks"):
        assert pattern in excluded, f"_config.yml exclude_patterns lacks {pattern!r}"
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["execute"]["raise_on_error"] is True
    assert CONFIG["execute"]["execute_notebooks"] in ("force", "cache")
    assert urlparse(REPO_URL).netloc == "github.com", "launch buttons (Colab, Binder) need a GitHub repository"


# --------------------------------------------------------------------------- the two commands

def _shell_blocks(markdown: str) -> list[list[str]]:
    blocks = re.findall(r"^```(?:sh|bash|shell|console)\s*\n(.*?)^```", markdown, re.M | re.S)
    return [[line.split("#")[0].strip() for line in b.splitlines() if line.split("#")[0].strip()] for b in blocks]


def test_readme_gives_exactly_the_two_commands():
    blocks = _shell_blocks((ROOT / "README.md").read_text(encoding="utf8"))
    assert ["make book", "make test"] in blocks, "README.md must show the two commands in one block: make book, make test"
    commands = [line for block in blocks for line in block]
    others = [c for c in commands if not re.match(r"^make (book|test)\b", c)]
    assert not others, f"README.md's shell blocks may hold only `make book` and `make test` (with variables): {others}"


def test_ci_runs_the_readme_test_command_and_nothing_else():
    ci = ROOT / ".ci" / "run"
    assert ci.stat().st_mode & 0o111, ".ci/run must be executable"
    lines = [line.strip() for line in ci.read_text(encoding="utf8").splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    steps = [c for c in commands if not re.match(r"^(set( -?\w+)+|cd .+)$", c)]
    assert steps == ["make test"], f".ci/run must run `make test` only; runs {steps}"


def test_makefile_has_the_documented_targets():
    makefile = (ROOT / "Makefile").read_text(encoding="utf8")
    for target in ("book", "test", "notebooks", "bench", "clean"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lacks the `{target}` target"
    assert "torch==2.13.0" in makefile


# --------------------------------------------------------------------------- the book build (slow, last)

# The `built_book` fixture (one build per session, shared with tests/test_site.py) is in conftest.py.


@pytest.mark.book
def test_book_builds_with_warnings_as_errors(built_book):
    returncode, log = built_book
    if returncode != 0:
        lines = log.splitlines()
        problems = []
        for i, line in enumerate(lines):
            if re.search(r"WARNING|ERROR|Error|Traceback", line) and "[IPKernelApp]" not in line:
                problems.append(line)
                if line.rstrip().endswith(":") and i + 1 < len(lines):
                    problems.append("    " + lines[i + 1])
        pytest.fail(
            f"`jupyter-book build . {' '.join(BUILD_FLAGS)}` exited {returncode}.\n"
            + "Warnings and errors:\n" + "\n".join(problems[-60:])
            + "\n\nEnd of the log:\n" + "\n".join(lines[-25:]),
            pytrace=False,
        )


@pytest.mark.book
def test_launch_buttons_open_the_chapter_notebooks(built_book):
    returncode, _ = built_book
    if returncode != 0:
        pytest.skip("the book did not build (see test_book_builds_with_warnings_as_errors)")
    org, repo = urlparse(REPO_URL).path.strip("/").split("/")[:2]
    branch = CONFIG["repository"]["branch"]
    colab = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    binder = CONFIG["launch_buttons"]["binderhub_url"].rstrip("/")
    for md in CHAPTERS:
        page = (ROOT / "_build" / "html" / "book" / f"{md.stem}.html").read_text(encoding="utf8")
        notebook = f"book/{md.stem}.ipynb"
        assert f'href="{colab}/github/{org}/{repo}/blob/{branch}/{notebook}"' in page, (
            f"{md.stem}.html has no Colab link to {notebook}"
        )
        assert f'href="{binder}/v2/gh/{org}/{repo}/{branch}?urlpath=tree/{notebook}"' in page, (
            f"{md.stem}.html has no Binder link to {notebook}"
        )


@pytest.mark.book
def test_api_page_renders_the_docstrings(built_book):
    """autodoc writes reStructuredText; in a MyST page it must sit in an {eval-rst} block,
    or the page shows raw directives and roles (and -W does not notice)."""
    returncode, _ = built_book
    if returncode != 0:
        pytest.skip("the book did not build (see test_book_builds_with_warnings_as_errors)")
    for stem, modules in _api_pages().items():
        page = (ROOT / "_build" / "html" / "book" / "api" / f"{stem}.html").read_text(encoding="utf8")
        text = re.sub(r"<[^>]+>", "", page)
        leaked = sorted(set(re.findall(r"\.\. [\w:-]+::|:(?:func|class|mod|math|meth|attr|data):`", text)))
        assert not leaked, f"book/api/{stem}.html shows raw reStructuredText: {leaked}"
        missing = [m for m in modules if f'id="module-{m}"' not in page]
        assert not missing, f"book/api/{stem}.html documents no module {missing}"


# --------------------------------------------------------------------------- code style

CODE_COLUMNS = 88
# the one line of a chapter allowed past 88 columns: an IPython magic (the bootstrap's %pip)
_MAGIC = re.compile(r"^\s*[%!]")


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_code_cells_are_ruff_formatted_at_88_columns(md, tmp_path):
    """Every code cell as the reader sees it: formatted by ruff at 88 columns (what
    `jupytext --pipe "ruff format --line-length 88 -" book/chXX.md` writes), and no line over
    88 columns (ruff does not wrap comments or strings), magics excepted. Each cell is
    checked on its own (jupytext's text between cells is its own business)."""
    pytest.importorskip("ruff", reason="ruff is not installed: pip install -r requirements-book.txt")
    nb = jupytext.read(md)
    long_lines, files = [], {}
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        for n, line in enumerate(lines, 1):
            if len(line) > CODE_COLUMNS and not _MAGIC.match(line):
                long_lines.append(f"cell {k}, line {n} ({len(line)} columns): {line[:100]}")
        # a magic is not Python: ruff sees it commented out, as jupytext writes it
        code = "\n".join("# " + line if _MAGIC.match(line) else line for line in lines).strip()
        if code:
            path = tmp_path / f"{md.stem}_cell{k:03d}.py"
            path.write_text(code + "\n", encoding="utf8")
            files[path.name] = k
    problems = []
    if files:
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--isolated", "--line-length", str(CODE_COLUMNS),
             "--diff", "."],
            cwd=tmp_path, capture_output=True, text=True, encoding="utf8",
        )
        assert ruff.returncode in (0, 1), f"ruff failed on {md.name}: {ruff.stderr[-2000:]}"
        if ruff.returncode == 1:
            cells = sorted({files[name] for name in re.findall(r"^\+\+\+ (?:\./)?(\S+\.py)", ruff.stdout, re.M)
                            if name in files})
            problems.append(
                f"ruff would reformat code cells {cells} of {md.name}; run\n"
                f'    jupytext --pipe "ruff format --line-length {CODE_COLUMNS} -" {_rel(md)}\n'
                f"diff (first 40 lines):\n" + "\n".join(ruff.stdout.splitlines()[:40]))
    if long_lines:
        problems.append(f"{len(long_lines)} code lines of {md.name} are longer than {CODE_COLUMNS} columns "
                        f"(shorten comments and strings by hand):\n  " + "\n  ".join(long_lines[:25]))
    assert not problems, "\n\n".join(problems)
