"""Routing for multi-model endpoints: the replica that holds the model first, an idle one when its holders are hot,
and a model name only where the endpoint takes one. ``pick`` is a pure function of the replicas' channels."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from hubserve.errors import ValidationError
from hubserve.gateway.routing import HOT, check_target, pick
from hubserve.spec import EndpointState


@dataclass
class Channel:
    replica_id: str
    outstanding: int = 0
    holding: set[str] = field(default_factory=set)
    closed: bool = False


@dataclass
class Replica:
    channel: Channel | None


@dataclass
class Live:
    replicas: list[Replica]
    multi_model: bool = True
    name: str = "mme"
    state: EndpointState = EndpointState.RUNNING
    reason: str | None = None
    max_concurrency: int | None = None
    invocation_timeout_s: int | None = None
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


def _live(*channels: Channel) -> Live:
    return Live([Replica(channel) for channel in channels])


def test_a_replica_holding_the_model_is_preferred_over_a_less_busy_one() -> None:
    holder, idle = Channel("r1", outstanding=2, holding={"a"}), Channel("r2")
    assert pick(_live(holder, idle), "a") is holder  # type: ignore[arg-type]
    assert pick(_live(holder, idle), "b") is idle  # type: ignore[arg-type]
    assert pick(_live(holder, idle)) is idle  # type: ignore[arg-type]  # no model named: least outstanding


def test_the_least_outstanding_holder_wins_among_holders() -> None:
    busy, calm, other = Channel("r1", 3, {"a"}), Channel("r2", 1, {"a"}), Channel("r3", 2, {"a"})
    assert pick(_live(busy, calm, other), "a") is calm  # type: ignore[arg-type]


def test_a_hot_model_spills_to_an_idle_replica_that_then_loads_it_too() -> None:
    holder, idle = Channel("r1", HOT, {"a"}), Channel("r2")
    assert pick(_live(holder, idle), "a") is idle  # type: ignore[arg-type]
    assert pick(_live(Channel("r1", HOT - 1, {"a"}), idle), "a").replica_id == "r1"  # type: ignore[arg-type,union-attr]
    assert pick(_live(holder, Channel("r2", 1)), "a") is holder  # type: ignore[arg-type]  # nobody idle: stay


def test_closed_channels_are_never_picked() -> None:
    closed, open_ = Channel("r1", 0, {"a"}, closed=True), Channel("r2", 5)
    assert pick(_live(closed, open_), "a") is open_  # type: ignore[arg-type]
    assert pick(_live(closed), "a") is None  # type: ignore[arg-type]


def test_a_model_name_only_where_the_endpoint_takes_one() -> None:
    check_target(_live(), "a")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="serves many models"):
        check_target(_live(), "")  # type: ignore[arg-type]
    single = Live([], multi_model=False, name="one")
    check_target(single, "")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="serves one model"):
        check_target(single, "a")  # type: ignore[arg-type]
