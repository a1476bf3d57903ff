"""Helpers for the SDK acceptance tests: server process, SDK clients, code zips, assertions.

The official, unchanged Alibaba Cloud SDKs are the acceptance tests of fcd:

* ``alibabacloud-fc-open20210406`` (the 2021-04-06 OpenAPI client, ACS3-HMAC-SHA256 signing),
* ``aliyun-fc2`` (the classic 2016-08-15 client, "FC ak:sig" signing).

Fixture contract with the server (see README.md next to this file):

* ``$FCD_BIN serve --listen 127.0.0.1:0 --data-dir <dir>`` with the environment variables
  ``FCD_ACCESS_KEY_ID``, ``FCD_ACCESS_KEY_SECRET``, ``FCD_ACCOUNT_ID`` and ``FCD_REGION`` set
  (plus the inherited environment).
* When ready, the server writes its bound address (``127.0.0.1:41234``) to
  ``<data-dir>/listen-addr``. The harness deletes a stale file before starting a server.
* SIGTERM stops it; it gets 15 s before SIGKILL.
* Every server gets ``FCD_INSECURE_REGISTRIES=127.0.0.1``: the test registries (registrykit.py)
  listen on loopback ports over plain HTTP.
* Every server of one test session (every cluster node too) gets the same ``FCD_WASM_CACHE_DIR``,
  a temporary directory made empty for the session (:func:`session_wasm_cache_dir`): a
  WebAssembly component is compiled once per session, and the cache starts empty each time.
* fcd jails every instance by default and refuses to start where it cannot (not root). When the
  tests do not run as root and the arguments say nothing about isolation, the harness passes
  ``--isolation none`` explicitly; tests that need the jail read ``isolation.jailed`` from
  ``/status`` and skip with the reason.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import http.server
import io
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import pytest

import fc2
from alibabacloud_fc_open20210406 import models as fc_models
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_fc20230330.client import Client as Fc3Client
from alibabacloud_tea_openapi import exceptions as openapi_exceptions
from alibabacloud_tea_openapi import models as open_api_models

ACCESS_KEY_ID = "testAccessKeyId"
ACCESS_KEY_SECRET = "testAccessKeySecret"
ACCOUNT_ID = "1234567890123456"
REGION = "cn-hangzhou"

READY_TIMEOUT_S = 30
STOP_GRACE_S = 15
LOG_TAIL_CHARS = 20_000

# The error type the 2021-04-06 SDK raises for a 4xx/5xx with a JSON body. ClientException (4xx),
# ServerException (5xx) and ThrottlingException all derive from it.
ApiError = openapi_exceptions.AlibabaCloudException
ClientError = openapi_exceptions.ClientException


# --------------------------------------------------------------------------------------------
# Server process management
# --------------------------------------------------------------------------------------------

_ALL_SERVERS: list["FcdServer"] = []


def fcd_binary() -> str:
    path = os.environ.get("FCD_BIN")
    if not path:
        pytest.fail("set FCD_BIN to the fcd binary (absolute path)", pytrace=False)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.fail(f"FCD_BIN={path!r} is not an executable file", pytrace=False)
    return path


_WASM_CACHE_DIR: Optional[Path] = None


def session_wasm_cache_dir() -> Path:
    """The compiled-code cache of the ``wasm`` runtime shared by every server this test process
    starts: empty at first, removed at exit. A componentize-py component takes tens of seconds to
    compile in a debug build; sharing the cache compiles it once per session."""
    global _WASM_CACHE_DIR
    if _WASM_CACHE_DIR is None:
        _WASM_CACHE_DIR = Path(tempfile.mkdtemp(prefix="fcd-wasm-cache-"))
        atexit.register(shutil.rmtree, _WASM_CACHE_DIR, True)
    return _WASM_CACHE_DIR


@dataclass
class FcdServer:
    """One running ``fcd serve`` process."""

    data_dir: Path
    log_dir: Path
    owner: str  # "session" or the node id of the test that started it
    # Extra ``fcd serve`` arguments, e.g. ``("--async-workers", "1")``.
    extra_args: tuple[str, ...] = ()
    # Where to listen; a fixed port keeps a cluster node's address across restarts.
    listen: str = "127.0.0.1:0"
    # Extra environment variables for the server (e.g. ``RUST_LOG``).
    extra_env: dict = field(default_factory=dict)
    proc: Optional[subprocess.Popen] = None
    addr: Optional[str] = None
    _stdout: Optional[io.BufferedWriter] = field(default=None, repr=False)
    _stderr: Optional[io.BufferedWriter] = field(default=None, repr=False)
    starts: int = 0

    @property
    def listen_addr_file(self) -> Path:
        return self.data_dir / "listen-addr"

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / f"fcd-{self.starts}.stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"fcd-{self.starts}.stderr.log"

    def start(self) -> "FcdServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        binary = fcd_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # A restart reuses the data dir: never mistake the previous run's address for readiness.
        self.listen_addr_file.unlink(missing_ok=True)
        self.starts += 1
        env = dict(os.environ)
        env.update(
            FCD_ACCESS_KEY_ID=ACCESS_KEY_ID,
            FCD_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
            FCD_ACCOUNT_ID=ACCOUNT_ID,
            FCD_REGION=REGION,
            FCD_WASM_CACHE_DIR=str(session_wasm_cache_dir()),
            # The custom-container tests' registries: every port of loopback, plain HTTP.
            FCD_INSECURE_REGISTRIES="127.0.0.1",
        )
        env.update(self.extra_env)
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        cmd = [binary, "serve", "--listen", self.listen, "--data-dir", str(self.data_dir)]
        if os.geteuid() != 0 and "--isolation" not in self.extra_args:
            cmd += ["--isolation", "none"]
        cmd += list(self.extra_args)
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,  # own process group, so leftovers can be cleaned up
        )
        self.addr = self._wait_ready()
        return self

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"fcd exited with status {self.proc.returncode} before it was ready")
            try:
                text = self.listen_addr_file.read_text().strip()
            except FileNotFoundError:
                text = ""
            m = re.fullmatch(r"(\S+):(\d+)", text)
            if m:
                host, port = m.group(1), int(m.group(2))
                try:
                    with socket.create_connection((host.strip("[]"), port), timeout=2):
                        return text
                except OSError:
                    pass
            time.sleep(0.05)
        self._fail(f"fcd did not write a usable {self.listen_addr_file} within {READY_TIMEOUT_S} s")
        raise AssertionError("unreachable")

    def _fail(self, why: str) -> None:
        self.stop()
        pytest.fail(f"{why}\n{self.logs()}", pytrace=False)

    def stop(self) -> Optional[int]:
        """SIGTERM, wait up to 15 s, then SIGKILL. Returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Anything the server left behind in its own process group (instances it spawned).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for f in (self._stdout, self._stderr):
            if f is not None and not f.closed:
                f.close()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown work at all. Then the same cleanup as :meth:`stop`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def restart(self) -> "FcdServer":
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        out = []
        for n in range(1, self.starts + 1):
            for kind in ("stdout", "stderr"):
                p = self.log_dir / f"fcd-{n}.{kind}.log"
                try:
                    text = p.read_text(errors="replace")
                except FileNotFoundError:
                    continue
                if len(text) > LOG_TAIL_CHARS:
                    text = "...\n" + text[-LOG_TAIL_CHARS:]
                out.append(f"----- fcd run {n} {kind} ({p}) -----\n{text}")
        return "\n".join(out) if out else "(no fcd output captured)"

    # Clients ---------------------------------------------------------------------------------

    def client(self, **kwargs) -> Client:
        return make_client(self.addr, **kwargs)

    def classic_client(self, **kwargs) -> fc2.Client:
        return make_classic_client(self.addr, **kwargs)

    def fc3_client(self, **kwargs) -> Fc3Client:
        return make_fc3_client(self.addr, **kwargs)


def _new_server(
    base: Path,
    owner: str,
    data_dir: Optional[Path] = None,
    extra_args: tuple[str, ...] = (),
    extra_env: Optional[Mapping[str, str]] = None,
) -> FcdServer:
    server = FcdServer(
        data_dir=data_dir or base / "data",
        log_dir=base / "logs",
        owner=owner,
        extra_args=tuple(extra_args),
        extra_env=dict(extra_env or {}),
    )
    _ALL_SERVERS.append(server)
    return server


# --------------------------------------------------------------------------------------------
# SDK clients
# --------------------------------------------------------------------------------------------


def make_client(
    addr: str,
    access_key_id: str = ACCESS_KEY_ID,
    access_key_secret: str = ACCESS_KEY_SECRET,
    read_timeout_ms: int = 60_000,
) -> Client:
    """A 2021-04-06 SDK client, exactly as a user configures it for a self-hosted endpoint."""
    return Client(
        open_api_models.Config(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            endpoint=addr,
            protocol="http",
            region_id=REGION,
            read_timeout=read_timeout_ms,
        )
    )


def make_fc3_client(
    addr: str,
    access_key_id: str = ACCESS_KEY_ID,
    access_key_secret: str = ACCESS_KEY_SECRET,
    read_timeout_ms: int = 60_000,
) -> Fc3Client:
    """An FC 3.0 (2023-03-30) SDK client, configured as a user would for a self-hosted
    endpoint. It sends no account header: fcd takes the account from the access key."""
    return Fc3Client(
        open_api_models.Config(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            endpoint=addr,
            protocol="http",
            region_id=REGION,
            read_timeout=read_timeout_ms,
        )
    )


def server_status(client: Client) -> dict:
    """``GET /status``, signed by the SDK's generic ``call_api`` (fcd serves it to signed
    requests only)."""
    from alibabacloud_tea_util import models as util_models

    params = open_api_models.Params(
        action="GetStatus",
        version="2021-04-06",
        protocol="HTTP",
        pathname="/status",
        method="GET",
        auth_type="AK",
        style="ROA",
        req_body_type="json",
        body_type="json",
    )
    resp = client.call_api(params, open_api_models.OpenApiRequest(), util_models.RuntimeOptions())
    return resp["body"]


def make_classic_client(
    addr: str,
    access_key_id: str = ACCESS_KEY_ID,
    access_key_secret: str = ACCESS_KEY_SECRET,
) -> fc2.Client:
    """A classic aliyun-fc2 (2016-08-15) client."""
    return fc2.Client(
        endpoint="http://" + addr,
        accessKeyID=access_key_id,
        accessKeySecret=access_key_secret,
        Timeout=60,
    )


# --------------------------------------------------------------------------------------------
# Names, code packages
# --------------------------------------------------------------------------------------------


def unique(prefix: str = "t") -> str:
    """A fresh resource name: ``<prefix>-<12 hex>``. ``prefix`` must start with a letter."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


FileContent = Union[str, bytes]


def make_zip_bytes(
    files: Mapping[str, FileContent],
    executable: tuple[str, ...] | list[str] | set[str] = (),
) -> bytes:
    """An in-memory ZIP. Names in ``executable`` get mode 0755, the others 0644."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if name in executable else 0o644
            info.external_attr = (0o100000 | mode) << 16  # regular file + permission bits
            data = content.encode() if isinstance(content, str) else content
            zf.writestr(info, data)
    return buf.getvalue()


def make_zip(
    files: Mapping[str, FileContent],
    executable: tuple[str, ...] | list[str] | set[str] = (),
) -> str:
    """Base64 of :func:`make_zip_bytes`, ready for ``Code(zip_file=...)``."""
    return b64(make_zip_bytes(files, executable))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def code_of(zip_bytes: bytes) -> fc_models.Code:
    return fc_models.Code(zip_file=b64(zip_bytes))


# --------------------------------------------------------------------------------------------
# Error assertions
# --------------------------------------------------------------------------------------------

ERROR_BODY_KEYS = ("ErrorCode", "ErrorMessage", "Code", "Message", "RequestId")


def expect_error(code: str, status: int, fn: Callable, *args, **kwargs) -> ApiError:
    """Calls ``fn`` and asserts the 2021 SDK raised its typed API error with ``code``/``status``.

    Also checks the error body carries every field both SDK generations read.
    """
    with pytest.raises(ApiError) as excinfo:
        fn(*args, **kwargs)
    err = excinfo.value
    assert_api_error(err, code, status)
    return err


def assert_api_error(err: BaseException, code: str, status: int) -> None:
    assert isinstance(err, ApiError), f"expected an SDK API error, got {type(err).__name__}: {err}"
    if 400 <= status < 500:
        assert isinstance(err, ClientError), f"a {status} must raise ClientException, got {type(err)}"
    assert err.code == code, f"expected code {code!r}, got {err.code!r} ({err})"
    assert err.status_code == status, f"expected HTTP {status}, got {err.status_code} ({err})"
    body = err.data
    assert isinstance(body, dict), f"error body is not a JSON object: {body!r}"
    for key in ERROR_BODY_KEYS:
        assert body.get(key), f"error body lacks {key!r}: {body!r}"
    assert body["ErrorCode"] == code and body["Code"] == code, body
    assert err.request_id and err.request_id != "None", body


# --------------------------------------------------------------------------------------------
# Resource helpers
# --------------------------------------------------------------------------------------------


def create_service(client: Client, name: Optional[str] = None, **kwargs) -> fc_models.CreateServiceResponseBody:
    name = name or unique("svc")
    resp = client.create_service(fc_models.CreateServiceRequest(service_name=name, **kwargs))
    assert resp.status_code == 200, resp.status_code
    return resp.body


def create_function(
    client: Client,
    service: str,
    name: Optional[str] = None,
    *,
    files: Optional[Mapping[str, FileContent]] = None,
    zip_bytes: Optional[bytes] = None,
    runtime: str = "python3.10",
    handler: str = "index.handler",
    executable: tuple[str, ...] = (),
    **kwargs,
) -> fc_models.CreateFunctionResponseBody:
    name = name or unique("fn")
    if zip_bytes is None:
        zip_bytes = make_zip_bytes(files or {"index.py": SIMPLE_HANDLER}, executable)
    resp = client.create_function(
        service,
        fc_models.CreateFunctionRequest(
            function_name=name,
            runtime=runtime,
            handler=handler,
            code=code_of(zip_bytes),
            **kwargs,
        ),
    )
    assert resp.status_code == 200, resp.status_code
    return resp.body


def delete_service_tree(client: Client, service: str) -> None:
    """Best-effort cleanup: deletes the aliases, versions, functions (and their triggers) of
    ``service``, then the service (fcd refuses to delete a service that still has any of them:
    412 ServiceNotEmpty). Aliases go first because a version an alias routes to cannot be
    deleted."""
    _try(delete_all_aliases, client, service)
    _try(delete_all_versions, client, service)
    try:
        while True:
            listing = client.list_functions(service, fc_models.ListFunctionsRequest(limit=100)).body
            functions = listing.functions or []
            for f in functions:
                # A function with triggers cannot be deleted (412 FunctionNotEmpty).
                _try(delete_all_triggers, client, service, f.function_name)
                _try(client.delete_function, service, f.function_name)
            if not functions or not listing.next_token:
                break
        client.delete_service(service)
    except Exception:
        pass


def _try(fn: Callable, *args) -> None:
    try:
        fn(*args)
    except Exception:
        pass


def delete_all_triggers(client: Client, service: str, function: str) -> None:
    """Deletes every trigger of ``function`` (raises on the first failure)."""
    for _ in range(1000):
        listing = client.list_triggers(service, function, fc_models.ListTriggersRequest(limit=100)).body
        triggers = listing.triggers or []
        if not triggers:
            return
        for t in triggers:
            client.delete_trigger(service, function, t.trigger_name)


def delete_all_aliases(client: Client, service: str) -> None:
    """Deletes every alias of ``service`` (raises on the first failure)."""
    for _ in range(1000):
        listing = client.list_aliases(service, fc_models.ListAliasesRequest(limit=100)).body
        aliases = listing.aliases or []
        if not aliases:
            return
        for a in aliases:
            client.delete_alias(service, a.alias_name)


def delete_all_versions(client: Client, service: str) -> None:
    """Deletes every version of ``service`` (raises on the first failure)."""
    for _ in range(1000):
        listing = client.list_service_versions(
            service, fc_models.ListServiceVersionsRequest(limit=100)
        ).body
        versions = listing.versions or []
        if not versions:
            return
        for v in versions:
            client.delete_service_version(service, v.version_id)


class ServiceFactory:
    """Creates services for one test and removes them (with their functions, aliases and
    versions) afterwards."""

    def __init__(self, client: Client):
        self.client = client
        self.names: list[str] = []

    def __call__(self, name: Optional[str] = None, **kwargs) -> str:
        body = create_service(self.client, name, **kwargs)
        self.names.append(body.service_name)
        return body.service_name

    def cleanup(self) -> None:
        for name in reversed(self.names):
            delete_service_tree(self.client, name)


SIMPLE_HANDLER = """\
def handler(event, context):
    return 'hello world'
"""

# A custom-runtime bootstrap that starts a tiny HTTP server. ``__TAG__`` is replaced per function
# so responses tell which function answered.
ECHO_BOOTSTRAP = r'''#!/usr/bin/env python3
import http.server
import os
import socketserver

PORT = int(os.environ.get("FC_SERVER_PORT", "9000"))
TAG = b"__TAG__"


def read_body(handler):
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, status, body, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-fc-status", str(status))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = read_body(self)
        rid = self.headers.get("x-fc-request-id", "")
        if self.path == "/invoke":
            print("FC Invoke Start RequestId: " + rid, flush=True)
            print("echo " + TAG.decode(), flush=True)
            print("FC Invoke End RequestId: " + rid, flush=True)
            self._reply(200, TAG + b":" + rid.encode() + b":" + body)
        elif self.path == "/initialize":
            self._reply(200, b"")
        else:
            self._reply(404, b"unknown path " + self.path.encode())

    def do_GET(self):
        self._reply(200, b"")

    def log_message(self, fmt, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("0.0.0.0", PORT), Handler).serve_forever()
'''


def echo_bootstrap(tag: str) -> str:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", tag)
    return ECHO_BOOTSTRAP.replace("__TAG__", tag)


# --------------------------------------------------------------------------------------------
# CRC-64 (the FC code checksum)
# --------------------------------------------------------------------------------------------


def _crc64_table() -> list[int]:
    poly = 0xC96C5795D7870F42  # CRC-64/XZ (ECMA-182, reflected), as OSS and FC use
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_xz(data: bytes) -> int:
    crc = 0xFFFFFFFFFFFFFFFF
    table = _CRC64_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


assert crc64_xz(b"123456789") == 0x995DC9BBDF1939FA  # the catalogue check value


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Bounded polling: True as soon as ``predicate()`` holds, False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


class _PongHandler(http.server.BaseHTTPRequestHandler):
    body = b"pong"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, fmt, *args):
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@contextlib.contextmanager
def loopback_pong(body: bytes):
    """An HTTP server of the test on the host's loopback answering every GET with ``body``;
    yields its port."""
    handler = type("Pong", (_PongHandler,), {"body": body})
    srv = _ThreadingServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def function_error(
    resp: fc_models.InvokeFunctionResponse, kind: str = "UnhandledInvocationError"
) -> dict:
    """The JSON error body of a failed invocation, which FC still answers with HTTP 200 and
    ``x-fc-error-type: kind``."""
    assert resp.status_code == 200, resp.status_code
    assert resp.headers.get("x-fc-error-type") == kind, (resp.headers, resp.body)
    body = json.loads(resp.body)
    assert isinstance(body, dict) and isinstance(body.get("errorMessage"), str), body
    return body


def log_tail(resp: fc_models.InvokeFunctionResponse) -> str:
    """The decoded ``x-fc-log-result`` of an invocation made with ``x-fc-log-type: Tail``."""
    assert "x-fc-log-result" in resp.headers, resp.headers
    return base64.b64decode(resp.headers["x-fc-log-result"]).decode("utf-8", errors="replace")
