"""Township agent (便民服务中心 box): offline case register, outbox, MQTT sync, devices."""
