"""``dockyard user``, ``dockyard robot`` and ``dockyard token``: accounts from the shell.

Users live in the htpasswd file (``[auth] htpasswd``), robots in the metadata database.
Passwords are read from a hidden prompt or stdin, never from the command line, and a
robot's secret is printed once, when it is created.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from dockyard import auth
from dockyard.config import Settings, parse_duration
from dockyard.core import Registry, RobotError, RobotRecord

T = TypeVar("T")

user_app = typer.Typer(
    help="Users of the htpasswd file (basic and token modes).", no_args_is_help=True
)
robot_app = typer.Typer(
    help="Robot accounts for CI: their own rules, an optional expiry, revocable.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file.", envvar="DOCKYARD_CONFIG"),
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin (one line).")
]


def register(app: typer.Typer) -> None:
    """Add the account commands to the ``dockyard`` command."""
    app.add_typer(user_app, name="user")
    app.add_typer(robot_app, name="robot")
    app.command("token")(token)


def _settings(config: Path | None) -> Settings:
    from dockyard.cli import _settings as load  # the cli module registers this one

    return load(config)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"dockyard: {message}", err=True)
    return typer.Exit(1)


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _set_password(config: Path | None, name: str, stdin: bool, *, new: bool) -> None:
    settings = _settings(config)
    path = settings.htpasswd_path
    try:
        auth.validate_user(name)
        users = auth.read_htpasswd(path)
        if new and name in users.users:
            raise _fail(f"user {name!r} exists in {path}; use `dockyard user passwd`")
        if not new and name not in users.users:
            raise _fail(f"no user {name!r} in {path}")
        hashed = auth.hash_password(_password(stdin))
        auth.write_htpasswd(path, users.with_password(name, hashed))
    except (auth.HtpasswdError, OSError) as e:
        raise _fail(str(e)) from None
    typer.echo(f"{'added' if new else 'changed the password of'} {name} in {path}", err=True)


@user_app.command("add")
def user_add(name: str, config: ConfigOption = None, password_stdin: PasswordStdin = False) -> None:
    """Add a user with a bcrypt-hashed password."""
    _set_password(config, name, password_stdin, new=True)


@user_app.command("passwd")
def user_passwd(
    name: str, config: ConfigOption = None, password_stdin: PasswordStdin = False
) -> None:
    """Change a user's password."""
    _set_password(config, name, password_stdin, new=False)


@user_app.command("remove")
def user_remove(name: str, config: ConfigOption = None) -> None:
    """Remove a user; their tokens stop working when they expire."""
    settings = _settings(config)
    path = settings.htpasswd_path
    try:
        users = auth.read_htpasswd(path)
        if name not in users.users:
            raise _fail(f"no user {name!r} in {path}")
        auth.write_htpasswd(path, users.without(name))
    except (auth.HtpasswdError, OSError) as e:
        raise _fail(str(e)) from None
    typer.echo(f"removed {name} from {path}", err=True)


@user_app.command("list")
def user_list(config: ConfigOption = None) -> None:
    """The users of the htpasswd file, one per line."""
    settings = _settings(config)
    try:
        users = auth.read_htpasswd(settings.htpasswd_path)
    except (auth.HtpasswdError, OSError) as e:
        raise _fail(str(e)) from None
    for name in users.users:
        typer.echo(name)
    for line in users.skipped:
        typer.echo(f"skipped: {line}", err=True)


def _with_registry(settings: Settings, work: Callable[[Registry], Awaitable[T]]) -> T:
    from dockyard.app import run_with_registry  # the app pulls in every feature: load late

    return run_with_registry(settings, work)


@robot_app.command("create")
def robot_create(
    name: str,
    allow: Annotated[
        list[str],
        typer.Option(
            "--allow",
            help="PATTERN=ACTIONS, e.g. 'team-a/**=pull,push'; repeat for several rules.",
        ),
    ],
    expires: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 90d or 12h; none: until revoked.")
    ] = None,
    description: Annotated[str, typer.Option(help="What the robot is for.")] = "",
    config: ConfigOption = None,
) -> None:
    """Create a robot and print its secret, once: it is stored only hashed."""
    settings = _settings(config)
    try:
        expires_at = None
        if expires is not None:
            expires_at = datetime.now(UTC) + timedelta(seconds=parse_duration(expires))
        record, secret = auth.new_robot(name, allow, expires_at, description)
    except ValueError as e:
        raise _fail(str(e)) from None

    async def _create(registry: Registry) -> None:
        await registry.robots.create(record)

    try:
        _with_registry(settings, _create)
    except RobotError as e:
        raise _fail(str(e)) from None
    typer.echo(f"username: {auth.robot_username(name)}")
    typer.echo(f"secret:   {secret}")
    typer.echo("The secret is shown only now; store it in your CI's credentials.", err=True)


@robot_app.command("revoke")
def robot_revoke(name: str, config: ConfigOption = None) -> None:
    """Revoke a robot: its logins fail from now on (issued tokens live out their TTL)."""
    settings = _settings(config)

    async def _revoke(registry: Registry) -> None:
        await registry.robots.revoke(name)

    try:
        _with_registry(settings, _revoke)
    except RobotError as e:
        raise _fail(str(e)) from None
    typer.echo(f"revoked {auth.robot_username(name)}", err=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


@robot_app.command("list")
def robot_list(config: ConfigOption = None) -> None:
    """Every robot with its rules, expiry and state."""
    settings = _settings(config)

    async def _list(registry: Registry) -> list[RobotRecord]:
        return await registry.robots.list()

    now = datetime.now(UTC)
    table = Table("username", "rules", "created", "expires", "state", "description")
    for robot in _with_registry(settings, _list):
        state = "revoked" if robot.revoked_at else "active" if robot.active(now) else "expired"
        table.add_row(
            auth.robot_username(robot.name),
            " ".join(f"{pattern}={','.join(actions)}" for pattern, actions in robot.rules),
            _when(robot.created_at),
            _when(robot.expires_at),
            state,
            robot.description,
        )
    Console(width=200).print(table)


def token(
    subject: Annotated[str, typer.Argument(help="A user, or robot$NAME.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help="e.g. repository:team-a/app:pull,push; repeat for several."),
    ] = None,
    ttl: Annotated[str | None, typer.Option(help="Lifetime, e.g. 1h [auth.token_ttl].")] = None,
    config: ConfigOption = None,
) -> None:
    """Print a token for SUBJECT, its scopes trimmed to what SUBJECT may have."""
    settings = _settings(config)
    try:
        seconds = parse_duration(ttl) if ttl is not None else None
    except ValueError as e:
        raise _fail(str(e)) from None

    async def _mint(registry: Registry) -> auth.IssuedToken:
        return await auth.mint_token(settings, registry, subject, scope or [], seconds)

    try:
        issued = _with_registry(settings, _mint)
    except (ValueError, OSError) as e:
        raise _fail(str(e)) from None
    typer.echo(issued.token)
    granted = " ".join(str(s) for s in issued.granted) or "(nothing)"
    typer.echo(f"granted: {granted}; expires in {issued.expires_in}s", err=True)
