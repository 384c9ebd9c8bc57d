"""Callbacks (webhooks): which URLs may be called, the signed POST, the outbox that hands terminal jobs to the
callback queue, and the delivery of one queued event with its retries."""
