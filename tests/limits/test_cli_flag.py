"""`endpoint create|update --invocation-timeout` sets the spec's invocation_timeout_s."""

from __future__ import annotations

from hubserve.cli.specs import SpecFlags, patch_from_flags, spec_from_flags


def test_the_flag_becomes_the_spec_field() -> None:
    assert patch_from_flags(SpecFlags(invocation_timeout_s=120)) == {"invocation_timeout_s": 120}
    spec = spec_from_flags("e", SpecFlags(model="/m", invocation_timeout_s=5))
    assert spec["invocation_timeout_s"] == 5
    assert "invocation_timeout_s" not in patch_from_flags(SpecFlags(memory_mb=1024))
