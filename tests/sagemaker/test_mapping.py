"""SageMaker shapes -> hubserve specs, runtime error codes, CSV, and safe archive extraction."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import botocore.session
import pytest

from hubserve import errors
from hubserve.api.sagemaker import artifacts, shapes
from hubserve.api.sagemaker.errors import SageMakerApiError
from hubserve.api.sagemaker.invocations import code_and_status
from hubserve.spec import EndpointSpec
from hubserve.worker.csv_codec import decode_csv, encode_csv, wants_csv


@pytest.mark.parametrize(
    ("instance_type", "size"),
    [("ml.t2.medium", "cpu-medium"), ("ml.m5.large", "cpu-medium"), ("ml.c5.xlarge", "cpu-large"),
     ("ml.m5.4xlarge", "cpu-xlarge"), ("ml.g5.xlarge", "gpu-small"), ("ml.g4dn.2xlarge", "gpu-medium"),
     ("ml.p4d.24xlarge", "gpu-large")],
)  # fmt: skip
def test_instance_types_map_onto_dedicated_sizes(instance_type: str, size: str) -> None:
    assert shapes.instance_size(instance_type) == size


def test_inferentia_and_nonsense_are_refused() -> None:
    for bad in ("ml.inf2.xlarge", "m5.large"):
        with pytest.raises(SageMakerApiError):
            shapes.instance_size(bad)


def test_a_config_and_model_make_a_valid_spec() -> None:
    model = {"PrimaryContainer": {"Environment": {"HF_MODEL_ID": "org/model", "HF_TASK": "text-classification",
                                                  "MY_FLAG": "1", "SAGEMAKER_REGION": "x"}}}  # fmt: skip
    config = {
        "ProductionVariants": [{"VariantName": "v", "ModelName": "m",
                                "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10, "ProvisionedConcurrency": 1}}],
        "AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://b/out"},
                                 "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2}},
    }  # fmt: skip
    spec = EndpointSpec.model_validate(shapes.endpoint_spec("ep", config, model, custom_code=False))
    assert spec.model.source == "org/model" and spec.model.task == "text-classification"
    assert spec.env == {"MY_FLAG": "1"}
    assert (spec.compute.type, spec.compute.memory_mb, spec.compute.max_concurrency) == ("serverless", 4096, 10)
    assert spec.async_inference is not None and spec.async_inference.output_location == "s3://b/out"
    dedicated = {"ProductionVariants": [{"VariantName": "v", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 2}]}
    spec = EndpointSpec.model_validate(shapes.endpoint_spec("ep", dedicated, model, custom_code=False))
    assert (spec.compute.instance, spec.compute.min_replicas, spec.compute.max_replicas) == ("cpu-large", 2, 2)


def test_runtime_codes_are_shapes_of_botocores_model() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    cases = {
        errors.ValidationError("x"): ("ValidationError", 400),
        errors.ModelError("x"): ("ModelError", 424),
        errors.ReplicaCrashed("x"): ("ModelError", 424),
        errors.ModelNotReady("x"): ("ModelNotReadyException", 429),
        errors.ColdStartTimeout("x"): ("ServiceUnavailable", 503),
        errors.HubserveError("x"): ("InternalFailure", 500),
    }
    for error, expected in cases.items():
        code, status = code_and_status(error)
        assert (code, status) == expected
        assert model.shape_for(code).metadata["error"]["httpStatusCode"] == status


def test_csv_in_and_out_as_the_hf_toolkit() -> None:
    assert decode_csv(b"inputs\nfirst\n\"second, with comma\"\n") == {"inputs": ["first", "second, with comma"]}
    assert decode_csv(b"question,context\nwho?,me\n") == {"inputs": [{"question": "who?", "context": "me"}]}
    with pytest.raises(errors.ValidationError, match="header"):
        decode_csv(b"just text\n")
    assert encode_csv([{"label": "A", "score": 0.5}]).decode().splitlines() == ["label,score", "A,0.5"]
    assert encode_csv([[{"label": "A", "score": 1}], [{"label": "B", "score": 0}]]).decode().count("\n") == 3
    with pytest.raises(errors.ValidationError):
        encode_csv([[0.1, 0.2]])
    assert wants_csv("text/csv") and not wants_csv("application/json, text/csv")


def _tar(path: Path, members: dict[str, bytes], link: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("link")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return path


def test_archives_extract_inside_their_folder_only(tmp_path: Path) -> None:
    good = _tar(tmp_path / "good.tar.gz", {"config.json": b"{}", "code/inference.py": b""})
    target = tmp_path / "out"
    target.mkdir()
    artifacts.extract(good, target)
    assert (target / "config.json").exists() and (target / "code" / "inference.py").exists()
    for name, archive in [
        ("dotdot", _tar(tmp_path / "a.tar.gz", {"../escaped": b"x"})),
        ("absolute", _tar(tmp_path / "b.tar.gz", {"/tmp/escaped-hubserve": b"x"})),
        ("symlink", _tar(tmp_path / "c.tar.gz", {}, link="/etc/passwd")),
    ]:
        fresh = tmp_path / name
        fresh.mkdir()
        with pytest.raises(SageMakerApiError, match="unsafe"):
            artifacts.extract(archive, fresh)
        assert list(fresh.iterdir()) == []
    assert not (tmp_path / "escaped").exists()


def test_a_wrapped_archive_uses_its_single_folder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert artifacts.model_root(tmp_path) == tmp_path / "model"
