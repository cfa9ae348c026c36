"""This machine's limits, measured in the same run as the registries.

- sha256: Python's hashlib on one core, 1 MiB blocks (what a registry pays per byte pushed);
- loopback: one TCP connection on 127.0.0.1, ``os.sendfile`` from a page-cached file in
  another process to a receiver doing ``recv_into`` a preallocated 1 MiB buffer with
  ``MSG_WAITALL`` (the ceiling for a blob pull);
- disk: sequential 4 MiB writes then one ``fsync``, in the benchmark's own directory
  (the ceiling for a durable push).

MB is 10**6 bytes throughout.
"""

from __future__ import annotations

import hashlib
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

_BLOCK = 1 << 20
_WRITE_BLOCK = 4 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """The three ceilings in MB/s: the median of ``repeats`` tries, and every try."""

    sha256_mb_s: float
    loopback_sendfile_mb_s: float
    disk_fsync_write_mb_s: float
    tries: dict[str, list[float]]
    bytes_per_try: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def sha256_rate(size: int) -> float:
    """MB/s of ``hashlib.sha256`` over ``size`` bytes in 1 MiB updates."""
    block = os.urandom(_BLOCK)
    h = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(max(size // _BLOCK, 1)):
        h.update(block)
    return max(size, _BLOCK) / (time.perf_counter() - start) / 1e6


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(_WRITE_BLOCK)
    with path.open("wb") as f:
        for _ in range(max(size // _WRITE_BLOCK, 1)):
            f.write(block)


def settle_disk() -> None:
    """Write out every dirty page on the machine (``sync``) and wait for it.

    Distribution does not fsync what it receives, so a push to it leaves up to the whole
    blob dirty in the page cache; the kernel writes that out some 5 to 30 seconds later,
    in the middle of whatever phase then runs, on one of the two cores. A writing phase
    starts from a clean page cache instead, whichever registry wrote before it.
    """
    os.sync()


def prime_page_cache(directory: Path, size: int) -> None:
    """Write ``size`` bytes to a scratch file in ``directory``, then delete it.

    On a virtual machine whose host backs guest memory lazily and takes freed pages
    back (virtio-balloon free page reporting, as here), the first write to a page the
    guest has not used for a while costs a fault in the host: page-cache growth then
    runs at a few hundred MB/s and every registry's push measures the hypervisor. A
    push phase starts right after this, so its page cache comes from pages the guest
    has just freed, as it would on bare metal. Both registries get the same.
    """
    path = directory / "prime.tmp"
    directory.mkdir(parents=True, exist_ok=True)
    block = bytes(_WRITE_BLOCK)
    try:
        with path.open("wb") as f:
            for _ in range(max(size // _WRITE_BLOCK, 1)):
                f.write(block)
    finally:
        path.unlink(missing_ok=True)


def disk_write_rate(directory: Path, size: int) -> float:
    """MB/s of writing ``size`` bytes to a new file in ``directory``, fsync included."""
    path = directory / "disk-limit.tmp"
    block = os.urandom(_WRITE_BLOCK)
    count = max(size // _WRITE_BLOCK, 1)
    try:
        start = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(count):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        return count * _WRITE_BLOCK / (time.perf_counter() - start) / 1e6
    finally:
        path.unlink(missing_ok=True)


_SENDER = """
import os, socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
with socket.create_connection(("127.0.0.1", port)) as conn, open(path, "rb") as f:
    size, offset = os.fstat(f.fileno()).st_size, 0
    while offset < size:
        offset += os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)
"""


def loopback_sendfile_rate(source: Path) -> float:
    """MB/s of one loopback TCP connection carrying ``source`` with ``os.sendfile``.

    The sender is another process, as a server is: two threads of one process would
    share its GIL and measure that instead.
    """
    size = source.stat().st_size
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        sender = subprocess.Popen([sys.executable, "-c", _SENDER, str(port), str(source)])
        try:
            listener.settimeout(30)
            conn, _ = listener.accept()
        except BaseException:
            sender.kill()
            sender.wait()
            raise
        buf = bytearray(_BLOCK)
        received = 0
        with conn:
            start = time.perf_counter()
            while received < size:
                n = conn.recv_into(buf, min(_BLOCK, size - received), socket.MSG_WAITALL)
                if n == 0:
                    break
                received += n
            elapsed = time.perf_counter() - start
        sender.wait()
    return received / elapsed / 1e6


def measure_limits(workdir: Path, size: int, repeats: int = 5) -> Limits:
    """All three limits, each the median of ``repeats`` tries (this machine is noisy)."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "loopback-source.tmp"
    _make_file(source, size)
    try:
        # Read once so that the file is in the page cache, as a hot blob would be.
        with source.open("rb") as f:
            while f.read(_WRITE_BLOCK):
                pass
        loopback = [loopback_sendfile_rate(source) for _ in range(repeats)]
    finally:
        source.unlink(missing_ok=True)
    tries = {
        "sha256": [sha256_rate(size) for _ in range(repeats)],
        "loopback_sendfile": loopback,
        "disk_fsync_write": [disk_write_rate(workdir, size) for _ in range(repeats)],
    }
    tries = {k: [round(v, 1) for v in vs] for k, vs in tries.items()}
    return Limits(
        sha256_mb_s=statistics.median(tries["sha256"]),
        loopback_sendfile_mb_s=statistics.median(tries["loopback_sendfile"]),
        disk_fsync_write_mb_s=statistics.median(tries["disk_fsync_write"]),
        tries=tries,
        bytes_per_try=size,
    )
