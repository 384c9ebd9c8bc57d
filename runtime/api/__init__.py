"""The HTTP API (FastAPI): `create_app()` in runtime.api.app; `python -m runtime.api` serves it."""
