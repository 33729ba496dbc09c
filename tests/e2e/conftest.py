import pytest

from tests.e2e.harness import Env, wait_for


@pytest.fixture
def env(tmp_path):
    """Provisioned hub with sites S01, S02, S03; broker, hub and agents S01, S02 running."""
    e = Env(tmp_path / "hub", sites=("S01", "S02", "S03"))
    try:
        e.start_broker()
        e.start_hub_and_agents("S01", "S02")
        for code in ("S01", "S02"):  # the hub pushes its signed catalog once a box's birth says what it holds
            wait_for(lambda: e.agent_health(code)["catalog_version"] > 0, 30, what=f"catalog at {code}")
        yield e
    finally:
        e.close()


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
