"""The operator docs cover every configuration key and every CLI command and option.

Like datasette's ``tests/test_docs.py``: adding a key to :mod:`dockyard.config` or a
command to :mod:`dockyard.cli` without documenting it fails here. For configuration,
the documented default and environment variable are checked against the code too.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from dockyard.cli import app
from dockyard.config import Settings, load_settings

DOCS = Path(__file__).parent.parent / "docs"
CONFIGURATION = DOCS / "configuration.md"
CLI = DOCS / "cli.md"


# -- configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One configuration key: ``server.port``, or ``auth.trusted_issuers.issuer``."""

    name: str
    field: FieldInfo
    env: str | None  # None inside arrays of tables: those come whole, as JSON


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as the items of a tuple or list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (tuple, list, types.UnionType, typing.Union):
        for arg in typing.get_args(annotation):
            model = _model_in(arg)
            if model is not None:
                return model
    return None


def _keys(model: type[BaseModel], prefix: str, env: str | None) -> Iterator[Key]:
    for name, field in model.model_fields.items():
        key_env = f"{env}{name.upper()}" if env else None
        nested = _model_in(field.annotation)
        if nested is None or prefix:
            yield Key(f"{prefix}{name}", field, key_env)
        if nested is not None:
            is_array = typing.get_origin(field.annotation) in (tuple, list)
            child_env = None if is_array or key_env is None else f"{key_env}__"
            yield from _keys(nested, f"{prefix}{name}.", child_env)


def config_keys() -> list[Key]:
    return list(_keys(Settings, "", "DOCKYARD_"))


def _rows() -> dict[str, list[str]]:
    """Table rows of configuration.md by key: ``| `server.port` | type | default | env | ... |``."""
    rows: dict[str, list[str]] = {}
    for line in CONFIGURATION.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and (m := re.fullmatch(r"`([a-z0-9_.]+)`", cells[0])):
            rows[m.group(1)] = cells
    return rows


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def test_config_keys_are_found() -> None:
    names = {key.name for key in config_keys()}
    # The walk itself works: sections are not keys, their fields are.
    assert {"server.port", "server.data_dir", "metadata.url", "storage.kind"} <= names
    assert "server" not in names


@pytest.mark.parametrize("key", config_keys(), ids=lambda key: key.name)
def test_every_config_key_is_documented(key: Key) -> None:
    rows = _rows()
    assert key.name in rows, f"{key.name} is not in {CONFIGURATION.name}'s tables"
    cells = rows[key.name]
    assert len(cells) >= 5, f"{key.name}: expected | key | type | default | env | meaning |"
    _, kind, default, env, meaning = cells[:5]
    assert kind, f"{key.name}: the type is missing"
    assert meaning, f"{key.name}: the meaning is missing"
    if key.env is not None:
        assert f"`{key.env}`" in env, f"{key.name}: environment variable {key.env} not given"
    if key.field.is_required():
        assert "required" in default, f"{key.name}: has no default, say 'required'"
        return
    if _default(key.field) is None:
        assert default == "none", f"{key.name}: is unset by default, say 'none'"
        return
    literal = default.strip("`")
    try:
        documented = tomllib.loads(f"value = {literal}")["value"]
    except tomllib.TOMLDecodeError:
        pytest.fail(f"{key.name}: default {default!r} is not a TOML value")
    annotation: Any = key.field.annotation
    if key.field.metadata:  # constraints and validators, e.g. ge=0 or the duration parser
        annotation = Annotated[annotation, *key.field.metadata]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    assert adapter.validate_python(documented) == _default(key.field), (
        f"{key.name}: documented default {literal} is not the default in dockyard.config"
    )


def test_no_documented_key_is_unknown() -> None:
    names = {key.name for key in config_keys()}
    stale = sorted(set(_rows()) - names)
    assert stale == [], f"documented in {CONFIGURATION.name} but not in dockyard.config"


def test_configuration_examples_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    examples = re.findall(r"```toml\n(.*?)```", CONFIGURATION.read_text(), re.DOTALL)
    assert examples, f"{CONFIGURATION.name} has no TOML example"
    for i, example in enumerate(examples):
        path = tmp_path / f"example-{i}.toml"
        path.write_text(example)
        load_settings(path)  # raises ConfigError naming the key


# -- command line -------------------------------------------------------------------


Command = TyperCommand | TyperGroup


def cli_commands() -> list[tuple[str, Command]]:
    found: list[tuple[str, Command]] = []

    def walk(path: str, command: object) -> None:
        assert isinstance(command, TyperCommand | TyperGroup)
        found.append((path, command))
        if isinstance(command, TyperGroup):
            for name, sub in sorted(command.commands.items()):
                walk(f"{path} {name}", sub)

    walk("dockyard", typer.main.get_command(app))
    return found


def documented_names(command: Command) -> list[str]:
    """How cli.md must spell each parameter: ``--port``, ``-c``, and ``NAME`` for arguments."""
    names: list[str] = []
    for param in command.params:
        if isinstance(param, TyperArgument):
            names.append((param.name or "").upper())
        elif isinstance(param, TyperOption) and not param.hidden:
            names += [*param.opts, *param.secondary_opts]
    return names


def _sections() -> dict[str, str]:
    """cli.md's text under each heading that names a command (``## `dockyard serve` ``)."""
    sections: dict[str, str] = {}
    current: str | None = None
    for line in CLI.read_text().splitlines():
        if line.startswith("#"):
            m = re.fullmatch(r"#+ `(dockyard[a-z0-9 -]*)`.*", line)
            current = m.group(1) if m else None
            if current is not None:
                sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


@pytest.mark.parametrize(("path", "command"), [pytest.param(p, c, id=p) for p, c in cli_commands()])
def test_every_cli_command_and_option_is_documented(path: str, command: Command) -> None:
    sections = _sections()
    assert path in sections, f"{CLI.name} has no section headed `{path}`"
    for name in documented_names(command):
        assert re.search(rf"`{re.escape(name)}\b", sections[path]), (
            f"{path}: {name} is not documented in {CLI.name}"
        )


def test_no_documented_command_is_unknown() -> None:
    known = {path for path, _ in cli_commands()}
    stale = sorted(set(_sections()) - known)
    assert stale == [], f"documented in {CLI.name} but not a command"
