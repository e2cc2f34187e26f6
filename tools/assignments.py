"""Graded assignments from the book's chapters, graded with otter-grader's hidden tests.

    python tools/assignments.py release book/ch02_mean_field.md -o course/
    python tools/assignments.py grade book/ch02_mean_field.md course/submissions/ -o course/grades/
    python tools/assignments.py check-key book/ch02_mean_field.md

The chapters (``book/*.md``) are the single source. ``release`` writes

* ``course/student/<chapter>.ipynb``, to hand out: prompts, stubs and the reader's own check
  cells; the ``{solution}`` blocks (also the gated ``{solution-start}``/``{solution-end}``
  form, ``<details>`` blocks whose summary says "Solution" and code cells tagged ``solution``)
  and the hidden tests are deleted, not hidden;
* ``course/instructor/<chapter>.ipynb``: everything, solutions and hidden tests included.

``--only-exercises`` keeps just the chapter's set-up cells (those before its first ``##``
section) and its "Exercises" section, and ``--exercise LABEL`` (repeatable) only those
exercises: a short assignment that runs in seconds.

Hidden tests. Each exercise of a chapter has one, after its solution, in an HTML comment
(invisible on the website and in Jupyter; deleted from the student copy)::

    <!-- hidden-test ch02-ex1
    from otter.test_files import test_case

    name = "ch02-ex1"
    points = 2

    def cases(rng):           # the grader's process: inputs drawn for this student
        return [...]

    def answer(case):         # the student's kernel, after all their cells
        return float(relu_c_map(...))

    @test_case(points=2, hidden=True)
    def closed_form(cases, answers):   # the grader's process
        assert ...
    -->

The block is an otter-grader exception-based test file plus two functions. ``grade``
draws the cases in its own process (``random.Random`` seeded per run, student and
exercise), runs the student's notebook and then ``answer`` on each case in a sandbox, and
gets back plain values; the ``@test_case`` functions then run in the grader's own process
with reference values computed there, through otter's ``ExceptionTestFile``. Printed text,
the notebook's metadata and anything the student's kernel does to ``sigprop`` never reach
the grade. ``cases`` and the test functions must not rely on anything the student returns
beyond the values.

``grade`` grades each submission in a scratch copy, in its own process group, under a
wall-clock and a memory limit (killed with its children when over, and reported as a
timeout or out-of-memory), inside bubblewrap when it works on the machine (network off,
the filesystem read-only outside the scratch copy, the submissions and other scratch
copies invisible, its own process namespace). A batch of N notebooks always gives N
results, each with its reason, and writes ``grades.csv`` (the gradebook), ``report.json``
(isolation in force, limits, seed, every exercise's outcome), ``report.txt`` and
``gradescope/<student>.json`` (otter's Gradescope results format).

``check-key`` is for chapter authors: the student copy holds no solution or hidden test,
grades 0, and with each solution pasted in place of its stub grades full marks. It ignores
solution lines that the stub already contains (a ``def`` line, a docstring): the student is
given them, so finding them in the student copy is no leak.

Why not nbgrader or otter-grader as shipped: neither gives grades a student cannot fake.
nbgrader scores a test cell by whether the executed notebook shows an error in it, and a
student's ``set_custom_exc`` in an earlier cell hides the error; otter runs its checks inside
the student's kernel and pickles the results from there (``otter.execute``), so a student who
replaces ``Checker`` writes their own grade, and otter isolates students with Docker, which does
not run on our machines. This tool takes from otter its test-file format, its results objects
and their Gradescope export, runs the notebook and ``answer`` in a bubblewrap sandbox
(``tools/grade_runner.py``), and runs the tests in its own process on plain values.
"""
from __future__ import annotations

import argparse
import ast
import copy
import csv
import ctypes
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "grade_runner.py"

#: Code cells with this tag are solutions: removed from the student copy.
SOLUTION_TAG = "solution"
#: Notebook metadata key that says which copy a notebook is (informative only: never read
#: when grading).
META_KEY = "sigprop_assignment"

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<arg>.*?)\s*$")
_CODE_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?:\{code-block\}|\{code\}|\{code-cell\})?[ \t]*(?P<lang>[\w+-]*)")
_DETAILS_OPEN = re.compile(r"<details\b", re.I)
_DETAILS_CLOSE = re.compile(r"</details\s*>", re.I)
_HIDDEN_TEST = re.compile(r"<!--[ \t]*hidden-test[ \t]+(?P<label>[\w.-]+(?::[\w.-]+)*?):?(?=[ \t\n])[^\n]*\n(?P<body>.*?)-->[ \t]*\n?", re.S)
_HEADING2 = re.compile(r"^##[ \t]+\S")
_EXERCISES = re.compile(r"^##[ \t]+Exercises[ \t]*$")


@dataclass
class Directive:
    """A fenced MyST directive found in a markdown cell: lines ``start..end`` (inclusive)."""

    name: str
    arg: str
    start: int
    end: int
    body: List[str] = field(default_factory=list)

    def option(self, key: str) -> Optional[str]:
        for line in self.body:
            match = re.match(rf"^\s*:{key}:\s*(.*?)\s*$", line)
            if match:
                return match[1]
        return None


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def directives(text: str) -> List[Directive]:
    """The top-level fenced directives (```` ```{name} ```` or ``:::{name}``) of a markdown text.

    A directive ends at the first line holding only its fence character, at least as many
    times as it opened with (MyST's rule), so that shorter fences nest inside it.
    """
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        fence, j = match["fence"], i + 1
        while j < len(lines) and not _closes(lines[j], fence):
            j += 1
        found.append(Directive(match["name"], match["arg"], i, min(j, len(lines) - 1), lines[i + 1:j]))
        i = j + 1
    return found


def _details_solution_spans(lines: List[str]) -> List[Tuple[int, int]]:
    spans, i = [], 0
    while i < len(lines):
        if _DETAILS_OPEN.search(lines[i]):
            j = i
            while j < len(lines) and not _DETAILS_CLOSE.search(lines[j]):
                j += 1
            block = "\n".join(lines[i:j + 1])
            summary = re.search(r"<summary[^>]*>(.*?)</summary>", block, re.I | re.S)
            if summary and re.search(r"solution", summary[1], re.I):
                spans.append((i, min(j, len(lines) - 1)))
            i = j + 1
        else:
            i += 1
    return spans


def exercise_labels(nb) -> List[str]:
    """The labels of the notebook's ``{exercise}`` directives, in order."""
    labels = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for d in directives(cell.source):
                if d.name == "exercise" and d.option("label"):
                    labels.append(d.option("label"))
    return labels


def _python_block(body: List[str]) -> Optional[str]:
    """The first fenced Python code block inside a directive's body."""
    i = 0
    while i < len(body):
        match = _CODE_FENCE.match(body[i])
        if match and match["lang"].lower() in ("python", "python3", "ipython", "ipython3", "py"):
            fence, j = match["fence"], i + 1
            while j < len(body) and not _closes(body[j], fence):
                j += 1
            code = [line for line in body[i + 1:j] if not re.match(r"^\s*:\w[\w-]*:", line)]
            return "\n".join(code).strip("\n")
        i += 1
    return None


def solution_code(nb) -> Dict[str, str]:
    """For each exercise label, the code that replaces its stub (what a student who solved it
    would have written): the code cells tagged ``solution``, or inside a gated
    ``{solution-start}``/``{solution-end}`` block, that follow the exercise (joined); else the
    first Python code block inside its ``{solution} <label>`` directive, or inside a
    ``<details>`` block whose summary says "Solution" after the exercise."""
    from_cells: Dict[str, List[str]] = {}
    from_blocks: Dict[str, str] = {}
    current, gated = None, False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            for d in directives(cell.source):
                if d.name == "exercise" and d.option("label"):
                    current = d.option("label")
                elif d.name in ("solution", "solution-start") and d.arg:
                    current = d.arg.split()[0]
                    code = _python_block(d.body)
                    if code and current not in from_blocks:
                        from_blocks[current] = code
                if d.name in ("solution-start", "solution-end"):
                    gated = d.name == "solution-start"
            for i, j in _details_solution_spans(lines):
                code = _python_block(lines[i + 1:j])
                if code and current and current not in from_blocks:
                    from_blocks[current] = code
        elif cell.cell_type == "code" and current and (gated or SOLUTION_TAG in cell.metadata.get("tags", [])):
            from_cells.setdefault(current, []).append(cell.source)
    out = dict(from_blocks)
    out.update({label: "\n\n".join(srcs) for label, srcs in from_cells.items()})
    return out


# --------------------------------------------------------------------------- hidden tests

@dataclass
class HiddenTest:
    """The hidden test of one exercise: an otter exception-based test file with ``cases``
    (run by the grader) and ``answer`` (run in the student's kernel)."""

    label: str
    source: str

    def namespace(self) -> dict:
        """The test file executed in a fresh namespace of the grader's process."""
        ns: dict = {"__name__": f"hidden_test_{self.label}"}
        exec(compile(self.source, f"<hidden test {self.label}>", "exec"), ns)
        for name in ("cases", "answer"):
            if not callable(ns.get(name)):
                raise ValueError(f"the hidden test of {self.label} defines no function {name}()")
        return ns

    @property
    def points(self) -> float:
        return float(self.test_file().possible)

    def cases(self, rng: random.Random) -> list:
        """The inputs drawn for one student (plain JSON values)."""
        cases = self.namespace()["cases"](rng)
        return json.loads(json.dumps(cases))

    def kernel_source(self) -> str:
        """What runs in the student's kernel: the imports and ``answer`` (and any helper
        function whose name starts with ``_``), not the tests."""
        tree = ast.parse(self.source)
        keep = []
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("otter")):
                    keep.append(ast.get_source_segment(self.source, node))
            elif isinstance(node, ast.FunctionDef) and not node.decorator_list and (
                    node.name == "answer" or node.name.startswith("_")):
                keep.append(ast.get_source_segment(self.source, node))
        return "\n\n".join(keep) + "\n"

    def test_file(self):
        """The otter ``ExceptionTestFile`` (its ``@test_case`` functions), fresh each call."""
        from otter.test_files.exception_test import ExceptionTestFile

        tf = ExceptionTestFile.from_string(self.source, path=f"{self.label}.py")
        if not tf.test_cases:
            raise ValueError(f"the hidden test of {self.label} has no @test_case function")
        return tf


def hidden_tests(nb) -> Dict[str, HiddenTest]:
    """The hidden tests of a chapter (``<!-- hidden-test <label> ... -->`` blocks)."""
    found: Dict[str, HiddenTest] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for match in _HIDDEN_TEST.finditer(cell.source):
                found[match["label"]] = HiddenTest(match["label"], match["body"])
    return found


# --------------------------------------------------------------------------- the copies

def read_chapter(path: Path):
    """A chapter as a notebook: its MyST source (``.md``, through jupytext) or a notebook."""
    path = Path(path)
    if path.suffix == ".md":
        nb = jupytext.read(path, fmt="md:myst")
    else:
        nb = nbformat.read(path, as_version=4)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                          "language": "python"})
    return nb


def _md_cell(source: str):
    return nbformat.v4.new_markdown_cell(source)


def _split_at_exercises(source: str) -> List[Tuple[Optional[str], str]]:
    """Split a markdown text before each ``{exercise}`` directive: (label or None, text)."""
    lines = source.splitlines()
    starts = [(d.start, d.option("label")) for d in directives(source) if d.name == "exercise"]
    pieces, last, label = [], 0, None
    for start, new_label in starts:
        if start > last:
            pieces.append((label, "\n".join(lines[last:start])))
        last, label = start, new_label
    pieces.append((label, "\n".join(lines[last:])))
    return [(lab, text) for lab, text in pieces if text.strip()]


def select(nb, only_exercises: bool = False, labels: Optional[Sequence[str]] = None):
    """A copy of ``nb`` with only its set-up and "Exercises" section (``only_exercises``),
    and of those only the exercises in ``labels`` (when given).

    Raises
    ------
    ValueError
        If the chapter has no "## Exercises" section, or a label is not one of its exercises.
    """
    if not only_exercises and not labels:
        return copy.deepcopy(nb)
    out = copy.deepcopy(nb)
    known = exercise_labels(nb)
    unknown = [lab for lab in labels or () if lab not in known]
    if unknown:
        raise ValueError(f"exercise must be one of {known}; got {unknown}")
    cells, section, current = [], "setup", None
    for cell in out.cells:
        if cell.cell_type != "markdown":
            if section == "setup" or (section == "exercises" and (not labels or current in labels)):
                cells.append(cell)
            continue
        lines = cell.source.splitlines()
        kept: List[str] = []
        for line in lines:
            if _HEADING2.match(line):
                section = "exercises" if _EXERCISES.match(line) else (
                    "after" if section == "exercises" else "body")
            if section in ("setup", "exercises"):
                kept.append(line)
        if section == "setup" and kept:
            cells.append(_md_cell("\n".join(kept)))
            continue
        if not kept:
            continue
        for label, text in _split_at_exercises("\n".join(kept)):
            current = label if label is not None else current
            if not labels or current is None or current in labels:
                cells.append(_md_cell(text))
    if section not in ("exercises", "after") and only_exercises:
        raise ValueError("the chapter has no '## Exercises' section")
    out.cells = cells
    return out


def _strip_markdown(text: str, gated: bool) -> Tuple[str, bool]:
    """Remove solution blocks and hidden tests from one markdown cell; ``gated`` says whether
    a ``{solution-start}`` block is open from an earlier cell. Returns the text and the flag."""
    text = _HIDDEN_TEST.sub("", text)
    lines = text.splitlines()
    found = directives(text)
    drop = [False] * len(lines)
    for d in found:
        if d.name == "solution":
            drop[d.start:d.end + 1] = [True] * (d.end + 1 - d.start)
    marks = {d.start: d for d in found if d.name in ("solution-start", "solution-end")}
    state, k = gated, 0
    while k < len(lines):
        d = marks.get(k)
        if d is None:
            drop[k] = drop[k] or state
            k += 1
            continue
        drop[d.start:d.end + 1] = [True] * (d.end + 1 - d.start)
        state = d.name == "solution-start"
        k = d.end + 1
    for i, j in _details_solution_spans(lines):
        for m in range(i, j + 1):
            drop[m] = True
    kept = [line for line, dropped in zip(lines, drop) if not dropped]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n"), state


def student_notebook(nb, clear_outputs: bool = True):
    """A copy of ``nb`` with every solution and hidden test removed (see the module's docstring)."""
    out = copy.deepcopy(nb)
    cells, gated = [], False
    for cell in out.cells:
        if cell.cell_type == "markdown":
            source, gated = _strip_markdown(cell.source, gated)
            cell.pop("attachments", None)
            if source.strip():
                cell.source = source
                cells.append(cell)
        elif cell.cell_type == "code":
            if gated or SOLUTION_TAG in cell.metadata.get("tags", []):
                continue
            if clear_outputs:
                cell.outputs, cell.execution_count = [], None
            cells.append(cell)
        elif not gated:
            cells.append(cell)
    out.cells = cells
    out.metadata.pop("jupytext", None)  # no pairing with a Markdown twin in the handed-out copy
    out.metadata[META_KEY] = {"copy": "student", "exercises": exercise_labels(nb)}
    return out


def instructor_notebook(nb):
    """A copy of ``nb`` with everything, solutions and hidden tests included."""
    out = copy.deepcopy(nb)
    out.metadata.pop("jupytext", None)
    out.metadata[META_KEY] = {"copy": "instructor", "exercises": exercise_labels(nb)}
    return out


def _is_stub(cell) -> bool:
    return cell.cell_type == "code" and re.search(r"^\s*raise NotImplementedError", cell.source, re.M) is not None


def stub_cells(nb) -> Dict[str, int]:
    """For each exercise label, the index of its stub: the first code cell after the
    ``{exercise}`` directive that raises ``NotImplementedError``."""
    stubs: Dict[str, int] = {}
    current = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for d in directives(cell.source):
                if d.name == "exercise" and d.option("label"):
                    current = d.option("label")
        elif current and current not in stubs and _is_stub(cell):
            stubs[current] = i
    return stubs


def check_cells(nb) -> Dict[str, List[int]]:
    """For each label, the code cells that call ``check("<label>", ...)``."""
    found: Dict[str, List[int]] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for label in re.findall(r"\bcheck\(\s*[\"']([\w.:-]+)[\"']", cell.source):
                found.setdefault(label, []).append(i)
    return found


def completed_notebook(nb):
    """The student copy of ``nb`` with each stub replaced by its solution's code (a student
    who solved everything).

    Raises
    ------
    ValueError
        If an exercise has no stub or no solution code.
    """
    student = student_notebook(nb)
    codes, stubs = solution_code(nb), stub_cells(student)
    for label in exercise_labels(nb):
        if label not in stubs:
            raise ValueError(f"exercise {label} has no stub cell (a code cell raising NotImplementedError)")
        if label not in codes:
            raise ValueError(f"exercise {label} has no solution code (a ```python block in its "
                             f"{{solution}}, or a code cell tagged {SOLUTION_TAG!r})")
        cell = student.cells[stubs[label]]
        cell.source = codes[label]
        cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t != "raises-exception"]
    student.metadata[META_KEY]["copy"] = "completed"
    return student


def solution_texts(nb) -> List[str]:
    """The text of every solution and hidden test in ``nb`` (a student copy must hold none)."""
    texts = []
    student = student_notebook(nb)
    kept = {c.source for c in student.cells}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source not in kept:
            texts.append(cell.source)
        elif cell.cell_type == "markdown":
            for d in directives(_HIDDEN_TEST.sub("", cell.source)):
                if d.name == "solution":
                    texts.extend(line.strip() for line in d.body
                                 if line.strip() and not re.match(r"^\s*(:\w[\w-]*:|`{3,}|~{3,}|:{3,})", line))
    for test in hidden_tests(nb).values():
        texts.extend(line.strip() for line in test.source.splitlines()
                     if re.match(r"^\s*(def |assert |return )", line))
    # a line the chapter's other code cells hold anyway (a stub's `def` line, a setup call) is
    # not solution text
    given = {line.strip() for cell in nb.cells if cell.cell_type == "code"
             and SOLUTION_TAG not in cell.get("metadata", {}).get("tags", []) for line in cell.source.splitlines()}
    return [t for t in texts if len(t.strip()) >= 8 and t.strip() not in given]


def leaked_solution_text(nb, student) -> List[str]:
    """The lines of ``nb``'s solutions and hidden tests that are lines of ``student`` too."""
    held = {line.strip() for cell in student.cells for line in cell.source.splitlines()}
    return [t for t in solution_texts(nb) if t.strip() in held]


def _write(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def release(chapter: Path, output: Path, only_exercises: bool = False,
            labels: Optional[Sequence[str]] = None) -> Tuple[Path, Path]:
    """Write ``output/student/<chapter>.ipynb`` and ``output/instructor/<chapter>.ipynb``."""
    nb = select(read_chapter(chapter), only_exercises, labels)
    name = Path(chapter).stem + ".ipynb"
    student, instructor = output / "student" / name, output / "instructor" / name
    _write(student_notebook(nb), student)
    _write(instructor_notebook(nb), instructor)
    return student, instructor


# --------------------------------------------------------------------------- the sandbox

_BWRAP_STATE: Dict[str, object] = {}


def bwrap_status() -> Tuple[bool, str]:
    """Whether bubblewrap works on this machine, and why not when it does not."""
    if "ok" not in _BWRAP_STATE:
        path = shutil.which("bwrap")
        if not path:
            _BWRAP_STATE.update(ok=False, why="bubblewrap (bwrap) is not installed")
        else:
            probe = subprocess.run([path, *_BWRAP_BASE, "--", sys.executable, "-c", "pass"],
                                   capture_output=True, text=True, timeout=60)
            _BWRAP_STATE.update(ok=probe.returncode == 0,
                                why=(probe.stderr.strip() or f"exit status {probe.returncode}")[:200])
    return bool(_BWRAP_STATE["ok"]), str(_BWRAP_STATE["why"])


# bubblewrap: a new namespace of every kind (network: loopback only; processes: the
# sandbox's own, all killed when it ends), no capabilities (run by root, bwrap would keep
# them, and a process could remount the filesystem read-write), user "nobody" and no nested
# user namespace, the whole filesystem read-only, a private /tmp.
_BWRAP_BASE = ["--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
               "--uid", "65534", "--gid", "65534", "--die-with-parent", "--new-session",
               "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
               "--tmpfs", "/dev/shm"]


def _sandbox_command(scratch: Path, hide: Sequence[Path], use_bwrap: bool, result_fd: int) -> List[str]:
    runner = [sys.executable, "-B", str(RUNNER), "--result-fd", str(result_fd)]
    if not use_bwrap:
        return runner
    command = [shutil.which("bwrap"), *_BWRAP_BASE]
    for folder in hide:  # the submissions, the gradebook and the other scratch copies
        if folder.exists():
            command += ["--tmpfs", str(folder)]
    command += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch), "--"]
    return command + runner


def _subreaper(on: bool) -> bool:
    """Make this process a child subreaper (Linux) or not; returns whether it was one before.

    As subreaper, orphaned processes of a submission become this process's children, so that
    a process that left its group is still found and killed. Grading restores the flag it
    found, so a host program (a notebook, a test session) keeps its own behaviour."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        was = ctypes.c_int(0)
        libc.prctl(37, ctypes.byref(was), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
        libc.prctl(36, int(on), 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        return bool(was.value)
    except Exception:  # noqa: BLE001 - not Linux: process groups only
        return False


def _descendants(pid: int):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


#: Most bytes read back from one sandbox (answers and progress).
MAX_RESULT_BYTES = 64 * 2**20

_ACTIVE: set = set()  # pids of the sandboxes being waited for by their own Popen
#: The children this process already had when grading began: the host program's own (a test
#: session's book build, a notebook's subprocesses). They and their descendants are never
#: killed or reaped by the grader.
_HOST_CHILDREN: set = set()


def _adopted():
    """Orphans of submissions adopted as subreaper: the direct children of this process that
    it neither had when grading began nor is waiting for as a sandbox."""
    import psutil

    return [c for c in psutil.Process().children() if c.pid not in _HOST_CHILDREN and c.pid not in _ACTIVE]


def _reap() -> None:
    """Collect the exit status of adopted orphans, so that none stays a zombie (never a host
    child's: its own ``Popen`` would then lose its exit status)."""
    import psutil

    for child in _adopted():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


def _kill(processes) -> int:
    import psutil

    killed = 0
    for p in processes:
        try:
            p.kill()
            killed += 1
        except psutil.Error:
            pass
    return killed


@dataclass
class Run:
    """What happened to one submission in its sandbox."""

    status: str                     # "completed", "timeout", "out-of-memory", "failed"
    reason: str
    answers: Dict[str, list] = field(default_factory=dict)
    wall_s: float = 0.0
    peak_mb: float = 0.0
    last_cell: Optional[int] = None


def run_submission(path: Path, probes: List[dict], scratch: Path, hide: Sequence[Path],
                   timeout: float, memory_mb: float, use_bwrap: bool) -> Run:
    """Run one submission and its probes in ``scratch`` under the limits (see ``grade``)."""
    import psutil

    scratch.mkdir(parents=True)
    (scratch / "home").mkdir()
    shutil.copyfile(path, scratch / "submission.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER_", "PYTEST_"))}
    env.update(HOME=str(scratch / "home"), JUPYTER_RUNTIME_DIR=str(scratch / "home" / "runtime"),
               IPYTHONDIR=str(scratch / "home" / "ipython"), MPLCONFIGDIR=str(scratch / "home" / "mpl"),
               TMPDIR=str(scratch / "home"), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    read_fd, write_fd = os.pipe()
    records: List[dict] = []

    def reader():
        # bounded: the sandbox may write anything into this pipe (it is only ever values)
        total = 0
        with os.fdopen(read_fd, "rb") as stream:
            while total < MAX_RESULT_BYTES:
                line = stream.readline(MAX_RESULT_BYTES - total)
                if not line:
                    break
                total += len(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
            while stream.read(1 << 16):  # drain, so the sandbox is never blocked on a full pipe
                pass

    log = open(scratch.parent / f"{scratch.name}.log", "wb")
    start = time.monotonic()
    proc = subprocess.Popen(_sandbox_command(scratch, hide, use_bwrap, write_fd), cwd=scratch, env=env,
                            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                            pass_fds=(write_fd,), start_new_session=True)
    _ACTIVE.add(proc.pid)
    os.close(write_fd)
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        proc.stdin.write(json.dumps({"notebook": "submission.ipynb", "probes": probes}).encode())
        proc.stdin.close()
    except OSError:
        pass
    seen, peak, over = {}, 0.0, None
    while proc.poll() is None:
        tree = [psutil.Process(proc.pid)] + _descendants(proc.pid) if psutil.pid_exists(proc.pid) else []
        rss = 0
        for p in tree:
            try:
                rss += p.memory_info().rss
                seen[p.pid] = p
            except psutil.Error:
                pass
        peak = max(peak, rss / 2**20)
        if rss / 2**20 > memory_mb:
            over = "out-of-memory"
        elif time.monotonic() - start > timeout:
            over = "timeout"
        if over:
            break
        time.sleep(0.2)
    leftover = _descendants(proc.pid)
    if over or leftover:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    _kill(leftover + list(seen.values()))
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _ACTIVE.discard(proc.pid)
    _reap()
    thread.join(timeout=10)
    log.close()
    run = Run("completed", "", wall_s=time.monotonic() - start, peak_mb=peak)
    cells = [r["cell"] for r in records if isinstance(r.get("cell"), int)]
    run.last_cell = cells[-1] + 1 if cells else None
    for r in records:
        if isinstance(r.get("label"), str) and isinstance(r.get("answers"), list):
            run.answers.setdefault(r["label"], r["answers"])
    where = f" (in code cell {run.last_cell})" if run.last_cell is not None and not run.answers else ""
    fatal = next((r["fatal"] for r in records if isinstance(r.get("fatal"), str)), None)
    if over == "timeout":
        run.status, run.reason = "timeout", f"timeout: stopped after {timeout:g} s{where}"
    elif over == "out-of-memory":
        run.status, run.reason = "out-of-memory", f"out-of-memory: used more than {memory_mb:g} MB{where}"
    elif fatal:
        run.status, run.reason = "failed", fatal
    elif not any(r.get("done") is True for r in records):
        run.status = "failed"
        run.reason = f"the notebook's run ended early (exit status {proc.returncode}){where}"
    return run


# --------------------------------------------------------------------------- grading

@dataclass
class ExerciseResult:
    label: str
    score: float
    possible: float
    status: str       # "solved", "partly solved", "not solved", "not attempted", "not graded"
    message: str


@dataclass
class StudentResult:
    student: str
    file: str
    status: str
    reason: str
    exercises: Dict[str, ExerciseResult]
    wall_s: float = 0.0
    peak_mb: float = 0.0
    cases: Dict[str, list] = field(default_factory=dict)
    otter: object = None

    @property
    def score(self) -> float:
        return sum(e.score for e in self.exercises.values())

    @property
    def possible(self) -> float:
        return sum(e.possible for e in self.exercises.values())


def _score(test: HiddenTest, cases: list, answers: Optional[list]):
    """Run the otter test file of one exercise in this process on the student's values."""
    tf = test.test_file()
    possible = float(tf.possible)
    if answers is None:
        return tf, ExerciseResult(test.label, 0.0, possible, "not graded", "the hidden test did not run")
    attempted = [a for a in answers if isinstance(a, dict) and "not_attempted" in a]
    errors = [a for a in answers if not (isinstance(a, dict) and "value" in a)]
    if attempted:
        return tf, ExerciseResult(test.label, 0.0, possible, "not attempted",
                                  "the stub is still in place (NotImplementedError)")
    if errors or len(answers) != len(cases):
        first = errors[0] if errors else {}
        message = first.get("error") if isinstance(first, dict) else None
        return tf, ExerciseResult(test.label, 0.0, possible, "not solved",
                                  f"the answer raised {message}" if message else "malformed answers")
    tf.run({"cases": copy.deepcopy(cases), "answers": [a["value"] for a in answers]})
    score = float(tf.score)
    failed = [r.message.splitlines()[-1] for r in tf.test_case_results if not r.passed]
    status = "solved" if score >= possible else ("partly solved" if score > 0 else "not solved")
    return tf, ExerciseResult(test.label, score, possible, status, "; ".join(failed))


def grade_one(path: Path, tests: Dict[str, HiddenTest], seed: str, work: Path, hide: Sequence[Path],
              timeout: float, memory_mb: float, use_bwrap: bool) -> StudentResult:
    """Grade one submission (never raises: a problem is this student's result)."""
    from otter.test_files import GradingResults

    student = path.stem
    cases = {label: t.cases(random.Random(f"{seed}/{student}/{label}")) for label, t in tests.items()}
    probes = [{"label": label, "source": t.kernel_source(), "cases": cases[label]} for label, t in tests.items()]
    try:
        run = run_submission(path, probes, work / student, hide, timeout, memory_mb, use_bwrap)
    except Exception as exc:  # noqa: BLE001
        run = Run("failed", f"the grader could not run it ({type(exc).__name__}: {exc})")
    results, files = {}, []
    for label, test in tests.items():
        try:
            tf, results[label] = _score(test, cases[label], run.answers.get(label))
        except Exception as exc:  # noqa: BLE001 - a broken test is reported, not fatal
            tf, results[label] = None, ExerciseResult(label, 0.0, 0.0, "not graded",
                                                      f"the hidden test failed: {exc}")
        if tf is not None:
            files.append(tf)
    if run.status == "completed":
        solved = sum(r.status == "solved" for r in results.values())
        run.reason = f"{solved} of {len(results)} exercises solved"
    otter_results = GradingResults(files)
    return StudentResult(student, str(path), run.status, run.reason, results, run.wall_s, run.peak_mb,
                         cases, otter_results)


def _submissions(paths: Iterable[Path]) -> List[Path]:
    found: List[Path] = []
    for p in paths:
        p = Path(p)
        found += sorted(q for q in p.iterdir() if q.is_file() and q.suffix == ".ipynb") if p.is_dir() else [p]
    names = [p.stem for p in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two submissions share a name (the student id is the file name): {dupes}")
    return found


def isolation(use_bwrap: bool, why: str) -> str:
    if use_bwrap:
        return ("bubblewrap: network off, filesystem read-only outside the scratch copy, submissions "
                "and other scratch copies hidden, own process namespace, no capabilities, user nobody")
    return (f"process group and limits only, without bubblewrap ({why}): the student's code could "
            "reach the network and write where the grader can")


def grade(chapter: Path, submissions: Sequence[Path], output: Path, timeout: float = 600,
          memory_mb: float = 4096, jobs: int = 1, seed: Optional[str] = None,
          labels: Optional[Sequence[str]] = None, sandbox: str = "auto") -> List[StudentResult]:
    """Grade every submission against the chapter's hidden tests; write the gradebook and
    report to ``output`` (see the module's docstring). Returns one result per notebook."""
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    nb = read_chapter(chapter)
    tests = hidden_tests(nb)
    wanted = list(labels) if labels else [lab for lab in exercise_labels(nb) if lab in tests]
    missing = [lab for lab in wanted if lab not in tests]
    if missing or not wanted:
        raise ValueError(f"{chapter}: no hidden test for exercise(s) {missing or 'any'}")
    tests = {lab: tests[lab] for lab in wanted}
    for test in tests.values():
        test.namespace(), test.test_file()  # a broken hidden test stops before any grading
    paths = [Path(p).resolve() for p in _submissions(submissions)]
    ok, why = bwrap_status() if sandbox != "none" else (False, "--sandbox none")
    if sandbox == "bwrap" and not ok:
        raise RuntimeError(f"--sandbox bwrap: bubblewrap does not work here ({why})")
    use_bwrap = ok and sandbox != "none"
    seed = seed or secrets.token_hex(8)
    import psutil

    was_subreaper = _subreaper(True)
    _HOST_CHILDREN.update(p.pid for p in psutil.Process().children())
    work = Path(tempfile.mkdtemp(prefix="sigprop-grading-"))
    hide = sorted({p.parent for p in paths} | {output, work})
    started = time.monotonic()
    results: List[Optional[StudentResult]] = [None] * len(paths)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(grade_one, p, tests, seed, work, hide, timeout, memory_mb, use_bwrap): i
                       for i, p in enumerate(paths)}
            for future, i in futures.items():
                try:
                    results[i] = future.result()
                except Exception as exc:  # noqa: BLE001
                    results[i] = StudentResult(paths[i].stem, str(paths[i]), "failed", f"grader error: {exc}",
                                               {lab: ExerciseResult(lab, 0.0, 0.0, "not graded", "")
                                                for lab in tests})
    finally:
        # whatever a submission left behind (adopted as subreaper), never the host's own processes
        # (its children from before grading and all their descendants, old or new)
        adopted = _adopted()
        _kill(adopted + [d for p in adopted for d in _descendants(p.pid)])
        time.sleep(0.5)
        _reap()
        _subreaper(was_subreaper)
        _HOST_CHILDREN.clear()
        done = [r for r in results if r is not None]
        write_reports(done, list(tests), output, chapter, seed, isolation(use_bwrap, why),
                      timeout, memory_mb, time.monotonic() - started)
        shutil.rmtree(work, ignore_errors=True)
    return results  # type: ignore[return-value]


def write_reports(results: List[StudentResult], labels: List[str], output: Path, chapter: Path, seed: str,
                  isolation_text: str, timeout: float, memory_mb: float, elapsed: float) -> None:
    """grades.csv, report.json, report.txt and gradescope/<student>.json."""
    from otter.run.run_autograder.autograder_config import AutograderConfig

    with open(output / "grades.csv", "w", newline="", encoding="utf8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "file", *labels, "score", "possible", "percent", "status", "reason"])
        for r in results:
            pct = 100 * r.score / r.possible if r.possible else 0.0
            writer.writerow([r.student, r.file, *[f"{r.exercises[lab].score:g}" for lab in labels],
                             f"{r.score:g}", f"{r.possible:g}", f"{pct:.1f}", r.status, r.reason])
    report = {
        "chapter": str(chapter), "seed": seed, "isolation": isolation_text,
        "limits": {"wall_clock_s": timeout, "memory_mb": memory_mb}, "elapsed_s": round(elapsed, 1),
        "students": [{"student": r.student, "file": r.file, "status": r.status, "reason": r.reason,
                      "score": r.score, "possible": r.possible, "wall_s": round(r.wall_s, 1),
                      "peak_mb": round(r.peak_mb), "cases": r.cases,
                      "exercises": {lab: e.__dict__ for lab, e in r.exercises.items()}} for r in results],
    }
    (output / "report.json").write_text(json.dumps(report, indent=1), encoding="utf8")
    (output / "report.txt").write_text(report_text(results, labels, isolation_text), encoding="utf8")
    config = AutograderConfig({"show_hidden": True, "force_public_test_summary": False})
    folder = output / "gradescope"
    folder.mkdir(exist_ok=True)
    for r in results:
        data = {"score": r.score, "output": r.reason, "tests": []}
        if r.otter is not None:
            data = r.otter.to_gradescope_dict(config)
            data.setdefault("score", r.score)
            data["output"] = r.reason
        (folder / f"{r.student}.json").write_text(json.dumps(data, indent=1), encoding="utf8")


def report_text(results: List[StudentResult], labels: List[str], isolation_text: str) -> str:
    width = max([len(r.student) for r in results] + [7])
    lines = [f"isolation: {isolation_text}",
             f"{'student':<{width}}  " + "  ".join(f"{lab:>9}" for lab in labels) + "  score     reason"]
    for r in results:
        cells = "  ".join(f"{r.exercises[lab].score:>9g}" for lab in labels)
        lines.append(f"{r.student:<{width}}  {cells}  {r.score:g}/{r.possible:g}  {r.reason}")
        for lab in labels:
            e = r.exercises[lab]
            if e.status != "solved" and r.status == "completed":
                lines.append(f"{'':<{width}}    {lab}: {e.status}" + (f" ({e.message})" if e.message else ""))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- authors' check

def check_key(chapter: Path, only_exercises: bool = False, labels: Optional[Sequence[str]] = None,
              timeout: float = 900, memory_mb: float = 6144) -> List[str]:
    """What is wrong with a chapter's exercises as an assignment (empty when nothing is)."""
    nb = select(read_chapter(chapter), only_exercises, labels)
    found = exercise_labels(nb)
    if not found:
        return [f"{chapter}: no {{exercise}} with a :label:"]
    problems = []
    student = student_notebook(nb)
    problems += [f"student copy still holds solution or hidden-test text: {t[:60]!r}"
                 for t in leaked_solution_text(nb, student)]
    tests = hidden_tests(nb)
    problems += [f"exercise {lab} has no hidden test" for lab in found if lab not in tests]
    problems += [f"exercise {lab} has no check cell" for lab in found if lab not in check_cells(student)]
    if problems:
        return problems
    with tempfile.TemporaryDirectory(prefix="sigprop-key-") as tmp:
        tmp = Path(tmp)
        chapter_copy = tmp / "chapter.ipynb"
        nbformat.write(instructor_notebook(nb), chapter_copy)
        (tmp / "in").mkdir()
        nbformat.write(student, tmp / "in" / "untouched.ipynb")
        nbformat.write(completed_notebook(nb), tmp / "in" / "solutions.ipynb")
        results = grade(chapter_copy, [tmp / "in"], tmp / "out", timeout=timeout, memory_mb=memory_mb, jobs=2)
    for r in results:
        if r.student == "solutions" and r.score < r.possible:
            problems += [f"with its solution, {lab} is {e.status}: {e.message}" for lab, e in r.exercises.items()
                         if e.score < e.possible] or [f"the solutions: {r.reason}"]
        if r.student == "untouched" and r.score > 0:
            problems += [f"the untouched student copy scores on {lab}" for lab, e in r.exercises.items() if e.score]
    return problems


# --------------------------------------------------------------------------- command line

def main(argv: Optional[Iterable[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def selection(p):
        p.add_argument("--only-exercises", action="store_true",
                       help="keep only the chapter's set-up cells and its Exercises section")
        p.add_argument("--exercise", action="append", dest="labels", metavar="LABEL",
                       help="keep only this exercise (repeatable)")

    r = sub.add_parser("release", help="write the student and instructor copies of chapters")
    r.add_argument("chapters", nargs="+", type=Path, help="book/chXX_*.md")
    r.add_argument("-o", "--output", type=Path, required=True, help="folder; copies go to student/ and instructor/")
    selection(r)
    g = sub.add_parser("grade", help="grade submissions with the chapter's hidden tests")
    g.add_argument("chapter", type=Path, help="book/chXX_*.md, or the instructor copy of a release")
    g.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders of them")
    g.add_argument("-o", "--output", type=Path, required=True, help="folder for grades.csv and the reports")
    g.add_argument("--exercise", action="append", dest="labels", metavar="LABEL",
                   help="grade only this exercise (repeatable; default: all the chapter has)")
    g.add_argument("--timeout", type=float, default=600, help="wall-clock seconds a notebook (default 600)")
    g.add_argument("--memory", type=float, default=4096, help="MB a notebook with its processes (default 4096)")
    g.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    g.add_argument("--seed", help="seed of the cases drawn (default: a fresh random one, in report.json)")
    g.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                   help="auto: bubblewrap when it works here; bwrap: require it")
    k = sub.add_parser("check-key", help="for authors: the student copy grades 0, the solutions full marks")
    k.add_argument("chapters", nargs="+", type=Path)
    selection(k)
    args = parser.parse_args(None if argv is None else list(argv))

    if args.command == "release":
        for chapter in args.chapters:
            student, instructor = release(chapter, args.output, args.only_exercises, args.labels)
            n = len(exercise_labels(nbformat.read(instructor, as_version=4)))
            print(f"{chapter}: {n} exercises -> {student} and {instructor}")
        return 0
    if args.command == "grade":
        results = grade(args.chapter, args.submissions, args.output, args.timeout, args.memory, args.jobs,
                        args.seed, args.labels, args.sandbox)
        print((args.output / "report.txt").read_text(encoding="utf8"), end="")
        print(f"{len(results)} notebooks graded: {args.output / 'grades.csv'}, {args.output / 'report.json'}, "
              f"{args.output / 'gradescope'}/")
        return 0
    failed = False
    for chapter in args.chapters:
        problems = check_key(chapter, args.only_exercises, args.labels)
        print(f"{chapter}: " + ("the student copy grades 0, the solutions full marks" if not problems
                                else "\n  " + "\n  ".join(problems)))
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
