"""What cutting a classifier's last layer to the first token saves, side by side in one process.

The same full-size classifier twice (random weights, the real BERT-uncased tokenizer, a
128-token input, 2 threads): as transformers builds it, and with ``first_token.prune_last_layer``
applied (what every hubserve runtime serves). Rounds alternate between the two so drift on a
noisy machine hits both; the table gives each one's median inputs/s per batch size, the ratio,
and the largest logit difference between them.

    flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/first_token.py [--models distilbert,roberta]
        [--batch-sizes 1,8] [--rounds 4] [--seconds 3] [--docs docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "distilbert": common.build_distilbert_sst2,
    "roberta": common.build_roberta_base_classifier,
}
THREADS = 2


def _rate(model: Any, batch: dict[str, Any], size: int, seconds: float) -> float:
    import torch

    with torch.inference_mode():
        model(**batch)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model(**batch)
            done += size
    return done / (time.perf_counter() - started)


def measure(name: str, folder: Path, sizes: list[int], rounds: int, seconds: float) -> list[list[str]]:
    """Rows of (model, batch, full inputs/s, pruned inputs/s, ratio, max |logit difference|)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hubserve.models.first_token import prune_last_layer

    torch.set_num_threads(THREADS)
    full = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    pruned = copy.deepcopy(full)
    reason = prune_last_layer(pruned)
    if reason is not None:
        raise SystemExit(f"{name}: not pruned: {reason}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = common.text_of_tokens(folder, 128)
    rows = []
    for size in sizes:
        batch = tokenizer([text] * size, return_tensors="pt")
        with torch.inference_mode():
            difference = (full(**batch).logits - pruned(**batch).logits).abs().max().item()
        rates: dict[str, list[float]] = {"full": [], "pruned": []}
        for _ in range(rounds):
            rates["full"].append(_rate(full, batch, size, seconds))
            rates["pruned"].append(_rate(pruned, batch, size, seconds))
        full_rate, pruned_rate = statistics.median(rates["full"]), statistics.median(rates["pruned"])
        rows.append([name, str(size), f"{full_rate:.2f}", f"{pruned_rate:.2f}", f"{pruned_rate / full_rate:.3f}",
                     f"{difference:.1e}"])  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="distilbert,roberta")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0, help="per round, per model variant")
    parser.add_argument("--docs", type=Path, help="rewrite the first-token section of this document")
    args = parser.parse_args()
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    header = ["model", "batch", "full inputs/s", "first-token inputs/s", "ratio", "max logit diff"]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            folder = BUILDERS[name](Path(tmp) / name)
            rows += measure(name, folder, sizes, args.rounds, args.seconds)
    table = common.markdown_table(header, rows, align=lambda i: "---" if i < 1 else "---:")
    print(table)
    if args.docs:
        intro = (f"```bash\nflock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/first_token.py --models {args.models} "
                 f"--batch-sizes {args.batch_sizes} --rounds {args.rounds}\n```\n\n")  # fmt: skip
        common.replace_section(args.docs, "first-token", intro + table, "## Classifiers: the last layer for the first token only")


if __name__ == "__main__":
    main()
