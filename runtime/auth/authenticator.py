"""One entry point for every kind of credential: an Authorization header value in, a Principal out."""

from __future__ import annotations

from runtime.auth.api_keys import ApiKeyVerifier, InvalidApiKey, looks_like_api_key
from runtime.auth.oidc import InvalidAccessToken, OidcVerifier
from runtime.auth.principal import Principal

BEARER = "bearer"
MAX_TOKEN_LENGTH = 8192


class Unauthenticated(Exception):
    """No acceptable credential; the message is safe to show (it never says whether a job or key exists)."""


class Authenticator:
    def __init__(self, api_keys: ApiKeyVerifier, oidc: OidcVerifier | None = None) -> None:
        self.api_keys = api_keys
        self.oidc = oidc

    def authenticate(self, authorization: str | None) -> Principal:
        """Raises Unauthenticated, or CredentialsUnavailable when a store or the JWKS does not answer."""
        if not authorization or not authorization.strip():
            raise Unauthenticated("missing bearer token in the Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != BEARER or not token or " " in token:
            raise Unauthenticated("malformed Authorization header: expected 'Bearer <token>'")
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated(f"bearer token longer than {MAX_TOKEN_LENGTH} characters")
        try:
            if looks_like_api_key(token):
                return self.api_keys.verify(token)
            if self.oidc is not None and token.count(".") == 2:
                return self.oidc.verify(token)
        except (InvalidApiKey, InvalidAccessToken) as exc:
            raise Unauthenticated(str(exc)) from None
        raise Unauthenticated("unrecognised bearer token")
