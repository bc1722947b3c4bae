"""The gateway process (Daphne): `consumer.py` serves each WebSocket, `runtime.py`
holds the process's sockets, rate limits, heartbeat and drain, `upstream.py` is its
hop into Kafka, `listener.py` reads its own downstream topic back onto the sockets.

Kept import-free: REST views and services import `upstream` without the consumer."""
