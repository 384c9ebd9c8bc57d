"""Who is calling: API keys and OIDC access tokens turned into a Principal (tenant + scopes). No web framework here."""
