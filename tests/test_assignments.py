"""Graded assignments: student copies hold no solution, run to their end, and grade as expected.

``tools/assignments.py`` is tested on a small synthetic chapter built here (every way a
chapter may write a solution: a ``{solution}`` directive with a code block, a code cell
tagged ``solution``, the gated ``{solution-start}``/``{solution-end}`` form, a ``<details>``
block), and on every book chapter whose exercises already use ``sigprop.exercises.check``.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from sigprop import exercises
from sigprop.exercises import FAIL, NOT_ATTEMPTED, PASS, CheckResult

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("assignments", ROOT / "tools" / "assignments.py")
assignments = importlib.util.module_from_spec(_spec)
sys.modules["assignments"] = assignments
_spec.loader.exec_module(assignments)

SECRETS = ["SECRET-A-7f3", "SECRET-B-91c", "SECRET-C-2d8", "SECRET-D-e55", "SECRET-E-0aa"]

SYNTHETIC = '''\
---
jupytext:
  formats: ipynb,md:myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A synthetic chapter

```{code-cell} ipython3
from sigprop.exercises import check
```

## Exercises

```{exercise}
:label: syn-ex1

Write `double(x)` that returns `2 * x`.
```

```{code-cell} ipython3
:tags: [raises-exception]

def double(x):
    # Your code here.
    raise NotImplementedError("exercise: fill in `double`")

double(3)
```

```{code-cell} ipython3
check("syn-ex1", lambda: double(3) == 6 and double(-1.5) == -3.0, "double(3) == 6")
```

````{solution} syn-ex1
:class: dropdown

Multiply by two (SECRET-A-7f3):

```python
def double(x):
    return 2 * x  # SECRET-A-7f3
```
````

```{exercise}
:label: syn-ex2

Define `SQUARES`, the list of the squares of 0..4.
```

```{code-cell} ipython3
:tags: [raises-exception]

raise NotImplementedError("exercise: define SQUARES")
SQUARES = ...
```

```{code-cell} ipython3
def _check_squares():
    assert SQUARES == [0, 1, 4, 9, 16], f"SQUARES = {SQUARES!r}"

check("syn-ex2", _check_squares, "SQUARES holds the squares of 0..4")
```

```{solution} syn-ex2
:class: dropdown

A list comprehension, as below (SECRET-B-91c).
```

```{code-cell} ipython3
:tags: [solution, hide-input]

SQUARES = [k * k for k in range(5)]  # SECRET-B-91c
```

```{exercise}
:label: syn-ex3

Set `ANSWER` to 42.
```

```{code-cell} ipython3
:tags: [raises-exception]

raise NotImplementedError("exercise: set ANSWER")
```

```{code-cell} ipython3
check("syn-ex3", lambda: ANSWER == 42, "ANSWER is 42")
check("syn-ex3", lambda: isinstance(ANSWER, int), "ANSWER is an int")
```

```{solution-start} syn-ex3
:class: dropdown
```

The gated form spans cells (SECRET-C-2d8).

```{code-cell} ipython3
ANSWER = 42  # SECRET-C-2d8
```

```{solution-end}
```

```{exercise}
:label: syn-ex4

Write `greet()` returning `"hello"`.
```

```{code-cell} ipython3
:tags: [raises-exception]

def greet():
    raise NotImplementedError("exercise: fill in `greet`")
```

```{code-cell} ipython3
check("syn-ex4", lambda: greet() == "hello", "greet() says hello")
```

<details>
<summary>Solution</summary>

Return the string (SECRET-D-e55):

```python
def greet():
    return "hello"  # SECRET-D-e55
```
</details>

<details>
<summary>Hint</summary>

Strings are in quotes. This hint stays.
</details>

````{solution} syn-ex4
:class: dropdown

Also in a directive: SECRET-E-0aa.
````

## References
'''


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chapter")
    nb = jupytext.reads(SYNTHETIC, fmt="md:myst")
    path = folder / "ch99_synthetic.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def copies(chapter, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    assert assignments.main(["student", str(chapter), "-o", str(out)]) == 0
    return out / "student" / chapter.name, out / "instructor" / chapter.name


# --------------------------------------------------------------------------- sigprop.exercises.check

def test_check_prints_one_machine_readable_line(capsys):
    exercises.check("ch01-ex1", lambda: True, "it holds")
    exercises.check("ch01-ex1", lambda: 1 == 2, "one is two")
    exercises.check("ch01-ex2", False)
    out = capsys.readouterr().out.splitlines()
    assert out == ["[check ch01-ex1] PASS: it holds", "[check ch01-ex1] FAIL: one is two", "[check ch01-ex2] FAIL"]


def test_check_reports_stub_as_not_attempted_and_never_raises(capsys):
    def stub():
        raise NotImplementedError("exercise: fill in `f`")

    exercises.check("ch02-ex3", lambda: stub() == 1, "f() == 1")
    exercises.check("ch02-ex3", lambda: undefined_name_xyz > 0)  # noqa: F821 - cell not run
    exercises.check("ch02-ex3", lambda: 1 / 0, "divides")
    exercises.check("ch02-ex3", lambda: [1, 2] == [1, 2] or None)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[check ch02-ex3] NOT ATTEMPTED: NotImplementedError: exercise: fill in `f`"
    assert lines[1].startswith("[check ch02-ex3] NOT ATTEMPTED: NameError")
    assert lines[2] == "[check ch02-ex3] FAIL: divides: ZeroDivisionError: division by zero"
    assert lines[3] == "[check ch02-ex3] PASS"


def test_check_with_a_function_of_asserts_uses_the_assertion_message():
    def ok():
        assert 2 + 2 == 4

    def wrong():
        assert 2 + 2 == 5, "expected 5, got 4"

    assert exercises.evaluate("x-1", ok, "sums") == CheckResult("x-1", PASS, "sums")
    result = exercises.evaluate("x-1", wrong, "sums")  # (pytest adds its own explanation to the message)
    assert result.status == FAIL and result.message.startswith("expected 5, got 4")


def test_check_treats_an_ambiguous_condition_as_failed():
    import torch

    result = exercises.evaluate("x-1", lambda: torch.ones(3) > 0)
    assert result.status == FAIL and "truth value" in result.message


def test_check_rejects_a_malformed_label():
    for bad in ("", "has space", "[x]", 3):
        with pytest.raises(ValueError, match="label must be"):
            exercises.check(bad, True)
    with pytest.raises(ValueError, match="status must be"):
        exercises.format_line("ch01-ex1", "MAYBE")


def test_check_lines_round_trip_through_the_parser():
    results = [CheckResult("ch01-ex1", PASS, "a: b"), CheckResult("ch01-ex2", NOT_ATTEMPTED, ""),
               CheckResult("ch03-ex10", FAIL, "got 1.0\nexpected 2.0")]
    text = "noise\n" + "\n".join(r.line() for r in results) + "\n[check ] PASS\n"
    parsed = exercises.parse_check_lines(text)
    assert [(r.label, r.status) for r in parsed] == [(r.label, r.status) for r in results]
    assert parsed[2].message == "got 1.0 expected 2.0"


def test_summary_needs_every_check_of_an_exercise_to_pass():
    found = [CheckResult("a", PASS, "one"), CheckResult("a", FAIL, "two"), CheckResult("b", PASS, "ok"),
             CheckResult("c", NOT_ATTEMPTED, "stub")]
    summary = exercises.summarize(found, labels=["a", "b", "c", "d"])
    assert list(summary) == ["a", "b", "c", "d"]
    assert [summary[k].status for k in "abcd"] == [FAIL, PASS, NOT_ATTEMPTED, FAIL]
    assert summary["a"].message == "two" and "no check ran" in summary["d"].message


# --------------------------------------------------------------------------- the student copy

def test_student_copy_contains_no_solution_text(chapter, copies):
    student, instructor = copies
    text = student.read_text(encoding="utf8")
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"the student copy holds solution text {leaked}"
    assert "{solution" not in text and "<summary>Solution" not in text
    full = instructor.read_text(encoding="utf8")
    assert all(s in full for s in SECRETS), "the instructor copy must keep every solution"


def test_student_copy_keeps_prompts_stubs_checks_and_hints(copies):
    student, _ = copies
    nb = nbformat.read(student, as_version=4)
    assert assignments.exercise_labels(nb) == ["syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"]
    assert set(assignments.stub_cells(nb)) == {"syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"}
    assert set(assignments.check_cells(nb)) == {"syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"}
    text = student.read_text(encoding="utf8")
    assert "This hint stays." in text and "Write `double(x)`" in text
    assert nb.metadata[assignments.META_KEY]["copy"] == "student"
    assert "jupytext" not in nb.metadata, "the handed-out copy must not be paired with a Markdown twin"


def test_solution_code_is_found_in_every_form(chapter):
    codes = assignments.solution_code(nbformat.read(chapter, as_version=4))
    assert "return 2 * x" in codes["syn-ex1"]
    assert codes["syn-ex2"].startswith("SQUARES = [k * k")
    assert codes["syn-ex3"].startswith("ANSWER = 42")
    assert 'return "hello"' in codes["syn-ex4"]


def test_untouched_student_copy_runs_to_its_end_and_passes_no_exercise(copies):
    student, _ = copies
    nb = nbformat.read(student, as_version=4)
    # strict: only the stubs (tagged raises-exception) may raise, as on the website and under nbval
    assignments.execute(nb, student.parent, timeout=120, allow_errors=False)
    outcomes = assignments.results(nb)
    assert list(outcomes) == ["syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"]
    assert all(r.status == NOT_ATTEMPTED for r in outcomes.values()), assignments.report(outcomes)


def test_grading_the_solutions_pasted_back_passes_every_exercise(chapter, tmp_path, capsys):
    completed = assignments.completed_notebook(nbformat.read(chapter, as_version=4))
    path = tmp_path / "completed.ipynb"
    nbformat.write(completed, path)
    code = assignments.main(["grade", str(path), "--timeout", "120", "--json", str(tmp_path / "grades.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 of 4 exercises passed" in out
    grades = json.loads((tmp_path / "grades.json").read_text())[str(path)]
    assert {label: g["status"] for label, g in grades.items()} == dict.fromkeys(
        ["syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"], PASS)


def test_grading_the_untouched_student_copy_reports_every_exercise_not_passed(copies, capsys):
    student, _ = copies
    code = assignments.main(["grade", str(student), "--timeout", "120"])
    out = capsys.readouterr().out
    assert code == 1
    rows = {m[1]: m[2] for m in re.finditer(r"^(syn-ex\d)\s+(PASS|FAIL|NOT ATTEMPTED)", out, re.M)}
    assert rows == dict.fromkeys(["syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"], NOT_ATTEMPTED), out
    assert "0 of 4 exercises passed" in out


def test_grading_survives_wrong_answers_errors_and_a_cell_that_never_ends(chapter, tmp_path):
    nb = assignments.completed_notebook(nbformat.read(chapter, as_version=4))
    stubs = assignments.stub_cells(assignments.student_notebook(nbformat.read(chapter, as_version=4)))
    nb.cells[stubs["syn-ex1"]].source = "def double(x):\n    return x + 1"            # wrong
    nb.cells[stubs["syn-ex2"]].source = "import time\nwhile True:\n    time.sleep(0.1)"  # never ends
    nb.cells[stubs["syn-ex4"]].source = "def greet():\n    return undefined_helper()"   # raises
    path = tmp_path / "mixed.ipynb"
    nbformat.write(nb, path)
    outcomes, _ = assignments.grade(path, timeout=5)
    assert outcomes["syn-ex1"] == CheckResult("syn-ex1", FAIL, "double(3) == 6")
    assert outcomes["syn-ex2"].status == NOT_ATTEMPTED  # SQUARES never defined: the cell was interrupted
    assert outcomes["syn-ex3"].status == PASS, "a cell past its timeout must not stop the grading"
    assert outcomes["syn-ex4"].status == NOT_ATTEMPTED and "undefined_helper" in outcomes["syn-ex4"].message


def test_completed_notebook_requires_a_stub_and_a_solution_for_every_exercise(chapter):
    nb = nbformat.read(chapter, as_version=4)
    broken = nbformat.from_dict(nb)
    broken.cells = [c for c in broken.cells if "SECRET-D-e55" not in c.source and "SECRET-E-0aa" not in c.source]
    with pytest.raises(ValueError, match="syn-ex4 has no solution code"):
        assignments.completed_notebook(broken)


# --------------------------------------------------------------------------- the book's chapters

def _chapters_with_checks():
    return [p for p in sorted((ROOT / "book").glob("ch*.ipynb"))
            if "exercises import check" in p.read_text(encoding="utf8")
            or "exercises.check(" in p.read_text(encoding="utf8")]


CHAPTERS = _chapters_with_checks()


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_student_copy_holds_no_solution_and_has_every_check(path):
    nb = nbformat.read(path, as_version=4)
    student = assignments.student_notebook(nb)
    text = nbformat.writes(student)
    leaked = [t[:60] for t in assignments.solution_texts(nb) if t in text]
    assert not leaked, f"{path.name}: the student copy still holds solution text {leaked}"
    labels = assignments.exercise_labels(nb)
    assert set(assignments.stub_cells(student)) == set(labels), f"{path.name}: every exercise needs a stub cell"
    assert set(assignments.check_cells(student)) == set(labels), (
        f"{path.name}: every exercise needs a check cell calling check('<label>', ...)")
    assert set(assignments.solution_code(nb)) >= set(labels), (
        f"{path.name}: every exercise needs solution code (a ```python block in its {{solution}})")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_stored_outputs_pass_no_exercise(path):
    """The stored notebook ran with its stubs: every check printed, none passed."""
    nb = nbformat.read(path, as_version=4)
    outcomes = assignments.results(nb)
    assert outcomes and not any(r.passed for r in outcomes.values()), assignments.report(outcomes)
    assert all(r.message != "no check ran (the check cell failed or is missing)" for r in outcomes.values()), (
        f"{path.name}: a check printed nothing; run `make notebooks`\n" + assignments.report(outcomes))


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_solutions_pass_their_own_checks(path, tmp_path):
    completed = assignments.completed_notebook(nbformat.read(path, as_version=4))
    assignments.execute(completed, path.parent, timeout=600, allow_errors=False)
    outcomes = assignments.results(completed)
    assert all(r.passed for r in outcomes.values()), f"{path.name}:\n" + assignments.report(outcomes)
