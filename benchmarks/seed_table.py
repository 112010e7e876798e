"""The first seed's latency table (SageMaker Serverless Inference, Hugging Face models), on hubserve.

The seed measured five models on serverless endpoints of given memory sizes with a 128-token
payload and reported model latency and overhead latency (average and p99). This reproduces the
rows on this machine: each architecture at full size with random weights (configs written by
hand with the published sizes), the real BERT-uncased tokenizer (so every vocabulary is 30522,
XLM-RoBERTa's 250002 included: its embedding shrinks from 256M to 31M parameters, the 24 layers
are unchanged), serverless endpoints with the seed's memory sizes (hubserve's vCPUs follow
memory: 4096 MB -> 2, 5120/6144 MB -> 3, capped at this machine's cores), one endpoint at a time,
deleted before the next. Summarization generates a fixed 32 tokens greedily (min = max = 32), so
its model latency is not the seed's, whose models ran their own beam-search settings.

Figures are hubserve's own x-model-latency-ms / x-overhead-latency-ms headers over ``--requests``
sequential requests from loadgen.py, printed beside the seed's with the ratio hubserve / seed.

    .venv/bin/python benchmarks/seed_table.py [--requests 20] [--models distilbert,xlmr,roberta-qa,pegasus,distilbart]
        [--docs docs/benchmarks.md | --no-docs]

The table also goes into docs/benchmarks.md between ``<!-- seed:start -->`` and ``<!-- seed:end -->``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import Stats

TOKENS = 128
SUMMARY_TOKENS = 32
CONLL_LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
QUESTION = "What is the movie about?"
BUSY_WARNING = 15.0  # % of all cores busy before a measurement: the figures are suspect
IDLE_WAIT_S = 60.0  # how long to wait for other processes to finish before measuring anyway


@dataclass(frozen=True)
class SeedRow:
    """One row of the seed's table and how to build its stand-in here."""

    key: str
    model_id: str
    task: str
    size: str  # as the seed prints it
    memory_mb: int
    model_avg: float
    model_p99: float
    overhead_avg: float
    overhead_p99: float
    build: str  # name of the builder function below


SEED_ROWS = [  # key, model id, task, size, memory MB, model avg, p99, overhead avg, p99 (ms), builder
    SeedRow("distilbert", "distilbert-base-uncased-finetuned-sst-2-english", "text-classification", "255 MB", 4096,
            220, 243, 17, 43, "build_distilbert"),
    SeedRow("xlmr", "xlm-roberta-large-finetuned-conll03-english", "token-classification", "2.09 GB", 5120,
            1494, 1608, 18, 46, "build_xlmr_large"),
    SeedRow("roberta-qa", "deepset/roberta-base-squad2", "question-answering", "473 MB", 5120,
            451, 468, 18, 31, "build_roberta_qa"),
    SeedRow("pegasus", "google/pegasus-xsum", "summarization", "2.12 GB", 6144,
            22501, 32516, 27, 97, "build_pegasus_xsum"),
    SeedRow("distilbart", "sshleifer/distilbart-cnn-12-6", "summarization", "1.14 GB", 6144,
            12683, 18669, 25, 53, "build_distilbart_cnn"),
]  # fmt: skip


# -- the stand-ins: published sizes, random weights, BERT-uncased vocabulary ---------------------------


def build_distilbert(dst: Path) -> Path:
    return common.build_distilbert_sst2(dst)


def build_xlmr_large(dst: Path) -> Path:
    """XLM-RoBERTa-large: hidden 1024, 24 layers, 16 heads, FFN 4096; vocabulary 30522, not 250002."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification

    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=0, bos_token_id=101, eos_token_id=102,
        num_labels=len(CONLL_LABELS), id2label=dict(enumerate(CONLL_LABELS)), label2id={label: i for i, label in enumerate(CONLL_LABELS)},
    )  # fmt: skip
    return common.save_with_tokenizer(XLMRobertaForTokenClassification(config), dst)


def build_roberta_qa(dst: Path) -> Path:
    """RoBERTa-base with a span head (deepset/roberta-base-squad2's shape)."""
    import torch
    from transformers import RobertaForQuestionAnswering

    torch.manual_seed(0)
    return common.save_with_tokenizer(RobertaForQuestionAnswering(common.roberta_base_config(num_labels=2)), dst)


def build_pegasus_xsum(dst: Path) -> Path:
    """Pegasus-large (XSum): d_model 1024, 16 encoder + 16 decoder layers, 16 heads, FFN 4096."""
    import torch
    from transformers import PegasusConfig, PegasusForConditionalGeneration

    torch.manual_seed(0)
    config = PegasusConfig(
        vocab_size=30522, d_model=1024, encoder_layers=16, decoder_layers=16, encoder_attention_heads=16,
        decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=512,
        pad_token_id=0, eos_token_id=102, decoder_start_token_id=0, forced_eos_token_id=102,
    )  # fmt: skip
    return common.save_with_tokenizer(PegasusForConditionalGeneration(config), dst)


def build_distilbart_cnn(dst: Path) -> Path:
    """DistilBART-CNN-12-6: d_model 1024, 12 encoder / 6 decoder layers, 16 heads, FFN 4096."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=30522, d_model=1024, encoder_layers=12, decoder_layers=6, encoder_attention_heads=16,
        decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=1024,
        pad_token_id=0, bos_token_id=101, eos_token_id=102, decoder_start_token_id=102, forced_eos_token_id=102,
    )  # fmt: skip
    return common.save_with_tokenizer(BartForConditionalGeneration(config), dst)


# -- the seed's payload: 128 tokens ---------------------------------------------------------------------


def payload(row: SeedRow, model_dir: Path) -> dict[str, Any]:
    """The request body for a row: 128 tokens of input, whatever the task's shape."""
    if row.task == "question-answering":
        return {"inputs": {"question": QUESTION, "context": qa_context(model_dir, TOKENS)}}
    body: dict[str, Any] = {"inputs": common.text_of_tokens(model_dir, TOKENS)}
    if row.task == "summarization":
        body["parameters"] = {"max_new_tokens": SUMMARY_TOKENS, "min_new_tokens": SUMMARY_TOKENS}
    return body


def qa_context(model_dir: Path, tokens: int) -> str:
    """A context that makes (question, context) exactly ``tokens`` ids long (or just over)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    words = common.text_of_tokens(model_dir, tokens * 2).split()
    context = ""
    for count in range(1, len(words) + 1):
        context = " ".join(words[:count])
        if len(tokenizer(QUESTION, context)["input_ids"]) >= tokens:
            break
    return context


def prepare(row: SeedRow, root: str) -> tuple[str, dict[str, Any], float]:
    """Build the stand-in and its body (in a child process); returns folder, body and weights MB."""
    model_dir = globals()[row.build](Path(root) / row.key)
    size_mb = sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) / 1e6
    return str(model_dir), payload(row, model_dir), size_mb


# -- measuring one row -------------------------------------------------------------------------------------


@dataclass
class Measured:
    row: SeedRow
    size_mb: float
    vcpus: int
    model: Stats
    overhead: Stats
    errors: int
    seconds: float
    busy_before: float  # % of all cores busy just before measuring: anything else running skews the row


def measure(url: str, row: SeedRow, tmp: Path, requests: int, warmup: int) -> Measured:
    started = time.monotonic()
    print(f"{row.key}: building ...", flush=True)
    model_dir, body, size_mb = common.in_child(prepare, row, str(tmp))
    body_file = common.write_body(tmp / f"{row.key}.json", body)
    spec = {"name": row.key, "model": {"source": model_dir, "task": row.task},
            "compute": {"type": "serverless", "memory_mb": row.memory_mb, "max_concurrency": 1}}  # fmt: skip
    print(f"{row.key}: deploying ({row.memory_mb} MB) and sending {requests} requests ...", flush=True)
    try:
        with common.endpoint(url, spec) as invoke_url:
            busy = common.wait_until_idle(BUSY_WARNING, IDLE_WAIT_S)
            result = common.run_loadgen(invoke_url, body_file, 1, requests=requests, warmup=warmup)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)  # gigabytes; the next model needs the disk and page cache
    from hubserve.spec import ServerlessCompute, vcpus_for

    vcpus = vcpus_for(ServerlessCompute(memory_mb=row.memory_mb), os.cpu_count() or 1)
    return Measured(row, size_mb, vcpus, Stats.of(result.model_ms), Stats.of(result.overhead_ms), result.errors,
                    time.monotonic() - started, busy)  # fmt: skip


# -- output ------------------------------------------------------------------------------------------------

HEADER = ["model (seed id)", "task", "size seed / here", "memory", "vCPUs", "model avg", "model p99", "overhead avg",
          "overhead p99", "seed model avg / p99", "seed overhead avg / p99", "model avg ratio", "overhead avg ratio", "errors"]  # fmt: skip


def cells(m: Measured) -> list[str]:
    r = m.row
    return [r.model_id, r.task, f"{r.size} / {m.size_mb:.0f} MB", f"{r.memory_mb} MB", str(m.vcpus),
            f"{m.model.mean:.1f}", f"{m.model.p99:.1f}", f"{m.overhead.mean:.2f}", f"{m.overhead.p99:.2f}",
            f"{r.model_avg:g} / {r.model_p99:g}", f"{r.overhead_avg:g} / {r.overhead_p99:g}",
            f"{m.model.mean / r.model_avg:.3f}", f"{m.overhead.mean / r.overhead_avg:.4f}", str(m.errors)]  # fmt: skip


def measure_all(rows: list[SeedRow], requests: int, warmup: int) -> tuple[list[Measured], list[str]]:
    """One ``hubserve serve``, one endpoint at a time; returns the rows measured and lines for the rest."""
    from hubserve.errors import HubserveError

    measured: list[Measured] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hubserve-seed-") as tmp_name:
        tmp = Path(tmp_name)
        process, url = common.start_server(tmp / "home", log=tmp / "hubserve.log")
        try:
            for row in rows:
                try:
                    measured.append(measure(url, row, tmp, requests, warmup))
                except HubserveError as exc:  # one model that cannot run must not cost the others
                    notes.append(f"{row.key}: not measured ({type(exc).__name__}: {exc})")
                    print(notes[-1], flush=True)
                    continue
                print(f"{row.key}: done in {measured[-1].seconds:.0f} s", flush=True)
        finally:
            common.stop_process(process)
    for m in measured:
        if m.busy_before > BUSY_WARNING:
            notes.append(f"warning: the machine was {m.busy_before:.0f} % busy just before measuring {m.row.key} (another process?)")
    return measured, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20, help="sequential requests per model (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="requests per model before measuring (default 2)")
    parser.add_argument("--models", default=",".join(r.key for r in SEED_ROWS))
    parser.add_argument("--docs", type=Path, default=common.REPO_DIR / "docs" / "benchmarks.md",
                        help="markdown file whose seed section is rewritten (default docs/benchmarks.md)")  # fmt: skip
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    wanted = [k.strip() for k in args.models.split(",") if k.strip()]
    rows = [r for r in SEED_ROWS if r.key in wanted]
    if len(rows) != len(wanted):
        parser.error(f"--models: choose from {', '.join(r.key for r in SEED_ROWS)}")

    started = time.monotonic()
    measured, notes = measure_all(rows, args.requests, args.warmup)
    caption = (f"{args.requests} sequential requests per model after {args.warmup} warm-up, {TOKENS}-token payload, ms; "
               f"summarization: {SUMMARY_TOKENS} new tokens, greedy; took {time.monotonic() - started:.0f} s")  # fmt: skip
    print(f"\nSeed table on this machine: {caption}\n")
    common.print_table(HEADER, [cells(m) for m in measured], left=2)
    for line in notes:
        print(line)
    if not args.no_docs and measured:
        common.replace_section(args.docs, "seed", docs_section(measured, notes, caption, args), HEADING)
        print(f"\nwrote the seed section of {args.docs}")


HEADING = "## The first seed's latency table on hubserve"


def docs_section(measured: list[Measured], notes: list[str], caption: str, args: argparse.Namespace) -> str:
    """The docs section: the command, the machine, the table beside the seed's figures."""
    command = "```bash\n.venv/bin/python benchmarks/seed_table.py"
    if args.requests != 20:
        command += f" --requests {args.requests}"
    command += "\n```"
    lines = [command, "", f"{common.machine_line()}; {caption}.", "",
             common.markdown_table(HEADER, [cells(m) for m in measured], align=lambda i: "---" if i < 2 else "---:")]  # fmt: skip
    if notes:
        lines += [""] + [f"- {line}" for line in notes]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
