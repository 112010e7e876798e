"""``hubserve_model_version``: one numbered version in the model registry.

Registering makes a new version number, so every field but ``approval_status`` replaces it (a new
version, then the old one deleted: ``lifecycle { create_before_destroy = true }`` keeps endpoints
that use it deployable). Approval changes in place; approving rolls the endpoints that follow
``registry://group/latest-approved``, as approving from the CLI does.
"""

from __future__ import annotations

from typing import Any

from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, Resource, State, UpdateContext
from tf.schema import Attribute, Schema
from tf.types import NormalizedJson, Number, String, Unknown

from hubserve.errors import HubserveError
from hubserve.terraform.provider import ProviderBound, said

APPROVALS = ("PendingManualApproval", "Approved", "Rejected")


class ModelVersionResource(ProviderBound, Resource):
    """The ``hubserve_model_version`` resource; its id is ``GROUP/VERSION`` (what import takes)."""

    @classmethod
    def get_name(cls) -> str:
        return "model_version"

    @classmethod
    def get_schema(cls) -> Schema:
        def fixed(name: str, kind: Any, description: str, **more: Any) -> Attribute:
            return Attribute(name, kind, description=description, requires_replace=True, **more)

        return Schema(
            attributes=[
                fixed("group", String(), "The model group (created with its first version).", required=True),
                fixed(
                    "source",
                    String(),
                    "A local model folder (copied into the registry), a Hub id or a URI.",
                    required=True,
                ),
                fixed("revision", String(), "Hub branch, tag or commit; Hub ids only.", optional=True),
                fixed("task", String(), "Inferred from a folder's config when left out.", optional=True, computed=True),
                fixed("metrics", NormalizedJson(), "Evaluation figures: jsonencode({accuracy = 0.91}).", optional=True),
                fixed("description", String(), "What this version is.", optional=True),
                Attribute(
                    "approval_status",
                    String(),
                    optional=True,
                    computed=True,
                    description="PendingManualApproval (new versions), Approved or Rejected; changes in place.",
                ),
                Attribute("id", String(), computed=True, description="GROUP/VERSION."),
                Attribute("version", Number(), computed=True, description="The version's number in its group."),
                Attribute(
                    "uri", String(), computed=True, description="registry://GROUP/VERSION: an endpoint's model source."
                ),
                Attribute("sha256", String(), computed=True, description="The content hash checked when it loads."),
            ],
            description="A version of a model in hubserve's registry.",
        )

    def validate(self, diags: Any, type_name: str, config: dict[str, Any]) -> None:
        super().validate(diags, type_name, config)
        status = config.get("approval_status")
        if isinstance(status, str) and status not in APPROVALS:
            diags.add_error(
                f"approval_status {status!r} is not one of {', '.join(APPROVALS)}", path=["approval_status"]
            )

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        client = self.provider.client()
        try:
            made = client.register_model(
                planned["group"],
                planned["source"],
                revision=_given(planned, "revision"),
                task=_given(planned, "task"),
                metrics=_given(planned, "metrics") or None,
                description=_given(planned, "description"),
            )
            wanted = _given(planned, "approval_status")
            if isinstance(wanted, str) and wanted != made.get("approval_status"):
                made = client.set_model_approval(planned["group"], int(made["version"]), wanted)
        except HubserveError as error:
            ctx.diagnostics.add_error(f"Could not register a version of {planned['group']}", said(error))
            return None
        return {**planned, **_computed(made)}

    def read(self, ctx: ReadContext, current: State) -> State | None:
        return self._read(ctx.diagnostics, str(current["id"]), current)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        wanted = _given(planned, "approval_status")
        if isinstance(wanted, str) and wanted != current.get("approval_status"):
            try:
                made = self.provider.client().set_model_approval(current["group"], int(current["version"]), wanted)
            except HubserveError as error:
                ctx.diagnostics.add_error(f"Could not set {current['id']} to {wanted}", said(error))
                return current
            return {**planned, **_computed(made)}
        return planned

    def delete(self, ctx: DeleteContext, current: State) -> None:
        try:
            self.provider.client().delete_model_version(current["group"], int(current["version"]))
        except HubserveError as error:
            if error.status != 404:
                ctx.diagnostics.add_error(f"Could not delete {current['id']}", said(error))

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        group, _, number = id.rpartition("/")
        if not group or not number.isdigit():
            ctx.diagnostics.add_error(f"{id!r} is not GROUP/VERSION", "Import a model version as, say, sst2/3.")
            return None
        return self._read(ctx.diagnostics, id, None)

    def _read(self, diags: Any, ident: str, prior: State | None) -> State | None:
        group, _, number = ident.rpartition("/")
        try:
            version = self.provider.client().get_model_version(group, int(number))
        except HubserveError as error:
            if error.status == 404:
                return None
            diags.add_error(f"Could not read model version {ident}", said(error))
            return prior
        state = {
            "group": version["group"],
            "source": (prior or {}).get("source") or version.get("source"),
            "revision": version.get("revision"),
            "task": version.get("task"),
            "metrics": version.get("metrics") or None,
            "description": version.get("description") or None,
        }
        return {**state, **_computed(version)}


def _computed(version: dict[str, Any]) -> dict[str, Any]:
    group, number = version["group"], int(version["version"])
    return {
        "id": f"{group}/{number}",
        "version": number,
        "uri": version.get("uri") or f"registry://{group}/{number}",
        "sha256": version.get("sha256"),
        "approval_status": version.get("approval_status"),
        "task": version.get("task"),
    }


def _given(state: State, key: str) -> Any:
    """A planned value, or None where the configuration left it for the server (unknown until applied)."""
    value = state.get(key)
    return None if value is Unknown else value
