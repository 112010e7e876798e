"""``python -m hubserve.loadtest``: the child process `hubserve bench` starts.

Arguments say how to send, stdin holds the body, stdout gets the raw ``Results`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict

from hubserve.loadtest.driver import HEADERS_ENV, Plan, run, use_uvloop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hubserve.loadtest", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("-n", "--requests", type=int, default=0)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--header", action="append", default=[], help="NAME: VALUE, repeatable")
    args = parser.parse_args(argv)
    headers = {**json.loads(os.environ.get(HEADERS_ENV) or "{}"), **dict(h.split(":", 1) for h in args.header)}
    plan = Plan(
        url=args.url, body=sys.stdin.buffer.read(), concurrency=args.concurrency, requests=args.requests,
        duration=args.duration, rate=args.rate, timeout=args.timeout,
        headers={k.strip(): v.strip() for k, v in headers.items()},
    )  # fmt: skip
    use_uvloop()
    results = asyncio.run(run(plan))
    sys.stdout.write(json.dumps(asdict(results)) + "\n")


if __name__ == "__main__":
    main()
