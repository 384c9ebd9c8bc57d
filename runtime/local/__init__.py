"""The local all-in-one: emulator, stateful stack from the CDK definition, API, worker and DLQ poller."""

# The tenant of the key the all-in-one creates at start (its ready line's api-key=...).
LOCAL_TENANT = "local"
