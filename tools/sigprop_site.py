"""A Sphinx extension with two fixes for the website's pages (loaded from _config.yml,
``sphinx.local_extensions``); tests/test_site.py fails without them.

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


def setup(app):
    app.add_js_file(None, body=_MODE_FIX, priority=1)
    # Early: Sphinx emits html-page-context with emit_firstresult, which stops at the first
    # handler that returns a value; the duplicates are there from the start of each page.
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
