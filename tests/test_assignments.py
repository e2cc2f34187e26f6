"""Graded assignments: releases from the chapters, and grades a student cannot fake.

``tools/assignments.py`` is tested on a small synthetic chapter built here (every way a
chapter may write a solution, and a hidden test), on every book chapter (each exercise has
a stub, a check cell, a solution and a hidden test, none of which leaks into the student
copy), and on a batch of submissions of two exercises of Chapter 2 released from
``book/ch02_mean_field.md``: honest solutions and the attacks of a dishonest student, each
graded in its sandbox.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import sys
import subprocess
from pathlib import Path

import nbformat
import pytest

from sigprop import exercises
from sigprop.exercises import FAIL, NOT_ATTEMPTED, PASS, CheckResult

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("assignments", ROOT / "tools" / "assignments.py")
assignments = importlib.util.module_from_spec(_spec)
sys.modules["assignments"] = assignments
_spec.loader.exec_module(assignments)

SECRETS = ["SECRET-A-7f3", "SECRET-B-91c", "SECRET-C-2d8", "SECRET-D-e55", "SECRET-E-0aa", "SECRET-F-4b1"]

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

<!-- hidden-test syn-ex1: the grader's test
from otter.test_files import test_case

name = "syn-ex1"


def cases(rng):
    return [rng.uniform(-5, 5) for _ in range(3)]


def answer(case):
    return double(case)


@test_case(points=1, hidden=True)
def doubles(cases, answers):
    assert all(a == 2 * c for c, a in zip(cases, answers)), "SECRET-F-4b1"
-->

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
    path = folder / "ch99_synthetic.md"
    path.write_text(SYNTHETIC, encoding="utf8")
    return path


@pytest.fixture(scope="module")
def copies(chapter, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    assert assignments.main(["release", str(chapter), "-o", str(out)]) == 0
    return out / "student" / "ch99_synthetic.ipynb", out / "instructor" / "ch99_synthetic.ipynb"


# --------------------------------------------------------------------------- sigprop.exercises.check

def test_check_prints_one_sentence(capsys):
    exercises.check("ch01-ex1", lambda: True, "it holds")
    exercises.check("ch01-ex1", lambda: 1 == 2, "one is two")
    exercises.check("ch03-ex12", False)
    out = capsys.readouterr().out.splitlines()
    assert out == ["Exercise 1.1 is solved: it holds.",
                   "Exercise 1.1 is not solved yet: not yet true that one is two.",
                   "Exercise 3.12 is not solved yet."]


def test_check_reports_stub_as_not_attempted_and_never_raises(capsys):
    def stub():
        raise NotImplementedError("exercise: fill in `f`")

    exercises.check("ch02-ex3", lambda: stub() == 1, "f() == 1")
    exercises.check("ch02-ex3", lambda: undefined_name_xyz > 0)  # noqa: F821 - cell not run
    exercises.check("ch02-ex3", lambda: 1 / 0, "divides")
    exercises.check("ch02-ex3", lambda: [1, 2] == [1, 2] or None)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[1] == "Exercise 2.3 is not attempted yet: replace the stub above."
    assert lines[2] == "Exercise 2.3 is not solved yet: divides: ZeroDivisionError: division by zero."
    assert lines[3] == "Exercise 2.3 is solved."
    assert not any(word in " ".join(lines) for word in ("PASS", "FAIL", "Traceback"))


def test_check_with_a_function_of_asserts_uses_the_assertion_message():
    def ok():
        assert 2 + 2 == 4

    def wrong():
        assert 2 + 2 == 5, "expected 5, got 4"

    assert exercises.evaluate("x-1", ok, "sums") == CheckResult("x-1", PASS, "sums")
    result = exercises.evaluate("x-1", wrong, "sums")
    assert result.status == FAIL and result.message.startswith("expected 5, got 4")
    assert exercises.evaluate("x-1", lambda: int("a")).status == FAIL
    assert exercises.evaluate("x-1", lambda: undefined_xyz).status == NOT_ATTEMPTED  # noqa: F821


def test_check_treats_an_ambiguous_condition_as_failed():
    import torch

    result = exercises.evaluate("x-1", lambda: torch.ones(3) > 0)
    assert result.status == FAIL and "truth value" in result.message


def test_check_rejects_a_malformed_label():
    for bad in ("", "has space", "[x]", 3):
        with pytest.raises(ValueError, match="label must be"):
            exercises.check(bad, True)
    assert exercises.exercise_name("ch06-ex3") == "Exercise 6.3"
    assert exercises.exercise_name("syn-ex1") == "Exercise syn-ex1"


# --------------------------------------------------------------------------- the copies

def test_student_copy_contains_no_solution_or_hidden_test(chapter, copies):
    student, instructor = copies
    nb = assignments.read_chapter(chapter)
    assert len(assignments.leaked_solution_text(nb, nb)) >= 6, "the leak check must see solutions where they are"
    assert not assignments.leaked_solution_text(nb, nbformat.read(student, as_version=4))
    text = student.read_text(encoding="utf8")
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"the student copy holds solution text {leaked}"
    assert "{solution" not in text and "<summary>Solution" not in text and "hidden-test" not in text
    full = instructor.read_text(encoding="utf8")
    assert all(s in full for s in SECRETS), "the instructor copy must keep every solution and hidden test"


def test_student_copy_keeps_prompts_stubs_checks_and_hints(copies):
    student, _ = copies
    nb = nbformat.read(student, as_version=4)
    assert assignments.exercise_labels(nb) == ["syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"]
    assert set(assignments.stub_cells(nb)) == {"syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"}
    assert set(assignments.check_cells(nb)) == {"syn-ex1", "syn-ex2", "syn-ex3", "syn-ex4"}
    text = student.read_text(encoding="utf8")
    assert "This hint stays." in text and "Write `double(x)`" in text
    assert "jupytext" not in nb.metadata, "the handed-out copy must not be paired with a Markdown twin"


def test_solution_code_and_hidden_tests_are_found(chapter):
    nb = assignments.read_chapter(chapter)
    codes = assignments.solution_code(nb)
    assert "return 2 * x" in codes["syn-ex1"]
    assert codes["syn-ex2"].startswith("SQUARES = [k * k")
    assert codes["syn-ex3"].startswith("ANSWER = 42")
    assert 'return "hello"' in codes["syn-ex4"]
    test = assignments.hidden_tests(nb)["syn-ex1"]
    assert "def answer" in test.kernel_source() and "test_case" not in test.kernel_source()
    cases = test.cases(random.Random(1))
    _, result = assignments._score(test, cases, [{"value": 2 * c} for c in cases])
    assert result.status == "solved" and result.score == result.possible == 1
    _, result = assignments._score(test, cases, [{"value": 2 * c + 1e-9} for c in cases])
    assert result.status == "not solved" and "SECRET-F-4b1" in result.message


def test_selecting_exercises_keeps_set_up_and_those_exercises(chapter):
    nb = assignments.select(assignments.read_chapter(chapter), only_exercises=True, labels=["syn-ex2"])
    assert assignments.exercise_labels(nb) == ["syn-ex2"]
    assert any("from sigprop.exercises import check" in c.source for c in nb.cells if c.cell_type == "code")
    assert "SECRET-B-91c" in nbformat.writes(nb) and "SECRET-A-7f3" not in nbformat.writes(nb)
    with pytest.raises(ValueError, match="exercise must be one of"):
        assignments.select(assignments.read_chapter(chapter), labels=["syn-ex9"])


def test_completed_notebook_requires_a_stub_and_a_solution_for_every_exercise(chapter):
    nb = assignments.read_chapter(chapter)
    broken = nbformat.from_dict(nb)
    broken.cells = [c for c in broken.cells if "SECRET-D-e55" not in c.source and "SECRET-E-0aa" not in c.source]
    with pytest.raises(ValueError, match="syn-ex4 has no solution code"):
        assignments.completed_notebook(broken)


# --------------------------------------------------------------------------- the book's chapters

CHAPTERS = sorted((ROOT / "book").glob("ch0*.md"))


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_exercises_are_complete_assignments(path):
    """Each exercise: a stub (no traceback on the website), a one-line check (code hidden), a
    solution, and a hidden test the student copy does not contain."""
    nb = assignments.read_chapter(path)
    labels = assignments.exercise_labels(nb)
    assert labels, f"{path.name}: no exercise"
    student = assignments.student_notebook(nb)
    leaked = [t[:60] for t in assignments.leaked_solution_text(nb, student)]
    assert not leaked, f"{path.name}: the student copy still holds solution text {leaked}"
    stubs, checks = assignments.stub_cells(student), assignments.check_cells(student)
    for label in labels:
        tags = student.cells[stubs[label]].metadata.get("tags", [])
        assert {"raises-exception", "remove-output"} <= set(tags), f"{label}: stub tags {tags}"
        for i in checks[label]:
            assert "hide-input" in student.cells[i].metadata.get("tags", []), f"{label}: check cell not hide-input"
    assert set(assignments.solution_code(nb)) >= set(labels), f"{path.name}: an exercise has no solution code"
    tests = assignments.hidden_tests(nb)
    assert set(tests) == set(labels), f"{path.name}: hidden tests {sorted(tests)} for exercises {labels}"
    for label, test in tests.items():
        test.test_file()
        cases = test.cases(random.Random(0))
        assert cases and json.loads(json.dumps(cases)) == cases, f"{label}: cases must be plain JSON values"


# --------------------------------------------------------------------------- grading a batch

CH02 = ROOT / "book" / "ch02_mean_field.md"
LABELS = ["ch02-ex1", "ch02-ex2"]
MARKER = "sigprop-attack-marker-5d1"
TIMEOUT = 90  # seconds a notebook; the honest ones need about 10 s, 30 s on a machine at load 16

HONEST_BOB = {
    "ch02-ex1": "def relu_c_map(c, q, sigma_w, sigma_b):\n"
                "    return mf.c_map('relu', torch.as_tensor(c, dtype=torch.float64), q, sigma_w, sigma_b)\n",
    "ch02-ex2": "from sigprop import activations\n\n"
                "def isru_eoc(sigma_b):\n"
                "    activations.register('isru', lambda x: x * torch.rsqrt(1 + x * x),\n"
                "                         lambda x: (1 + x * x) ** -1.5, odd=True, overwrite=True)\n"
                "    return mf.eoc_sigma_w('isru', sigma_b)\n",
}
PATCH_LIBRARY = """
import sigprop.exercises, sigprop.meanfield
ok = sigprop.exercises.CheckResult
sigprop.exercises.evaluate = lambda label, *a, **k: ok(label, 'PASS', 'faked')
sigprop.meanfield.chi_1 = lambda *a, **k: 1.0
sigprop.meanfield.c_map = lambda act, c, *a, **k: torch.zeros_like(torch.as_tensor(c, dtype=torch.float64))
mf = sigprop.meanfield
relu_c_map = lambda c, q, sigma_w, sigma_b: torch.zeros_like(torch.as_tensor(c, dtype=torch.float64))
isru_eoc = lambda sigma_b: 1.0
"""
SWALLOW = """
import builtins, sys
get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
sys.excepthook = lambda *args: None
builtins.abs = lambda x: 0.0
builtins.NotImplementedError = type("NotImplementedError", (Exception,), {})
"""
LOOP = """
import time
while True:
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass
"""
BACKGROUND = f"""
import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)", "{MARKER}"], start_new_session=True)
if os.fork() == 0:          # a daemon: fork, new session, fork again, parent exits
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(900)", "{MARKER}"])
    os._exit(0)
"""
MEMORY = """
chunks = []
for _ in range(120):
    chunks.append(bytearray(b"x" * (25 * 2**20)))
"""


def _vandal(submissions: Path, canaries) -> str:
    return f"""
import glob, os, signal
for path in glob.glob({str(submissions)!r} + "/*.ipynb"):
    for act in (lambda: open(path, "w").write("{{}}"), lambda: os.remove(path)):
        try:
            act()
        except OSError:
            pass
import subprocess
subprocess.run(["mount", "-o", "remount,bind,rw", "/"], capture_output=True)       # as root, then
subprocess.run(["unshare", "-Ur", "mount", "-o", "remount,bind,rw", "/"], capture_output=True)
for path in {[str(c) for c in canaries]!r}:
    try:
        open(path, "a").write("vandalized")
    except OSError:
        pass
try:
    import socket
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    open("network-was-on", "w").write("yes")
except OSError:
    pass
for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):   # kill everything it can see
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def _with_cell(nb, source: str, where: str = "end"):
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    cell = nbformat.v4.new_code_cell(source)
    if where == "end":
        nb.cells.append(cell)
    else:  # right after the set-up (before the Exercises section)
        first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
        nb.cells.insert(first, cell)
    return nb


def _replace_stubs(nb, codes):
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    for label, i in assignments.stub_cells(nb).items():
        if label in codes:
            nb.cells[i].source = codes[label]
    return nb


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _marked_processes(marker=MARKER):
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


HOST_MARKER = "sigprop-host-marker-7c2"
HOST_TREE = f"""
import subprocess, sys, time
time.sleep(20)  # grading has begun (it takes a minute or more)
marker = "{HOST_MARKER[:12]}" + "{HOST_MARKER[12:]}"  # not whole in this process's own command line
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)", marker])
time.sleep(900)
"""


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Release two exercises of Chapter 2 from book/ch02_mean_field.md, hand in honest and
    dishonest submissions, grade them all in one call of the instructor's command."""
    root = tmp_path_factory.mktemp("course")
    assert assignments.main(["release", str(CH02), "-o", str(root / "release"), "--only-exercises",
                             *[a for lab in LABELS for a in ("--exercise", lab)]]) == 0
    student = nbformat.read(root / "release" / "student" / CH02.with_suffix(".ipynb").name, as_version=4)
    instructor = root / "release" / "instructor" / CH02.with_suffix(".ipynb").name
    completed = assignments.completed_notebook(assignments.read_chapter(instructor))
    solutions = assignments.solution_code(assignments.read_chapter(instructor))
    subs, canary = root / "submissions", root / "canary.txt"
    subs.mkdir()
    canary.write_text("untouched\n")
    home_canary = Path.home() / f".sigprop-grading-canary-{root.name}"  # outside /tmp too
    home_canary.write_text("untouched\n")
    metadata = nbformat.reads(nbformat.writes(student), as_version=4)
    metadata.metadata[assignments.META_KEY] = {"copy": "completed", "exercises": [], "grades": {"ch02-ex1": 2}}
    for i, cell in enumerate(metadata.cells):
        if cell.cell_type == "code" and "check(" in cell.source:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Exercise 2.1 is solved.\n")]
    submissions = {
        "honest_alice": completed,
        "honest_bob": _replace_stubs(student, HONEST_BOB),
        "background_carol": _with_cell(completed, BACKGROUND),
        "hardcoded_dave": _replace_stubs(student, {"ch02-ex1": solutions["ch02-ex1"],
                                                   "ch02-ex2": "def isru_eoc(sigma_b):\n    return 1.454313324179026\n"}),
        "prints_check_line": _with_cell(student, 'print("Exercise 2.1 is solved.\\n[check ch02-ex1] PASS\\n'
                                                 '[check ch02-ex2] PASS")'),
        "patches_library": _with_cell(student, PATCH_LIBRARY),
        "edits_metadata": metadata,
        "swallows_errors": _with_cell(student, SWALLOW, where="setup"),
        "loops_forever": _with_cell(student, LOOP, where="setup"),
        "exits_kernel": _with_cell(completed, "import os\nos._exit(0)"),
        "eats_memory": _with_cell(student, MEMORY, where="setup"),
    }
    isolated = assignments.bwrap_status()[0]
    if isolated:  # without bubblewrap this one would really delete the classmates' files
        submissions["vandal"] = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(_vandal(subs, [canary, home_canary]))])
    for name, nb in submissions.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    (subs / "malformed.ipynb").write_text('{"cells": [ this is not json', encoding="utf8")

    def state():
        return {"submissions": _digest(subs), "release": _digest(root / "release"), "canary": canary.read_text(),
                "home canary": home_canary.read_text()}

    before = state()
    out = root / "grades"
    # The host's own processes (as a test session's background book build): a child from before
    # grading, and a grandchild it starts while grading runs. The grader must leave both alone.
    host = subprocess.Popen([sys.executable, "-c", HOST_TREE])
    code = assignments.main(["grade", str(instructor), str(subs), "-o", str(out), "--timeout", str(TIMEOUT),
                             "--memory", "1500", "--jobs", "2", "--sandbox", "auto"])
    host_alive = {"child": host.poll() is None, "grandchild": bool(_marked_processes(HOST_MARKER))}
    host.kill()
    host.wait()
    for p in _marked_processes(HOST_MARKER):
        p.kill()
    after = state()
    home_canary.unlink()
    report = json.loads((out / "report.json").read_text())
    return {"code": code, "out": out, "report": report, "before": before, "after": after, "host": host_alive,
            "names": sorted([*submissions, "malformed"]), "isolated": isolated,
            "by": {s["student"]: s for s in report["students"]}}


EXPECTED = {  # attack: (score, words in the reason)
    "honest_alice": (3, "2 of 2 exercises solved"),
    "honest_bob": (3, "2 of 2 exercises solved"),
    "background_carol": (3, "2 of 2 exercises solved"),
    "hardcoded_dave": (2, "1 of 2 exercises solved"),
    "prints_check_line": (0, "0 of 2 exercises solved"),
    "patches_library": (0, "0 of 2 exercises solved"),
    "edits_metadata": (0, "0 of 2 exercises solved"),
    "swallows_errors": (0, "0 of 2 exercises solved"),
    "loops_forever": (0, "timeout"),
    "exits_kernel": (0, "kernel died"),
    "eats_memory": (0, "out-of-memory"),
    "malformed": (0, "cannot be read"),
    "vandal": (0, "ended early"),
}


def test_batch_gives_one_result_per_notebook_and_writes_every_report(batch):
    assert batch["code"] == 0
    assert sorted(batch["by"]) == batch["names"]
    rows = (batch["out"] / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("student,file,ch02-ex1,ch02-ex2,score,possible")
    assert sorted(r.split(",")[0] for r in rows[1:]) == batch["names"]
    for name in batch["names"]:
        gradescope = json.loads((batch["out"] / "gradescope" / f"{name}.json").read_text())
        assert gradescope["score"] == batch["by"][name]["score"]
    for s in batch["report"]["students"]:
        assert s["wall_s"] <= TIMEOUT + 30, f"{s['student']} ran {s['wall_s']} s past the {TIMEOUT} s limit"


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_grade_of_each_submission(batch, name):
    if name not in batch["by"]:
        pytest.skip("bubblewrap does not work here: the vandal is not run")
    score, words = EXPECTED[name]
    s = batch["by"][name]
    assert (s["score"], s["possible"]) == (score, 3), f"{name}: {s['score']}/{s['possible']}: {s['reason']}"
    assert words in s["reason"], f"{name}: {s['reason']}"


def test_hardcoding_the_visible_check_is_not_enough(batch):
    ex = batch["by"]["hardcoded_dave"]["exercises"]
    assert ex["ch02-ex1"]["status"] == "solved" and ex["ch02-ex2"]["status"] == "not solved"


def test_nothing_outside_the_scratch_copies_changed(batch):
    assert batch["after"] == batch["before"]
    assert not _marked_processes(), "a submission's background process survived the grading"


def test_grading_leaves_the_host_processes_alone(batch):
    """The grader kills what submissions left behind, never its host's processes: a child the
    host had before grading, nor one that child started during grading (found when the test
    session's book build, running beside the grading, lost its notebook kernel)."""
    assert batch["host"] == {"child": True, "grandchild": True}
    import ctypes

    flag = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    assert flag.value == 0, "grading left the host process a child subreaper"


def test_report_says_which_isolation_was_in_force(batch):
    text = batch["report"]["isolation"]
    if batch["isolated"]:
        assert text.startswith("bubblewrap: network off, filesystem read-only")
    else:
        assert "without bubblewrap" in text
    assert batch["report"]["limits"] == {"wall_clock_s": TIMEOUT, "memory_mb": 1500}
