"""The ``dockyard`` command: parse arguments, call the core, print. No rules here."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dockyard import auth, cli_auth, cli_cache, cli_gc, metadata
from dockyard.config import ConfigError, Settings, load_settings

# Help text is shown as written: as rich markup, "[text]" in a help string would vanish.
app = typer.Typer(
    help="Dockyard: a self-hosted OCI container image registry.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file.", envvar="DOCKYARD_CONFIG"),
]


def _settings(config: Path | None, server: dict[str, Any] | None = None) -> Settings:
    overrides = {"server": {k: v for k, v in (server or {}).items() if v is not None}}
    try:
        return load_settings(config, overrides if overrides["server"] else None)
    except ConfigError as e:
        typer.echo(f"dockyard: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on; 0 picks a free one and logs it [5000].")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where blobs and the SQLite metadata live [./data].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes sharing the port (SO_REUSEPORT) [1].")
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="text or json [text].")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate (chain): serve HTTPS, with --tls-key.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Maintenance: serve pulls, refuse pushes.")
    ] = False,
) -> None:
    """Run the registry."""
    from dockyard.server import serve as run

    settings = _settings(
        config,
        {
            "host": host,
            "port": port,
            "data_dir": data_dir,
            "workers": workers,
            "log_format": log_format,
            "tls_cert": str(tls_cert) if tls_cert else None,
            "tls_key": str(tls_key) if tls_key else None,
            "read_only": True if read_only else None,
        },
    )
    run(settings)


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration without starting; print the effective settings."""
    settings = _settings(config)
    try:
        auth.preflight(settings, create_key=False)
    except (ValueError, OSError) as e:
        typer.echo(f"dockyard: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(settings.model_dump_json(indent=2))
    typer.echo("configuration OK", err=True)


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Upgrade the metadata database to this version's schema."""
    settings = _settings(config)

    async def _run() -> tuple[str | None, str | None]:
        settings.server.data_dir.mkdir(parents=True, exist_ok=True)
        # No statement timeout: a migration may rewrite a large table.
        engine = metadata.create_engine(settings.metadata_url, 1, statement_timeout=0)
        try:
            before = await metadata.current_revision(engine)
            await metadata.upgrade(engine)
            return before, await metadata.current_revision(engine)
        finally:
            await engine.dispose()

    before, after = asyncio.run(_run())
    typer.echo(f"metadata schema: {before or '(empty)'} -> {after}")


cli_auth.register(app)
cli_gc.register(app)
cli_cache.register(app)


def main() -> None:
    """Entry point of the ``dockyard`` script."""
    sys.exit(app())
