"""The online feature store: packed feature groups in Redis, one MGET per batch, and freshness."""
