"""The streaming stage: the board's streaming path on the host (listen, stream-eval)."""
