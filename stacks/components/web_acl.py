"""The WAFv2 web ACL in front of the public load balancer: AWS managed rule groups and a per-IP rate limit."""

from __future__ import annotations

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from stacks.config import WafConfig

COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
KNOWN_BAD_INPUTS_RULE_SET = "AWSManagedRulesKnownBadInputsRuleSet"
# The common rule set blocks request bodies over 8 KB; the API takes bodies up to its own documented limit
# (runtime/settings.py max_body_bytes, 64 KiB by default) and answers 413 past it, so this one rule only counts.
COUNT_ONLY_COMMON_RULES = ("SizeRestrictions_BODY",)


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


def _managed_rule_group(name: str, priority: int, *, count_only: tuple[str, ...] = ()) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=name,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in count_only
                ]
                or None,
            )
        ),
        visibility_config=_visibility(name),
    )


class WebAcl(Construct):
    """A regional web ACL associated with one resource (the ALB); requests no rule blocks are allowed."""

    def __init__(self, scope: Construct, construct_id: str, *, waf: WafConfig, resource_arn: str) -> None:
        super().__init__(scope, construct_id)
        rate_limit = wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerIp",
            # First: a flooding client is blocked before the managed groups spend capacity on its requests.
            priority=0,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    aggregate_key_type="IP", limit=waf.rate_limit_per_ip_5min, evaluation_window_sec=300
                )
            ),
            visibility_config=_visibility("RateLimitPerIp"),
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("JobTicketsWebAcl"),
            rules=[
                rate_limit,
                _managed_rule_group(COMMON_RULE_SET, 10, count_only=COUNT_ONLY_COMMON_RULES),
                _managed_rule_group(KNOWN_BAD_INPUTS_RULE_SET, 20),
            ],
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=resource_arn, web_acl_arn=self.web_acl.attr_arn
        )
