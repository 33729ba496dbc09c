"""FEED.yaml: what a third-party feed consumer needs to read a hub's feed (docs/feed.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from iobase.config import BrokerClient, Strict


class FeedConfig(Strict):
    feed: str = Field(description="This feed's id (feed-NAME): the certificate CN and the topic level")
    hub: str = Field(description="The hub's sender id (hub-REGION), named in every batch header")
    hub_name: str = Field("", description="The hub's human name")
    broker: BrokerClient
    seal_key: Path = Field(description="The feed's X25519 private key (PEM): batches are sealed to it")
    hub_sign_pub: Path = Field(description="The hub's Ed25519 public key (PEM): every batch is signed with it")
