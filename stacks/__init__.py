"""The CDK app's stacks and constructs; `stateful_template` feeds the local all-in-one's emulator."""

from __future__ import annotations

import os
from typing import Any

# jsii prints a Node 20 end-of-life banner on every synth; it says nothing about this project.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def stateful_template(env_name: str) -> dict[str, Any]:
    """Synthesizes only the stateful stack of `env_name` and returns its CloudFormation template.

    The result deploys into moto's CloudFormation as is (no assets, no custom resources, named parameters)."""
    import tempfile

    from stacks.application import new_app
    from stacks.config import get_config
    from stacks.stateful_stack import StatefulStack

    config = get_config(env_name)
    with tempfile.TemporaryDirectory(prefix="cdk-stateful-") as outdir:
        app = new_app(outdir=outdir)
        stack = StatefulStack(app, f"{config.stack_prefix}-stateful", config=config)
        assembly = app.synth()
        template: dict[str, Any] = assembly.get_stack_artifact(stack.artifact_id).template
    return template


__all__ = ["stateful_template"]
