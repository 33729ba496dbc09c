"""Catalog search by code, name or pinyin initials, indexed when a catalog arrives."""

from __future__ import annotations

import pytest

from agent import catalog_search
from agent.store import AgentStore
from iobase.sqlite import connect
from protocol.models import CatalogItem
from tests.agent.clerk_helpers import ITEMS


def _item(code: str, name: str) -> CatalogItem:
    return CatalogItem(
        code=code,
        name=name,
        department="住房和城乡建设局",
        item_type="licensing",
        case_type="promised",
        legal_days=20,
        promised_days=5,
    )


@pytest.fixture
def store(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    s.save_config("catalog", 1, 0, {"items": [i.model_dump(mode="json") for i in ITEMS]}, b"raw")
    yield s
    s.close()


@pytest.mark.parametrize(
    "name, initials",
    [
        ("排水许可", "psxk"),
        ("食品经营许可", "spjyxk"),
        ("二类医疗器械经营备案", "elylqxjyba"),
        ("ISO9001认证", "iso9001rz"),
        ("（临时）占用道路许可", "lszydlxk"),
    ],
)
def test_initials(name, initials):
    assert catalog_search.initials(name) == initials


def codes(store, q):
    return [r["code"] for r in store.search_catalog(q)]


@pytest.mark.parametrize(
    "q, found",
    [
        ("psxk", ["XK-003"]),  # pinyin initials
        ("PSXK", ["XK-003"]),
        ("ｐｓｘｋ", ["XK-003"]),  # full-width letters from a Chinese input method
        ("xk", ["XK-001", "XK-003"]),  # code part (and initials of 许可)
        ("xk-001", ["XK-001"]),
        ("许可", ["XK-001", "XK-003"]),  # name
        ("残疾", ["GG-002"]),
        ("cjrz", ["GG-002"]),
        ("%", []),  # LIKE wildcards are literal
        ("_", []),
        ("", []),
        ("办", []),
    ],
)
def test_search(store, q, found):
    assert sorted(codes(store, q)) == found


def test_exact_code_first_and_results_bounded(store):
    items = [_item(f"P-{i:03d}", f"排水许可{i}") for i in range(50)]
    store.save_config("catalog", 2, 0, {"items": [i.model_dump(mode="json") for i in items]}, b"raw")
    assert codes(store, "p-007")[0] == "P-007"
    assert len(codes(store, "psxk")) == catalog_search.MAX_RESULTS
    assert codes(store, "spjy") == []  # the new catalog replaced the old index


def test_a_catalog_stored_before_the_index_is_indexed_at_start(tmp_path):
    s = AgentStore(tmp_path / "agent.db", "S01")
    s.save_config("catalog", 1, 0, {"items": [i.model_dump(mode="json") for i in ITEMS]}, b"raw")
    s.close()
    conn = connect(tmp_path / "agent.db")  # as an older agent left it: catalog, no index
    conn.execute("DROP TABLE catalog_search")
    conn.execute("DELETE FROM _migrations WHERE name='0006_catalog_search'")
    conn.close()
    s = AgentStore(tmp_path / "agent.db", "S01")
    try:
        assert codes(s, "psxk") == ["XK-003"]
    finally:
        s.close()


def test_initials_are_computed_in_a_child_process_when_pypinyin_is_not_loaded(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "pypinyin", raising=False)  # as in a running agent
    calls = []
    real = catalog_search.subprocess.run
    monkeypatch.setattr(catalog_search.subprocess, "run", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    assert catalog_search.initials_of(["排水许可", "食品经营许可"]) == ["psxk", "spjyxk"]
    assert calls and calls[0][0][1:] == ["-m", "agent.catalog_search"]
    assert "pypinyin" not in sys.modules  # the dictionaries stayed in the child


def test_a_failing_child_falls_back_to_computing_here(monkeypatch, caplog):
    import sys

    monkeypatch.delitem(sys.modules, "pypinyin", raising=False)
    monkeypatch.setattr(catalog_search.sys, "executable", "/nonexistent/python")
    assert catalog_search.initials_of(["排水许可"]) == ["psxk"]
    assert "child process failed" in caplog.text
