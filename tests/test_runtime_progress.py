"""runtime.progress: a bar for long loops that leaves one line in a stored notebook."""
from __future__ import annotations

import io

import nbformat
import pytest
from nbclient import NotebookClient

from sigprop import runtime


def test_progress_yields_every_item_and_stays_silent_off_a_terminal(capsys):
    assert list(runtime.progress(range(5), "items")) == [0, 1, 2, 3, 4]
    captured = capsys.readouterr()
    assert "items" not in captured.err, "on a non-terminal stderr the bar must be disabled"


def test_progress_draws_on_a_given_file():
    out = io.StringIO()
    assert sum(runtime.progress(range(10), "sum", file=out, disable=False)) == 45
    assert "sum: 100%" in out.getvalue()


def test_progress_rejects_a_negative_total():
    with pytest.raises(ValueError, match="total must be"):
        runtime.progress(range(3), total=-1)


def test_progress_in_a_kernel_stores_one_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import time\nfrom sigprop import runtime\n"
        "for i in runtime.progress(range(12), 'networks', mininterval=0):\n    time.sleep(0.02)\nprint('done')")]
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    bars = [o for o in outputs if o.output_type == "display_data"]
    assert len(bars) == 1 and bars[0].data["text/plain"].startswith("networks: 100%|")
    assert "\n" not in bars[0].data["text/plain"]
    assert bars[0].data["text/plain"].endswith("| 12/12"), "the stored line keeps no timings"
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
