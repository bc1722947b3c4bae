from prometheus_client import Histogram

CHUNK_SECONDS = Histogram("gochat_fanout_chunk_seconds", "Duration of one large-group fan-out chunk",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
