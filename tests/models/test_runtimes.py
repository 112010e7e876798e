"""Runtimes: onnx and onnx-int8 answer like torch, exports are cached and written atomically,
fallbacks say why, auto times and remembers its choice.

Tolerances (on the tiny random-weight models; measured maxima in brackets):

- ``onnx`` (float32 graph): every string equal (labels, words, answers, in the same order)
  and every number within ``FP32_ATOL`` = 1e-4 of torch's [6e-7 on hidden states, 6e-8 on
  probabilities]. The graph computes what torch computes; only summation order differs.
- ``onnx-int8``: scores and probabilities within ``INT8_SCORE_ATOL`` = 0.01 [3e-3], raw vectors
  (features, embeddings) within ``INT8_VALUE_ATOL`` = 0.05 [0.03 on values up to 3.8]. Labels
  must be equal wherever torch's top-two margin exceeds ``2 * INT8_SCORE_ATOL``: random tiny
  models are nearly uniform (fill-mask margins of 1e-7), where int8's rounding may pick
  another label without anything being wrong; above the margin a flip would be a bug.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers

from hubserve.models import onnx_export, runtimes
from hubserve.models.loading import load_model
from hubserve.models.onnx_runtime import OnnxModel, open_session

FP32_ATOL = 1e-4
INT8_SCORE_ATOL = 0.01
INT8_VALUE_ATOL = 0.05

# task -> (tiny model folder key, Auto class the exporter uses, a request body)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "text-classification": (
        "text-classification", "AutoModelForSequenceClassification",
        {"inputs": ["I love this movie", "It was dull"], "parameters": {"top_k": None}},
    ),
    "token-classification": (
        "token-classification", "AutoModelForTokenClassification",
        {"inputs": "My name is Wolfgang and I live in Berlin", "parameters": {"ignore_labels": []}},
    ),
    "fill-mask": (  # targets: a random model's top-5 of 30k tokens are near-ties
        "fill-mask", "AutoModelForMaskedLM",
        {"inputs": "Paris is the [MASK] of France.", "parameters": {"targets": ["capital", "city", "heart"]}},
    ),
    "feature-extraction": ("feature-extraction", "AutoModel", {"inputs": ["hello world", "a longer sentence here"]}),
    "zero-shot-classification": (
        "zero-shot-classification", "AutoModelForSequenceClassification",
        {"inputs": "I love travelling", "parameters": {"candidate_labels": ["travel", "cooking", "sport"]}},
    ),
    "question-answering": (
        "question-answering", "AutoModelForQuestionAnswering",
        {"inputs": {"question": "Where do I live?", "context": "My name is Wolfgang and I live in Berlin."},
         "parameters": {"top_k": 3}},
    ),
    "sentence-embeddings": ("sentence-transformers", "AutoModel", {"inputs": ["hello world", "a cat sat"]}),
    "sentence-similarity": (
        "sentence-transformers", "AutoModel",
        {"inputs": {"source_sentence": "A man is eating.", "sentences": ["A man eats.", "It rains."]}},
    ),
}  # fmt: skip
EXPORTED = sorted({(folder, auto_class) for folder, auto_class, _ in CASES.values()})


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    """One runtime cache for the module, both variants of every model built once up front.

    The text-classification model is exported as replicas do, in a child process; the others
    in this one, which saves the child's imports (seconds each) and exports the same bytes.
    """
    folder = tmp_path_factory.mktemp("runtimes")
    for key, auto_class in EXPORTED:
        onnx_export.ISOLATED = key == "text-classification"
        try:
            built = onnx_export.ensure_artifacts(tiny_models[key], auto_class, onnx_export.VARIANTS, folder)
        finally:
            onnx_export.ISOLATED = True
        assert all(isinstance(a, onnx_export.Artifact) and not a.cached for a in built.values()), built
    return folder


# -- comparing answers -------------------------------------------------------------------

def assert_same(expected: Any, got: Any, atol: float, where: str = "answer") -> None:
    """Equal structure and strings; numbers within ``atol``."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), f"{where}: keys {got} vs {expected}"
        for key in expected:
            assert_same(expected[key], got[key], atol, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: {got} vs {expected}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_same(e, g, atol, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert abs(got - expected) <= atol, f"{where}: {got} vs torch {expected} (atol {atol})"
    else:
        assert got == expected, f"{where}: {got!r} vs torch {expected!r}"


def assert_scores_close(expected: dict[str, float], got: dict[str, float], where: str) -> None:
    """int8: each label's score within INT8_SCORE_ATOL; the top label equal when torch's margin is clear."""
    assert set(got) == set(expected), f"{where}: labels {sorted(got)} vs {sorted(expected)}"
    for label, score in expected.items():
        assert abs(got[label] - score) <= INT8_SCORE_ATOL, f"{where}: {label} {got[label]} vs torch {score}"
    ranked = sorted(expected.values(), reverse=True)
    if len(ranked) > 1 and ranked[0] - ranked[1] > 2 * INT8_SCORE_ATOL:
        assert max(got, key=got.__getitem__) == max(expected, key=expected.__getitem__), where


def assert_int8_close(task: str, expected: Any, got: Any) -> None:
    if task == "text-classification":
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_scores_close({x["label"]: x["score"] for x in e}, {x["label"]: x["score"] for x in g}, f"input {i}")
    elif task == "zero-shot-classification":
        assert_scores_close(dict(zip(expected["labels"], expected["scores"], strict=True)),
                            dict(zip(got["labels"], got["scores"], strict=True)), task)  # fmt: skip
    elif task == "fill-mask":
        assert_scores_close({x["token_str"]: x["score"] for x in expected},
                            {x["token_str"]: x["score"] for x in got}, task)  # fmt: skip
    elif task == "token-classification":
        assert [(x["index"], x["word"], x["start"], x["end"]) for x in got] == [
            (x["index"], x["word"], x["start"], x["end"]) for x in expected
        ]
        for e, g in zip(expected, got, strict=True):
            if e["entity"] == g["entity"]:  # one label per token is shown: margins are not known here
                assert abs(e["score"] - g["score"]) <= INT8_SCORE_ATOL, (e, g)
    elif task == "question-answering":
        assert_scores_close({f"{x['start']}:{x['end']}": x["score"] for x in expected if x["answer"]},
                            {f"{x['start']}:{x['end']}": x["score"] for x in got if x["answer"]}, task)  # fmt: skip
    elif task == "sentence-similarity":
        assert_same(expected, got, INT8_SCORE_ATOL)
    else:  # feature-extraction, sentence-embeddings: raw vectors
        assert_same(expected, got, INT8_VALUE_ATOL)


# -- every exported task answers like torch -------------------------------------------------

@pytest.mark.parametrize("task", sorted(CASES))
def test_onnx_answers_like_torch(task: str, tiny_models: dict[str, Path], cache: Path) -> None:
    folder, _, body = CASES[task]
    expected = load_model(tiny_models[folder], task).predict(body)
    model = load_model(tiny_models[folder], task, runtime="onnx", cache_dir=cache)
    assert model.runtime_info["chosen"] == "onnx", model.runtime_info
    assert_same(expected, model.predict(body), FP32_ATOL)


@pytest.mark.parametrize("task", sorted(CASES))
def test_onnx_int8_answers_close_to_torch(task: str, tiny_models: dict[str, Path], cache: Path) -> None:
    folder, _, body = CASES[task]
    expected = load_model(tiny_models[folder], task).predict(body)
    model = load_model(tiny_models[folder], task, runtime="onnx-int8", cache_dir=cache)
    assert model.runtime_info["chosen"] == "onnx-int8", model.runtime_info
    assert_int8_close(task, expected, model.predict(body))


@pytest.mark.parametrize("key, auto_class", [pair for pair in EXPORTED if pair[1] != "AutoModel"])
def test_int8_labels_agree_where_torch_is_sure(
    key: str, auto_class: str, tiny_models: dict[str, Path], cache: Path
) -> None:
    """Model outputs of every logits head: probabilities close, arg-max equal above the margin."""
    folder = tiny_models[key]
    torch_model = getattr(transformers, auto_class).from_pretrained(str(folder)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    inputs = tokenizer(["My name is Wolfgang and I live in Berlin", "I love it", "Paris is the [MASK] of France."],
                       padding=True, return_tensors="pt")  # fmt: skip
    artifact = onnx_export.cached_artifact(onnx_export.key_dir(folder, auto_class, cache), "onnx-int8")
    assert artifact is not None
    int8 = OnnxModel.wrap(open_session(artifact.path, 1), torch_model.config, artifact.meta, "onnx-int8")
    with torch.inference_mode():
        expected, got = torch_model(**inputs), int8(**inputs)
    for name in artifact.meta["outputs"]:
        p, q = expected[name].softmax(-1), got[name].softmax(-1)
        assert float((p - q).abs().max()) <= INT8_SCORE_ATOL, name
        top2 = p.topk(2, dim=-1).values
        sure = (top2[..., 0] - top2[..., 1]) > 2 * INT8_SCORE_ATOL
        assert bool((p.argmax(-1) == q.argmax(-1))[sure].all()), name


def test_onnx_model_wears_the_transformers_interface(tiny_models: dict[str, Path], cache: Path) -> None:
    model = load_model(tiny_models["text-classification"], "text-classification", runtime="onnx", cache_dir=cache)
    onnx_model = model.predictor.pipe.model  # type: ignore[attr-defined]
    assert isinstance(onnx_model, OnnxModel)
    assert type(onnx_model).__name__ == "BertForSequenceClassification"  # what pipelines check
    assert not onnx_model.can_generate() and onnx_model.device == torch.device("cpu")
    assert onnx_model.config.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    output = onnx_model(input_ids=torch.tensor([[101, 7592, 102]]))  # no mask, no token types: filled in
    assert type(output).__name__ == "SequenceClassifierOutput" and output.logits.shape == (1, 2)


# -- runtime_info ------------------------------------------------------------------------------

def test_runtime_info_shapes(tiny_models: dict[str, Path], cache: Path) -> None:
    folder = tiny_models["text-classification"]
    assert load_model(folder, "text-classification").runtime_info == {"requested": "torch", "chosen": "torch"}
    info = load_model(folder, "text-classification", runtime="onnx-int8", cache_dir=cache).runtime_info
    assert info["requested"] == info["chosen"] == "onnx-int8"
    assert info["cache"] == "hit" and info["session_load_ms"] >= 0
    assert "fallback_reason" not in info and "timings_ms" not in info
    json.dumps(info)  # the replica writes it to its info file as JSON


# -- the cache -----------------------------------------------------------------------------

def test_export_once_then_reuse_it(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas starting together export once (the lock); a later start re-exports and re-hashes nothing."""
    exports = []
    real_export = onnx_export._export

    def counting(*args: Any) -> Any:
        exports.append(threading.get_ident())
        return real_export(*args)

    monkeypatch.setattr(onnx_export, "ISOLATED", False)  # export in this process, where it is counted
    monkeypatch.setattr(onnx_export, "_export", counting)
    folder = tiny_models["text-classification"]
    results: list[Any] = []

    def start() -> None:
        built = onnx_export.ensure_artifacts(folder, "AutoModelForSequenceClassification", ("onnx",), tmp_path)
        results.append(built["onnx"])

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(exports) == 1  # the second waited on the lock, then found the first one's export
    assert sorted(a.cached for a in results) == [False, True]
    graph = results[0].path
    assert results[1].path == graph and graph.exists()
    written = graph.stat().st_mtime_ns

    real_sha256 = onnx_export.hashlib.sha256

    def sha256(*data: bytes) -> Any:
        assert data, "the weights were hashed again; the digest memo should have answered"
        return real_sha256(*data)

    monkeypatch.setattr(onnx_export.hashlib, "sha256", sha256)
    model = load_model(folder, "text-classification", runtime="onnx", cache_dir=tmp_path)
    assert model.runtime_info["cache"] == "hit" and len(exports) == 1
    assert graph.stat().st_mtime_ns == written
    assert model.predict({"inputs": "hi"})[0]["label"] in ("NEGATIVE", "POSITIVE")


def test_digest_follows_content_not_path(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    cache_dir = tmp_path / "cache"
    original = tiny_models["text-classification"]
    copy = Path(shutil.copytree(original, tmp_path / "copy"))
    digest = onnx_export.model_digest(original, cache_dir)
    assert onnx_export.model_digest(copy, cache_dir) == digest  # another folder, same bytes: same export
    os.utime(copy / "config.json", ns=(1, 1))
    assert onnx_export.model_digest(copy, cache_dir) == digest  # stat changed: hashed again, same digest
    config = json.loads((copy / "config.json").read_text())
    config["id2label"] = {"0": "BAD", "1": "GOOD"}
    (copy / "config.json").write_text(json.dumps(config))
    assert onnx_export.model_digest(copy, cache_dir) != digest
    key = onnx_export.key_dir(copy, "AutoModelForSequenceClassification", cache_dir).name
    assert key.startswith("sequence-classification-")


def test_a_failed_build_leaves_no_partial_artifact(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_written(model: Any, raw: Path, dst: Path) -> dict[str, Any]:
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(b"half a graph")
        raise OSError("disk full")

    monkeypatch.setattr(onnx_export, "ISOLATED", False)
    monkeypatch.setattr(onnx_export, "_build_int8", half_written)
    folder = tiny_models["text-classification"]
    model = load_model(folder, "text-classification", runtime="onnx-int8", cache_dir=tmp_path)
    info = model.runtime_info
    assert info["chosen"] == "torch" and "onnx-int8 build failed: OSError: disk full" in info["fallback_reason"]
    (key,) = [p for p in tmp_path.iterdir() if p.name != "digests"]
    assert not (key / "onnx-int8").exists()
    assert not [p for p in key.iterdir() if p.name.startswith(".build-")]
    assert json.loads((key / "onnx-int8.failed.json").read_text())["reason"] == info["fallback_reason"]


def test_publish_keeps_the_winner(tmp_path: Path) -> None:
    final, mine = tmp_path / "onnx", tmp_path / ".build-x" / "onnx"
    final.mkdir()
    (final / "model.onnx").write_bytes(b"theirs")
    mine.mkdir(parents=True)
    (mine / "model.onnx").write_bytes(b"mine")
    onnx_export._publish(mine, final)
    assert (final / "model.onnx").read_bytes() == b"theirs" and not mine.exists()


def test_json_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "auto-threads1.json"
    onnx_export.write_json_atomic(target, {"chosen": "onnx"})
    onnx_export.write_json_atomic(target, {"chosen": "torch"})
    assert json.loads(target.read_text()) == {"chosen": "torch"}
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary files left


# -- fallbacks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["text-generation", "summarization", "translation", "text2text-generation"])
def test_generation_runs_on_torch_with_the_reason(task: str, tiny_models: dict[str, Path], tmp_path: Path) -> None:
    model = load_model(tiny_models[task], task, runtime="onnx", cache_dir=tmp_path)
    assert model.runtime_info == {
        "requested": "onnx",
        "chosen": "torch",
        "fallback_reason": "the ONNX exporter in hubserve covers encoder tasks; generation runs on torch",
    }
    assert model.predict({"inputs": "hello"})
    assert not any(tmp_path.iterdir())  # nothing exported


def test_unexportable_model_runs_on_torch_and_is_not_retried(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter raising (as it does for unsupported operators) means torch, with its message."""
    calls = []

    def refuses(model: Any, tokenizer: Any) -> Any:
        calls.append(1)
        raise torch.onnx.errors.OnnxExporterError("data-dependent control flow in forward\n(details)")

    monkeypatch.setattr(onnx_export, "ISOLATED", False)
    monkeypatch.setattr(onnx_export, "_export", refuses)
    folder = tiny_models["token-classification"]
    expected = load_model(folder, "token-classification").predict({"inputs": "Berlin"})
    for _ in range(2):
        model = load_model(folder, "token-classification", runtime="auto", cache_dir=tmp_path)
        info = model.runtime_info
        assert info["chosen"] == "torch"
        reason = "ONNX export failed: OnnxExporterError: data-dependent control flow in forward"  # its first line
        assert info["fallback_reason"] == reason
        assert set(info["rejected"]) == {"onnx", "onnx-int8"}
        assert model.predict({"inputs": "Berlin"}) == expected
    assert len(calls) == 1  # the failure is cached; the second replica does not try again


def test_an_exporter_crash_is_a_fallback_reason(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export runs in a child process: its death (here SIGKILL, as the OOM killer sends) is not the replica's."""
    import sys

    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    monkeypatch.setattr(onnx_export, "_child_command", lambda *args: crash)
    folder = tiny_models["fill-mask"]
    model = load_model(folder, "fill-mask", runtime="onnx", cache_dir=tmp_path)
    assert model.runtime_info["chosen"] == "torch"
    assert model.runtime_info["fallback_reason"] == "the ONNX exporter process was killed by SIGKILL (out of memory?)"
    assert model.predict({"inputs": "Paris is the [MASK] of France."})


def test_an_unusable_cache_is_a_fallback_reason(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    not_a_folder = tmp_path / "runtimes"
    not_a_folder.write_text("a file where the cache folder should be")
    model = load_model(tiny_models["text-classification"], "text-classification", runtime="auto",
                       cache_dir=not_a_folder)  # fmt: skip
    assert model.runtime_info["chosen"] == "torch"
    assert model.runtime_info["fallback_reason"].startswith("runtime auto failed: ")
    assert model.predict({"inputs": "fine"})[0]["label"] in ("NEGATIVE", "POSITIVE")


def test_an_export_that_disagrees_with_torch_is_refused(tmp_path: Path) -> None:
    graph = tmp_path / "identity.onnx"
    _identity_graph(graph)
    check = onnx_export._Check(
        inputs={"input_ids": np.ones((2, 3), dtype=np.int64)},
        expected={"logits": np.zeros((2, 3), dtype=np.float32)},
    )
    with pytest.raises(onnx_export.ExportFailed, match="differs from torch"):
        onnx_export._check(graph, check, exact=True)
    assert onnx_export._check(graph, check, exact=False) == 1.0  # int8: sane is enough; agreement is auto's job


def _identity_graph(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)
    graph = helper.make_graph(
        [node], "identity",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence"])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_torch_only_reasons() -> None:
    reason = runtimes.torch_only_reason
    assert reason("torch", "text-generation", device="cpu", dtype="auto") is None
    assert reason("onnx", "text-classification", device="cpu", dtype="float32") is None
    assert "GPU endpoints run torch" in str(reason("onnx-int8", "text-classification", device="cuda", dtype="auto"))
    assert "dtype float16 runs on torch" in str(reason("auto", "fill-mask", device="cpu", dtype="float16"))
    assert reason("onnx", "summarization", device="cpu", dtype="auto") == runtimes.GENERATION_REASON
    with pytest.raises(ValueError, match="unknown runtime"):
        reason("tensorrt", "text-classification", device="cpu", dtype="auto")


def test_custom_handler_records_torch_with_the_reason(tiny_models: dict[str, Path], cache: Path) -> None:
    model = load_model(tiny_models["custom-handler"], "text-classification", custom_code=True, runtime="onnx",
                       cache_dir=cache)  # fmt: skip
    assert model.runtime_info["chosen"] == "torch"
    assert model.runtime_info["fallback_reason"].startswith("handler.py loads the model itself")
    # a SageMaker script without model_fn gets hubserve's standard predictor, so the runtime applies
    script = load_model(tiny_models["custom-inference"], "text-classification", custom_code=True, runtime="onnx",
                        cache_dir=cache)  # fmt: skip
    assert script.runtime_info["chosen"] == "onnx"


# -- auto --------------------------------------------------------------------------------------

def test_auto_times_the_runtimes_then_remembers(
    tiny_models: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tiny_models["text-classification"]
    first = load_model(folder, "text-classification", runtime="auto", cache_dir=cache, threads=1)
    info = first.runtime_info
    assert info["decision"] == "timed" and info["chosen"] in ("torch", "onnx", "onnx-int8")
    timings = info["timings_ms"]
    assert set(timings) | set(info.get("rejected", {})) == {"torch", "onnx", "onnx-int8"}
    assert all(ms > 0 for ms in timings.values())
    assert info["chosen"] == min(
        (name for name in timings if name not in info.get("rejected", {})), key=timings.__getitem__
    )
    decision = json.loads((onnx_export.key_dir(folder, "AutoModelForSequenceClassification", cache)
                           / "auto-threads1.json").read_text())  # fmt: skip
    assert decision["chosen"] == info["chosen"] and decision["timings_ms"] == timings

    def no_timing(*args: Any) -> float:
        raise AssertionError("timed again")

    monkeypatch.setattr(runtimes, "_median_ms", no_timing)
    second = load_model(folder, "text-classification", runtime="auto", cache_dir=cache, threads=1)
    assert second.runtime_info["decision"] == "cached"
    assert second.runtime_info["chosen"] == info["chosen"] and second.runtime_info["timings_ms"] == timings
    assert second.predict({"inputs": "I love this"})[0]["label"] in ("NEGATIVE", "POSITIVE")


def test_auto_leaves_out_a_runtime_that_disagrees(
    tiny_models: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_outputs = runtimes._outputs

    def int8_flips_labels(model: Any, inputs: Any) -> dict[str, np.ndarray]:
        outputs = real_outputs(model, inputs)
        if getattr(model, "runtime", None) == "onnx-int8":
            return {name: value[..., ::-1].copy() for name, value in outputs.items()}
        return outputs

    monkeypatch.setattr(runtimes, "_outputs", int8_flips_labels)
    speeds = {"onnx-int8": 1.0, "onnx": 2.0}  # and torch 3.0
    monkeypatch.setattr(runtimes, "_median_ms", lambda model, inputs: speeds.get(getattr(model, "runtime", ""), 3.0))
    folder = tiny_models["text-classification"]
    # threads=3: a decision file of its own, apart from the other auto test's
    info = load_model(folder, "text-classification", runtime="auto", cache_dir=cache, threads=3).runtime_info
    assert info["chosen"] == "onnx"  # int8 was fastest, but its labels differ from torch's
    assert "labels differ from torch's" in info["rejected"]["onnx-int8"]


def test_disagreement_rules() -> None:
    logits = np.array([[[2.0, 0.0], [0.0, 2.0]]])
    assert runtimes._disagreement({"logits": logits}, {"logits": logits + 0.1}, None) is None
    assert "1 of its logits labels differ" in str(
        runtimes._disagreement({"logits": logits}, {"logits": np.array([[[0.0, 2.0], [0.0, 2.0]]])}, None)
    )
    hidden = np.ones((1, 2, 4))
    mask = torch.tensor([[1, 0]])
    other = hidden.copy()
    other[0, 1] = -1.0  # only the padded token points elsewhere
    assert runtimes._disagreement({"last_hidden_state": hidden}, {"last_hidden_state": other}, mask) is None
    assert "cosine" in str(runtimes._disagreement({"last_hidden_state": hidden}, {"last_hidden_state": -hidden}, mask))
