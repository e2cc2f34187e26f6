"""Runs one submission inside its sandbox: the student's notebook, then the hidden probes.

Started by ``tools/assignments.py grade`` (never by hand), in the submission's scratch copy
as working directory, inside bubblewrap where the machine has it. The job comes on stdin as
JSON::

    {"notebook": "submission.ipynb",
     "probes": [{"label": "ch02-ex1", "source": "<imports and def answer(case)>",
                 "cases": [...]}, ...]}

The notebook's code cells run top to bottom in a fresh ``python3`` kernel (a cell that
raises does not stop the run; outputs and metadata of the submission are ignored). Then,
for each exercise, a probe cell calls the hidden test's ``answer(case)`` on every case the
grader drew and returns the values as JSON. What this process reports is written, one JSON
object a line, to the file descriptor given by ``--result-fd``: ``{"cell": i}`` before each
cell, then one ``{"label": ..., "answers": [...]}`` a probe, then ``{"done": true}``, or
``{"fatal": "..."}`` when the notebook cannot be read or the kernel died.

Nothing here decides a grade: the answers are plain values (the student's kernel can change
them, as it can change anything it runs), and the grader compares them with reference values
it computes in its own process.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys

#: Most characters of answers one probe may send back.
MAX_ANSWER_CHARS = 2_000_000


def _probe_cell(probe: dict) -> str:
    """The code of the probe cell: runs ``answer`` on each case inside the student's kernel,
    in a copy of their namespace, and returns a JSON string (the cell's value)."""
    return (
        "def __sigprop_probe(__source, __cases):\n"
        "    import json\n"
        "    __ns = dict(globals())\n"
        "    exec(compile(__source, '<hidden test>', 'exec'), __ns)\n"
        "    __out = []\n"
        "    for __case in json.loads(__cases):\n"
        "        try:\n"
        "            __out.append({'value': __ns['answer'](__case)})\n"
        "        except NotImplementedError as __exc:\n"
        "            __out.append({'not_attempted': str(__exc)[:300]})\n"
        "        except BaseException as __exc:\n"
        "            __out.append({'error': (type(__exc).__name__ + ': ' + str(__exc))[:300]})\n"
        "    return json.dumps(__out, default=repr)\n"
        f"__sigprop_probe({probe['source']!r}, {json.dumps(probe['cases'])!r})\n"
    )


def _answers(cell) -> list:
    """The answers a probe cell returned, or one error per case from its error output."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "execute_result":
            text = output.get("data", {}).get("text/plain", "")
            if len(text) > MAX_ANSWER_CHARS:
                return [{"error": "the answers are too long to grade"}]
            try:
                value = json.loads(ast.literal_eval(text))
                return value if isinstance(value, list) else [{"error": "malformed answers"}]
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return [{"error": "malformed answers"}]
        if output.get("output_type") == "error":
            return [{"error": f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"[:300]}]
    return [{"error": "the hidden test returned nothing"}]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args(argv)
    job = json.loads(sys.stdin.read())
    out = os.fdopen(args.result_fd, "w", buffering=1, encoding="utf8")
    # The kernel must not inherit the result channel.
    os.set_inheritable(args.result_fd, False)

    def send(**record):
        out.write(json.dumps(record) + "\n")
        out.flush()

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    try:
        with open(job["notebook"], encoding="utf8") as f:
            nb = nbformat.read(f, as_version=4)
        code = [c for c in nb.cells if c.get("cell_type") == "code"]
        sources = [c.source if isinstance(c.source, str) else "".join(c.source) for c in code]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is this student's result
        send(fatal=f"the notebook cannot be read ({type(exc).__name__}: {str(exc)[:200]})")
        return 0
    # A fresh notebook of the submission's code only: its outputs, metadata and kernel name
    # are the student's and are not used.
    run = nbformat.v4.new_notebook()
    run.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    run.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    first_probe = len(run.cells)
    run.cells += [nbformat.v4.new_code_cell(_probe_cell(p)) for p in job["probes"]]

    client = NotebookClient(run, timeout=None, kernel_name="python3", allow_errors=True,
                            record_timing=False, resources={"metadata": {"path": os.getcwd()}})
    try:
        with client.setup_kernel():
            for i, cell in enumerate(run.cells):
                if i < first_probe:
                    send(cell=i)
                client.execute_cell(cell, i)
                if i >= first_probe:
                    probe = job["probes"][i - first_probe]
                    send(label=probe["label"], answers=_answers(cell))
    except DeadKernelError:
        send(fatal=f"the kernel died in code cell {min(i, first_probe) + 1} (os._exit, a crash or "
                   "the memory limit)" if i < first_probe else
             f"the kernel died in the hidden test of {job['probes'][i - first_probe]['label']}")
        return 0
    except Exception as exc:  # noqa: BLE001 - reported as this student's result
        send(fatal=f"the notebook could not be run ({type(exc).__name__}: {str(exc)[:200]})")
        return 0
    send(done=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
