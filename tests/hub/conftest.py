"""Fixtures shared by the hub's tests.

Every test that takes `db` (or `store_url`) runs twice: on SQLite and on PostgreSQL (DESIGN §9).
The PostgreSQL server is the test session's own (`pg_server` in tests/conftest.py), started on
first use; each test gets a fresh copy of a migrated hub store on it.
"""

from __future__ import annotations

import pytest

from hub.store import open_db

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


@pytest.fixture(params=ENGINES)
def store_url(request, tmp_path):
    """A store URL for an empty hub store on each engine: sqlite:PATH, postgresql://…"""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'hub.db'}"
    server = request.getfixturevalue("pg_server")
    return server.create_db("hub", template=server.hub_template)


@pytest.fixture
def db(store_url):
    """A real, migrated hub store (SQLite, then PostgreSQL)."""
    conn = open_db(store_url)
    yield conn
    conn.close()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """argon2id with one pass over 64 KiB: the hub's own parameters cost ~50 ms a hash."""
    from hub import accounts
    from tests.hub.accounts_helpers import CHEAP_HASHER

    monkeypatch.setattr(accounts, "HASHER", CHEAP_HASHER)
