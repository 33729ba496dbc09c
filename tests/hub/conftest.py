"""Fixtures shared by the hub's tests."""

from __future__ import annotations

import pytest

from hub.store import open_db


@pytest.fixture
def db(tmp_path):
    """A real, migrated hub database (SQLite) in a temp folder."""
    conn = open_db(tmp_path / "hub.db")
    yield conn
    conn.close()
