"""Provisioning (开通): CA, keys, certificates, broker config, site registry: hub and site folders."""
