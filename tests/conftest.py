"""Fixtures for every test folder: the test session's own PostgreSQL server (tests/pgserver.py)."""

from __future__ import annotations

import pytest

from tests.pgserver import PgServer


@pytest.fixture(scope="session")
def pg_server():
    """Started on first use, stopped at the end of the session; `hub_template` names a migrated
    hub store to copy (CREATE DATABASE … TEMPLATE is a file copy, far cheaper than migrating)."""
    from hub.store import open_db

    server = PgServer().start()
    url = server.create_db("hub_template")
    open_db(url).close()
    server.hub_template = url.rsplit("/", 1)[1]
    yield server
    server.stop()
