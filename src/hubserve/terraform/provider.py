"""The provider itself: its configuration (``url``, ``token``) and the resources and data sources it offers."""

from __future__ import annotations

import os
from typing import Any

from tf.iface import Config, DataSource, Provider, Resource
from tf.schema import Attribute, Schema
from tf.types import String
from tf.utils import Diagnostics

from hubserve.errors import HubserveError
from hubserve.sdk.client import Client

FULL_NAME = "registry.terraform.io/hubserve/hubserve"  # `source = "hubserve/hubserve"` in required_providers


class HubserveProvider(Provider):
    """One hubserve server, reached at ``url`` with ``token`` (or $HUBSERVE_URL and $HUBSERVE_TOKEN)."""

    def __init__(self) -> None:
        self._client: Client | None = None
        self._url: str | None = None
        self._token: str | None = None

    def get_model_prefix(self) -> str:
        return "hubserve_"

    def full_name(self) -> str:
        return FULL_NAME

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(
            attributes=[
                Attribute(
                    "url",
                    String(),
                    optional=True,
                    description="The server, such as http://127.0.0.1:8080 (default: $HUBSERVE_URL, then a local server).",
                ),
                Attribute(
                    "token",
                    String(),
                    optional=True,
                    sensitive=True,
                    description="An API token with the admin scope (default: $HUBSERVE_TOKEN).",
                ),
            ],
        )

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        url = config.get("url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            diags.add_error("url must start with http:// or https://", f"got {url!r}", path=["url"])

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        self._url = _text(config.get("url")) or os.environ.get("HUBSERVE_URL")
        self._token = _text(config.get("token")) or os.environ.get("HUBSERVE_TOKEN")

    def client(self) -> Client:
        """The SDK client, made on first use (the plugin protocol configures before any call that needs it)."""
        if self._client is None:
            self._client = Client(self._url, self._token)
        return self._client

    def get_resources(self) -> list[type[Resource]]:
        from hubserve.terraform.endpoint import EndpointResource
        from hubserve.terraform.registry import ModelVersionResource
        from hubserve.terraform.token import TokenResource

        return [EndpointResource, ModelVersionResource, TokenResource]

    def get_data_sources(self) -> list[type[DataSource]]:
        from hubserve.terraform.endpoint import EndpointData, EndpointsData

        return [EndpointData, EndpointsData]


class ProviderBound:
    """A resource or data source: ``tf`` makes each with the provider, whose client it calls."""

    def __init__(self, provider: HubserveProvider) -> None:
        self.provider = provider


def said(error: HubserveError) -> str:
    """A server error as a diagnostic's detail: its status, type and message (which says what to do)."""
    return f"{error.status} {error.type}: {error.message}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
