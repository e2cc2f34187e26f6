"""Project-wide pytest configuration.

Registers the ``book`` marker and runs the tests that carry it last: they build the whole
website (a few minutes), so every faster test, nbval included, reports first. Deselect them
with ``-m "not book"``.
"""
from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "book: builds the website with jupyter-book (slow; runs after every other test)"
    )


def pytest_collection_modifyitems(config, items):
    # A stable sort: the order within each group is kept.
    items.sort(key=lambda item: item.get_closest_marker("book") is not None)
