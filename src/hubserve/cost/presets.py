"""Built-in scenarios: the SageMaker seed's five models (its latency table), for Figure 1.

Each latency is the table's model latency p99 plus overhead latency p99, the sum the seed
prices (DistilBERT: 243 ms + 43 ms = 286 ms), at the memory size it was measured with.
"""

from __future__ import annotations

from decimal import Decimal

from hubserve.cost.model import Scenario

SEED_MODELS: tuple[Scenario, ...] = (
    Scenario("distilbert-base-uncased-finetuned-sst-2-english", Decimal(243 + 43), 4096),
    Scenario("xlm-roberta-large-finetuned-conll03-english", Decimal(1608 + 46), 5120),
    Scenario("deepset/roberta-base-squad2", Decimal(468 + 31), 5120),
    Scenario("google/pegasus-xsum", Decimal(32516 + 97), 6144),
    Scenario("sshleifer/distilbart-cnn-12-6", Decimal(18669 + 53), 6144),
)

PRESETS: dict[str, tuple[Scenario, ...]] = {"seed": SEED_MODELS}
