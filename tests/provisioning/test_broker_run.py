"""ManagedBroker and run_broker: start/stop, failures, moved directories, persistence, watcher."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.config import Registry
from protocol import topics
from provisioning import broker as broker_mod
from provisioning.broker import ManagedBroker, find_mosquitto, probe, signal_reload
from provisioning.brokerconf import write_acl
from provisioning.errors import BrokerError
from provisioning.setup import add_site
from tests.ports import free_port
from tests.provisioning.mqtt_helpers import connect, provision, start_broker, try_connect

REPO = Path(__file__).resolve().parents[2]


def test_find_mosquitto_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JIANCHA_MOSQUITTO", raising=False)
    monkeypatch.setattr(broker_mod.os.path, "isfile", lambda p: False)
    with pytest.raises(BrokerError, match="apt-get install mosquitto"):
        find_mosquitto()


def test_start_failure_reports_mosquitto_output(hub_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(BrokerError, match="(?s)exited with code.*Address already in use"):
            ManagedBroker(hub_dir, port=busy.getsockname()[1])


def test_lifecycle_pid_file_and_stale_pid(tmp_path):
    root = provision(tmp_path / "hub", sites=[])
    b = start_broker(root)
    pid_file = root / "broker" / "broker.pid"
    assert pid_file.read_text().strip() == str(b.pid)
    assert signal_reload(root) and b.ping()
    b.restart()
    assert b.is_running() and pid_file.read_text().strip() == str(b.pid)
    b.kill()
    assert not b.is_running() and not pid_file.exists()
    pid_file.write_text(f"{os.getpid()}\n")  # a live pid that is not mosquitto
    assert not signal_reload(root)
    pid_file.write_text("999999999\n")
    assert not signal_reload(root)
    b.start()
    b.close()
    assert not b.is_running()


def test_moved_directory_still_works(tmp_path):
    old = provision(tmp_path / "old", sites=["S01"])
    new = tmp_path / "elsewhere" / "hub"
    new.parent.mkdir()
    shutil.move(old, new)
    with start_broker(new) as b:
        assert str(new) in (new / "broker" / "mosquitto.conf").read_text()
        assert try_connect(new, "S01", b)


def test_queue_beyond_mosquitto_default_survives_a_broker_restart(tmp_path):
    """1,500 QoS 1 batches for an offline hub (Mosquitto's default queue is 1,000, then drops),
    then a broker restart (persistence): the hub gets every one."""
    root = provision(tmp_path / "hub", sites=["S01"])
    n = 1500
    with start_broker(root) as b:
        hub = connect(root, "hub", b, client_id="hub-ingest", clean_session=False)
        hub.subscribe(topics.ALL_BATCHES, qos=1)
        hub.close()
        site = connect(root, "S01", b)
        infos = [site.client.publish(topics.site_batch("S01"), str(i).encode(), qos=1) for i in range(n)]
        for info in infos:
            info.wait_for_publish(10)
        site.close()
        b.restart()  # SIGTERM saves the persistence file
        hub = connect(root, "hub", b, client_id="hub-ingest", clean_session=False)
        assert hub.session_present
        deadline = time.monotonic() + 15
        while len(hub.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(int(m.payload) for m in hub.received) == list(range(n))
        hub.close()


def test_watcher_reloads_when_the_acl_changes(tmp_path):
    root = provision(tmp_path / "hub", sites=["S01"])
    with start_broker(root, watch=True, poll_s=0.1) as b:
        hub = connect(root, "hub", b)
        hub.subscribe(topics.ALL_BATCHES)
        s01 = connect(root, "S01", b)
        write_acl(root, Registry())  # S01 gone from the ACL; no signal: only the watcher knows
        deadline = time.monotonic() + 5
        for n in range(1000):
            assert time.monotonic() < deadline, "the ACL change was not picked up"
            s01.publish(topics.site_batch("S01"), str(n).encode())  # PUBACK: routed or denied
            hub.publish(topics.site_batch("marker"), str(n).encode())
            hub.wait_for(topics.site_batch("marker"), payload=str(n).encode())
            if topics.site_batch("S01") not in hub.topics_received()[-2:]:
                break  # denied: the watcher sent SIGHUP
            time.sleep(0.05)
        hub.close(), s01.close()


def test_run_broker_foreground(tmp_path):
    """`jiancha broker run`: serves, picks up add-site, exits 0 on SIGTERM."""
    root = provision(tmp_path / "hub", sites=["S01"])
    port = free_port()
    (root / "hub.yaml").write_text((root / "hub.yaml").read_text().replace("port: 8883", f"port: {port}"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; from provisioning.broker import run_broker; sys.exit(run_broker({str(root)!r}))",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # probe as S01 (nobody else uses it here): not as the hub, whose session a clean-session
        # probe would wipe, and not as the broker tool, which the runner itself probes with
        ca, cert, key = root / "ca/ca.crt", root / "sites/S01/mqtt.crt", root / "sites/S01/mqtt.key"
        deadline = time.monotonic() + 10
        pid_file = root / "broker" / "broker.pid"  # written once mosquitto accepts clients
        while not (pid_file.exists() and probe("127.0.0.1", port, ca=ca, cert=cert, key=key)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)
        add_site(root, code="S02", name="新站")  # signal_reload via broker.pid
        assert probe("127.0.0.1", port, ca=ca, cert=cert, key=key)
        hub = connect(root, "hub", port)
        hub.subscribe(topics.ALL_BATCHES)
        s02 = connect(root, "S02", port)
        s02.publish(topics.site_batch("S02"), b"x")
        hub.wait_for(topics.site_batch("S02"), payload=b"x")
        hub.close(), s02.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        out = proc.stdout.read().decode()
        assert "mosquitto version 2" in out and "listening on 127.0.0.1" in out
        assert not (root / "broker" / "broker.pid").exists()
    finally:
        if proc.poll() is None:
            proc.terminate()  # run_broker stops its mosquitto on SIGTERM
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
