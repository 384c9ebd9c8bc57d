"""The runtime's configuration as SSM parameters under /job-tickets/<env>/ (JOBS_SSM_PATH)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Parameters(Construct):
    """One String parameter per runtime setting, named <path>/<field-name-with-dashes>."""

    def __init__(self, scope: Construct, construct_id: str, *, path: str, values: Mapping[str, str]) -> None:
        super().__init__(scope, construct_id)
        if not path.startswith("/") or path.endswith("/"):
            raise ValueError(f"ssm path must start and not end with '/': {path!r}")
        self.path = path
        self.parameters: dict[str, ssm.StringParameter] = {}
        for name, value in values.items():
            if not _NAME.match(name):
                raise ValueError(f"bad parameter name: {name!r}")
            # Explicit names: the runtime finds them by path, and moto's CloudFormation cannot generate them.
            self.parameters[name] = ssm.StringParameter(
                self, name, parameter_name=f"{path}/{name}", string_value=value, tier=ssm.ParameterTier.STANDARD
            )

    def grant_read_by_path(self, grantee: iam.IGrantable) -> iam.Grant:
        """ssm:GetParametersByPath on this path only: what runtime.settings does at start-up."""
        stack = Stack.of(self)
        path_arn = stack.format_arn(service="ssm", resource="parameter", resource_name=self.path.lstrip("/"))
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["ssm:GetParametersByPath"], resource_arns=[path_arn, f"{path_arn}/*"]
        )
