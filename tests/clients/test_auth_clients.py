"""Real clients against a guarded Dockyard: skopeo, podman and oras log in, push and pull
in basic and in token mode; a CI robot confined to one namespace; HTTPS with a private CA.

Each mode gets its own ``dockyard serve --config`` process with the users and policy of
``tests/auth`` (alice may pull and push ``team-a/**``, bob owns ``team-b``). What the
clients did is checked by reading back over HTTP, with credentials, byte for byte.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.client
import pytest
import trustme

from dockyard import auth
from tests.auth.conftest import POLICY, AuthFiles, dockyard, write_config
from tests.auth.serve import serve
from tests.auth.sessions import USERS, basic, bearer
from tests.clients.commands import TIMEOUT, require, run
from tests.clients.images import BuiltImage, ContainerStorage
from tests.clients.layout import OciLayout, image_blobs
from tests.clients.server import MANIFEST_TYPES, Dockyard, sha256

NO_TLS = "--tls-verify=false"
# How clients report DENIED: its message, or the bare 403 of a HEAD (which has no body).
DENIED = r"denied|403 \(Forbidden\)"


@dataclass(frozen=True, slots=True)
class Guarded:
    """A running server in one mode, and the configuration file it reads."""

    mode: str
    server: Dockyard
    config: Path

    @property
    def host(self) -> str:
        return self.server.host

    def credentials(self, user: str, scope: str) -> dict[str, str]:
        """Headers for reading back as ``user``: Basic, or a token for ``scope``."""
        if self.mode == "basic":
            return basic(user)
        r = self.server.request(
            "GET", f"/auth/token?service=dockyard&scope={scope}", headers=basic(user)
        )
        assert r.status == 200, r.body
        return bearer(r.json()["token"])

    def manifest(self, user: str, repository: str, reference: str) -> tuple[str, bytes]:
        """The digest and bytes of a manifest, read as ``user``."""
        headers = self.credentials(user, f"repository:{repository}:pull")
        r = self.server.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={**headers, "Accept": MANIFEST_TYPES},
        )
        assert r.status == 200, f"{repository}:{reference}: {r.status} {r.body[:300]!r}"
        assert sha256(r.body) == r.headers["Docker-Content-Digest"]
        return r.headers["Docker-Content-Digest"], r.body

    def blob(self, user: str, repository: str, digest: str) -> bytes:
        headers = self.credentials(user, f"repository:{repository}:pull")
        r = self.server.request("GET", f"/v2/{repository}/blobs/{digest}", headers=headers)
        assert r.status == 200, f"{digest} in {repository}: {r.status}"
        assert sha256(r.body) == digest
        return r.body


def _start(work: Path, mode: str, *options: str) -> Guarded:
    files = AuthFiles(work / "htpasswd", work / "policy.toml")
    users = auth.Htpasswd()
    for name in ("alice", "bob"):
        users = users.with_password(name, auth.hash_password(USERS[name]))
    files.htpasswd.write_bytes(users.render())
    files.policy.write_bytes(POLICY)
    config = write_config(work / "dockyard.toml", work / "data", files, mode)
    return Guarded(mode, serve(config, work / "server.log", *options), config)


def _stop(guarded: Guarded) -> None:
    log = guarded.server.log_since(0)
    assert guarded.server.stop() == 0, log[-3000:]
    errors = Dockyard.server_errors(log)
    assert not errors, "the server failed requests:\n" + "\n".join(errors)


@pytest.fixture(scope="module", params=["basic", "token"])
def guarded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Guarded]:
    """A server in basic mode, then one in token mode."""
    started = _start(tmp_path_factory.mktemp(f"dockyard-{request.param}"), request.param)
    yield started
    _stop(started)


@pytest.fixture
def authfile(tmp_path: Path) -> Path:
    """A private credentials file (what ``login`` writes), so nothing global is touched."""
    return tmp_path / "auth.json"


def login(
    tool: str, guarded: Guarded, authfile: Path, user: str, password: str, *options: str | Path
) -> subprocess.CompletedProcess[str]:
    """``<tool> login`` with the password on stdin, as a CI job would give it."""
    command = [tool, "login", *options, "--authfile", authfile, "-u", user, "--password-stdin"]
    return subprocess.run(
        [str(c) for c in (*command, guarded.host)],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def skopeo(*args: str | Path, check: bool = True) -> Any:
    return run(["skopeo", *args], check=check)


def test_skopeo_login_push_and_pull(
    guarded: Guarded, image: BuiltImage, authfile: Path, tmp_path: Path
) -> None:
    require("skopeo")
    target = f"docker://{guarded.host}/team-a/skopeo"
    # No login yet: the push is refused with the registry's 401.
    refused = skopeo(
        "copy", "--dest-tls-verify=false", image.reference, f"{target}:v1", check=False
    )
    assert refused.returncode != 0
    assert re.search(r"authentication required|unauthorized", refused.stderr), refused.stderr

    bad = login("skopeo", guarded, authfile, "alice", "wrong", NO_TLS)
    assert bad.returncode != 0
    assert login("skopeo", guarded, authfile, "alice", USERS["alice"], NO_TLS).returncode == 0
    assert guarded.host in json.loads(authfile.read_text())["auths"]

    skopeo("copy", "--quiet", "--dest-tls-verify=false", "--authfile", authfile,
           "--preserve-digests", image.reference, f"{target}:v1")  # fmt: skip
    digest, manifest = image.layout.manifest(image.tag)
    assert guarded.manifest("alice", "team-a/skopeo", "v1") == (digest, manifest)
    for blob in image_blobs(manifest):
        assert guarded.blob("alice", "team-a/skopeo", blob) == image.layout.blob(blob)

    out = OciLayout(tmp_path / "pulled")
    skopeo("copy", "--quiet", "--src-tls-verify=false", "--authfile", authfile,
           "--preserve-digests", f"{target}:v1", f"oci:{out.path}:v1")  # fmt: skip
    assert out.manifest("v1") == (digest, manifest)

    # alice's login does not reach bob's namespace.
    bobs = f"docker://{guarded.host}/team-b/skopeo:v1"
    denied = skopeo("copy", "--dest-tls-verify=false", "--authfile", authfile,
                    image.reference, bobs, check=False)  # fmt: skip
    assert denied.returncode != 0
    assert re.search(DENIED, denied.stderr), denied.stderr


def test_podman_login_push_and_pull(
    guarded: Guarded, image: BuiltImage, authfile: Path, tmp_path: Path
) -> None:
    require("podman")
    reference = f"{guarded.host}/team-a/podman:v1"
    assert login("podman", guarded, authfile, "alice", USERS["alice"], NO_TLS).returncode == 0
    digest_file = tmp_path / "digest"
    with ContainerStorage.create(tmp_path / "push-storage") as storage:
        image_id = storage.podman("pull", "--quiet", image.reference)
        storage.podman("tag", image_id, reference)
        storage.podman("push", "--quiet", NO_TLS, "--authfile", authfile,
                       "--digestfile", digest_file, reference)  # fmt: skip
    digest = digest_file.read_text().strip()
    served_digest, manifest = guarded.manifest("alice", "team-a/podman", "v1")
    assert served_digest == digest
    assert json.loads(manifest)["config"]["digest"] == f"sha256:{image_id}"

    with ContainerStorage.create(tmp_path / "pull-storage") as fresh:
        fresh.podman("pull", "--quiet", NO_TLS, "--authfile", authfile, reference)
        (info,) = json.loads(fresh.podman("image", "inspect", reference))
        assert info["Id"] == image_id
        assert info["Digest"] == digest
        root = Path(fresh.podman("image", "mount", reference))
        try:
            for path, data in image.files.items():
                assert (root / path.lstrip("/")).read_bytes() == data, path
        finally:
            fresh.podman("image", "unmount", reference)

    # Logged out, the pull is refused.
    run(["podman", "logout", "--authfile", authfile, guarded.host])
    with ContainerStorage.create(tmp_path / "anonymous") as anonymous:
        extra = ["--tmpdir", str(anonymous.root / "tmp"), "--events-backend", "none"]
        refused = run(["podman", *anonymous.options, *extra, "pull", NO_TLS,
                       "--authfile", authfile, reference], check=False)  # fmt: skip
    assert refused.returncode != 0
    assert re.search(r"authentication required|unauthorized", refused.stderr), refused.stderr


def test_oras_with_credentials(guarded: Guarded, tmp_path: Path) -> None:
    payload = tmp_path / "push" / "payload.bin"
    payload.parent.mkdir()
    payload.write_bytes(bytes(range(256)) * 1024)
    # oras-py picks its authentication scheme up front: Basic, or the token flow.
    client = oras.client.OrasClient(hostname=guarded.host, insecure=True, auth_backend=guarded.mode)
    try:
        # What OrasClient.login does for the registry client (it also tries a Docker
        # daemon to store the credentials, which is beside the point here).
        client.auth.set_basic_auth("alice", USERS["alice"])
        target = f"{guarded.host}/team-a/oras:v1"
        response = client.push(
            target=target, files=[str(payload)], disable_path_validation=True, quiet=True
        )
        assert response.status_code == 201, response.text
        pulled = client.pull(target=target, outdir=str(tmp_path / "pull"))
        assert [Path(p).read_bytes() for p in pulled] == [payload.read_bytes()]
        digest = response.headers["Docker-Content-Digest"]
        assert guarded.manifest("alice", "team-a/oras", "v1")[0] == digest
    finally:
        client.session.close()

    if guarded.mode == "token":
        return  # oras-py retries a refused token request with back-off, for minutes
    stranger = oras.client.OrasClient(hostname=guarded.host, insecure=True, auth_backend="basic")
    try:
        stranger.auth.set_basic_auth("bob", "wrong password")
        with pytest.raises(Exception, match=r"401|nauthorized|authentication"):
            stranger.pull(target=f"{guarded.host}/team-a/oras:v1", outdir=str(tmp_path / "x"))
    finally:
        stranger.session.close()


def test_a_ci_robot_pushes_to_its_namespace_only(guarded: Guarded, image: BuiltImage) -> None:
    require("skopeo")
    created = dockyard("robot", "create", "jenkins", "--config", str(guarded.config),
                       "--allow", "team-a/**=pull,push", "--expires", "1d")  # fmt: skip
    secret = re.search(r"^secret: +(\S+)$", created.stdout, re.MULTILINE)
    assert secret is not None, created.stdout
    creds = f"robot$jenkins:{secret.group(1)}"
    target = f"docker://{guarded.host}/team-a/ci:v1"
    skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
           "--preserve-digests", image.reference, target)  # fmt: skip
    digest, manifest = image.layout.manifest(image.tag)
    assert guarded.manifest("alice", "team-a/ci", "v1") == (digest, manifest)
    inspected = json.loads(skopeo("inspect", NO_TLS, "--creds", creds,
                                  f"docker://{guarded.host}/team-a/ci:v1").stdout)  # fmt: skip
    assert inspected["Digest"] == digest
    for elsewhere in ("team-b/ci", "prod/ci", "ci"):
        denied = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, image.reference,
                        f"docker://{guarded.host}/{elsewhere}:v1", check=False)  # fmt: skip
        assert denied.returncode != 0, elsewhere
        assert re.search(DENIED, denied.stderr), denied.stderr
    wrong = skopeo("inspect", NO_TLS, "--creds", "robot$jenkins:not-the-secret",
                   f"docker://{guarded.host}/team-a/ci:v1", check=False)  # fmt: skip
    assert wrong.returncode != 0


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Guarded, trustme.CA]]:
    """A token-mode server on HTTPS, its certificate for 127.0.0.1 from a private CA."""
    work = tmp_path_factory.mktemp("dockyard-https")
    ca = trustme.CA(organization_name="Dockyard test CA")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = work / "chain.pem", work / "key.pem"
    chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    started = _start(work, "token", "--tls-cert", str(chain), "--tls-key", str(key))
    yield started, ca
    _stop(started)


def test_https_with_a_private_ca_and_skopeo_cert_dir(
    https: tuple[Guarded, trustme.CA], image: BuiltImage, tmp_path: Path
) -> None:
    require("skopeo")
    guarded, ca = https
    assert "listening on https://" in guarded.server.log_since(0)
    # The layout containers/image reads: a directory with the CA as <name>.crt.
    cert_dir = tmp_path / "certs.d" / guarded.host
    cert_dir.mkdir(parents=True)
    ca.cert_pem.write_to_path(str(cert_dir / "ca.crt"))
    creds = f"alice:{USERS['alice']}"
    target = f"docker://{guarded.host}/team-a/tls:v1"
    # TLS verification stays on: trusting the CA is what makes this work.
    untrusted = skopeo("copy", "--dest-creds", creds, image.reference, target, check=False)
    assert untrusted.returncode != 0
    assert re.search(r"x509|certificate", untrusted.stderr), untrusted.stderr
    skopeo("copy", "--quiet", "--dest-cert-dir", cert_dir, "--dest-creds", creds,
           "--preserve-digests", image.reference, target)  # fmt: skip
    info = json.loads(skopeo("inspect", "--cert-dir", cert_dir, "--creds", creds, target).stdout)
    digest, _ = image.layout.manifest(image.tag)
    assert info["Digest"] == digest
    if shutil.which("podman"):
        podman = login("podman", guarded, tmp_path / "a.json", "alice", USERS["alice"],
                       "--cert-dir", cert_dir)  # fmt: skip
        assert podman.returncode == 0, podman.stderr
        assert "Login Succeeded" in podman.stdout
