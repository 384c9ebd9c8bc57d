"""The queue worker: receives job messages, runs them in a thread pool, heartbeats, deletes in batches,
and republishes PENDING jobs whose message never left (`python -m runtime.worker`)."""
