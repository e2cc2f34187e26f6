"""Graded assignments from the book's chapters: student copies, instructor copies, grading.

    python tools/assignments.py student book/ch01_xavier_he.ipynb -o out/
    python tools/assignments.py grade out/student/ch01_xavier_he.ipynb          (a completed copy)
    python tools/assignments.py check-key book/ch01_xavier_he.ipynb

``student`` writes two notebooks per chapter:

* ``out/student/<chapter>.ipynb``, to hand out: the ``{solution}`` blocks are deleted from
  the markdown (not hidden: a dropdown still ships its text to Colab), and so are the gated
  ``{solution-start}``/``{solution-end}`` blocks with every cell between them, ``<details>``
  blocks whose summary says "Solution", and code cells tagged ``solution``. The exercise
  prompts, the stubs (which raise ``NotImplementedError``) and the check cells stay, so the
  notebook runs end to end and says which exercises are done;
* ``out/instructor/<chapter>.ipynb``: everything, solutions included.

``grade`` executes a completed student notebook in a fresh kernel (nbclient; ``--timeout``
seconds per cell; a cell that fails does not stop the run) and reports, for each exercise
(its ``{exercise}`` label), PASS, FAIL or NOT ATTEMPTED with the check's message. The checks
are the lines printed by :func:`sigprop.exercises.check`; CONTRIBUTING.md ("Exercises") says
how chapters write them. The exit status is 0 when every exercise passed and 1 otherwise;
``--json FILE`` writes the result for a gradebook. Grading runs the student's code: run it
in a container or a throw-away account.

``check-key`` is for chapter authors: it makes the student copy, checks that it holds no
solution text and runs to its end with every exercise not passed, then pastes each
solution's code in place of its stub and checks that every exercise passes.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import nbformat
from nbclient import NotebookClient

try:
    from sigprop.exercises import CheckResult, parse_check_lines, summarize
except ImportError:  # running from a clone without `pip install -e lib`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from sigprop.exercises import CheckResult, parse_check_lines, summarize

#: Code cells with this tag are solutions: removed from the student copy.
SOLUTION_TAG = "solution"
#: Notebook metadata key that says which copy a notebook is.
META_KEY = "sigprop_assignment"

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<arg>.*?)\s*$")
_CODE_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?:\{code-block\}|\{code\}|\{code-cell\})?[ \t]*(?P<lang>[\w+-]*)")
_DETAILS_OPEN = re.compile(r"<details\b", re.I)
_DETAILS_CLOSE = re.compile(r"</details\s*>", re.I)


# --------------------------------------------------------------------------- MyST scanning

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


# --------------------------------------------------------------------------- the two copies

def _strip_markdown(text: str, gated: bool) -> Tuple[str, bool]:
    """Remove solution blocks from one markdown cell; ``gated`` says whether a
    ``{solution-start}`` block is open from an earlier cell. Returns the text and the flag."""
    lines = text.splitlines()
    found = directives(text)
    drop = [False] * len(lines)
    for d in found:
        if d.name == "solution":
            drop[d.start:d.end + 1] = [True] * (d.end + 1 - d.start)
    # the gated form: from {solution-start} to {solution-end}, possibly across cells
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


def student_notebook(nb, clear_outputs: bool = False):
    """A copy of ``nb`` with every solution removed (see the module's docstring)."""
    out = copy.deepcopy(nb)
    cells, gated = [], False
    for cell in out.cells:
        if cell.cell_type == "markdown":
            source, gated_after = _strip_markdown(cell.source, gated)
            gated = gated_after
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
    """A copy of ``nb`` with everything, solutions included."""
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
    who solved everything); the ``raises-exception`` tag goes, so a wrong key is an error.

    Raises
    ------
    ValueError
        If an exercise has no stub or no solution code.
    """
    student = student_notebook(nb, clear_outputs=True)
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


# --------------------------------------------------------------------------- execution and grading

def execute(nb, cwd: Path, timeout: int = 300, allow_errors: bool = False):
    """Run ``nb`` top to bottom in a fresh ``python3`` kernel (the current interpreter) with
    ``cwd`` as working directory. Cells tagged ``raises-exception`` may raise; with
    ``allow_errors`` every cell may, and a cell past ``timeout`` seconds is interrupted."""
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
        interrupt_on_timeout=allow_errors, record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return nb


def printed_text(nb) -> str:
    """Everything the code cells printed to stdout, in order."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stdout":
                    parts.append(output.get("text", ""))
    return "".join(parts)


def results(nb) -> Dict[str, CheckResult]:
    """One outcome per exercise of an executed notebook (see :func:`sigprop.exercises.summarize`)."""
    labels = nb.metadata.get(META_KEY, {}).get("exercises") or exercise_labels(nb)
    return summarize(parse_check_lines(printed_text(nb)), labels)


def grade(path: Path, timeout: int = 300) -> Tuple[Dict[str, CheckResult], float]:
    """Execute the notebook at ``path`` (errors allowed) and return its outcomes and the time taken."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute(nb, Path(path).resolve().parent, timeout=timeout, allow_errors=True)
    return results(nb), time.perf_counter() - start


def report(outcomes: Dict[str, CheckResult]) -> str:
    """A plain-text table: one line per exercise, then the count."""
    width = max([len(label) for label in outcomes] + [8])
    lines = [f"{'exercise':<{width}}  {'result':<13}  message"]
    for label, r in outcomes.items():
        lines.append(f"{label:<{width}}  {r.status:<13}  {r.message}")
    passed = sum(r.passed for r in outcomes.values())
    lines.append(f"{passed} of {len(outcomes)} exercises passed")
    return "\n".join(lines)


def solution_texts(nb) -> List[str]:
    """The text of every solution in ``nb`` (to check that a student copy holds none of it)."""
    texts = []
    student = student_notebook(nb)
    kept = {c.source for c in student.cells}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source not in kept:
            texts.append(cell.source)
        elif cell.cell_type == "markdown":
            for d in directives(cell.source):
                if d.name == "solution":
                    texts.extend(line.strip() for line in d.body
                                 if line.strip() and not re.match(r"^\s*(:\w[\w-]*:|`{3,}|~{3,}|:{3,})", line))
    # a line the student is given anyway (the stub's `def` line and docstring) is not solution text
    given = {line.strip() for cell in nb.cells if cell.cell_type == "code"
             and "raises-exception" in cell.get("metadata", {}).get("tags", []) for line in cell.source.splitlines()}
    return [t for t in texts if len(t.strip()) >= 8 and t.strip() not in given]


# --------------------------------------------------------------------------- command line

def _write(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def cmd_student(args) -> int:
    for source in args.notebooks:
        nb = nbformat.read(source, as_version=4)
        labels = exercise_labels(nb)
        student = student_notebook(nb, clear_outputs=args.clear_outputs)
        stubs, checks = stub_cells(student), check_cells(student)
        for label in labels:
            if label not in stubs:
                print(f"warning: {source}: exercise {label} has no stub cell", file=sys.stderr)
            if label not in checks:
                print(f"warning: {source}: exercise {label} has no check cell "
                      f"(sigprop.exercises.check({label!r}, ...)); grading will report it FAIL", file=sys.stderr)
        _write(student, args.output / "student" / source.name)
        _write(instructor_notebook(nb), args.output / "instructor" / source.name)
        print(f"{source}: {len(labels)} exercises -> {args.output / 'student' / source.name} "
              f"and {args.output / 'instructor' / source.name}")
    return 0


def cmd_grade(args) -> int:
    all_passed, record = True, {}
    for path in args.notebooks:
        outcomes, elapsed = grade(path, timeout=args.timeout)
        print(f"{path} (executed in {elapsed:.0f} s)")
        print(report(outcomes))
        all_passed &= bool(outcomes) and all(r.passed for r in outcomes.values())
        record[str(path)] = {label: asdict(r) for label, r in outcomes.items()}
    if args.json:
        args.json.write_text(json.dumps(record, indent=2), encoding="utf8")
    return 0 if all_passed else 1


def check_key(path: Path, timeout: int = 600) -> List[str]:
    """What is wrong with a chapter's exercises as an assignment (empty when nothing is)."""
    nb = nbformat.read(path, as_version=4)
    cwd = Path(path).resolve().parent
    problems = []
    labels = exercise_labels(nb)
    if not labels:
        return [f"{path}: no {{exercise}} with a :label:"]
    student = student_notebook(nb, clear_outputs=True)
    text = nbformat.writes(student)
    problems += [f"student copy still holds solution text: {t[:60]!r}" for t in solution_texts(nb) if t in text]
    missing = [label for label in labels if label not in check_cells(student)]
    problems += [f"exercise {label} has no check cell" for label in missing]
    try:
        execute(student, cwd, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        return problems + [f"the student copy does not run to its end: {type(exc).__name__}: {exc}"]
    problems += [f"untouched student copy: {label} reports {r.status}"
                 for label, r in results(student).items() if r.passed]
    try:
        completed = completed_notebook(nb)
        execute(completed, cwd, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        return problems + [f"the solutions do not run: {type(exc).__name__}: {exc}"]
    problems += [f"with its solution, {label} reports {r.status}: {r.message}"
                 for label, r in results(completed).items() if not r.passed]
    return problems


def cmd_check_key(args) -> int:
    failed = False
    for path in args.notebooks:
        problems = check_key(path, timeout=args.timeout)
        print(f"{path}: " + ("OK" if not problems else "\n  " + "\n  ".join(problems)))
        failed |= bool(problems)
    return 1 if failed else 0


def main(argv: Optional[Iterable[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("student", help="write student (solutions removed) and instructor copies")
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="folder; copies go to student/ and instructor/")
    p.add_argument("--clear-outputs", action="store_true", help="drop the stored outputs of code cells")
    p.set_defaults(func=cmd_student)
    g = sub.add_parser("grade", help="execute completed student notebooks and report each exercise")
    g.add_argument("notebooks", nargs="+", type=Path)
    g.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    g.add_argument("--json", type=Path, help="also write the outcomes to this JSON file")
    g.set_defaults(func=cmd_grade)
    k = sub.add_parser("check-key", help="for authors: stubs fail, solutions pass, student copy is clean")
    k.add_argument("notebooks", nargs="+", type=Path)
    k.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    k.set_defaults(func=cmd_check_key)
    args = parser.parse_args(None if argv is None else list(argv))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
