"""The `jiancha` command and the demo: the top layer, over provisioning, the agent and the hub."""
