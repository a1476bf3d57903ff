"""OCI registries for the ``custom-container`` tests: Debian's ``docker-registry`` on loopback,
serving the test images ``scripts/container-fixtures`` built.

That script pushes every test image once into a registry's filesystem storage
(``$FCD_CONTAINER_FIXTURES/registry``, default ``~/.cache/fcd-container-fixtures``) and lists
them in ``images.json`` (tag -> digest, media type, platform). A :class:`Registry` serves a
copy of that storage, so starting one pushes nothing and takes well under a second:

* ``Registry(base)`` — anonymous pulls;
* ``Registry(base, auth=(user, password))`` — htpasswd (bcrypt, ``htpasswd -Bbn``) Basic
  auth: every request without the right credentials gets 401.

Both listen on ``127.0.0.1:<free port>`` over plain HTTP; fcd servers of the tests are
started with ``FCD_INSECURE_REGISTRIES=127.0.0.1`` (every port of that host over HTTP, see
fcdkit). Where the fixtures or ``docker-registry`` are missing, :func:`fixture_images` and
:meth:`Registry.start` fail the test and name ``scripts/container-fixtures``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import pytest

FIXTURES = Path(
    os.environ.get("FCD_CONTAINER_FIXTURES") or Path.home() / ".cache" / "fcd-container-fixtures"
)
SCRIPT_HINT = "run scripts/container-fixtures (it builds the custom-container test images)"

# The credentials of the auth registry (right ones) and ones it refuses.
AUTH_USER = "fcd-test"
AUTH_PASSWORD = "fcd-test-secret"
WRONG_PASSWORD = "not-the-password"

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

READY_TIMEOUT_S = 20


def fixture_images() -> dict:
    """``images.json`` of the fixtures: ``{"echo:v1": {"digest", "mediaType", "platform"}, …}``."""
    path = FIXTURES / "images.json"
    if not path.is_file() or not (FIXTURES / "registry").is_dir():
        pytest.fail(
            f"the container test images are missing ({path}): {SCRIPT_HINT}, "
            f"FCD_CONTAINER_FIXTURES={FIXTURES}",
            pytrace=False,
        )
    return json.loads(path.read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """One ``docker-registry serve`` on loopback over a copy of the fixtures' storage."""

    def __init__(self, base: Path, auth: Optional[tuple[str, str]] = None):
        self.dir = base
        self.auth = auth
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    def ref(self, name: str) -> str:
        """The full reference of a fixture image, e.g. ``ref("echo:v1")``."""
        return f"{self.host}/{name}"

    def start(self) -> "Registry":
        binary = shutil.which("docker-registry")
        if not binary:
            pytest.fail(f"docker-registry is not installed: {SCRIPT_HINT}", pytrace=False)
        fixture_images()
        self.dir.mkdir(parents=True, exist_ok=True)
        storage = self.dir / "storage"
        if not storage.exists():
            # A copy: tests may add tags (:meth:`tag`) without touching the fixtures.
            shutil.copytree(FIXTURES / "registry", storage, symlinks=True)
        # A restart keeps the port, so references to it stay valid.
        self.port = self.port or _free_port()
        auth = ""
        if self.auth:
            htpasswd = shutil.which("htpasswd")
            if not htpasswd:
                pytest.fail(f"htpasswd (apache2-utils) is not installed: {SCRIPT_HINT}", pytrace=False)
            line = subprocess.run(
                [htpasswd, "-Bbn", *self.auth], check=True, capture_output=True, text=True
            ).stdout.strip()
            (self.dir / "htpasswd").write_text(line + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: fcd-test-registry\n    path: {self.dir / 'htpasswd'}\n"
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            + auth
        )
        self.proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=open(self.dir / "registry.log", "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"docker-registry exited with {self.proc.returncode}:\n{self.logs()}", pytrace=False)
            try:
                status = self._request("GET", "/v2/", credentials=self.auth)[0]
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"docker-registry on {self.host} not ready in {READY_TIMEOUT_S} s:\n{self.logs()}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        try:
            return (self.dir / "registry.log").read_text(errors="replace")[-10_000:]
        except FileNotFoundError:
            return "(no registry log)"

    # The registry API, as a client with the right credentials -------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        headers: Optional[dict] = None,
        credentials: Optional[tuple[str, str]] = None,
    ) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(f"http://{self.host}{path}", data=body, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if credentials:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def manifest(self, name: str, credentials: Optional[tuple[str, str]] = None) -> tuple[str, bytes]:
        """``(media type, bytes)`` of ``repo:tag`` (or ``repo@digest``) as the registry serves it."""
        repo, _, tag = name.partition("@") if "@" in name else name.rpartition(":")
        status, headers, body = self._request(
            "GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES},
            credentials=credentials if credentials is not None else self.auth,
        )
        if status != 200:
            raise AssertionError(f"GET manifest {name} from {self.host}: HTTP {status} {body[:300]!r}")
        return headers.get("Content-Type", ""), body

    def tag(self, source: str, new_tag: str) -> str:
        """Puts the manifest of ``repo:tag`` under ``repo:new_tag`` too (a new tag no fcd has
        pulled yet, or a tag moved to another image); returns the new reference."""
        media, body = self.manifest(source)
        repo = source.split(":")[0]
        status, _, answer = self._request(
            "PUT", f"/v2/{repo}/manifests/{new_tag}", body=body,
            headers={"Content-Type": media}, credentials=self.auth,
        )
        if status != 201:
            raise AssertionError(f"PUT manifest {repo}:{new_tag} on {self.host}: HTTP {status} {answer[:300]!r}")
        return self.ref(f"{repo}:{new_tag}")


class Registries:
    """The session's two registries: ``open`` (anonymous) and ``auth`` (htpasswd)."""

    def __init__(self, base: Path):
        self.open = Registry(base / "open")
        self.auth = Registry(base / "auth", auth=(AUTH_USER, AUTH_PASSWORD))
        self.images = fixture_images()

    def start(self) -> "Registries":
        self.open.start()
        self.auth.start()
        return self

    def stop(self) -> None:
        self.open.stop()
        self.auth.stop()


def docker_config(path: Path, auths: dict[str, tuple[str, str]]) -> Path:
    """Writes a docker ``config.json`` (``{"auths": {host: {"auth": base64(user:password)}}}``,
    what ``FCD_REGISTRY_AUTH_FILE`` names) and returns its path."""
    doc = {
        "auths": {
            host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
            for host, (user, password) in auths.items()
        }
    }
    path.write_text(json.dumps(doc, indent=2))
    return path
