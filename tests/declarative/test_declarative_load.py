"""Spec files: every accepted shape, relative model folders, and errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubserve.declarative.load import SpecsError, load_specs, parse_specs

ONE = """
name: sst2
model: {source: org/model}
compute: {memory_mb: 4096}
"""


def test_single_spec_fills_defaults() -> None:
    [spec] = parse_specs(ONE)
    assert spec.name == "sst2" and spec.compute.type == "serverless" and spec.compute.memory_mb == 4096


def test_list_endpoints_key_and_documents_are_all_accepted() -> None:
    as_list = "- {name: a, model: {source: org/a}}\n- {name: b, model: {source: org/b}}\n"
    as_key = "endpoints:\n  - {name: a, model: {source: org/a}}\n  - {name: b, model: {source: org/b}}\n"
    as_docs = "name: a\nmodel: {source: org/a}\n---\nname: b\nmodel: {source: org/b}\n---\n"
    as_json = '{"endpoints": [{"name": "a", "model": {"source": "org/a"}}, {"name": "b", "model": {"source": "org/b"}}]}'
    for text in (as_list, as_key, as_docs, as_json):
        assert [spec.name for spec in parse_specs(text)] == ["a", "b"]


def test_errors_name_file_endpoint_and_field_all_at_once() -> None:
    text = """
endpoints:
  - {name: good, model: {source: org/a}}
  - {name: bad, model: {source: org/b}, compute: {memory_mb: 1000}}
  - {name: worse, model: {source: org/c}, compute: {type: dedicated, instance: huge}}
  - {name: typo, model: {source: org/d}, computer: {}}
"""
    with pytest.raises(SpecsError) as caught:
        parse_specs(text, source="endpoints.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("endpoints.yaml: endpoint 2 ('bad'): compute.memory_mb: memory_mb must be one of 1024")
    assert lines[1].startswith("endpoints.yaml: endpoint 3 ('worse'): compute.instance: unknown instance 'huge'")
    assert lines[2] == "endpoints.yaml: endpoint 4 ('typo'): computer: Extra inputs are not permitted"


def test_duplicate_names_empty_files_and_bad_yaml_are_refused() -> None:
    with pytest.raises(SpecsError, match="'a' is defined more than once"):
        parse_specs("- {name: a, model: {source: org/a}}\n- {name: a, model: {source: org/b}}\n")
    with pytest.raises(SpecsError, match="holds no endpoint specs"):
        parse_specs("# nothing\n")
    with pytest.raises(SpecsError, match="not valid YAML"):
        parse_specs("name: [unclosed\n")
    with pytest.raises(SpecsError, match="endpoint 1: must be a mapping"):
        parse_specs("- just a string\n")


def test_relative_model_folders_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    file = tmp_path / "specs" / "endpoints.yaml"
    file.write_text("- {name: a, model: {source: ./models/a}}\n- {name: b, model: {source: file://../b}}\n- {name: c, model: {source: org/c}}\n")
    a, b, c = load_specs(str(file))
    assert a.model.source == str(tmp_path / "specs" / "models" / "a")
    assert b.model.source == str(tmp_path / "b")
    assert c.model.source == "org/c"


def test_unreadable_file() -> None:
    with pytest.raises(SpecsError, match=r"cannot read /nonexistent/x.yaml"):
        load_specs("/nonexistent/x.yaml")
