"""Prometheus metrics of the messaging pipeline, defined once."""

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter("gochat_messages_accepted_total", "Sends accepted by logic (acked)")
REJECTED = Counter("gochat_messages_rejected_total", "Sends rejected by logic", ["code"])
PERSISTED = Counter("gochat_messages_persisted_total", "Rows newly stored by persistence")
DELIVERED = Counter("gochat_frames_pushed_total", "Frames written to sockets by this gateway")
SEQ_CONFLICTS = Counter("gochat_seq_conflicts_total", "Rows ignored because another message held the seq")
BATCH_SECONDS = Histogram("gochat_logic_batch_seconds", "Time logic spends on one upstream batch",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
CONNECTIONS = Gauge("gochat_gateway_connections", "Open WebSocket connections on this gateway")
FRAME_ERRORS = Counter("gochat_frame_errors_total", "Error frames sent to clients", ["code"])
CONSUMER_LAG = Gauge("gochat_consumer_lag", "Records fetched-watermark minus position, per topic", ["topic"])
