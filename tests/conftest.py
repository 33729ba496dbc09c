"""Fixtures for every test folder: the test session's own PostgreSQL server (tests/pgserver.py).

JIANCHA_TEST_ENGINES (default "sqlite,postgresql") names the hub store engines the tests run
on; tests marked `postgresql` (the PostgreSQL half of every store test, the e2e hub on
PostgreSQL) are deselected when it leaves PostgreSQL out. The bootstrap's shifted-clock run
does that: dates are computed in Python the same way over both engines (docs/testing.md)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.pgserver import PgServer

# Property tests are judged on what they find, not on how fast one example runs: CI runs three
# test processes on two shared cores, where a 200 ms per-example deadline fails at random
# (test_drain once took 302 ms for one example and passed on the retry). No deadline anywhere.
settings.register_profile("jiancha", deadline=None)
settings.load_profile("jiancha")


@pytest.fixture(scope="session")
def pg_server():
    """Started on first use, stopped at the end of the session; `hub_template` names a migrated
    hub store to copy (CREATE DATABASE … TEMPLATE is a file copy, far cheaper than migrating)."""
    from hub.store import open_db

    global _pg
    server = PgServer().start()
    url = server.create_db("hub_template")
    open_db(url).close()
    server.hub_template = url.rsplit("/", 1)[1]
    server.created.remove(server.hub_template)  # kept for the session
    _pg = server
    yield server
    _pg = None
    server.stop()


_pg: PgServer | None = None


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """After each test, the databases it made on `pg_server` are dropped (torn down after the
    test's own fixtures, which close their connections): the cluster stays small."""
    yield
    if _pg is not None:
        _pg.drop_created()


ENGINES = [e.strip() for e in os.environ.get("JIANCHA_TEST_ENGINES", "sqlite,postgresql").split(",") if e.strip()]


def pytest_collection_modifyitems(config, items):
    if "postgresql" in ENGINES:
        return
    keep = [i for i in items if i.get_closest_marker("postgresql") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("postgresql") is not None])
        items[:] = keep
