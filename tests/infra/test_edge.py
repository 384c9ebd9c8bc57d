"""Issue 9, points 6-9: HTTPS on the configured domain, WAF, hidden readiness, JWT at the edge, alarm subscribers."""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stacks.config import AlarmSubscribers, ApiConfig, EnvironmentConfig, OidcConfig, get_config
from stacks.synth import synthesize
from tests.infra.conftest import EnvTemplates, synthesized

OIDC = OidcConfig(
    issuer="https://login.example.com/",
    audience="job-tickets-api",
    jwks_url="https://login.example.com/.well-known/jwks.json",
    tenant_claim="org_id",
)
PAGER_TOPIC = "arn:aws:sns:us-east-1:123456789012:on-call-pager"
OIDC_ENVIRONMENT = {
    "JOBS_OIDC_ISSUER": OIDC.issuer,
    "JOBS_OIDC_AUDIENCE": OIDC.audience,
    "JOBS_OIDC_JWKS_URL": OIDC.jwks_url,
    "JOBS_OIDC_TENANT_CLAIM": OIDC.tenant_claim,
}


@functools.cache
def with_oidc(env_name: str) -> dict[str, Any]:
    """The service template of `env_name` with an OIDC issuer (and, for dev, an existing pager topic)."""
    config = replace(get_config(env_name), oidc=OIDC)
    if env_name == "dev":
        config = replace(config, alarm_subscribers=AlarmSubscribers(topic_arn=PAGER_TOPIC))
    result = synthesize(config, outdir=Path(tempfile.mkdtemp(prefix=f"infra-tests-oidc-{env_name}-")))
    assert result.errors() == []  # cdk-nag (both packs) is as clean with an issuer as without
    [service] = [s.template for s in result.assembly.stacks if s.stack_name.endswith("-service")]
    return dict(service)


def _resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == resource_type}


def _service(env: EnvTemplates) -> dict[str, Any]:
    assert env.service is not None
    return env.service


def _listeners(template: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["Port"]: p for p in _resources(template, "AWS::ElasticLoadBalancingV2::Listener").values()}


def _rules(template: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_resources(template, "AWS::ElasticLoadBalancingV2::ListenerRule").values())


@pytest.fixture(scope="module", params=["staging", "prod"])
def public_env(request: pytest.FixtureRequest) -> EnvTemplates:
    return synthesized(request.param)


# --- HTTPS (point 6) ---------------------------------------------------------------------------------------------


def test_alb_listens_on_443_with_a_dns_validated_certificate_for_the_domain(public_env: EnvTemplates) -> None:
    domain = get_config(public_env.env_name).domain
    assert domain is not None
    template = _service(public_env)
    [(certificate_id, certificate)] = _resources(template, "AWS::CertificateManager::Certificate").items()
    assert certificate["DomainName"] == domain.record_name
    assert certificate["ValidationMethod"] == "DNS"
    assert certificate["DomainValidationOptions"] == [
        {"DomainName": domain.record_name, "HostedZoneId": domain.hosted_zone_id}
    ]
    https = _listeners(template)[443]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": {"Ref": certificate_id}}]
    # TLS 1.3 + 1.2 only (no TLS 1.0/1.1, no CBC suites).
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2-"), https["SslPolicy"]
    [record] = _resources(template, "AWS::Route53::RecordSet").values()
    assert record["Type"] == "A" and record["Name"] == f"{domain.record_name}."
    assert record["HostedZoneId"] == domain.hosted_zone_id
    assert "AliasTarget" in record and "LB" in json.dumps(record["AliasTarget"])


def test_port_80_only_redirects_to_https(public_env: EnvTemplates) -> None:
    listeners = _listeners(_service(public_env))
    assert set(listeners) == {80, 443}
    http = listeners[80]
    assert http["Protocol"] == "HTTP"
    assert http["DefaultActions"] == [
        {"Type": "redirect", "RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"}}
    ]
    # Nothing on port 80 is forwarded to the tasks.
    assert not [r for r in _rules(_service(public_env)) if "PublicRedirectListener" in json.dumps(r["ListenerArn"])]


def test_deletion_protection_on_the_prod_alb_only() -> None:
    def protected(env_name: str) -> bool:
        [alb] = _resources(_service(synthesized(env_name)), "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
        attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
        return attributes.get("deletion_protection.enabled") == "true"

    assert protected("prod")
    assert not protected("staging")


def test_dev_http_api_stage_is_throttled_from_config(dev: EnvTemplates) -> None:
    api = get_config("dev").api
    [stage] = _resources(_service(dev), "AWS::ApiGatewayV2::Stage").values()
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == api.throttle_rate_per_s
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == api.throttle_burst


def test_fargate_without_a_domain_is_refused_with_what_to_set() -> None:
    dev = get_config("dev")
    with pytest.raises(ValueError, match=r"no domain: set domain=DomainConfig\(hosted_zone_id="):
        replace(dev, api=ApiConfig(mode="fargate"))


# --- WAF and /readyz (point 8) -----------------------------------------------------------------------------------


def test_waf_with_managed_rule_groups_and_a_rate_limit_per_ip_is_associated_with_the_alb(
    public_env: EnvTemplates,
) -> None:
    template = _service(public_env)
    [(acl_id, acl)] = _resources(template, "AWS::WAFv2::WebACL").items()
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    for group in ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"):
        statement = rules[group]["Statement"]["ManagedRuleGroupStatement"]
        assert statement["VendorName"] == "AWS" and statement["Name"] == group
        assert rules[group]["OverrideAction"] == {"None": {}}  # the group's own block actions apply
    rate = rules["RateLimitPerIp"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "EvaluationWindowSec": 300,
        "Limit": get_config(public_env.env_name).waf.rate_limit_per_ip_5min,
    }
    [association] = _resources(template, "AWS::WAFv2::WebACLAssociation").values()
    [alb_id] = _resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert association == {"ResourceArn": {"Ref": alb_id}, "WebACLArn": {"Fn::GetAtt": [acl_id, "Arn"]}}


def test_readyz_is_a_404_at_the_alb_while_the_health_check_reaches_the_tasks(public_env: EnvTemplates) -> None:
    template = _service(public_env)
    [hidden] = [r for r in _rules(template) if "/readyz" in json.dumps(r["Conditions"])]
    assert hidden["Priority"] == 1  # before any forwarding rule
    assert hidden["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/readyz", "/readyz/*"]}}
    ]
    [action] = hidden["Actions"]
    assert action["Type"] == "fixed-response" and action["FixedResponseConfig"]["StatusCode"] == "404"
    assert "readyz" not in action["FixedResponseConfig"]["MessageBody"]
    [target_group] = _resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    assert target_group["HealthCheckPath"] == "/healthz"


# --- JWT at the edge (point 7) -----------------------------------------------------------------------------------


def test_without_an_issuer_nothing_verifies_jwts_at_the_edge(prod: EnvTemplates, dev: EnvTemplates) -> None:
    assert "jwt-validation" not in json.dumps(_rules(_service(prod)))
    assert not _resources(_service(dev), "AWS::ApiGatewayV2::Authorizer")
    for env in (prod, dev):
        assert "JOBS_OIDC_ISSUER" not in json.dumps(_service(env))


def test_alb_verifies_the_jwt_on_api_paths_when_an_issuer_is_configured() -> None:
    template = with_oidc("prod")
    [verify] = [r for r in _rules(template) if "jwt-validation" in json.dumps(r["Actions"])]
    assert "PublicListener" in json.dumps(verify["ListenerArn"])  # the HTTPS one
    assert verify["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}]
    jwt, forward = sorted(verify["Actions"], key=lambda a: a["Order"])
    assert jwt["Type"] == "jwt-validation"
    assert jwt["JwtValidationConfig"] == {"Issuer": OIDC.issuer, "JwksEndpoint": OIDC.jwks_url}
    assert forward["Type"] == "forward"
    # /readyz stays hidden, ahead of the JWT rule; everything else (/healthz, /docs) is forwarded without a token.
    [hidden] = [r for r in _rules(template) if "/readyz" in json.dumps(r["Conditions"])]
    assert hidden["Priority"] < verify["Priority"]
    # The load balancer may fetch the signing keys.
    [alb_group] = [
        p
        for k, p in _resources(template, "AWS::EC2::SecurityGroup").items()
        if k.startswith("ApiServiceLBSecurityGroup")
    ]
    https_out = {"CidrIp": "0.0.0.0/0", "FromPort": 443, "ToPort": 443, "IpProtocol": "tcp"}
    assert any(https_out.items() <= rule.items() for rule in alb_group["SecurityGroupEgress"])


def test_http_api_has_a_jwt_authorizer_on_everything_but_the_open_routes_when_an_issuer_is_configured() -> None:
    template = with_oidc("dev")
    [(authorizer_id, authorizer)] = _resources(template, "AWS::ApiGatewayV2::Authorizer").items()
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["JwtConfiguration"] == {"Issuer": OIDC.issuer, "Audience": [OIDC.audience]}
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    routes = {p["RouteKey"]: p for p in _resources(template, "AWS::ApiGatewayV2::Route").values()}
    assert routes["$default"]["AuthorizationType"] == "JWT"
    assert routes["$default"]["AuthorizerId"] == {"Ref": authorizer_id}
    open_routes = {key for key, route in routes.items() if route["AuthorizationType"] == "NONE"}
    paths = ("/healthz", "/readyz", "/docs", "/openapi.json")
    assert open_routes == {f"{method} {path}" for method in ("GET", "HEAD") for path in paths}


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_the_api_is_told_the_issuer_it_still_verifies_itself(env_name: str) -> None:
    template = with_oidc(env_name)
    if env_name == "prod":
        [api_task] = [
            p
            for p in _resources(template, "AWS::ECS::TaskDefinition").values()
            if p["ContainerDefinitions"][0].get("DockerLabels", {}).get("service") == "api"
        ]
        variables = {e["Name"]: e["Value"] for e in api_task["ContainerDefinitions"][0]["Environment"]}
    else:
        [api_function] = [
            p
            for p in _resources(template, "AWS::Lambda::Function").values()
            if p["ImageConfig"]["Command"] == ["runtime.api.lambda_handler.handler"]
        ]
        variables = api_function["Environment"]["Variables"]
    assert OIDC_ENVIRONMENT.items() <= variables.items()


def test_oidc_config_refuses_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="oidc issuer must be an https url, got 'http://idp'"):
        OidcConfig(issuer="http://idp", audience="a", jwks_url="https://idp/jwks")


# --- alarms reach a person (point 9) -----------------------------------------------------------------------------


def test_alarm_topic_has_the_configured_e_mail_subscribers(public_env: EnvTemplates) -> None:
    subscribers = get_config(public_env.env_name).alarm_subscribers
    assert subscribers.emails
    template = _service(public_env)
    [topic_id] = _resources(template, "AWS::SNS::Topic")
    subscriptions = _resources(template, "AWS::SNS::Subscription").values()
    assert sorted(s["Endpoint"] for s in subscriptions if s["Protocol"] == "email") == sorted(subscribers.emails)
    assert all(s["TopicArn"] == {"Ref": topic_id} for s in subscriptions)


def test_an_existing_topic_is_notified_by_every_alarm() -> None:
    template = with_oidc("dev")
    alarms = [p for k, p in _resources(template, "AWS::CloudWatch::Alarm").items() if k.startswith("Monitoring")]
    assert alarms
    for alarm in alarms:
        assert PAGER_TOPIC in alarm["AlarmActions"] and PAGER_TOPIC in alarm["OKActions"]
        assert len(alarm["AlarmActions"]) == 2  # and the environment's own topic


@pytest.mark.parametrize("env_name", ["staging", "prod"])
def test_public_environment_without_an_alarm_subscriber_is_refused_with_what_to_set(env_name: str) -> None:
    config = get_config(env_name)
    with pytest.raises(ValueError, match=rf"environment '{env_name}' has no alarm subscriber: set alarm_subscribers="):
        replace(config, alarm_subscribers=AlarmSubscribers())


def test_local_and_dev_may_have_no_alarm_subscriber() -> None:
    for env_name in ("local", "dev"):
        config: EnvironmentConfig = get_config(env_name)
        assert not config.alarm_subscribers


def test_alarm_subscribers_are_checked() -> None:
    with pytest.raises(ValueError, match="not an e-mail address: 'oncall'"):
        AlarmSubscribers(emails=("oncall",))
    with pytest.raises(ValueError, match="not an sns topic arn: 'pager'"):
        AlarmSubscribers(topic_arn="pager")
