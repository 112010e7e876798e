"""`hubserve batch ...`: run batch transform jobs and follow, list, describe, stop and resume them.

Each command is a few lines over ``hubserve.sdk.Client``; the job runs in the server, so a
``batch run`` that is interrupted (Ctrl-C) stops following, not the job.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from hubserve.cli import output
from hubserve.cli.common import (
    JsonOption,
    TokenOption,
    UrlOption,
    cli_errors,
    fail,
    make_client,
    want_json,
)
from hubserve.sdk.client import Client

app = typer.Typer(name="batch", help="Batch transform: run a model over a dataset, offline.", no_args_is_help=True)

JobArg = Annotated[str, typer.Argument(help="Batch job id (batch-...).", show_default=False)]
STATUS_STYLES = {"running": "yellow", "stopping": "yellow", "stopped": "dim", "completed": "green", "failed": "bold red"}


@app.command("run")
@cli_errors
def run(
    ctx: typer.Context,
    input_: Annotated[str, typer.Option("--input", help="A file, a folder of files, or an s3:// prefix.", show_default=False)],
    output_: Annotated[str, typer.Option("--output", help="Folder or s3:// prefix for <file>.out results.", show_default=False)],
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Run this endpoint's model.", show_default=False)] = None,
    model: Annotated[str | None, typer.Option("--model", help="Or a model folder / Hub repo id.", show_default=False)] = None,
    task: Annotated[str | None, typer.Option("--task", help="With --model: its task.", show_default=False)] = None,
    runtime: Annotated[
        str | None, typer.Option("--runtime", help="With --model: torch, onnx, onnx-int8 or auto.", show_default=False)
    ] = None,
    instance: Annotated[
        str | None, typer.Option("--instance", help="With --model: replica size, e.g. cpu-small (default cpu-medium).", show_default=False)
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Records per replica batch (default: the runtime's).", show_default=False)
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Chunks of --batch-size records in flight.")] = 2,
    split_type: Annotated[str, typer.Option("--split-type", help="line (each line a record) or none (each file one).")] = "line",
    content_type: Annotated[
        str | None,
        typer.Option("--content-type", help="application/jsonlines, text/csv or text/plain (default: by file suffix).", show_default=False),
    ] = None,
    join_source: Annotated[str, typer.Option("--join-source", help='none, or input: write {"input", "output"} lines.')] = "none",
    max_failures: Annotated[int, typer.Option("--max-failures", help="Failed records tolerated before the job fails.")] = 0,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the job and return at once.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Start a batch transform job and follow it with a progress bar until it ends."""
    request = {
        "endpoint": endpoint, "model": _local_path(model), "task": task, "runtime": runtime,
        "instance": instance, "input": _location(input_), "output": _location(output_), "batch_size": batch_size,
        "concurrency": concurrency, "split_type": split_type, "content_type": content_type,
        "join_source": join_source, "max_failures": max_failures,
    }  # fmt: skip
    with make_client(ctx, url, token) as client:
        job = client.create_batch_job(request)
        if no_wait:
            _show(ctx, json_, job)
            return
        job = follow(client, job)
    _finish(ctx, json_, job)


@app.command("list")
@cli_errors
def list_(ctx: typer.Context, url: UrlOption = None, token: TokenOption = None, json_: JsonOption = False) -> None:
    """List batch jobs: id, status, records done/total, failed, records/s, output."""
    with make_client(ctx, url, token) as client:
        jobs = client.list_batch_jobs()
    if want_json(ctx, json_):
        output.print_json(jobs)
    elif not jobs:
        typer.echo("No batch jobs yet. Start one with `hubserve batch run --model PATH --input DATA --output DIR`.")
    else:
        output.console().print(_table(jobs))


@app.command("describe")
@cli_errors
def describe(ctx: typer.Context, job_id: JobArg, url: UrlOption = None, token: TokenOption = None, json_: JsonOption = False) -> None:
    """Show one job: status, reason, progress, records/s, ETA, where its results go."""
    with make_client(ctx, url, token) as client:
        job = client.get_batch_job(job_id)
    _show(ctx, json_, job)


@app.command("stop")
@cli_errors
def stop(ctx: typer.Context, job_id: JobArg, url: UrlOption = None, token: TokenOption = None, json_: JsonOption = False) -> None:
    """Stop a job after the chunks in flight; `hubserve batch start` resumes it from there."""
    with make_client(ctx, url, token) as client:
        job = client.stop_batch_job(job_id)
    _show_status(ctx, json_, job)


@app.command("start")
@cli_errors
def start(
    ctx: typer.Context,
    job_id: JobArg,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")] = True,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Resume a stopped (or failed) job from its last committed chunk."""
    with make_client(ctx, url, token) as client:
        job = client.start_batch_job(job_id)
        if not wait:
            _show_status(ctx, json_, job)
            return
        job = follow(client, job)
    _finish(ctx, json_, job)


def follow(client: Client, job: dict[str, Any]) -> dict[str, Any]:
    """Poll the job with a progress bar on stderr (records, records/s, ETA) until it ends."""
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
        TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[eta]}"), TimeElapsedColumn(),
    )  # fmt: skip
    job_id = job["id"]
    with Progress(*columns, console=output.console(stderr=True)) as progress:
        task = progress.add_task(job_id, total=None, rate="", eta="")

        def show(current: dict[str, Any]) -> None:
            _update(progress, task, current)

        try:
            return client.wait_batch_job(job_id, on_poll=show)
        except KeyboardInterrupt:
            raise fail(f"stopped following; job {job_id} goes on in the server (`hubserve batch describe {job_id}`)") from None


def _update(progress: Progress, task: TaskID, job: dict[str, Any]) -> None:
    records = job.get("records") or {}
    rate, eta = job.get("records_per_s"), job.get("eta_s")
    failed = records.get("failed") or 0
    progress.update(
        task,
        total=records.get("total"),
        completed=records.get("done") or 0,
        description=f"{job['id']} {job.get('status')}" + (f" ({failed} failed)" if failed else ""),
        rate=f"{rate:.1f} records/s" if rate else "- records/s",
        eta=f"ETA {eta:.0f}s" if eta is not None else "",
    )


def _finish(ctx: typer.Context, json_: bool, job: dict[str, Any]) -> None:
    if want_json(ctx, json_):
        output.print_json(job)
    else:
        typer.echo(summary(job))
    if job.get("status") == "failed":
        raise typer.Exit(1)


def summary(job: dict[str, Any]) -> str:
    """One line: what happened, how many records, how fast, where the results are."""
    records = job.get("records") or {}
    rate = job.get("records_per_s")
    text = (
        f"Batch job {job['id']} {job.get('status')}: {records.get('done', 0)}/{records.get('total')} records, "
        f"{records.get('failed', 0)} failed" + (f", {rate:.1f} records/s" if rate else "")
    )
    if job.get("status") == "completed":
        text += f"; results in {job.get('output')}"
    if job.get("errors_location"):
        text += f"; errors in {job['errors_location']}"
    if job.get("reason") and job.get("status") != "completed":
        text += f" ({job['reason']})"
    if job.get("status") == "stopped":
        text += f"; resume with `hubserve batch start {job['id']}`"
    return text


def _table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "STATUS", "RECORDS", "FAILED", "REC/S", "MODEL", "OUTPUT"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        records = job.get("records") or {}
        rate = job.get("records_per_s")
        table.add_row(
            str(job.get("id")),
            Text(str(job.get("status")), style=STATUS_STYLES.get(str(job.get("status")), "")),
            f"{records.get('done', 0)}/{records.get('total') if records.get('total') is not None else '?'}",
            str(records.get("failed", 0)),
            f"{rate:.1f}" if rate else "-",
            str(job.get("endpoint") or job.get("model") or "-"),
            str(job.get("output") or "-"),
        )
    return table


def _show(ctx: typer.Context, json_: bool, job: dict[str, Any]) -> None:
    if want_json(ctx, json_):
        output.print_json(job)
    else:
        output.print_description(job)


def _show_status(ctx: typer.Context, json_: bool, job: dict[str, Any]) -> None:
    if want_json(ctx, json_):
        output.print_json(job)
    else:
        typer.echo(f"Batch job '{job['id']}': {job.get('status')}" + (f" ({job['reason']})" if job.get("reason") else ""))


def _location(value: str) -> str:
    """A data location for the server: URLs as given, local paths made absolute (it resolves no others)."""
    return value if "://" in value else os.path.abspath(value)


def _local_path(value: str | None) -> str | None:
    """Relative local paths made absolute (the server wants absolute ones); URLs and Hub ids unchanged."""
    if value is None or "://" in value or os.path.isabs(value):
        return value
    if os.path.exists(value) or value.startswith("."):
        return os.path.abspath(value)
    return value
