"""Fixtures: a provisioned hub directory and a real Mosquitto running its generated config."""

from __future__ import annotations

import pytest

from tests.provisioning.mqtt_helpers import ManagedBroker, free_port, provision


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory):
    """A hub directory with sites S01 and S02 (shared by the tests of one module: read only)."""
    return provision(tmp_path_factory.mktemp("hub"), sites=["S01", "S02"])


@pytest.fixture(scope="module")
def broker(hub_dir):
    """Mosquitto on a free port with the generated config of `hub_dir`."""
    with ManagedBroker(hub_dir, port=free_port()) as b:
        yield b
