"""``hubserve_token``: a scoped API token. Tokens cannot change, so any change replaces (revokes and re-issues) it."""

from __future__ import annotations

from typing import Any

from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, Resource, State, UpdateContext
from tf.schema import Attribute, Schema
from tf.types import Set, String

from hubserve.errors import HubserveError
from hubserve.terraform.provider import ProviderBound, said


class TokenResource(ProviderBound, Resource):
    """The ``hubserve_token`` resource: ``token`` (sensitive) holds the secret, known only to the state that made it."""

    @classmethod
    def get_name(cls) -> str:
        return "token"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            attributes=[
                Attribute("name", String(), required=True, requires_replace=True, description="What the token is for."),
                Attribute(
                    "scopes",
                    Set(String()),
                    required=True,
                    requires_replace=True,
                    description="read, invoke, write, admin (as `hubserve token create --scope`).",
                ),
                Attribute(
                    "endpoints",
                    Set(String()),
                    optional=True,
                    requires_replace=True,
                    description="The endpoints it may touch (default: all).",
                ),
                Attribute("id", String(), computed=True, description="The token's id (what import takes)."),
                Attribute(
                    "token",
                    String(),
                    computed=True,
                    sensitive=True,
                    description="The secret: shown once by the server, kept in the state (empty after import).",
                ),
                Attribute("created_at", String(), computed=True),
            ],
            description="A scoped hubserve API token.",
        )

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        try:
            made = self.provider.client().create_token(
                planned["name"], sorted(planned["scopes"]), _endpoints(planned.get("endpoints"))
            )
        except HubserveError as error:
            ctx.diagnostics.add_error(f"Could not create token {planned['name']}", said(error))
            return None
        return {**planned, "id": made["id"], "token": made.get("token"), "created_at": made.get("created_at")}

    def read(self, ctx: ReadContext, current: State) -> State | None:
        return self._read(ctx.diagnostics, str(current["id"]), current)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return planned  # every field replaces; nothing changes in place

    def delete(self, ctx: DeleteContext, current: State) -> None:
        try:
            self.provider.client().revoke_token(str(current["id"]))
        except HubserveError as error:
            if error.status != 404:
                ctx.diagnostics.add_error(f"Could not revoke token {current['id']}", said(error))

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        return self._read(ctx.diagnostics, id, None)

    def _read(self, diags: Any, ident: str, prior: State | None) -> State | None:
        try:
            record = self.provider.client().get_token(ident)
        except HubserveError as error:
            if error.status == 404:
                return None
            diags.add_error(f"Could not read token {ident}", said(error))
            return prior
        if record.get("revoked_at"):
            return None  # revoked outside Terraform: planned for a new one
        endpoints = record.get("endpoints")
        return {
            "name": record["name"],
            "scopes": list(record.get("scopes") or []),
            "endpoints": list(endpoints) if endpoints is not None else None,
            "id": record["id"],
            "token": (prior or {}).get("token"),
            "created_at": record.get("created_at"),
        }


def _endpoints(value: Any) -> list[str] | None:
    return sorted(value) if value else None
