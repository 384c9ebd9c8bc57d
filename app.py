"""CDK entry point (`npx cdk synth -c env=prod`): the only place that reads context or the environment.

Context: env (local|dev|staging|prod, default from cdk.json), optional account, region, apiMode (fargate|lambda).
Feature flags are in stacks/application.py so that every way of synthesizing gives the same templates."""

from __future__ import annotations

import os
from dataclasses import replace

from stacks.application import build_stacks, new_app
from stacks.config import get_config


def main() -> None:
    app = new_app()
    config = get_config(str(app.node.try_get_context("env") or os.environ.get("JOBS_ENV", "dev")))
    account, region = app.node.try_get_context("account"), app.node.try_get_context("region")
    if account or region:
        config = replace(config, account=account or config.account, region=region or config.region)
    api_mode = app.node.try_get_context("apiMode")
    if api_mode:
        config = replace(config, api=replace(config.api, mode=api_mode))
    build_stacks(app, config)
    app.synth()


if __name__ == "__main__":
    main()
