"""Jiancha wire protocol and case rules: pure code shared by agent and hub (no I/O, no clocks)."""

SCHEMA_VERSION = 1
