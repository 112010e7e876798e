"""``hubserve_endpoint``: an endpoint as a Terraform resource, and the ``hubserve_endpoint(s)`` data sources.

Create and update send the spec (POST, or PUT for hubserve's rolling update) and wait until the
endpoint serves or fails, failing with the endpoint's reason; only a changed ``name`` replaces
it. Read compacts the live spec against the prior state (``fields.to_state``), so a change made
outside Terraform shows in the next plan and an endpoint deleted outside is planned for creation.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import ValidationError
from tf.iface import (
    Config,
    CreateContext,
    DataSource,
    DeleteContext,
    ImportContext,
    PlanContext,
    ReadContext,
    ReadDataContext,
    Resource,
    State,
    UpdateContext,
)
from tf.schema import Attribute, Block, NestedBlock, Schema
from tf.types import Bool, List, Map, Number, String, TfType, Unknown
from tf.utils import Diagnostics

from hubserve.errors import EndpointNotFound, HubserveError
from hubserve.spec import EndpointSpec, merge_patch_for
from hubserve.terraform import fields
from hubserve.terraform.provider import ProviderBound, said
from hubserve.terraform.tftypes import Object, SingleBlock

READY_STATES = ("running", "scaledToZero")
FAILED_STATES = ("failed", "updateFailed")
DEFAULT_TIMEOUTS_S = {"create": 1200.0, "update": 1200.0, "delete": 600.0}
POLL_S = 1.0
COMPUTED = ("id", "url", "state", "spec_revision")
_TYPES: dict[str, TfType] = {
    "string": String(),
    "number": Number(),
    "bool": Bool(),
    "map": Map(String()),
    "list": List(String()),
}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")

ENDPOINT_FIELDS = fields.endpoint_fields()


def _attribute(leaf: fields.Leaf) -> Attribute:
    required = leaf.path in ("name", "model.source")
    return Attribute(
        leaf.name,
        _TYPES[leaf.kind],
        description=leaf.description,
        required=required,
        optional=not required,
        sensitive=leaf.sensitive,
        requires_replace=leaf.path == "name",
    )


def _block(group: fields.Group) -> NestedBlock:
    attributes = [_attribute(f) for f in group.fields if isinstance(f, fields.Leaf)]
    blocks = [_block(f) for f in group.fields if isinstance(f, fields.Group)]
    return SingleBlock(group.name, Block(attributes, blocks, description=group.description), required=group.required)


def endpoint_schema() -> Schema:
    """Every spec field, plus the computed ``id`` (the name), ``url``, ``state``, ``spec_revision`` and ``timeouts``."""
    attributes = [_attribute(f) for f in ENDPOINT_FIELDS if isinstance(f, fields.Leaf)]
    attributes += [
        Attribute("id", String(), computed=True, description="The endpoint's name."),
        Attribute("url", String(), computed=True, description="Where to invoke it (the Hugging Face route)."),
        Attribute("state", String(), computed=True, description="running, scaledToZero, failed... as last read."),
        Attribute("spec_revision", String(), computed=True, description="A digest of the live spec: changes with it."),
    ]
    timeouts = Block(
        [
            Attribute(
                kind,
                String(),
                optional=True,
                description=f"How long {kind} may wait (Go duration: 20m, 1h). "
                f"Default {DEFAULT_TIMEOUTS_S[kind] / 60:g}m.",
            )
            for kind in DEFAULT_TIMEOUTS_S
        ],
        description="How long create, update and delete wait for the endpoint.",
    )
    blocks = [_block(f) for f in ENDPOINT_FIELDS if isinstance(f, fields.Group)] + [SingleBlock("timeouts", timeouts)]
    return Schema(
        attributes=attributes,
        block_types=blocks,
        version=0,
        description="A hubserve endpoint: a model served serverless or on dedicated replicas.",
    )


class EndpointResource(ProviderBound, Resource):
    """The ``hubserve_endpoint`` resource."""

    @classmethod
    def get_name(cls) -> str:
        return "endpoint"

    @classmethod
    def get_schema(cls) -> Schema:
        return endpoint_schema()

    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        if config.get("serverless") is not None and config.get("dedicated") is not None:
            diags.add_error(
                "Both serverless and dedicated are set",
                "An endpoint runs one way: keep one of the two blocks.",
                path=["dedicated"],
            )
            return
        for kind in DEFAULT_TIMEOUTS_S:
            value = (config.get("timeouts") or {}).get(kind)
            if isinstance(value, str) and _seconds(value) is None:
                diags.add_error(
                    f"timeouts.{kind} is not a duration",
                    f"got {value!r}; write it as 90s, 20m or 1h30m",
                    path=["timeouts", kind],
                )
        if not _all_known(config):
            return  # values from other resources are checked when they are known, at apply
        try:
            EndpointSpec.model_validate(fields.to_spec(ENDPOINT_FIELDS, config))
        except ValidationError as error:
            for problem in error.errors():
                where = _tf_path(problem["loc"])
                diags.add_error(
                    f"{'.'.join(where) or 'endpoint'}: {problem['msg']}",
                    "The hubserve endpoint spec refuses this value (the same check the server makes).",
                    path=where or None,
                )

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        if current is not None and fields.spec_part(ENDPOINT_FIELDS, current) != fields.spec_part(
            ENDPOINT_FIELDS, planned
        ):
            planned["state"] = Unknown  # an update rolls the endpoint; its state and revision come after
            planned["spec_revision"] = Unknown
        return planned

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        spec = fields.to_spec(ENDPOINT_FIELDS, planned)
        try:
            self.provider.client().create_endpoint(spec)
        except HubserveError as error:
            ctx.diagnostics.add_error(f"Could not create endpoint {spec.get('name')}", said(error))
            return None
        return self._settle(ctx.diagnostics, planned, "create")

    def read(self, ctx: ReadContext, current: State) -> State | None:
        return self._read(ctx.diagnostics, current["name"], current)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        if fields.spec_part(ENDPOINT_FIELDS, current) == fields.spec_part(ENDPOINT_FIELDS, planned):
            return planned  # only timeouts changed: nothing to send
        spec = fields.to_spec(ENDPOINT_FIELDS, planned)
        client = self.provider.client()
        try:
            # A merge patch from the live spec, not a PUT: PUT keeps stored secrets it is not sent, and a
            # configuration that drops a secret means to remove it (a null in the patch). Either way it is
            # hubserve's rolling update; fields the configuration leaves out go back to their defaults.
            live = client.get_endpoint(planned["name"])
            current = {key: value for key, value in live.items() if key in EndpointSpec.model_fields}
            client.patch_endpoint(planned["name"], merge_patch_for(current, spec))
        except HubserveError as error:
            ctx.diagnostics.add_error(f"Could not update endpoint {planned['name']}", said(error))
            return current
        return self._settle(ctx.diagnostics, planned, "update")

    def delete(self, ctx: DeleteContext, current: State) -> None:
        name = current["name"]
        client = self.provider.client()
        try:
            client.delete_endpoint(name)
        except EndpointNotFound:
            return
        except HubserveError as error:
            ctx.diagnostics.add_error(f"Could not delete endpoint {name}", said(error))
            return
        deadline = time.monotonic() + _timeout(current, "delete")
        while time.monotonic() < deadline:
            try:
                client.get_endpoint(name)
            except EndpointNotFound:
                return
            time.sleep(POLL_S)
        ctx.diagnostics.add_error(f"Endpoint {name} is still being deleted", "It will go on; re-run to check.")

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        state = self._read(ctx.diagnostics, id, None)
        if state is None and not ctx.diagnostics.has_errors():
            ctx.diagnostics.add_error(
                f"No endpoint named {id!r}", "Import takes an endpoint's name: hubserve endpoint list."
            )
        return state

    # --- helpers -------------------------------------------------------------------------

    def _read(self, diags: Diagnostics, name: str, prior: State | None) -> State | None:
        try:
            live = self.provider.client().get_endpoint(name)
        except EndpointNotFound:
            return None  # deleted outside Terraform: the plan re-creates it
        except HubserveError as error:
            diags.add_error(f"Could not read endpoint {name}", said(error))
            return prior
        if live.get("state") == "deleting":
            return None
        state = fields.to_state(ENDPOINT_FIELDS, live, prior)
        state.update(_computed(live))
        state["timeouts"] = (prior or {}).get("timeouts")
        return state

    def _settle(self, diags: Diagnostics, planned: State, kind: str) -> State:
        """Wait until the endpoint serves or fails: the planned values with the computed ones filled in."""
        name = planned["name"]
        client = self.provider.client()
        deadline = time.monotonic() + _timeout(planned, kind)
        live: dict[str, Any] = {}
        while True:
            try:
                live = client.get_endpoint(name)
            except HubserveError as error:
                diags.add_error(f"Could not read endpoint {name} after {kind}", said(error))
                break
            state = str(live.get("state"))
            if state in READY_STATES:
                break
            if state in FAILED_STATES:
                diags.add_error(
                    f"Endpoint {name} {state}",
                    str(live.get("reason") or "no reason given")
                    + f" (hubserve endpoint logs {name} has the replica's log)",
                )
                break
            if time.monotonic() >= deadline:
                diags.add_error(
                    f"Endpoint {name} is still {state} after {_timeout(planned, kind):g}s",
                    f"{live.get('reason') or ''} Raise timeouts {{ {kind} = ... }} or check "
                    f"hubserve endpoint describe {name}.".strip(),
                )
                break
            time.sleep(POLL_S)
        return {**planned, **_computed(live, name)}


def _computed(live: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    name = name or live.get("name")
    return {
        "id": name,
        "url": live.get("url"),
        "state": live.get("state"),
        "spec_revision": fields.spec_revision(live) if live else None,
    }


def _timeout(state: State, kind: str) -> float:
    written = (state.get("timeouts") or {}).get(kind)
    seconds = _seconds(written) if isinstance(written, str) else None
    return seconds if seconds is not None else DEFAULT_TIMEOUTS_S[kind]


def _seconds(duration: str) -> float | None:
    """A Go-style duration (``90s``, ``20m``, ``1h30m``) in seconds; None when it is not one."""
    match = _DURATION.match(duration.strip())
    if not duration.strip() or match is None:
        return None
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _all_known(value: Any) -> bool:
    if value is Unknown:
        return False
    if isinstance(value, dict):
        return all(_all_known(item) for item in value.values())
    if isinstance(value, list):
        return all(_all_known(item) for item in value)
    return True


def _tf_path(location: tuple[int | str, ...]) -> list[str]:
    """A spec error's location as the configuration names it (``compute.memory_mb`` -> ``serverless.memory_mb``)."""
    path = [str(part) for part in location]
    if path[:1] == ["compute"]:  # the discriminated union names its tag (serverless, dedicated) next
        path = path[1:] if path[1:2] and path[1] in fields.COMPUTE_BLOCKS else ["serverless", *path[1:]]
    return path


# --- data sources ----------------------------------------------------------------------------

_SUMMARY = {
    "name": String(),
    "url": String(),
    "state": String(),
    "task": String(),
    "model_source": String(),
    "compute_type": String(),
    "spec_revision": String(),
}


def _summary(live: dict[str, Any]) -> dict[str, Any]:
    model = live.get("model") or {}
    return {
        "name": live.get("name"),
        "url": live.get("url"),
        "state": live.get("state"),
        "task": model.get("task"),
        "model_source": model.get("source"),
        "compute_type": (live.get("compute") or {}).get("type"),
        "spec_revision": fields.spec_revision(live),
    }


class EndpointData(ProviderBound, DataSource):
    """``data "hubserve_endpoint"``: one endpoint's URL, state, task and source by name."""

    @classmethod
    def get_name(cls) -> str:
        return "endpoint"

    @classmethod
    def get_schema(cls) -> Schema:
        attributes = [Attribute("name", String(), required=True, description="The endpoint's name.")]
        attributes += [Attribute(key, kind, computed=True) for key, kind in _SUMMARY.items() if key != "name"]
        attributes.append(Attribute("reason", String(), computed=True, description="Why it is in its state."))
        return Schema(attributes=attributes, description="One hubserve endpoint, read by name.")

    def read(self, ctx: ReadDataContext, config: Config) -> State | None:
        name = config["name"]
        try:
            live = self.provider.client().get_endpoint(name)
        except HubserveError as error:
            ctx.diagnostics.add_error(f"Could not read endpoint {name}", said(error))
            return None
        return {**_summary(live), "reason": live.get("reason")}


class EndpointsData(ProviderBound, DataSource):
    """``data "hubserve_endpoints"``: every endpoint (names, and each one's URL, state, task and source)."""

    @classmethod
    def get_name(cls) -> str:
        return "endpoints"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            attributes=[
                Attribute("names", List(String()), computed=True, description="Every endpoint's name, sorted."),
                Attribute("endpoints", List(Object(_SUMMARY)), computed=True, description="Every endpoint, by name."),
            ],
            description="Every hubserve endpoint on the server.",
        )

    def read(self, ctx: ReadDataContext, config: Config) -> State | None:
        try:
            items = self.provider.client().list_endpoints()
        except HubserveError as error:
            ctx.diagnostics.add_error("Could not list endpoints", said(error))
            return None
        items = sorted((item for item in items if item.get("state") != "deleting"), key=lambda item: str(item["name"]))
        return {"names": [item["name"] for item in items], "endpoints": [_summary(item) for item in items]}
