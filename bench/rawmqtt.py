"""Raw MQTT publishing load: paho publish -> subscribe through the benchmark's broker, TLS, QoS 1.

* `raw_baseline`  one publisher process per site, one subscriber; seconds per repetition

Run as a script it is the raw-baseline publisher worker (started by `raw_baseline`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.cleanup import children  # noqa: E402
from tests.e2e.harness import Env  # noqa: E402


def raw_baseline(env: Env, per_site_sizes: dict[str, list[int]], reps: int = 3, timeout: float = 120.0) -> list[float]:
    """Seconds for every site to publish its payloads (QoS 1) and one subscriber to receive all;
    one figure per repetition (the same processes and connections repeat it `reps` times).

    Same broker (config, TLS, ACL), same paho client settings as agent/hub (agent.sync
    .make_tls_client): each site publishes from its own process with its own certificate to its
    batch topic; the subscriber uses the hub's certificate and ALL_BATCHES filter and does
    nothing with a message but count it. Payloads are random bytes of the sealed batch sizes.
    Timed from "go" (all connected) to the last message received. Run it while the hub is
    NOT connected (a fresh Env): otherwise the hub would ingest (and quarantine) them.
    """
    from iobase.mqtt import make_tls_client
    from protocol import topics

    cfg = env.hub_cfg.broker
    total = sum(len(s) for s in per_site_sizes.values())
    got = {"n": 0, "want": total}
    done, subscribed = threading.Event(), threading.Event()

    def on_message(client, userdata, msg):
        got["n"] += 1
        if got["n"] >= got["want"]:
            done.set()

    sub = make_tls_client(f"bench-raw-sub-{os.getpid()}", cfg.ca, cfg.cert, cfg.key)
    sub.on_message = on_message
    sub.on_subscribe = lambda *a, **k: subscribed.set()
    sub.on_connect = lambda c, *a, **k: c.subscribe(topics.ALL_BATCHES, qos=1)
    sub.connect("127.0.0.1", env.broker.port, 30)
    sub.loop_start()
    pubs = []
    try:
        if not subscribed.wait(10):
            raise RuntimeError("raw baseline subscriber did not subscribe")
        for code, sizes in per_site_sizes.items():
            d = env.root / "sites" / code
            p = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "raw-pub",
                    "--port",
                    str(env.broker.port),
                    "--ca",
                    str(d / "ca.crt"),
                    "--cert",
                    str(d / "mqtt.crt"),
                    "--key",
                    str(d / "mqtt.key"),
                    "--site",
                    code,
                    "--sizes",
                    ",".join(map(str, sizes)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=REPO,
                start_new_session=True,
            )
            children.append(p)
            pubs.append(p)
        for p in pubs:
            line = p.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"raw publisher failed to start: {line!r}")
        times = []
        for rep in range(reps):
            done.clear()
            got["want"] = total * (rep + 1)
            t0 = time.perf_counter()
            for p in pubs:
                p.stdin.write(b"go\n")
                p.stdin.flush()
            if not done.wait(timeout):
                raise TimeoutError(f"raw baseline: {got['n']} of {got['want']} messages in {timeout:.0f} s")
            times.append(time.perf_counter() - t0)
            for p in pubs:  # every PUBACK is in before the next repetition starts
                if p.stdout.readline().strip() != b"sent":
                    raise RuntimeError("raw publisher failed")
        for p in pubs:
            p.stdin.close()
            p.wait(30)
        return times
    finally:
        for p in pubs:
            if p.poll() is None:
                p.kill()
                p.wait()
            with contextlib.suppress(ValueError):
                children.remove(p)
        sub.disconnect()
        sub.loop_stop()


def _raw_publisher(argv: list[str]) -> int:
    """Worker: connect as a site, say 'ready'; per 'go' line publish all payloads with QoS 1,
    wait for their PUBACKs and say 'sent'; exit at end of input."""
    import argparse

    from iobase.mqtt import make_tls_client
    from protocol import topics

    ap = argparse.ArgumentParser()
    for name in ("--port", "--ca", "--cert", "--key", "--site", "--sizes"):
        ap.add_argument(name, required=True)
    a = ap.parse_args(argv)
    payloads = [os.urandom(int(s)) for s in a.sizes.split(",")]
    connected = threading.Event()
    c = make_tls_client(f"bench-raw-{a.site}-{os.getpid()}", a.ca, a.cert, a.key)
    c.on_connect = lambda *args, **kw: connected.set()
    c.connect("127.0.0.1", int(a.port), 30)
    c.loop_start()
    if not connected.wait(10):
        return 1
    print("ready", flush=True)
    topic = topics.site_batch(a.site)
    while sys.stdin.readline().strip() == "go":
        infos = [c.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(60)
        print("sent", flush=True)
    c.disconnect()
    c.loop_stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "raw-pub":
        sys.exit(_raw_publisher(sys.argv[2:]))
    print(__doc__)
