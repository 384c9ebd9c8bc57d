"""Authentication over HTTP against moto's server: API keys (every /api/v1 route, scopes, revocation within the
cache bound, request cost) and OIDC access tokens signed by a key made here and served from a local JWKS."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from runtime.api.app import build_container, create_app
from runtime.auth.oidc import OidcConfig, OidcVerifier
from runtime.auth.principal import SCOPE_READ, SCOPE_WRITE, Principal
from runtime.observability import aws_calls
from tests.adapters.resources import AwsResources, create_resources
from tests.api.conftest import (
    DOCUMENTS_BUCKET,
    TENANT,
    access_admin,
    api_settings,
    bearer,
    document_params,
    issue_key,
    serve,
)

ISSUER = "https://issuer.example.test/"
AUDIENCE = "job-tickets-api"
CACHE_TTL_S = 0.5
BODY = {"type": "process_document", "params": document_params(DOCUMENTS_BUCKET)}


@dataclass
class JwksServer:
    """Serves `keys` as a JWKS on 127.0.0.1, counting fetches."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    url: str = ""


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "tenant": "oidc-tenant",
            "scope": f"openid {SCOPE_READ} {SCOPE_WRITE}",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        }
        claims.update(overrides)
        return jwt.encode(
            {k: v for k, v in claims.items() if v is not None},
            self.private,
            algorithm="RS256",
            headers={"kid": self.kid},
        )


def new_signing_key() -> SigningKey:
    return SigningKey(kid=uuid.uuid4().hex[:12], private=rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return new_signing_key()


@pytest.fixture(scope="module")
def jwks(signing_key: SigningKey) -> Iterator[JwksServer]:
    state = JwksServer(keys=[signing_key.jwk()])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        thread.join(timeout=5)


@dataclass
class AuthApi:
    base_url: str
    resources: AwsResources
    routes: list[tuple[str, str]]
    job_id: str  # a job that exists, to show a refused caller learns nothing about it


@pytest.fixture(scope="module")
def auth_api(moto_server: str, jwks: JwksServer) -> Iterator[AuthApi]:
    resources = create_resources(moto_server, "auth")
    settings = api_settings(
        resources,
        api_key_cache_ttl_s=CACHE_TTL_S,
        api_key_negative_cache_ttl_s=CACHE_TTL_S,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=jwks.url,
        oidc_jwks_refresh_cooldown_s=0,
    )
    app = create_app(container=build_container(settings))
    # Every operation the API documents under /api/v1, so that a route added later is covered too.
    routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in sorted(operations)
    ]
    with serve(app) as base_url:
        created = httpx.post(f"{base_url}/api/v1/jobs", json=BODY, headers=bearer(issue_key(resources)), timeout=30)
        assert created.status_code == 201, created.text
        yield AuthApi(base_url, resources, routes, created.json()["jobId"])


def call(api: AuthApi, method: str, path: str, headers: dict[str, str], job_id: str | None = None) -> httpx.Response:
    url = api.base_url + path.replace("{jobId}", job_id or api.job_id)
    return httpx.request(method, url, headers=headers, json=BODY if method == "POST" else None, timeout=30)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_routes_under_test_are_every_api_route(auth_api: AuthApi) -> None:
    assert ("POST", "/api/v1/jobs") in auth_api.routes
    assert ("GET", "/api/v1/jobs/{jobId}") in auth_api.routes
    assert ("POST", "/api/v1/jobs/{jobId}/retry") in auth_api.routes


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "basic",
        "bearer without token",
        "two tokens",
        "not a key",
        "malformed key",
        "unknown key",
        "revoked key",
        "expired jwt",
        "jwt of another signer",
    ],
)
def test_every_api_route_refuses_bad_credentials_before_any_lookup(
    auth_api: AuthApi, signing_key: SigningKey, case: str
) -> None:
    well_formed_unknown = "jt_" + "0" * 16 + "_" + "A" * 43
    revoked = issue_key(auth_api.resources)
    if case == "revoked key":
        access_admin(auth_api.resources).revoke_key(revoked.split("_")[1])
    headers = {
        "missing": {},
        "empty": {"Authorization": ""},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "bearer without token": {"Authorization": "Bearer"},
        "two tokens": {"Authorization": f"Bearer {well_formed_unknown} {well_formed_unknown}"},
        "not a key": {"Authorization": "Bearer hello"},
        "malformed key": {"Authorization": "Bearer jt_short_secret"},
        "unknown key": bearer(well_formed_unknown),
        "revoked key": bearer(revoked),
        "expired jwt": bearer(signing_key.token(exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200)),
        "jwt of another signer": bearer(new_signing_key().token()),
    }[case]
    for method, path in auth_api.routes:
        existing = call(auth_api, method, path, headers)
        unknown = call(auth_api, method, path, headers, job_id="no-such-job")
        assert_unauthorized(existing)
        # Same answer whether the job exists or not: auth runs before any lookup.
        assert existing.json() == unknown.json(), (method, path)


def test_health_docs_and_schema_stay_open(auth_api: AuthApi) -> None:
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert httpx.get(auth_api.base_url + path, timeout=30).status_code == 200, path


def test_a_read_only_key_reads_but_cannot_submit_or_retry(auth_api: AuthApi) -> None:
    reader = bearer(issue_key(auth_api.resources, scopes=(SCOPE_READ,)))
    assert call(auth_api, "GET", "/api/v1/jobs/{jobId}", reader).status_code == 200
    for method, path in auth_api.routes:
        if method == "POST":
            response = call(auth_api, method, path, reader)
            assert response.status_code == 403, (path, response.text)
            assert response.json()["error"] == "forbidden"
            assert SCOPE_WRITE in response.json()["detail"]


def test_a_write_key_may_read_too(auth_api: AuthApi) -> None:
    writer = bearer(issue_key(auth_api.resources, scopes=(SCOPE_WRITE,)))
    assert call(auth_api, "GET", "/api/v1/jobs/{jobId}", writer).status_code == 200
    assert call(auth_api, "POST", "/api/v1/jobs", writer).status_code == 201


def test_revocation_takes_effect_within_the_cache_bound(auth_api: AuthApi) -> None:
    token = issue_key(auth_api.resources)
    assert call(auth_api, "GET", "/api/v1/jobs/{jobId}", bearer(token)).status_code == 200  # now cached
    access_admin(auth_api.resources).revoke_key(token.split("_")[1])
    revoked_at = time.monotonic()
    while True:
        response = call(auth_api, "GET", "/api/v1/jobs/{jobId}", bearer(token))
        if response.status_code == 401:
            break
        assert response.status_code == 200
        assert time.monotonic() - revoked_at < CACHE_TTL_S + 2.0, "revoked key still accepted past the bound"
        time.sleep(0.05)  # a client retrying; the cache entry expires meanwhile
    assert_unauthorized(response)


def test_a_cached_key_costs_no_table_read(auth_api: AuthApi) -> None:
    token = bearer(issue_key(auth_api.resources))
    before = aws_calls.snapshot().get("auth", {}).get("dynamodb.GetItem", 0)
    started = time.monotonic()
    answers = [call(auth_api, "GET", "/api/v1/jobs/{jobId}", token).status_code for _ in range(5)]
    reads = aws_calls.snapshot().get("auth", {}).get("dynamodb.GetItem", 0) - before
    assert answers == [200] * 5
    if time.monotonic() - started < CACHE_TTL_S:  # all five inside one cache lifetime
        assert reads == 1


def test_a_wrong_secret_for_a_real_key_id_is_refused(auth_api: AuthApi) -> None:
    token = issue_key(auth_api.resources)
    forged = token[: -len("A")] + ("B" if token[-1] != "B" else "C")
    assert call(auth_api, "GET", "/api/v1/jobs/{jobId}", bearer(token)).status_code == 200
    assert_unauthorized(call(auth_api, "GET", "/api/v1/jobs/{jobId}", bearer(forged)))


def test_openapi_declares_the_bearer_scheme(auth_api: AuthApi) -> None:
    schema = httpx.get(auth_api.base_url + "/openapi.json", timeout=30).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"].lower() == "bearer"
    operation = schema["paths"]["/api/v1/jobs"]["post"]
    assert {"bearer": []} in operation["security"]
    assert {"401", "403"} <= set(operation["responses"])
    assert "within 0.5 s" in schema["info"]["description"]


# -- OIDC -----------------------------------------------------------------------------------------------------


def test_a_valid_access_token_maps_to_its_tenant_and_scopes(jwks: JwksServer, signing_key: SigningKey) -> None:
    verifier = OidcVerifier(OidcConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks.url))
    principal = verifier.verify(signing_key.token(tenant="team-7", sub="alice", scope=f"openid {SCOPE_READ}"))
    assert principal == Principal(tenant="team-7", scopes=frozenset({SCOPE_READ}), subject="alice")


def test_a_valid_access_token_is_accepted_over_http(auth_api: AuthApi, signing_key: SigningKey) -> None:
    # The token's tenant ("oidc-tenant") owns the job and its objects.
    response = httpx.post(
        auth_api.base_url + "/api/v1/jobs",
        headers=bearer(signing_key.token()),
        timeout=30,
        json={"type": "process_document", "params": document_params(DOCUMENTS_BUCKET, "oidc-tenant")},
    )
    assert response.status_code == 201, response.text
    assert response.json()["tenant"] == "oidc-tenant"
    read_only = bearer(signing_key.token(scope=f"openid {SCOPE_READ}"))
    own_job = response.json()["jobId"]
    assert call(auth_api, "GET", "/api/v1/jobs/{jobId}", read_only, job_id=own_job).status_code == 200
    forbidden = call(auth_api, "POST", "/api/v1/jobs", read_only)
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"


def _none_token() -> str:
    now = int(time.time())
    return jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "tenant": "x", "scope": SCOPE_WRITE, "nbf": now, "exp": now + 300},
        None,
        algorithm="none",
    )


def _hs256_with_public_key(key: SigningKey) -> str:
    # The classic algorithm confusion: an HMAC "signature" keyed with the RSA public key. PyJWT refuses to sign
    # with a PEM as an HMAC key, so the token is assembled by hand.
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64(
        json.dumps(
            {"iss": ISSUER, "aud": AUDIENCE, "tenant": "x", "scope": SCOPE_WRITE, "nbf": now, "exp": now + 300}
        ).encode()
    )
    signature = hmac.new(key.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


@pytest.mark.parametrize(
    "case",
    [
        "wrong audience",
        "wrong issuer",
        "expired",
        "not yet valid",
        "no nbf",
        "alg none",
        "hs256 with the public key",
        "unknown kid",
        "bad tenant",
        "tampered payload",
    ],
)
def test_bad_access_tokens_are_refused(auth_api: AuthApi, signing_key: SigningKey, case: str) -> None:
    now = int(time.time())
    if case == "unknown kid":
        stranger = new_signing_key()
        token = stranger.token()
    elif case == "alg none":
        token = _none_token()
    elif case == "hs256 with the public key":
        token = _hs256_with_public_key(signing_key)
    elif case == "tampered payload":
        header, _, signature = signing_key.token().split(".")
        other = signing_key.token(tenant="someone-else").split(".")[1]
        token = f"{header}.{other}.{signature}"
    else:
        token = signing_key.token(
            **{
                "wrong audience": {"aud": "another-api"},
                "wrong issuer": {"iss": "https://evil.example.test/"},
                "expired": {"exp": now - 120, "nbf": now - 600},
                "not yet valid": {"nbf": now + 600, "exp": now + 1200},
                "no nbf": {"nbf": None},
                "bad tenant": {"tenant": "Not A Tenant!"},
            }[case]
        )
    assert_unauthorized(call(auth_api, "POST", "/api/v1/jobs", bearer(token)))


def test_a_rotated_signing_key_is_picked_up(auth_api: AuthApi, jwks: JwksServer, signing_key: SigningKey) -> None:
    rotated = new_signing_key()  # its tokens name the tenant that owns the job read here
    assert_unauthorized(call(auth_api, "GET", "/api/v1/jobs/{jobId}", bearer(rotated.token(tenant=TENANT))))
    jwks.keys = [signing_key.jwk(), rotated.jwk()]  # the provider publishes the new key
    fetches = jwks.fetches
    assert call(auth_api, "GET", "/api/v1/jobs/{jobId}", bearer(rotated.token(tenant=TENANT))).status_code == 200
    assert jwks.fetches == fetches + 1  # the unknown kid made one refetch
    assert call(auth_api, "GET", "/api/v1/jobs/{jobId}", bearer(rotated.token(tenant=TENANT))).status_code == 200
    assert jwks.fetches == fetches + 1  # then served from the cached set
