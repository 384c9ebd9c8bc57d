"""`python -m runtime.admin`: the operator's command for API keys and webhook secrets."""
