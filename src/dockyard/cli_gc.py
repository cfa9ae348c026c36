"""``dockyard gc``, ``dockyard retention apply``, ``dockyard fsck``, ``dockyard usage``.

They run against the configured stores directly, while ``dockyard serve`` keeps serving:
every deletion is safe with pushes going on (see docs/lifecycle.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from dockyard import gc
from dockyard.config import Settings, parse_duration
from dockyard.core import Registry

T = TypeVar("T")

retention_app = typer.Typer(
    help="Retention rules ([[retention]] in the configuration).", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file.", envvar="DOCKYARD_CONFIG"),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Only list what would be deleted; delete nothing.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")]


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to the ``dockyard`` command."""
    app.command("gc")(gc_command)
    app.add_typer(retention_app, name="retention")
    app.command("fsck")(fsck_command)
    app.command("usage")(usage_command)


def _settings(config: Path | None) -> Settings:
    from dockyard.cli import _settings as load  # the cli module registers this one

    return load(config)


def _with_registry(settings: Settings, work: Callable[[Registry], Awaitable[T]]) -> T:
    from dockyard.app import run_with_registry  # the app pulls in every feature: load late

    return run_with_registry(settings, work)


@contextmanager
def _progress(enabled: bool) -> Iterator[gc.Progress]:
    """A rich progress bar on a terminal (stderr); nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _phase, _done, _total: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    with bar:
        yield update


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _print_json(doc: dict[str, Any]) -> None:
    typer.echo(json.dumps(doc, indent=2))


def gc_command(
    config: ConfigOption = None, dry_run: DryRun = False, json_: JsonOption = False
) -> None:
    """Collect garbage: expire idle uploads (and staged bytes no upload owns), drop unused
    blob links, delete unused blobs."""
    settings = _settings(config)
    with _progress(not json_) as progress:
        report = _with_registry(
            settings,
            lambda r: gc.collect_garbage(
                r,
                grace=settings.gc.grace,
                upload_expiry=settings.gc.upload_expiry,
                dry_run=dry_run,
                progress=progress,
            ),
        )
    if json_:
        _print_json(report.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    for repository, digest in report.dropped_links:
        typer.echo(f"link  {repository}  {digest}")
    for digest, size in report.deleted_blobs:
        typer.echo(f"blob  {digest}  {_size(size)}")
    for upload in report.expired_uploads:
        typer.echo(f"upload  {upload.repository}  {upload.id}  {_size(upload.size)}")
    for upload_id in report.orphaned_staging:
        typer.echo(f"staging  {upload_id}")
    typer.echo(
        f"{verb} {len(report.deleted_blobs)} blob(s), {len(report.dropped_links)} link(s), "
        f"{len(report.expired_uploads)} upload(s), "
        f"{len(report.orphaned_staging)} orphaned staging area(s): {_size(report.bytes_freed)} "
        f"({report.bytes_freed} bytes) freed; {report.reachable_manifests} reachable and "
        f"{report.untagged_manifests} untagged manifest(s) kept"
    )


@retention_app.command("apply")
def retention_apply(
    config: ConfigOption = None, dry_run: DryRun = False, json_: JsonOption = False
) -> None:
    """Apply the retention rules: delete the tags and untagged manifests they select."""
    settings = _settings(config)
    if not settings.retention:
        typer.echo("dockyard: no [[retention]] rules are configured", err=True)
        raise typer.Exit(1)
    report = _with_registry(
        settings, lambda r: gc.apply_retention(r, settings.retention, dry_run=dry_run)
    )
    if json_:
        _print_json(report.to_json())
        return
    for d in report.deletions:
        what = f"{d.repository}:{d.tag}" if d.tag else f"{d.repository}@{d.digest}"
        typer.echo(f"{'tag' if d.tag else 'manifest'}  {what}  [{d.rule}] {d.why}")
    verb = "would delete" if dry_run else "deleted"
    tags = sum(1 for d in report.deletions if d.tag)
    typer.echo(
        f"{verb} {tags} tag(s) and {len(report.deletions) - tags} untagged manifest(s); "
        "run `dockyard gc` to free their blobs"
    )


def fsck_command(
    config: ConfigOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Re-hash every blob (the default).")] = False,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Re-hash N blobs picked at random.")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Re-hash blobs not verified for this long, e.g. 30d."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Verify blobs and cross-check metadata with storage; exit 1 when problems are found."""
    if sum(x is not None and x is not False for x in (all_ or None, sample, older_than)) > 1:
        typer.echo("dockyard: choose one of --all, --sample and --older-than", err=True)
        raise typer.Exit(2)
    not_checked_for = None
    if older_than is not None:
        try:
            not_checked_for = parse_duration(older_than)
        except ValueError as e:
            typer.echo(f"dockyard: --older-than: {e}", err=True)
            raise typer.Exit(2) from None
    settings = _settings(config)
    with _progress(not json_) as progress:
        report = _with_registry(
            settings,
            lambda r: gc.check_integrity(
                r, sample=sample, not_checked_for=not_checked_for, progress=progress
            ),
        )
    if json_:
        _print_json(report.to_json())
    else:
        for p in report.problems:
            typer.echo(f"{p.kind}  {p.digest}  {p.detail}")
            for b in p.breaks:
                tags = ", ".join(b.tags) or "untagged"
                typer.echo(f"    breaks {b.repository}@{b.manifest} ({tags})")
        typer.echo(
            f"checked {report.checked} blob(s), {_size(report.checked_bytes)}: "
            + ("no problems" if report.ok else f"{len(report.problems)} problem(s)")
        )
    if not report.ok:
        raise typer.Exit(1)


def usage_command(config: ConfigOption = None, json_: JsonOption = False) -> None:
    """Show the blob bytes each top-level namespace holds, and its quota."""
    settings = _settings(config)
    usage = _with_registry(settings, gc.namespace_usage)
    if json_:
        _print_json(
            {"namespaces": [
                {"namespace": u.namespace, "size": u.size, "blobs": u.blobs, "limit": u.limit}
                for u in usage
            ]}
        )  # fmt: skip
        return
    table = Table("namespace", "size", "bytes", "blobs", "quota", "used")
    for u in usage:
        used = f"{100 * u.size / u.limit:.0f}%" if u.limit else ""
        quota = _size(u.limit) if u.limit is not None else "none"
        table.add_row(u.namespace, _size(u.size), str(u.size), str(u.blobs), quota, used)
    Console(width=120).print(table)
