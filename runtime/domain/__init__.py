"""The job domain: model, state machine, use cases. Imports neither boto3 nor FastAPI."""
