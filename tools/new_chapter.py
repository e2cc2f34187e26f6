"""Start a new chapter from the book's template (see CONTRIBUTING.md, "Adding a chapter").

    python tools/new_chapter.py ch02_mean_field "Mean-field theory: the edge of chaos"

writes ``book/ch02_mean_field.md`` (MyST Markdown, jupytext-paired with ``ipynb``) and its
twin ``book/ch02_mean_field.ipynb``. Every chapter starts with the same two cells: the Colab
bootstrap, which installs sigprop from the repository URL of ``_config.yml`` when it is not
importable, and a parameters cell a reader may edit. The rest of the template is the
chapter's fixed shape, to be filled in. Add the chapter to ``_toc.yml`` yourself, then run
``make notebooks`` to store its outputs.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def repository_url(root: Path = ROOT) -> str:
    """The repository URL, from ``_config.yml`` (the one place it is written)."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf8"))
    return config["repository"]["url"].rstrip("/")


# The environment variable that replaces the repository as the source the bootstrap cell
# installs sigprop from (tests/test_colab.py points it at a locally built wheel).
INSTALL_SOURCE_VARIABLE = "SIGPROP_INSTALL_SOURCE"


def bootstrap_source(url: str) -> str:
    """The first code cell of every chapter (tests/test_project.py checks each is this).

    It installs sigprop only when it is not importable, from ``$SIGPROP_INSTALL_SOURCE``
    (one pip requirement: a wheel's path, a git URL) or else the repository, with the
    kernel's own pip (``sys.executable -m pip``; not ``%pip``, whose note "you may need to
    restart the kernel" would be wrong here). The torch and numpy already installed
    (Colab's) are passed to pip as exact pins, so the install cannot replace them and the
    session needs no restart; should it change any other package that was there before,
    the cell says in one sentence to restart. A failed install stops with pip's message.
    """
    return f"""\
# Colab / fresh-kernel bootstrap: installs the sigprop library when it is missing and
# keeps the torch and numpy already installed (Colab's): no restart is needed.
# SIGPROP_INSTALL_SOURCE (e.g. a local wheel's path) replaces the repository as source.
try:
    import sigprop
except ImportError:
    import os
    import subprocess
    import sys
    from importlib.metadata import distributions

    _before = {{d.metadata["Name"]: d.version for d in distributions()}}
    _source = os.environ.get(
        "{INSTALL_SOURCE_VARIABLE}",
        "sigprop @ git+{url}#subdirectory=lib",
    )
    _keep = [f"{{n}}=={{_before[n]}}" for n in ("torch", "numpy") if n in _before]
    print(f"Installing sigprop from {{_source}} ...")
    _pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", _source, *_keep],
        capture_output=True,
        text=True,
    )
    if _pip.returncode:
        raise RuntimeError("pip could not install sigprop:\\n" + _pip.stderr) from None
    _after = {{d.metadata["Name"]: d.version for d in distributions()}}
    _changed = sorted(n for n in _before if _after.get(n) != _before[n])
    if _changed:
        print(
            f"Installing sigprop changed {{', '.join(_changed)}}: restart the session "
            "(Runtime > Restart session), then run the notebook again."
        )
    import sigprop"""


# Colab's own notebook metadata: open with a GPU runtime (the free tier's T4). Jupytext keeps
# these keys in the Markdown header (notebook_metadata_filter), so that regenerating the
# .ipynb from the .md (`make notebooks`) keeps them; tests/test_colab.py checks every chapter.
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
COLAB_HEADER = "accelerator: GPU\ncolab:\n  gpuType: T4\n  provenance: []\n"

TEMPLATE = """\
---
{colab_header}jupytext:
  formats: ipynb,md:myst
  notebook_metadata_filter: accelerator,colab
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

({label})=
# {title}

```{{code-cell}} ipython3
:tags: [remove-cell]

{bootstrap}
```

**What you will learn.** ...

**What you need first.** ...

```{{code-cell}} ipython3
:tags: [parameters]

# Parameters: change them, then run the notebook again.
import torch
from sigprop import runtime

SCALE = runtime.scale()    # small on a CPU, paper on a GPU (SIGPROP_SCALE)
DEVICE = runtime.device()  # cuda when available, else cpu (SIGPROP_DEVICE)
SEED = 0
runtime.seed_everything(SEED)
print(f"scale={{SCALE}}, device={{DEVICE}}, seed={{SEED}}")
```

## The idea

...

## Experiments

...

## Summary

1. ...

## Exercises

```{{exercise}}
:label: {label}-ex1

...
```

```{{code-cell}} ipython3
:tags: [raises-exception, remove-output]

def my_value():
    # Your code here.
    raise NotImplementedError("exercise: fill in `my_value`")


my_value()
```

```{{code-cell}} ipython3
:tags: [hide-input]

from sigprop.exercises import check

check("{label}-ex1", lambda: abs(my_value() - 1.0) < 1e-12, "my_value() returns 1")
```

````{{solution}} {label}-ex1
:class: dropdown

...

```python
def my_value():
    return 1.0
```
````

<!-- hidden-test {label}-ex1: the grader's test (tools/assignments.py); not in the student copy
from otter.test_files import test_case

name = "{label}-ex1"
points = 1


def cases(rng):
    return [{{}}]


def answer(case):
    return float(my_value())


@test_case(points=1, hidden=True)
def returns_one(cases, answers):
    assert all(abs(a - 1.0) < 1e-12 for a in answers), f"got {{answers}}"
-->

## References

```{{bibliography}}
:filter: docname in docnames
```
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="file stem, e.g. ch02_mean_field")
    parser.add_argument("title", help="the chapter's title")
    parser.add_argument("--force", action="store_true", help="overwrite an existing chapter")
    args = parser.parse_args(argv)

    if not re.fullmatch(r"ch\d\d_[a-z0-9_]+", args.name):
        parser.error("name must look like ch02_mean_field (chNN_ then lower-case words)")
    md = ROOT / "book" / f"{args.name}.md"
    if md.exists() and not args.force:
        parser.error(f"{md.relative_to(ROOT)} exists (use --force to overwrite)")

    label = args.name.split("_", 1)[0]
    md.write_text(
        TEMPLATE.format(
            label=label, title=args.title, colab_header=COLAB_HEADER,
            bootstrap=bootstrap_source(repository_url()),
        ),
        encoding="utf8",
    )
    # Writes the paired .ipynb (inputs only; `make notebooks` adds the outputs).
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(md)], check=True)
    print(f"wrote {md.relative_to(ROOT)} and {md.with_suffix('.ipynb').relative_to(ROOT)}")
    print(f"next: add `- file: book/{args.name}` to _toc.yml, write the chapter, run `make notebooks`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
