"""MQTT topic names: the only place topic strings are built.

Up-topics are written by a site (ACL: only under its own code); down-topics are read by that
site only. The hub reads and writes everything under the root.

    jc/v1/site/{site}/up/batch     sealed, signed record batches (QoS 1)
    jc/v1/site/{site}/up/state     birth (online) and death-as-Will (offline), retained
    jc/v1/site/{site}/down/ack     hub acks: highest contiguous seq, hub time, resend request
    jc/v1/site/{site}/down/config  signed config (catalog, calendar, thresholds), retained
    jc/v1/site/{site}/down/cmd     commands (resync, sign text, clip request)
    jc/v1/site/{site}/up/clip      signed chunks of a requested clip
    jc/v1/site/{site}/down/clip    the hub's ack of each stored chunk
    jc/v1/hub/state                hub online/offline, retained; agents drain only when online

A child hub (county → city, city → province; DESIGN §7) talks to its parent's broker like a
site, under its own namespace (its sender id is `hub-REGION`, never a site code):

    jc/v1/child/{child}/up/batch   sealed, signed uplink batches (cards, 督办 steps) (QoS 1)
    jc/v1/child/{child}/up/state   birth (online) and death-as-Will (offline), retained
    jc/v1/child/{child}/down/ack   the parent's acks: highest contiguous seq, resend request
"""

from __future__ import annotations

ROOT = "jc/v1"


def site_batch(site: str) -> str:
    """Topic a site publishes its record batches to."""
    return f"{ROOT}/site/{site}/up/batch"


def site_state(site: str) -> str:
    """Retained birth/death topic of a site."""
    return f"{ROOT}/site/{site}/up/state"


def site_ack(site: str) -> str:
    """Hub acknowledgements for a site."""
    return f"{ROOT}/site/{site}/down/ack"


def site_config(site: str, kind: str) -> str:
    """Signed config of one kind (catalog, calendar, ...) for a site, retained."""
    return f"{ROOT}/site/{site}/down/config/{kind}"


def site_config_filter(site: str) -> str:
    """Subscription filter for all config kinds of a site."""
    return f"{ROOT}/site/{site}/down/config/+"


def site_clip(site: str) -> str:
    """Signed chunks of a recorded clip the hub asked for (site → hub)."""
    return f"{ROOT}/site/{site}/up/clip"


def site_clip_ack(site: str) -> str:
    """The hub's ack of each stored clip chunk (hub → site)."""
    return f"{ROOT}/site/{site}/down/clip"


def site_cmd(site: str) -> str:
    """Commands for a site."""
    return f"{ROOT}/site/{site}/down/cmd"


def site_down_filter(site: str) -> str:
    """Everything a site may read about itself."""
    return f"{ROOT}/site/{site}/down/#"


HUB_STATE = f"{ROOT}/hub/state"
ALL_BATCHES = f"{ROOT}/site/+/up/batch"
ALL_STATES = f"{ROOT}/site/+/up/state"
ALL_CLIPS = f"{ROOT}/site/+/up/clip"


def parse_site_topic(topic: str) -> tuple[str, str] | None:
    """('S01', 'up/batch') for a site topic, None for anything else."""
    parts = topic.split("/")
    if len(parts) >= 5 and "/".join(parts[:2]) == ROOT and parts[2] == "site":
        return parts[3], "/".join(parts[4:])
    return None


def acl_lines_for_site(site: str) -> list[str]:
    """Mosquitto ACL entries for one site (username = certificate CN = site code).

    Write exactly the three topics an agent publishes (agent/sync.py: batches, birth/death
    state incl. the Will; agent/clipsend.py: clip chunks) -- no wildcard, so a site can hold at
    most three retained messages. Mosquitto's ACL cannot forbid the retain flag per topic; a
    retained message on up/batch or up/clip is cleared at every broker start (see
    provisioning/broker.py `sweep_retained`).
    """
    return [
        f"user {site}",
        f"topic write {site_batch(site)}",
        f"topic write {site_state(site)}",
        f"topic write {site_clip(site)}",
        f"topic read {site_down_filter(site)}",
        f"topic read {HUB_STATE}",
    ]


def acl_lines_for_hub(identity: str) -> list[str]:
    """Mosquitto ACL entries for the hub."""
    return [f"user {identity}", f"topic readwrite {ROOT}/#"]


ALL_SITE_UP = f"{ROOT}/site/+/up/#"
ALL_CHILD_UP = f"{ROOT}/child/+/up/#"


def acl_lines_for_broker_tool(identity: str) -> list[str]:
    """Mosquitto ACL entries for the broker runner's own identity (provisioning/broker.py: the
    health probe needs no topic at all; the retained-message sweep reads every site's up-topics
    and publishes empty retained messages there to delete strays; the child hubs' up-topics alike). Nothing else: no down-topic,
    no hub state, so this key cannot speak for the hub."""
    return [f"user {identity}", f"topic readwrite {ALL_SITE_UP}", f"topic readwrite {ALL_CHILD_UP}"]


def child_batch(child: str) -> str:
    """Topic a child hub publishes its uplink batches to (on its parent's broker)."""
    return f"{ROOT}/child/{child}/up/batch"


def child_state(child: str) -> str:
    """Retained birth/death topic of a child hub."""
    return f"{ROOT}/child/{child}/up/state"


def child_ack(child: str) -> str:
    """The parent's acknowledgements for a child hub."""
    return f"{ROOT}/child/{child}/down/ack"


def child_down_filter(child: str) -> str:
    """Everything a child hub may read about itself on its parent's broker."""
    return f"{ROOT}/child/{child}/down/#"


ALL_CHILD_BATCHES = f"{ROOT}/child/+/up/batch"
ALL_CHILD_STATES = f"{ROOT}/child/+/up/state"


def parse_child_topic(topic: str) -> tuple[str, str] | None:
    """('hub-140721', 'up/batch') for a child-hub topic, None for anything else."""
    parts = topic.split("/")
    if len(parts) >= 5 and "/".join(parts[:2]) == ROOT and parts[2] == "child":
        return parts[3], "/".join(parts[4:])
    return None


def acl_lines_for_child_hub(child: str) -> list[str]:
    """Mosquitto ACL entries for a child hub on its parent's broker (username = certificate CN
    = the child's sender id): write its two up-topics, read its down-topics and the parent's
    online state. Nothing under any site's topics."""
    return [
        f"user {child}",
        f"topic write {child_batch(child)}",
        f"topic write {child_state(child)}",
        f"topic read {child_down_filter(child)}",
        f"topic read {HUB_STATE}",
    ]


# -- the feed for a third-party platform (docs/feed.md) ---------------------------------------
# A feed consumer (sender id `feed-NAME`) reads only its own down-topic and writes only its own
# ack; the hub's feed publisher (identity `jc-feed`, never the hub's own session) the reverse.
#
#     jc/v1/feed/{feed}/down/batch   sealed to the feed's key, signed by the hub (QoS 1)
#     jc/v1/feed/{feed}/up/ack       the consumer's ack / resend request (JSON, QoS 1, not retained)

FEED_PUBLISHER_IDENTITY = "jc-feed"


def feed_batch(feed: str) -> str:
    """Topic the hub publishes a feed's sealed batches to."""
    return f"{ROOT}/feed/{feed}/down/batch"


def feed_ack(feed: str) -> str:
    """Topic a feed consumer acknowledges on (and asks for a resend)."""
    return f"{ROOT}/feed/{feed}/up/ack"


ALL_FEED_ACKS = f"{ROOT}/feed/+/up/ack"


def parse_feed_topic(topic: str) -> tuple[str, str] | None:
    """('feed-x', 'up/ack') for a feed topic, None for anything else."""
    parts = topic.split("/")
    if len(parts) >= 5 and "/".join(parts[:2]) == ROOT and parts[2] == "feed":
        return parts[3], "/".join(parts[4:])
    return None


def acl_lines_for_feed(feed: str) -> list[str]:
    """Mosquitto ACL entries for a feed consumer: read its batches, write its acks; nothing else
    (no site, child or hub topic, not even the hub's online state)."""
    return [f"user {feed}", f"topic read {feed_batch(feed)}", f"topic write {feed_ack(feed)}"]


def acl_lines_for_feed_publisher(identity: str = FEED_PUBLISHER_IDENTITY) -> list[str]:
    """Mosquitto ACL entries for the hub's feed publisher: every feed's topics, nothing else."""
    return [f"user {identity}", f"topic write {ROOT}/feed/+/down/batch", f"topic read {ALL_FEED_ACKS}"]
