"""OIDC access tokens (JWT): RS256 only, signed by a key from the operator-configured JWKS URL, `iss`, `aud`,
`exp` and `nbf` required and checked. The JWKS is cached; a token with an unknown `kid` makes one refetch (at most
once per `refresh_cooldown_s`), which is how a key rotation at the identity provider is picked up."""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from runtime.auth.api_keys import CredentialsUnavailable
from runtime.auth.principal import ALL_SCOPES, TENANT_PATTERN, Principal

ALGORITHM = "RS256"
REQUIRED_CLAIMS = ("iss", "aud", "exp", "nbf")
# Tolerated clock difference between the identity provider and this process for exp and nbf.
CLOCK_SKEW_S = 30
JWKS_CACHE_S = 300
JWKS_TIMEOUT_S = 3.0


# What the caller is told about a token that does not decode: the first entry whose class matches, else
# _DECODE_ERROR_DEFAULT (bad signature, malformed claims).
_DECODE_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "access token expired"),
    (jwt.ImmatureSignatureError, "access token not valid yet"),
    (jwt.InvalidAudienceError, "access token audience not accepted"),
    (jwt.InvalidIssuerError, "access token issuer not accepted"),
)
_DECODE_ERROR_DEFAULT = "access token signature or claims invalid"


def _decode_error_message(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"access token lacks the {exc.claim!r} claim"
    return next((message for kind, message in _DECODE_ERRORS if isinstance(exc, kind)), _DECODE_ERROR_DEFAULT)


class InvalidAccessToken(Exception):
    """The token is not acceptable; the message is safe to show the caller."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str
    tenant_claim: str = "tenant"
    refresh_cooldown_s: float = 30.0


class OidcVerifier:
    def __init__(self, config: OidcConfig) -> None:
        self._config = config
        self._jwks = jwt.PyJWKClient(
            config.jwks_url,
            cache_jwk_set=True,
            lifespan=JWKS_CACHE_S,
            timeout=JWKS_TIMEOUT_S,
            cooldown_duration=config.refresh_cooldown_s,
        )

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidAccessToken("malformed access token") from None
        # Checked before any key is chosen: `none` and HMAC algorithms (an HS256 token "signed" with the public
        # key) never reach signature verification.
        if header.get("alg") != ALGORITHM:
            raise InvalidAccessToken(f"access token algorithm must be {ALGORITHM}")
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise CredentialsUnavailable("the identity provider's keys cannot be fetched") from None
        except jwt.PyJWKClientError:
            raise InvalidAccessToken("access token signed by an unknown key") from None
        except jwt.PyJWTError:
            raise InvalidAccessToken("malformed access token") from None
        try:
            claims = jwt.decode(
                token,
                key=signing_key.key,
                algorithms=[ALGORITHM],
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=CLOCK_SKEW_S,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken(_decode_error_message(exc)) from None
        tenant = claims.get(self._config.tenant_claim)
        if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
            raise InvalidAccessToken(f"access token lacks a valid {self._config.tenant_claim!r} claim")
        scope = claims.get("scope", "")
        # Other scopes (openid, profile, ...) belong to other resource servers: ignored, not an error.
        scopes = frozenset(scope.split()) & set(ALL_SCOPES) if isinstance(scope, str) else frozenset()
        subject = claims.get("sub")
        return Principal(tenant=tenant, scopes=scopes, subject=subject if isinstance(subject, str) else None)
