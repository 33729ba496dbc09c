"""Provisioning (开通): CA, keys, certificates, broker config, site registry, and the `jiancha` CLI."""
