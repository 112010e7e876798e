"""What each endpoint did: rolling one-minute windows for the API and CLI, Prometheus for scrapers.

A leaf package (imports nothing from hubserve but errors): the gateway's timing layer records each
answered invocation (sync, streamed, async and batch), control's sampler records gauges (replicas, concurrency, memory, CPU,
generative engines' sequences and tokens) and model setup times; streams add time to first token and
inter-token gaps as they end; `/v1/endpoints/{name}/metrics` and `/metrics` read them.
"""

from hubserve.metrics.registry import EndpointGauges, EngineLevels, Metrics, parse_window
from hubserve.metrics.window import Distribution, RollingWindow

__all__ = ["Distribution", "EndpointGauges", "EngineLevels", "Metrics", "RollingWindow", "parse_window"]
