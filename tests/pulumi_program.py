"""Run the repository's ``__main__.py`` under Pulumi's own mocks and record what it registered.

The Pulumi CLI cannot be installed on these machines, so this is how the program is exercised: the
real SDK and provider packages, with the engine's monitor replaced by ``pulumi.runtime.set_mocks``.
The mocks only play the cloud's part (ids, auto-names, ARNs); the post-deploy resource can be handed
to its real, deserialized provider so discovery runs against a real local bucket.
"""

from __future__ import annotations

import base64
import json
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill
import pulumi
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
POST_DEPLOY_TYPE = "pulumi-python:dynamic/syncops:PostDeployDiscovery"
SEED_TYPE = "pulumi-python:dynamic/syncops:PostDeploySeed"
GCS_AGENT = "service-123@gs-project-accounts.iam.gserviceaccount.com"


@dataclass
class Registered:
    typ: str
    name: str
    urn: str
    inputs: dict[str, Any]
    dependencies: list[str]


@dataclass
class Deployment:
    resources: list[Registered] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
        return found[0]

    def urn_of(self, typ: str) -> str:
        return self.one(typ).urn


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, deployment: Deployment, post_deploy: Callable[[dict[str, Any]], dict[str, Any]] | None) -> None:
        self.deployment = deployment
        self.post_deploy = post_deploy

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        if args.typ == "aws:s3/bucket:Bucket":
            state.setdefault("bucket", f"{args.name}-4f7a2c1")  # the provider's auto-name
            state["arn"] = f"arn:aws:s3:::{state['bucket']}"
            return state["bucket"], state
        if args.typ == "gcp:storage/bucket:Bucket":
            state.setdefault("name", f"{args.name}-4f7a2c1")
            state["url"] = f"gs://{state['name']}"
            return state["name"], state
        if args.typ == POST_DEPLOY_TYPE:
            if self.post_deploy is not None:
                state.update(self.post_deploy(state))
            else:
                state.update(index_status="discovered", index_entries=3, index_written=True)
        if args.typ == SEED_TYPE:
            if self.post_deploy is not None:
                state.update(self.post_deploy(state))
            else:
                state.update(seeded_from=state["seed_from"], seeded_objects=3)
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        self.deployment.calls.append((args.token, dict(args.args)))
        if args.token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            return {"emailAddress": GCS_AGENT, "member": f"serviceAccount:{GCS_AGENT}"}
        raise AssertionError(f"unexpected invoke {args.token}")


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: _Mocks) -> None:
        super().__init__(mocks)
        self.deployment = mocks.deployment

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
            self.deployment.resources.append(
                Registered(request.type, request.name, response.urn, inputs, list(request.dependencies))
            )
        return response


def unwrap_secrets(value: Any) -> Any:
    """A registered value with its secrets as plain values, as the engine hands inputs to a provider
    that does not accept secrets (the dynamic provider)."""
    if pulumi.runtime.rpc.is_rpc_secret(value):
        return unwrap_secrets(pulumi.runtime.rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def real_post_deploy(inputs: dict[str, Any]) -> dict[str, Any]:
    """Run the resource's own serialized provider, as the dynamic-provider process would."""
    provider = dill.loads(base64.b64decode(inputs["__provider"]))
    return dict(provider.create(unwrap_secrets(inputs)).outs)


def run_program(
    config: dict[str, Any],
    *,
    post_deploy: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    program: Callable[[], Any] | None = None,
) -> Deployment:
    """Run ``__main__.py`` (or ``program``) with stack config and return what it did.

    Keys without a namespace are ``syncops:*``; others (``aws:region``) are taken as they are.
    Objects are given as dicts or lists.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # `pulumi up` runs the program with the project on sys.path
    deployment = Deployment()
    mocks = _Mocks(deployment, post_deploy)
    runtime_settings.set_root_resource(None)  # type: ignore[arg-type]  # a fresh stack per run
    pulumi.runtime.set_mocks(mocks, project="syncops", stack="test", preview=False, monitor=_RecordingMonitor(mocks))
    pulumi.runtime.set_all_config(
        {k if ":" in k else f"syncops:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    )

    @pulumi.runtime.test
    def execute() -> pulumi.Output[Any]:
        if program is None:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        else:
            program()
        stack = runtime_settings.get_root_resource()
        assert stack is not None
        return pulumi.Output.from_input(stack.outputs).apply(deployment.outputs.update)  # type: ignore[attr-defined]

    execute()
    return deployment
