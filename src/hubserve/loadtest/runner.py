"""Start the load generator in its own process and read its results back.

A separate process so the client never shares an interpreter (or a GIL) with the caller: the
CLI's imports and rendering cost the measurement nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hubserve.loadtest.driver import HEADERS_ENV, Plan, Results


class LoadTestError(Exception):
    """The load generator could not run (bad arguments, crashed); the message has its stderr."""


def run_in_child(plan: Plan) -> Results:
    """Run ``plan`` in ``python -m hubserve.loadtest`` and return its Results."""
    argv = [sys.executable, "-m", "hubserve.loadtest", "--url", plan.url, "-n", str(plan.requests),
            "-c", str(plan.concurrency), "--duration", str(plan.duration), "--rate", str(plan.rate),
            "--timeout", str(plan.timeout)]  # fmt: skip
    # headers go through the environment, not argv: an Authorization header must not show in `ps`
    # hard stop: the run's own bound, then every in-flight request's timeout, then a margin
    limit = plan.duration + plan.timeout + 30 if plan.duration > 0 else None
    env = {**os.environ, "PYTHONUNBUFFERED": "1", HEADERS_ENV: json.dumps(plan.headers)}
    try:
        done = subprocess.run(argv, input=plan.body, capture_output=True, timeout=limit, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise LoadTestError(f"the load generator did not finish within {limit or 0:.0f}s") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", errors="replace").strip().splitlines()[-5:]
        raise LoadTestError(f"the load generator failed (exit {done.returncode}): " + " | ".join(tail))
    return Results(**json.loads(done.stdout))
