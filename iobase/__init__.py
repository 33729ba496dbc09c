"""The I/O both sides need (below agent and hub, above protocol): SQLite, the mutual-TLS MQTT
client, config loading, CJK fonts, private files, command-line plumbing."""
