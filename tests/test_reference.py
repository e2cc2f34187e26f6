"""The paper beside the book: every chapter's table (book/reference/chNN.yaml) is well
formed, and every stored book value lies within its stated tolerance of the paper's value,
unless the row says why the two are not comparable at that scale.

The book's values are measured by ``tools/reference.py`` (``make reference`` for the
medium scale); this test reads the stored numbers and runs nothing."""
from __future__ import annotations

import math
import re

import pytest
import yaml

from _paths import REPO_ROOT

TABLES = REPO_ROOT / "book" / "reference"
CHAPTERS = [f"ch0{i}" for i in range(1, 7)]
SCALES = ("small", "medium", "paper")
TOLERANCE_KEYS = {"abs", "rel", "se"}
ROW_KEYS = {"id", "quantity", "paper", "tolerance", "measure", "book", "not_comparable", "note"}


def _bib_keys() -> set[str]:
    text = (REPO_ROOT / "references.bib").read_text(encoding="utf8")
    return set(re.findall(r"@\w+\{([^,\s]+),", text))


def _table(chapter: str) -> dict:
    return yaml.safe_load((TABLES / f"{chapter}.yaml").read_text(encoding="utf8"))


def _reason(row: dict, scale: str):
    """Why ``row`` is not comparable at ``scale`` (None when it is)."""
    nc = row.get("not_comparable")
    if isinstance(nc, str):
        return nc
    if isinstance(nc, dict):
        return nc.get(scale)
    return None


def _stored():
    for chapter in CHAPTERS:
        path = TABLES / f"{chapter}.yaml"
        if not path.is_file():
            continue
        for row in _table(chapter)["rows"]:
            for scale, entry in (row.get("book") or {}).items():
                yield pytest.param(chapter, row, scale, entry, id=f"{chapter}-{row['id']}-{scale}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_has_a_well_formed_table(chapter):
    path = TABLES / f"{chapter}.yaml"
    assert path.is_file(), f"{path.relative_to(REPO_ROOT)} is missing"
    data = _table(chapter)
    assert data.get("chapter") == chapter, f"{path.name}: chapter field {data.get('chapter')!r}"
    assert data.get("paper") in _bib_keys(), (
        f"{path.name}: paper {data.get('paper')!r} is not a key of references.bib")
    assert data.get("paper_title"), f"{path.name}: paper_title missing"
    rows = data.get("rows")
    assert isinstance(rows, list) and rows, f"{path.name}: no rows"
    ids = [row.get("id") for row in rows]
    assert len(set(ids)) == len(ids), f"{path.name}: duplicate row ids {ids}"
    for row in rows:
        where = f"{path.name}, row {row.get('id')!r}"
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", str(row.get("id"))), f"{where}: id"
        assert set(row) <= ROW_KEYS, f"{where}: unknown keys {sorted(set(row) - ROW_KEYS)}"
        assert isinstance(row.get("quantity"), str) and row["quantity"], f"{where}: quantity"
        paper = row.get("paper")
        assert isinstance(paper, dict) and paper.get("where"), (
            f"{where}: the paper's value needs a 'where' (figure, table, equation or section)")
        value = paper.get("value")
        assert value is None or isinstance(value, (int, float)), f"{where}: paper value {value!r}"
        nc = row.get("not_comparable")
        assert nc is None or (isinstance(nc, str) and nc.strip()) or (
            isinstance(nc, dict) and set(nc) <= set(SCALES)
            and all(isinstance(v, str) and v.strip() for v in nc.values())
        ), f"{where}: not_comparable must be a reason, or a reason per scale"
        if value is None:
            assert isinstance(nc, str), (
                f"{where}: the paper's value is unknown, so the row must say why it is not "
                "comparable (not_comparable: <reason>)")
        else:
            tol = row.get("tolerance")
            assert isinstance(tol, dict) and set(tol) <= TOLERANCE_KEYS, f"{where}: tolerance"
            assert tol.get("abs") or tol.get("rel"), f"{where}: tolerance needs abs or rel"
            assert all(isinstance(v, (int, float)) and v >= 0 for v in tol.values()), (
                f"{where}: tolerances are non-negative numbers")
        for scale, entry in (row.get("book") or {}).items():
            assert scale in SCALES, f"{where}: unknown scale {scale!r}"
            assert isinstance(entry, dict) and "value" in entry, f"{where}, {scale}: value"
            for key in ("value", "se"):
                v = entry.get(key)
                assert v is None or (isinstance(v, (int, float)) and math.isfinite(v)), (
                    f"{where}, {scale}: {key} = {v!r}")
            if entry.get("se") is not None:
                assert entry["se"] >= 0, f"{where}, {scale}: negative standard error"
            if entry["value"] is None:
                assert _reason(row, scale), (
                    f"{where}, {scale}: no value measured, and no reason given")
            else:
                assert entry.get("size"), f"{where}, {scale}: the sizes it was measured at"


def test_small_scale_is_measured_for_every_row():
    """Every row carries the value of the preset the website shows."""
    missing = [f"{chapter}:{row['id']}" for chapter in CHAPTERS if (TABLES / f"{chapter}.yaml").is_file()
               for row in _table(chapter)["rows"] if "small" not in (row.get("book") or {})]
    assert not missing, f"rows without a small-scale value: {missing}"


@pytest.mark.parametrize("chapter,row,scale,entry", list(_stored()))
def test_stored_book_value_is_within_tolerance_of_the_paper(chapter, row, scale, entry):
    paper = row["paper"].get("value")
    value = entry.get("value")
    reason = _reason(row, scale)
    if paper is None or value is None or reason:
        assert reason, f"{chapter} {row['id']} ({scale}): not comparable, and no reason given"
        return
    tol = row["tolerance"]
    se = entry.get("se") or 0.0
    allowed = tol.get("abs", 0.0) + tol.get("rel", 0.0) * abs(paper) + tol.get("se", 0.0) * se
    assert abs(value - paper) <= allowed, (
        f"{chapter} {row['id']} at scale {scale}: book {value:.6g} ± {se:.2g}, paper {paper:g} "
        f"({row['paper']['where']}); |difference| {abs(value - paper):.3g} exceeds the "
        f"tolerance {allowed:.3g}"
    )


def test_reference_module_renders_every_table_without_verdicts():
    from sigprop import reference

    for chapter in CHAPTERS:
        frame = reference.table(chapter, root=REPO_ROOT)
        assert list(frame.index) == [row["id"] for row in _table(chapter)["rows"]]
        assert {"quantity", "paper", "where in the paper", "book, small", "tolerance"} <= set(frame)
        page = reference.html(chapter, root=REPO_ROOT)
        assert "$" not in page and "\\(" in page, f"{chapter}: inline math not converted"
        lowered = page.lower()
        for word in ("pass", "fail", "true", "false", "/work/", "/tmp/"):
            assert word not in lowered, f"{chapter}: the rendered table contains {word!r}"


def test_reference_format_and_argument_checks(tmp_path):
    from sigprop import reference

    assert reference.format_value(1.1992) == "1.1992"
    assert reference.format_value(1.19903, 0.00328) == "1.1990 ± 0.0033"
    assert reference.format_value(5.0476, 0.1722) == "5.05 ± 0.17"
    assert reference.format_value(None) == "–"
    assert reference.format_value(39831100.0, 7023210.0) == "(3.98 ± 0.70) × 10⁷"
    assert reference.format_value(2.3e-6) == "2.3 × 10⁻⁶"
    with pytest.raises(ValueError, match="chapter must be of the form"):
        reference.find("5")
    with pytest.raises(FileNotFoundError, match="no table for chapter 'ch05'"):
        reference.find("ch05", root=tmp_path)
    # a notebook opened without the book's sources shows a sentence, not a traceback
    assert "book/reference/ch05.yaml" in reference.show("ch05", root=tmp_path).data


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_renders_its_table_just_before_its_summary(chapter):
    (md,) = (REPO_ROOT / "book").glob(f"{chapter}_*.md")
    text = md.read_text(encoding="utf8")
    start = text.find("\n## The paper beside the book\n")
    end = text.find("\n## Summary\n")
    assert 0 <= start < end, f"{md.name}: no section 'The paper beside the book' before the summary"
    section = text[start:end]
    assert "\n## " not in section[1:], f"{md.name}: another section between the table and the summary"
    assert f'reference.show("{chapter}")' in section and ":tags: [hide-input]" in section, (
        f"{md.name}: the section renders its table with reference.show({chapter!r}) in a "
        "hide-input cell")


def test_measure_and_stale_compare_the_stored_values_with_a_run(tmp_path):
    """A chapter ends with ``assert not reference.stale(chapter, globals())``: the check
    finds a stored value its run no longer measures, and leaves the run's names alone."""
    from sigprop import reference

    (tmp_path / "reference").mkdir()
    table = {"chapter": "ch09", "rows": [
        {"id": "twice", "measure": "y = 2 * x\nvalue = y\nse = 0.5\nsize = 'x only'",
         "book": {"small": {"value": 3.0, "se": 0.5}}},
        {"id": "constant", "measure": "value = 1.0",
         "book": {"medium": {"value": 7.0}}},
    ]}
    path = tmp_path / "reference" / "ch09.yaml"
    path.write_text(yaml.safe_dump(table), encoding="utf8")
    run = {"x": 1.5}
    assert reference.measure("ch09", run, root=tmp_path) == {
        "twice": {"value": 3.0, "se": 0.5, "size": "x only"},
        "constant": {"value": 1.0, "se": None}}
    assert run == {"x": 1.5}, "the snippets rebound a name of the run"
    assert reference.stale("ch09", run, scale="small", root=tmp_path) == []
    assert reference.stale("ch09", {"x": 1.5 * (1 + 5e-4)}, scale="small", root=tmp_path) == []
    (line,) = reference.stale("ch09", {"x": 1.6}, scale="small", root=tmp_path)
    assert "ch09:twice" in line and "3.0" in line and "3.2" in line
    (line,) = reference.stale("ch09", run, scale="medium", root=tmp_path)
    assert "ch09:constant" in line
    assert reference.stale("ch09", run, scale="paper", root=tmp_path) == []  # nothing stored there
    assert reference.stale("ch09", run, scale="small", root=tmp_path / "elsewhere") == []  # no table
    with pytest.raises(ValueError, match="rel"):
        reference.stale("ch09", run, scale="small", root=tmp_path, rel=-1)
    with pytest.raises(ValueError, match="scale must be one of"):
        reference.stale("ch09", run, scale="huge", root=tmp_path)
    with pytest.raises(TypeError, match="namespace must be a mapping"):
        reference.measure("ch09", [1, 2], root=tmp_path)
    table["rows"][1]["measure"] = "v = 1"
    path.write_text(yaml.safe_dump(table), encoding="utf8")
    with pytest.raises(ValueError, match="sets no value"):
        reference.measure("ch09", run, root=tmp_path)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_checks_its_stored_values_against_its_run(chapter):
    (md,) = (REPO_ROOT / "book").glob(f"{chapter}_*.md")
    text = md.read_text(encoding="utf8")
    section = text[text.find("\n## The paper beside the book\n"):text.find("\n## Summary\n")]
    assert 'assert not drift' in section and f'reference.stale("{chapter}", globals())' in section, (
        f"{md.name}: the section does not check its stored values against the run")
