"""The thin FastAPI side of authentication: the bearer header in, a Principal out (runtime/auth does the work),
and the scope each route needs, as Annotated aliases that tests may swap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from runtime.api.deps import get_container
from runtime.api.errors import ApiError
from runtime.auth.api_keys import CredentialsUnavailable
from runtime.auth.authenticator import Unauthenticated
from runtime.auth.principal import SCOPE_READ, SCOPE_WRITE, Principal
from runtime.observability import aws_calls, log_event
from runtime.observability.names import LogEvent

CHALLENGE = {"WWW-Authenticate": "Bearer"}
CREDENTIALS_RETRY_AFTER_S = 2

# Declares the scheme in OpenAPI (so /docs offers "Authorize"); the header is parsed by runtime.auth.
bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="API key (jt_...) or OIDC access token (JWT)",
    description="`Authorization: Bearer <token>`: an API key from `python -m runtime.admin keys create`, or, where "
    "the environment configures an OIDC issuer, an RS256 access token from it (tenant claim, `scope` "
    "with `jobs:read` / `jobs:write`).",
    auto_error=False,
)


def authenticate(request: Request, _: Annotated[object, Security(bearer_scheme)] = None) -> Principal:
    """Runs in the thread pool: an uncached API key costs one GetItem."""
    authenticator = get_container(request).authenticator
    try:
        with aws_calls.category("auth"):
            principal = authenticator.authenticate(request.headers.get("authorization"))
    except Unauthenticated as exc:
        log_event(LogEvent.AUTH_REFUSED, level="info", reason=str(exc))
        raise ApiError(401, "unauthorized", str(exc), headers=CHALLENGE) from None
    except CredentialsUnavailable as exc:
        log_event(LogEvent.AUTH_UNAVAILABLE, level="error", reason=str(exc))
        raise ApiError(
            503,
            "credentials_unavailable",
            "credentials cannot be checked right now; retry later",
            headers={"Retry-After": str(CREDENTIALS_RETRY_AFTER_S)},
        ) from None
    request.state.principal = principal
    return principal


AuthenticatedDep = Annotated[Principal, Depends(authenticate)]


def _require(scope: str) -> Callable[[Principal], Principal]:
    def check(principal: AuthenticatedDep) -> Principal:
        if not principal.allows(scope):
            raise ApiError(
                403,
                "forbidden",
                f"this credential lacks the {scope!r} scope",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        return principal

    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check


require_read = _require(SCOPE_READ)
require_write = _require(SCOPE_WRITE)

ReaderDep = Annotated[Principal, Depends(require_read)]
WriterDep = Annotated[Principal, Depends(require_write)]
