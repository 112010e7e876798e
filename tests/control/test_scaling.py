"""The scaling policy as pure functions: what each compute spec asks for under each traffic."""

from __future__ import annotations

import pytest

from hubserve.control.scaling import ScalePolicy, Stabiliser, policy_for, recommend
from hubserve.spec import DedicatedCompute, ServerlessCompute


def test_serverless_policy_follows_slots() -> None:
    policy = policy_for(ServerlessCompute(max_concurrency=10, provisioned_concurrency=5, idle_timeout_s=30), 4)
    assert policy == ScalePolicy(min_replicas=2, max_replicas=3, per_replica=4, max_concurrency=10, idle_to_zero_s=None)
    assert policy_for(ServerlessCompute(max_concurrency=1), 4).max_replicas == 1
    assert policy_for(ServerlessCompute(idle_timeout_s=7), 4).idle_to_zero_s == 7.0


def test_dedicated_policy_follows_target() -> None:
    policy = policy_for(DedicatedCompute(min_replicas=0, max_replicas=3, target_concurrency=2, scale_to_zero_after_s=9), 4)
    assert policy == ScalePolicy(min_replicas=0, max_replicas=3, per_replica=2, max_concurrency=None, idle_to_zero_s=9.0)
    assert policy_for(DedicatedCompute(min_replicas=1), 4).idle_to_zero_s is None


@pytest.mark.parametrize(
    ("in_flight", "idle_s", "expected"),
    [
        (0, 0.0, 1),  # recently used: one stays warm
        (0, 29.9, 1),
        (0, 30.0, 0),  # idle for the timeout: zero
        (1, 100.0, 1),
        (4, 0.0, 1),
        (5, 0.0, 2),
        (12, 0.0, 3),
        (40, 0.0, 3),  # capped by max_replicas
    ],
)
def test_recommend_serverless(in_flight: int, idle_s: float, expected: int) -> None:
    policy = policy_for(ServerlessCompute(max_concurrency=12, idle_timeout_s=30), 4)
    assert recommend(policy, in_flight, idle_s) == expected


def test_provisioned_concurrency_never_goes_to_zero() -> None:
    policy = policy_for(ServerlessCompute(max_concurrency=8, provisioned_concurrency=5), 4)
    assert recommend(policy, 0, 1e9) == 2


def test_stabiliser_scales_up_at_once_and_down_after_the_window() -> None:
    stabiliser = Stabiliser(window_s=10)
    assert stabiliser.desired(0.0, 3) == 3
    assert stabiliser.desired(5.0, 1) == 3  # still inside the window of the 3
    assert stabiliser.desired(10.5, 1) == 1
    assert stabiliser.desired(11.0, 4) == 4
    assert stabiliser.desired(12.0, 0) == 0  # zero only comes from the idle timeout, which is its own window
