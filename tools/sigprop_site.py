"""The website's own Sphinx extension (loaded from _config.yml, ``sphinx.local_extensions``);
tests/test_site.py fails without it.

* Page layout: ``tools/_static/sigprop.css`` and ``sigprop.js`` (served with the site, no
  CDN): display equations scroll sideways with a visible cue instead of being clipped, code
  cells keep 88 columns in the desktop column, figures keep a minimum width on a phone (they
  scroll sideways rather than shrink to unreadable), and the reference list reads
  "Glorot and Bengio (2010)".
* One citation style, author-year: ``{cite:t}`` gives "Glorot and Bengio (2010)",
  ``{cite:p}`` gives "(Glorot and Bengio, 2010)", and each entry of a reference list is
  labelled "Glorot and Bengio (2010)" (pybtex style ``sigprop``, referencing style
  ``sigprop``; selected in _config.yml).
* Page weight (a first visit to a chapter loads at most 2.5 MB, tests/test_site.py):
  MathJax is loaded as its components (core, TeX input, CHTML output, assistive MathML)
  without the 430 kB context menu; fontawesome.js (1.5 MB; the icons come from the theme's
  web fonts) and the search index (used only by search-as-you-type, which is off) are not
  loaded by content pages; the unused ipywidgets state (nothing renders widgets on a static
  site) is dropped; figure PNGs are re-encoded with a 256-colour palette.

* Script de-duplication. sphinx-thebe and sphinx-togglebutton register their inline
  configuration scripts twice under Jupyter Book 1.x; the second
  ``const THEBE_JS_URL = ...`` is a SyntaxError in every page's console. Identical script
  entries are dropped from each page's context, keeping the first.
* Theme mode on a first visit. pydata-sphinx-theme's head script sets
  ``<html data-mode="">`` when the browser has stored no mode yet, and the theme then logs
  "Got invalid theme mode" as an error. A script right after it chooses ``auto``, the value
  the theme falls back to anyway.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

_STATIC = Path(__file__).resolve().parent / "_static"
_MODE_FIX = 'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }'


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        # an inline script's filename is None or "" depending on who added it
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    scripts[:] = kept


# --------------------------------------------------------------------------- citations


def _register_citation_styles() -> None:
    """pybtex formatting style ``sigprop`` (plain entries, author-year labels, sorted by
    author, year, title) and sphinxcontrib-bibtex referencing style ``sigprop`` (author-year
    with round brackets)."""
    import pybtex.plugin
    import sphinxcontrib.bibtex.plugin
    from pybtex.markup import LaTeXParser
    from pybtex.style.formatting.plain import Style as PlainStyle
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.sorting.author_year_title import SortingStyle
    from sphinxcontrib.bibtex.style.referencing import BracketStyle
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

    def plain(text: str) -> str:
        try:
            return LaTeXParser(text).parse().render_as("text")
        except Exception:  # a name pybtex cannot parse is shown as written
            return text.replace("{", "").replace("}", "")

    class AuthorYearLabels(BaseLabelStyle):
        """"Glorot and Bengio (2010)", "He et al. (2015)"; "2019a", "2019b" when two
        entries would get the same label."""

        def _label(self, entry) -> str:
            persons = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
            if not names:
                who = plain(entry.fields.get("key", entry.key))
            elif len(names) == 1:
                who = names[0]
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            else:
                who = f"{names[0]} et al."
            return f"{who} ({entry.fields.get('year', 'n.d.')})"

        def format_labels(self, sorted_entries):
            labels = [self._label(e) for e in sorted_entries]
            counts = {lab: labels.count(lab) for lab in labels}
            seen: dict = {}
            for lab in labels:
                if counts[lab] > 1:
                    k = seen.get(lab, 0)
                    seen[lab] = k + 1
                    lab = lab[:-1] + "abcdefghijklmnopqrstuvwxyz"[k] + ")"
                yield lab

    class Style(PlainStyle):
        default_label_style = AuthorYearLabels
        default_sorting_style = SortingStyle

    round_brackets = BracketStyle(left="(", right=")")

    @dataclasses.dataclass
    class ReferenceStyle(AuthorYearReferenceStyle):
        bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=lambda: round_brackets)
        bracket_textual: BracketStyle = dataclasses.field(default_factory=lambda: round_brackets)
        bracket_author: BracketStyle = dataclasses.field(default_factory=lambda: round_brackets)
        bracket_label: BracketStyle = dataclasses.field(default_factory=lambda: round_brackets)
        bracket_year: BracketStyle = dataclasses.field(default_factory=lambda: round_brackets)

    try:
        pybtex.plugin.register_plugin("pybtex.style.formatting", "sigprop", Style)
        sphinxcontrib.bibtex.plugin.register_plugin(
            "sphinxcontrib.bibtex.style.referencing", "sigprop", ReferenceStyle)
    except pybtex.plugin.PluginNameClashError:  # a second build in the same process
        pass


# --------------------------------------------------------------------------- page weight

# MathJax 3 as components (what tex-chtml.js bundles, less the 430 kB context menu)
_MATHJAX_LOAD = ["input/tex", "output/chtml", "a11y/assistive-mml"]
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# scripts a content page does not need: fontawesome.js draws the theme's icons as SVG,
# which its web fonts (loaded by the theme's CSS) draw already; the search index serves
# pydata-sphinx-theme's search-as-you-type only (off: the search box opens search.html)
_DROP_FONTAWESOME = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>')
_DROP_SEARCH = re.compile(
    r'\s*<script src="[^"]*(?:_static/searchtools\.js|_static/language_data\.js|searchindex\.js)"></script>')


def _configure(app, config):
    # sphinx-mathjax-offline sets mathjax_path to its bundled tex-chtml.js; load the
    # components instead (the same files, served with the site)
    if str(config.mathjax_path).startswith("mathjax/"):
        config.mathjax_path = "mathjax/startup.js"
        mj = dict(config.mathjax3_config or {})
        loader = dict(mj.get("loader") or {})
        loader["load"] = list(dict.fromkeys(list(loader.get("load") or []) + _MATHJAX_LOAD))
        mj["loader"] = loader
        config.mathjax3_config = mj
    if str(_STATIC) not in [str(x) for x in config.html_static_path]:
        config.html_static_path = list(config.html_static_path) + [str(_STATIC)]


def _drop_widget_state(app, pagename, templatename, context, doctree):
    """The ipywidgets state myst-nb embeds: ~200 kB nothing reads (no widget JavaScript)."""
    scripts = context.get("script_files")
    if not scripts or app.config.nb_ipywidgets_js:
        return
    scripts[:] = [s for s in scripts if getattr(s, "attributes", {}).get("type") != _WIDGET_STATE]


def _slim_pages(app, exception):
    """After the build: content pages stop loading fontawesome.js and the search index, and
    figure PNGs are re-encoded with a 256-colour palette (a third of their size or less)."""
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    search_as_you_type = (app.config.html_theme_options or {}).get("search_as_you_type", False)
    for page in out.rglob("*.html"):
        text = page.read_text(encoding="utf8")
        new = _DROP_FONTAWESOME.sub("", text)
        if page.name != "search.html" and not search_as_you_type:
            new = _DROP_SEARCH.sub("", new)
        if new != text:
            page.write_text(new, encoding="utf8")
    for png in (out / "_images").glob("*.png"):
        _quantize_png(png)


def _quantize_png(path: Path) -> None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                return  # already a palette image (e.g. re-run on an incremental build)
            rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] == 255:  # opaque (sigprop.plotting's figures are)
            small = rgba.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                                 dither=Image.Dither.NONE)
            # the background stays pure white (not the 254 grey a median cut may give it)
            palette = small.getpalette()
            for i in range(0, len(palette), 3):
                if min(palette[i:i + 3]) >= 250:
                    palette[i:i + 3] = [255, 255, 255]
            small.putpalette(palette)
        else:
            small = rgba.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        tmp = path.with_suffix(".tmp.png")
        small.save(tmp, format="PNG", optimize=True)
        if tmp.stat().st_size < path.stat().st_size:
            tmp.replace(path)
        else:
            tmp.unlink()
    except OSError:  # not a PNG Pillow can read: leave it as it is
        return


def setup(app):
    _register_citation_styles()
    app.connect("config-inited", _configure, priority=900)
    app.add_css_file("sigprop.css")
    app.add_js_file("sigprop.js", defer="defer")
    app.add_js_file(None, body=_MODE_FIX, priority=1)
    # Early: Sphinx emits html-page-context with emit_firstresult, which stops at the first
    # handler that returns a value; the duplicates are there from the start of each page.
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    # late: myst-nb adds a page's widget state in its own (default-priority) handler
    app.connect("html-page-context", _drop_widget_state, priority=900)
    app.connect("build-finished", _slim_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
