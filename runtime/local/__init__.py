"""The local all-in-one: emulator, stateful stack from the CDK definition, API, worker and DLQ poller."""
