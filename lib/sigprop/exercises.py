r"""Self-checking exercises: the check a chapter's exercise runs, and the line the grader reads.

Every exercise of the book (a ``{exercise}`` directive with a label such as ``ch01-ex1``)
is followed by a stub cell that raises :class:`NotImplementedError` and by a *check cell*
that calls :func:`check` with the exercise's label. :func:`check` prints one line,

.. code-block:: text

    [check ch01-ex1] PASS: the variance stays at 1.0 through 20 layers
    [check ch01-ex1] FAIL: expected 2.0, got 1.0
    [check ch01-ex1] NOT ATTEMPTED: exercise: fill in `he_std`

which a student reads and ``tools/assignments.py grade`` parses (:func:`parse_check_lines`).
The check never raises, so a notebook with unfinished exercises still runs to its end.

Write the condition as a function (a ``lambda``), not as a value: the function is called
inside :func:`check`, so a stub's :class:`NotImplementedError` becomes ``NOT ATTEMPTED``
instead of an error that would stop the notebook::

    from sigprop.exercises import check
    check("ch01-ex1", lambda: abs(he_std(100) - (2 / 100) ** 0.5) < 1e-12,
          "he_std(fan_in) = sqrt(2 / fan_in)")

An exercise may have several checks (same label, one call each); it passes when all pass.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

__all__ = ["PASS", "FAIL", "NOT_ATTEMPTED", "STATUSES", "CheckResult", "check", "evaluate",
           "format_line", "parse_check_lines", "summarize"]

#: The statuses a check can report, in the words of its printed line.
PASS, FAIL, NOT_ATTEMPTED = "PASS", "FAIL", "NOT ATTEMPTED"
STATUSES = (PASS, FAIL, NOT_ATTEMPTED)

#: Exercise labels: letters, digits, ``-``, ``_``, ``.`` and ``:`` (the labels of sphinx-exercise).
_LABEL = re.compile(r"^[A-Za-z0-9][\w.:-]*$")
_LINE = re.compile(
    r"^\[check (?P<label>[A-Za-z0-9][\w.:-]*)\] (?P<status>PASS|FAIL|NOT ATTEMPTED)(?:: (?P<message>.*))?$"
)

Condition = Union[bool, Any, Callable[[], Any]]


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: the exercise ``label``, a ``status`` in :data:`STATUSES`, and a
    ``message`` for the student (the check's own message, or the exception it raised)."""

    label: str
    status: str
    message: str = ""

    @property
    def passed(self) -> bool:
        """Whether the status is ``PASS``."""
        return self.status == PASS

    def line(self) -> str:
        """The printed form, ``[check <label>] <STATUS>: <message>`` (see :func:`format_line`)."""
        return format_line(self.label, self.status, self.message)


def _validate_label(label: str) -> None:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ValueError(
            "label must be the exercise's label (letters, digits, '-', '_', '.', ':'; "
            f"e.g. 'ch01-ex1'); got {label!r}"
        )


def format_line(label: str, status: str, message: str = "") -> str:
    """The machine-readable line for one check: ``[check <label>] <STATUS>: <message>``.

    The message is put on one line (newlines become spaces) so that the grader reads it whole.

    Raises
    ------
    ValueError
        If ``label`` is not a valid exercise label or ``status`` not one of :data:`STATUSES`.
    """
    _validate_label(label)
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}; got {status!r}")
    message = " ".join(str(message).split())
    return f"[check {label}] {status}" + (f": {message}" if message else "")


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
    return CheckResult(label, PASS if ok else FAIL, message)


def check(label: str, condition: Condition, message: str = "") -> None:
    """Check an exercise and print one line ``[check <label>] PASS|FAIL|NOT ATTEMPTED: ...``.

    ``condition`` is a function of no arguments (usually a ``lambda``) or a value:

    * the function returns a truthy value, or ``None`` (a function whose ``assert`` statements
      all held): ``PASS`` with ``message``;
    * it returns a falsy value: ``FAIL`` with ``message``; it raises :class:`AssertionError`:
      ``FAIL`` with the assertion's message (or ``message``);
    * it raises :class:`NotImplementedError` (the stub is still in place) or :class:`NameError`
      (the answer's cell was not run): ``NOT ATTEMPTED``;
    * it raises anything else: ``FAIL`` with the exception.

    A value instead of a function is checked with ``bool``; but the expression is then
    evaluated *before* :func:`check` is called, so a stub's exception escapes. Prefer a lambda.
    The function never raises on a wrong answer, so the notebook runs on.

    Parameters
    ----------
    label : str
        The ``:label:`` of the exercise's ``{exercise}`` directive, e.g. ``"ch01-ex1"``.
    condition : callable or value
        What must hold.
    message : str
        What the check verifies, shown after ``PASS`` or ``FAIL``.

    Raises
    ------
    ValueError
        If ``label`` is not a valid exercise label.

    Examples
    --------
    >>> check("ch01-ex1", lambda: 1 + 1 == 2, "arithmetic works")
    [check ch01-ex1] PASS: arithmetic works
    """
    result = evaluate(label, condition, message)
    print(result.line(), file=sys.stdout, flush=True)


def parse_check_lines(text: str) -> List[CheckResult]:
    """Every check line in ``text`` (a notebook's printed output), in order.

    Lines that are not check lines are ignored, so the output may hold anything else.
    """
    results = []
    for line in str(text).splitlines():
        match = _LINE.match(line.strip())
        if match:
            results.append(CheckResult(match["label"], match["status"], match["message"] or ""))
    return results


def summarize(results: Iterable[CheckResult], labels: Optional[Iterable[str]] = None) -> Dict[str, CheckResult]:
    """One outcome per exercise from all its checks.

    An exercise passes when it has at least one check and every check passed. Otherwise its
    outcome is its first ``FAIL``, else its first ``NOT ATTEMPTED``. Exercises in ``labels``
    with no check line at all (their check cell failed or never ran) get ``FAIL`` with the
    message ``"no check ran"``. The result is ordered as ``labels``, then by first appearance.
    """
    by_label: Dict[str, List[CheckResult]] = {}
    for label in labels or ():
        by_label.setdefault(label, [])
    for result in results:
        by_label.setdefault(result.label, []).append(result)
    out: Dict[str, CheckResult] = {}
    for label, found in by_label.items():
        if not found:
            out[label] = CheckResult(label, FAIL, "no check ran (the check cell failed or is missing)")
            continue
        for status in (FAIL, NOT_ATTEMPTED):
            first = next((r for r in found if r.status == status), None)
            if first is not None:
                out[label] = first
                break
        else:
            messages = [r.message for r in found if r.message]
            out[label] = CheckResult(label, PASS, "; ".join(dict.fromkeys(messages)))
    return out
