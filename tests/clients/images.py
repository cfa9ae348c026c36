"""Small test images built without a daemon: buildah from scratch, and umoci.

Every image is built locally (no network): a few files, one of them a couple of MiB of
seeded random bytes so that pushes span several reads and chunks. Each builder returns
the files it put in the image so a test can compare what a client unpacked after a
round trip through Dockyard with what went in.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.clients.commands import run
from tests.clients.layout import OciLayout

# Files of the two-layer buildah image, by path inside the image.
BASE_FILES = {
    "/data/hello.txt": b"hello from the dockyard client tests\n",
    "/data/random.bin": random.Random(20240601).randbytes(2 << 20),
}
TOP_FILES = {"/etc/dockyard-release": b"v1\n"}
UMOCI_FILES = {
    "/greeting.txt": b"built with umoci\n",
    "/opt/blob.bin": random.Random(7).randbytes(300_000),
}
ARCHES = ("amd64", "arm64")


@dataclass(frozen=True, slots=True)
class ContainerStorage:
    """A private containers-storage (vfs) shared by buildah and podman: no global state.

    ``runroot`` must be short: podman refuses one longer than 50 characters.
    """

    root: Path
    runroot: Path

    @classmethod
    @contextlib.contextmanager
    def create(cls, root: Path) -> Iterator[ContainerStorage]:
        """A storage under ``root`` with its runroot in a short /tmp directory."""
        runroot = Path(tempfile.mkdtemp(prefix="dy-run-", dir="/tmp"))
        try:
            yield cls(root, runroot)
        finally:
            shutil.rmtree(runroot, ignore_errors=True)

    @property
    def options(self) -> list[str]:
        return [
            "--root",
            str(self.root / "root"),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
        ]

    def buildah(self, *args: str | Path) -> str:
        """Run buildah on this storage; return its stdout, stripped."""
        return run(["buildah", *self.options, *args]).stdout.strip()

    def podman(self, *args: str | Path) -> str:
        """Run podman on this storage (its own tmpdir, no event log); return stdout."""
        extra = ["--tmpdir", str(self.root / "tmp"), "--events-backend", "none"]
        return run(["podman", *self.options, *extra, *args]).stdout.strip()


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """An image in an OCI layout under ``tag``, with the files it contains."""

    layout: OciLayout
    tag: str
    files: dict[str, bytes]
    name: str = ""  # its name in the build storage, when it has one

    @property
    def reference(self) -> str:
        """The layout as a containers-image ``oci:`` reference."""
        return f"oci:{self.layout.path}:{self.tag}"


@dataclass(frozen=True, slots=True)
class PlatformImages:
    """A manifest list in the build storage, one image per architecture in ``files``."""

    list_name: str
    files: dict[str, dict[str, bytes]]  # architecture -> files of that image


def _write_files(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _copy_in(
    storage: ContainerStorage, container: str, context: Path, files: dict[str, bytes]
) -> None:
    _write_files(context, files)
    for path in files:
        storage.buildah("copy", container, context / path.lstrip("/"), path)


def build_buildah_image(storage: ContainerStorage, work: Path, name: str) -> BuiltImage:
    """A two-layer image from scratch, committed as ``name`` and pushed into a layout.

    Two commits give two layers, the first shared with the ``-base`` image: more than
    one layer for cross-repository mounts and layer reuse to act on.
    """
    base = storage.buildah("from", "scratch")
    _copy_in(storage, base, work / "context-base", BASE_FILES)
    storage.buildah("config", "--arch", "amd64", "--os", "linux", "--label", "dockyard=test", base)
    storage.buildah("commit", "--quiet", "--rm", base, f"{name}-base:v1")
    top = storage.buildah("from", f"{name}-base:v1")
    _copy_in(storage, top, work / "context-top", TOP_FILES)
    storage.buildah("commit", "--quiet", "--rm", top, f"{name}:v1")
    layout = work / "layout"
    # Pushing to a layout compresses the layers (gzip), as a push to a registry does,
    # so copies from the layout keep their digests.
    storage.buildah("push", "--quiet", f"{name}:v1", f"oci:{layout}:v1")
    return BuiltImage(OciLayout(layout), "v1", {**BASE_FILES, **TOP_FILES}, name=f"{name}:v1")


def build_platform_image(
    storage: ContainerStorage, work: Path, name: str, arch: str
) -> dict[str, bytes]:
    """A one-layer image for ``arch``, committed as ``name``; returns its files."""
    files = {"/arch.txt": f"built for linux/{arch}\n".encode()}
    container = storage.buildah("from", "scratch")
    _copy_in(storage, container, work / f"context-{arch}", files)
    storage.buildah("config", "--arch", arch, "--os", "linux", container)
    # Compressed at commit, so a push sends these very manifests: the list buildah holds
    # locally then names the digests the registry will serve.
    storage.buildah("commit", "--quiet", "--rm", "--disable-compression=false", container, name)
    return files


def build_umoci_image(work: Path) -> BuiltImage:
    """An image made by umoci alone: init a layout, new image, unpack, add files, repack."""
    layout = work / "umoci-layout"
    bundle = work / "umoci-bundle"
    image = f"{layout}:v1"
    run(["umoci", "init", "--layout", layout])
    run(["umoci", "new", "--image", image])
    run(["umoci", "unpack", "--image", image, bundle])
    _write_files(bundle / "rootfs", UMOCI_FILES)
    run(["umoci", "repack", "--image", image, bundle])
    run(
        [
            "umoci", "config", "--image", image, "--architecture", "amd64", "--os", "linux",
            "--config.cmd", "/greeting.txt",
        ]
    )  # fmt: skip
    # repack and config leave the superseded manifests behind; drop them.
    run(["umoci", "gc", "--layout", layout])
    return BuiltImage(OciLayout(layout), "v1", dict(UMOCI_FILES))
