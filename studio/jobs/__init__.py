"""Runs: the SQLite registry, subprocess launch and cancel, and the metrics.jsonl stream."""
