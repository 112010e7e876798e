"""The price list `hubserve cost` uses: the packaged defaults, merged with the user's file.

Prices are Decimals so the seed's arithmetic ($0.286 s x $0.000080/s = $0.00002288) comes out
exact, not as a float's nearest neighbour. Where the user's file comes from, in order: the
``--pricing`` flag, $HUBSERVE_PRICING, ``~/.hubserve/pricing.yaml``; it is merged over the
defaults key by key, so a file holding one price changes only that price.
"""

from __future__ import annotations

import os
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_VAR = "HUBSERVE_PRICING"
USER_FILE = Path("~/.hubserve/pricing.yaml")


class PricingError(Exception):
    """A pricing file that cannot be read or does not describe prices; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerlessPrices(_Strict):
    """Serverless compute by configured memory, billed per second of invocation time, plus data."""

    price_per_second_by_memory_mb: dict[int, Decimal] = Field(min_length=1)
    price_per_gb_processed: Decimal = Field(ge=0)

    @field_validator("price_per_second_by_memory_mb")
    @classmethod
    def _positive(cls, value: dict[int, Decimal]) -> dict[int, Decimal]:
        for memory_mb, price in value.items():
            if memory_mb <= 0 or price < 0:
                raise ValueError(f"memory sizes must be positive and prices not negative (got {memory_mb}: {price})")
        return dict(sorted(value.items()))


class InstancePrice(_Strict):
    """An always-on instance, priced by the hour or by the month (one of the two)."""

    per_hour: Decimal | None = Field(default=None, ge=0)
    per_month: Decimal | None = Field(default=None, ge=0)
    provider: str = "custom"
    vcpus: int | None = None
    memory_mb: int | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_price(self) -> InstancePrice:
        if (self.per_hour is None) == (self.per_month is None):
            raise ValueError("give exactly one of per_hour or per_month")
        return self


class Pricing(_Strict):
    """The whole price list."""

    currency: Literal["USD"] = "USD"
    hours_per_month: Decimal = Field(default=Decimal(730), gt=0)
    serverless: ServerlessPrices
    baseline_instance: str
    instances: dict[str, InstancePrice] = Field(min_length=1)
    source: str = Field(default="defaults", exclude=True, description="Where the user part came from.")

    @model_validator(mode="after")
    def _baseline_known(self) -> Pricing:
        if self.baseline_instance not in self.instances:
            raise ValueError(f"baseline_instance '{self.baseline_instance}' is not one of the instances ({', '.join(self.instances)})")
        return self

    def per_hour(self, instance: str) -> Decimal:
        price = self.instance(instance)
        return price.per_hour if price.per_hour is not None else price.per_month / self.hours_per_month  # type: ignore[operator]

    def per_month(self, instance: str) -> Decimal:
        price = self.instance(instance)
        return price.per_month if price.per_month is not None else price.per_hour * self.hours_per_month  # type: ignore[operator]

    def instance(self, name: str) -> InstancePrice:
        try:
            return self.instances[name]
        except KeyError:
            raise PricingError(f"no price for instance '{name}'; known: {', '.join(self.instances)}") from None

    def serverless_per_second(self, memory_mb: int) -> Decimal:
        table = self.serverless.price_per_second_by_memory_mb
        if memory_mb not in table:
            sizes = ", ".join(str(size) for size in table)
            raise PricingError(f"no serverless price for {memory_mb} MB; priced sizes: {sizes}")
        return table[memory_mb]


def default_document() -> dict[str, Any]:
    """The packaged price list as plain YAML data."""
    text = resources.files("hubserve.cost").joinpath("pricing.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def user_file(explicit: str | Path | None = None) -> Path | None:
    """The user's pricing file: the flag, then $HUBSERVE_PRICING, then ~/.hubserve/pricing.yaml if it exists."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    home = USER_FILE.expanduser()
    return home if home.is_file() else None


def load_pricing(path: str | Path | None = None) -> Pricing:
    """The defaults merged with the user's file (see ``user_file``); PricingError says what is wrong."""
    document = default_document()
    source = "defaults"
    found = user_file(path)
    if found is not None:
        document = merge(document, _read(found))
        source = str(found)
    try:
        return Pricing.model_validate({**document, "source": source})
    except ValidationError as exc:
        raise PricingError(f"{source}: not a valid price list:\n{_describe(exc)}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``override`` replaces ``base``'s."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PricingError(f"cannot read pricing file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise PricingError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PricingError(f"{path}: a pricing file must be a YAML mapping (got {type(data).__name__})")
    return data


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)
