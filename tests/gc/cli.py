"""Running ``dockyard`` commands as subprocesses from async tests, and test configs."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TIMEOUT = 120.0  # a wedged command, not a slow one


@dataclass(frozen=True)
class Done:
    """A finished command: exit code and output."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def write_config(path: Path, data_dir: Path, extra: str = "") -> Path:
    """A TOML configuration over ``data_dir`` with no GC grace, plus ``extra``."""
    path.write_text(
        f'[server]\ndata_dir = "{data_dir}"\n\n[gc]\ngrace = "0s"\n\n'
        f'[[quota]]\nnamespace = "quota"\nsize = 4096\n\n{extra}'
    )
    return path


async def dockyard(*args: str | Path) -> Done:
    """Run ``dockyard ARGS`` and wait for it."""
    script = Path(sys.executable).with_name("dockyard")
    process = await asyncio.create_subprocess_exec(
        str(script), *(str(a) for a in args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(_TIMEOUT):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())
