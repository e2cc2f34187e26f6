r"""Self-checking exercises: the check a chapter's exercise runs, told as one sentence.

Every exercise of the book (a ``{exercise}`` directive with a label such as ``ch01-ex1``)
is followed by a stub cell that raises :class:`NotImplementedError` and by a *check cell*
that calls :func:`check` with the exercise's label. :func:`check` prints one sentence for
the reader,

.. code-block:: text

    Exercise 1.1 is solved: the variance stays at 1.0 through 20 layers.
    Exercise 1.1 is not solved yet: expected 2.0, got 1.0.
    Exercise 1.1 is not attempted yet: replace the stub above.

and never raises, so a notebook with unfinished exercises still runs to its end.

This check is for the reader. Grades do not come from it: a student's own kernel can print
any sentence or replace this function. ``tools/assignments.py grade`` runs hidden tests
that the student copy does not contain, and compares the answers in its own process
(book/running.md, "Assignments and grading").

Write the condition as a function (a ``lambda``), not as a value: the function is called
inside :func:`check`, so a stub's :class:`NotImplementedError` becomes "not attempted"
instead of an error that would stop the notebook::

    from sigprop.exercises import check
    check("ch01-ex1", lambda: abs(he_std(100) - (2 / 100) ** 0.5) < 1e-12,
          "he_std(fan_in) = sqrt(2 / fan_in)")
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Union

__all__ = ["PASS", "FAIL", "NOT_ATTEMPTED", "STATUSES", "CheckResult", "check", "evaluate",
           "exercise_name"]

#: The outcomes of a check.
PASS, FAIL, NOT_ATTEMPTED = "PASS", "FAIL", "NOT ATTEMPTED"
STATUSES = (PASS, FAIL, NOT_ATTEMPTED)

#: Exercise labels: letters, digits, ``-``, ``_``, ``.`` and ``:`` (the labels of sphinx-exercise).
_LABEL = re.compile(r"^[A-Za-z0-9][\w.:-]*$")
_CHAPTER_LABEL = re.compile(r"^ch0*(?P<chapter>\d+)-ex0*(?P<number>\d+)$")

Condition = Union[bool, Any, Callable[[], Any]]


def _validate_label(label: str) -> None:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ValueError(
            "label must be the exercise's label (letters, digits, '-', '_', '.', ':'; "
            f"e.g. 'ch01-ex1'); got {label!r}"
        )


def exercise_name(label: str) -> str:
    """How the book names an exercise: ``"ch02-ex1"`` is ``"Exercise 2.1"``.

    Raises
    ------
    ValueError
        If ``label`` is not a valid exercise label.
    """
    _validate_label(label)
    match = _CHAPTER_LABEL.match(label)
    return f"Exercise {match['chapter']}.{match['number']}" if match else f"Exercise {label}"


def _clause(text: str) -> str:
    text = " ".join(str(text).split()).rstrip(".")
    return text


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: the exercise ``label``, a ``status`` in :data:`STATUSES`, and a
    ``message`` for the student (the check's own message, or the exception it raised)."""

    label: str
    status: str
    message: str = ""

    @property
    def passed(self) -> bool:
        """Whether the exercise is solved."""
        return self.status == PASS

    def sentence(self) -> str:
        """The sentence :func:`check` prints, e.g.
        ``"Exercise 2.1 is not attempted yet: replace the stub above."``"""
        name = exercise_name(self.label)
        message = _clause(self.message)
        if self.status == PASS:
            return f"{name} is solved" + (f": {message}." if message else ".")
        if self.status == NOT_ATTEMPTED:
            return f"{name} is not attempted yet: replace the stub above."
        return f"{name} is not solved yet" + (f": {message}." if message else ".")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def evaluate(label: str, condition: Condition, message: str = "") -> CheckResult:
    """Evaluate a check without printing it (see :func:`check` for the rules).

    Raises
    ------
    ValueError
        If ``label`` is not a valid exercise label.
    """
    _validate_label(label)
    if not isinstance(message, str):
        raise ValueError(f"message must be a str (what is being checked); got {message!r} ({type(message).__name__})")
    if callable(condition):
        try:
            value = condition()
        except (NotImplementedError, NameError) as exc:
            # The stub is still in place, or the cell that defines the answer was not run.
            return CheckResult(label, NOT_ATTEMPTED, _describe(exc))
        except AssertionError as exc:
            return CheckResult(label, FAIL, str(exc).strip() or message or "an assertion failed")
        except Exception as exc:  # noqa: BLE001 - any error in the student's code is a FAIL
            return CheckResult(label, FAIL, f"{message + ': ' if message else ''}{_describe(exc)}")
    else:
        value = condition
    if value is None and callable(condition):
        return CheckResult(label, PASS, message)  # a function of asserts that all held
    try:
        ok = bool(value)
    except Exception as exc:  # noqa: BLE001 - e.g. a tensor with several elements
        return CheckResult(label, FAIL, f"the check's condition has no truth value ({_describe(exc)})")
    return CheckResult(label, PASS if ok else FAIL, message if ok else (message and f"not yet true that {message}"))


def check(label: str, condition: Condition, message: str = "") -> None:
    """Check an exercise and print one sentence saying whether it is solved.

    ``condition`` is a function of no arguments (usually a ``lambda``) or a value:

    * the function returns a truthy value, or ``None`` (a function whose ``assert`` statements
      all held): "Exercise N.M is solved: <message>.";
    * it returns a falsy value, or raises :class:`AssertionError` (whose message is shown),
      or raises anything else (shown): "Exercise N.M is not solved yet: ...";
    * it raises :class:`NotImplementedError` (the stub is still in place) or :class:`NameError`
      (the answer's cell was not run): "Exercise N.M is not attempted yet: replace the stub
      above."

    A value instead of a function is checked with ``bool``; but the expression is then
    evaluated *before* :func:`check` is called, so a stub's exception escapes. Prefer a lambda.
    The function never raises on a wrong answer, so the notebook runs on; it returns nothing
    (:func:`evaluate` returns the outcome without printing).

    Parameters
    ----------
    label : str
        The ``:label:`` of the exercise's ``{exercise}`` directive, e.g. ``"ch01-ex1"``.
    condition : callable or value
        What must hold.
    message : str
        What the check verifies, in words, shown when it holds.

    Raises
    ------
    ValueError
        If ``label`` is not a valid exercise label.

    Examples
    --------
    >>> check("ch01-ex1", lambda: 1 + 1 == 2, "arithmetic works")
    Exercise 1.1 is solved: arithmetic works.
    """
    result = evaluate(label, condition, message)
    print(result.sentence(), file=sys.stdout, flush=True)
