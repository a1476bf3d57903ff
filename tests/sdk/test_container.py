"""``custom-container`` functions (OCI images, no Docker) through the official, unchanged SDKs.

The images are built by ``scripts/container-fixtures`` from ``tests/container/`` and served by
Debian's ``docker-registry`` on loopback (``registries`` fixture, registrykit.py): ``.open``
anonymous, ``.auth`` with htpasswd. Where they are missing, these tests fail and name that
script. The images' server is ``tests/container/handler.sh`` under busybox: ``POST /invoke``
and any HTTP-trigger request answer a JSON report of what the process sees — the image's
version marker (``v1``/``v2``/``notserver``), method, path, body, its arguments, uid, cwd,
selected environment variables, and whether writing ``/``, ``/data`` (world-writable in the
image) and ``/tmp`` works.

Tags: ``echo:v1`` (OCI manifest; ENTRYPOINT ``/serve``, CMD ``image-cmd``, WORKDIR ``/srv``,
ENV ``IMAGE_VAR`` and ``FIXTURE_VAR`` = ``from-image``), ``echo:v2`` (Docker v2 schema 2, a
whiteout deleting ``/etc/v1-only``), ``echo:multi`` (an index: arm64 + amd64), ``echo:arm64``
and ``echo:arm64-only`` (nothing for linux/amd64), ``notserver:v1`` (prints and sleeps unless
command/args start ``/serve``), ``nolisten:v1`` (sleeps).

Every fcd server of the tests has ``FCD_INSECURE_REGISTRIES=127.0.0.1`` (fcdkit).
``test_fixture_images_are_served`` checks the registries themselves, so a fixture problem is
not taken for an fcd bug.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import json
import socketserver
import threading
import time
from pathlib import Path
from typing import Optional

import pytest
import requests

import fc2
from alibabacloud_fc20230330 import models as m3
from alibabacloud_fc20230330.client import Client as Fc3Client
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_util import models as util_models
from darabonba.runtime import RuntimeOptions
from fc2.fc_exceptions import FcError

from fcdkit import (
    ApiError,
    FcdServer,
    expect_error,
    log_tail,
    server_status,
    unique,
)
from registrykit import (
    AUTH_PASSWORD,
    AUTH_USER,
    MANIFEST_TYPES,
    WRONG_PASSWORD,
    Registries,
    Registry,
    docker_config,
)

pytestmark = pytest.mark.invoke


@pytest.fixture(autouse=True)
def _jailed(request: pytest.FixtureRequest):
    """fcd refuses container functions without its jail (``--isolation none``, as the harness
    starts it when not root): every test but the fixtures' own skips there, saying so."""
    if request.node.name != "test_fixture_images_are_served":
        jailed_or_skip(request.getfixturevalue("fcd"))


READ_TIMEOUT_MS = 120_000
# CreateFunction waits up to 5 s for the pull; a small image on loopback is much faster, but a
# loaded machine may leave the function Pending a little longer.
ACTIVE_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def cc_config(image: str, command: Optional[list] = None, args: Optional[list] = None) -> m.CustomContainerConfig:
    """2.0 customContainerConfig: command and args are JSON arrays in strings."""
    return m.CustomContainerConfig(
        image=image,
        command=json.dumps(command) if command is not None else None,
        args=json.dumps(args) if args is not None else None,
    )


def create_container(
    client: Client,
    service: str,
    image: str,
    *,
    command: Optional[list] = None,
    args: Optional[list] = None,
    name: Optional[str] = None,
    **kwargs,
) -> str:
    name = name or unique("cc")
    resp = client.create_function(
        service,
        m.CreateFunctionRequest(
            function_name=name,
            runtime="custom-container",
            handler="not-used",
            custom_container_config=cc_config(image, command, args),
            **kwargs,
        ),
    )
    assert resp.status_code == 200, resp.status_code
    assert resp.body.runtime == "custom-container", resp.body.to_map()
    assert resp.body.custom_container_config.image == image, resp.body.to_map()
    return name


def invoke(client: Client, service: str, function: str, body: bytes = b"", tail: bool = False) -> m.InvokeFunctionResponse:
    return client.invoke_function_with_options(
        service,
        function,
        m.InvokeFunctionRequest(body=body),
        m.InvokeFunctionHeaders(x_fc_log_type="Tail" if tail else None),
        util_models.RuntimeOptions(read_timeout=READ_TIMEOUT_MS),
    )


def report_of(resp) -> dict:
    """The fixture server's JSON report from a successful InvokeFunction (2.0 or 3.0 SDK)."""
    body = resp.body.read() if hasattr(resp.body, "read") else (resp.body or b"")
    assert resp.status_code == 200, (resp.status_code, body)
    assert "x-fc-error-type" not in resp.headers, (resp.headers, body)
    return json.loads(body)


def call(client: Client, service: str, function: str, body: bytes = b"") -> dict:
    return report_of(invoke(client, service, function, body))


def raw_function(classic: fc2.Client, service: str, function: str) -> dict:
    """GetFunction as JSON (the classic client hands over the whole body; the 2021 SDK's model
    drops fields it does not know, such as ``state``)."""
    return classic.get_function(service, function).data


def wait_settled_2(classic: fc2.Client, service: str, function: str) -> dict:
    """GetFunction until the pull is over (``state`` not ``Pending``); returns the last body."""
    deadline = time.monotonic() + ACTIVE_TIMEOUT_S
    while True:
        data = raw_function(classic, service, function)
        if data.get("state") != "Pending" or time.monotonic() > deadline:
            return data
        assert data.get("lastUpdateStatus") == "InProgress", data
        time.sleep(0.1)


def assert_active_2(classic: fc2.Client, service: str, function: str) -> dict:
    data = wait_settled_2(classic, service, function)
    assert data.get("state") == "Active", data
    assert data.get("lastUpdateStatus") == "Successful", data
    return data


def expect_fc2_error(code: str, status: int, fn, *args, **kwargs) -> FcError:
    with pytest.raises(FcError) as excinfo:
        fn(*args, **kwargs)
    err = excinfo.value
    assert (err.status_code, err.err_code) == (status, code), (err.status_code, err.err_code, err.message)
    return err


def jailed_or_skip(server: FcdServer) -> None:
    iso = server_status(server.client()).get("isolation", {})
    if not iso.get("jailed"):
        pytest.skip("instances are not jailed on this server: %s" % iso.get("missing"))


def fc3_create(fc3: Fc3Client, image: str, name: Optional[str] = None, **cc) -> str:
    name = name or unique("cc3")
    body = m3.CreateFunctionInput(
        function_name=name,
        runtime="custom-container",
        handler="not-used",
        custom_container_config=m3.CustomContainerConfig(image=image, **cc),
    )
    resp = fc3.create_function(m3.CreateFunctionRequest(body=body))
    assert resp.status_code == 200, resp.status_code
    assert resp.body.runtime == "custom-container", resp.body.to_map()
    return name


def fc3_invoke(fc3: Fc3Client, name: str, body: bytes = b""):
    return fc3.invoke_function_with_options(
        name, m3.InvokeFunctionRequest(body=body), m3.InvokeFunctionHeaders(),
        RuntimeOptions(read_timeout=READ_TIMEOUT_MS),
    )


def fc3_wait_settled(fc3: Fc3Client, name: str) -> m3.Function:
    deadline = time.monotonic() + ACTIVE_TIMEOUT_S
    while True:
        f = fc3.get_function(name, m3.GetFunctionRequest()).body
        if f.state != "Pending" or time.monotonic() > deadline:
            return f
        time.sleep(0.1)


@pytest.fixture
def fn3(fc3: Fc3Client):
    """Native 3.0 functions this test makes, deleted afterwards."""
    made: list[str] = []

    def make(image: str, **cc) -> str:
        name = fc3_create(fc3, image, **cc)
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            fc3.delete_function(name)
        except Exception:
            pass


def http_trigger(client: Client, service: str, function: str) -> None:
    resp = client.create_trigger(
        service,
        function,
        m.CreateTriggerRequest(
            trigger_name=unique("http"),
            trigger_type="http",
            trigger_config=json.dumps({"authType": "anonymous", "methods": ["GET", "POST", "PUT", "DELETE"]}),
        ),
    )
    assert resp.status_code == 200, resp.status_code


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Forwards to ``upstream`` (``host:port``), holding manifest requests ``delay_s`` first."""

    protocol_version = "HTTP/1.1"
    upstream = ""
    delay_s = 0.0

    def _forward(self) -> None:
        if "/manifests/" in self.path:
            time.sleep(self.delay_s)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_HEAD = do_POST = do_PUT = _forward

    def log_message(self, fmt, *args):
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@contextlib.contextmanager
def slow_registry(registry: Registry, delay_s: float):
    """A proxy in front of ``registry`` whose manifests take ``delay_s`` each: a pull slower
    than the 5 s CreateFunction waits. Yields its ``127.0.0.1:<port>``."""
    handler = type("Slow", (_SlowHandler,), {"upstream": registry.host, "delay_s": delay_s})
    srv = _ThreadingServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


# --------------------------------------------------------------------------------------------
# The fixtures themselves
# --------------------------------------------------------------------------------------------


def test_fixture_images_are_served(registries: Registries):
    """Both registries serve every tag of images.json as built; the auth registry refuses
    requests without the right credentials."""
    assert {"echo:v1", "echo:v2", "echo:multi", "echo:arm64", "notserver:v1", "nolisten:v1", "user:v1"} <= set(
        registries.images
    )
    for name, info in registries.images.items():
        for reg in (registries.open, registries.auth):
            media, body = reg.manifest(name)
            assert media == info["mediaType"], (name, media)
            assert "sha256:" + hashlib.sha256(body).hexdigest() == info["digest"], name
    assert registries.images["echo:v1"]["platform"] == "linux/amd64"
    assert registries.images["echo:v2"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert registries.images["echo:arm64"]["platform"] == "linux/arm64"
    for creds in (None, (AUTH_USER, WRONG_PASSWORD)):
        status = registries.auth._request(
            "GET", "/v2/echo/manifests/v1", headers={"Accept": MANIFEST_TYPES}, credentials=creds
        )[0]
        assert status == 401, creds


# --------------------------------------------------------------------------------------------
# Running an image
# --------------------------------------------------------------------------------------------


def test_sync_invoke_answers_from_the_image(client: Client, classic_client: fc2.Client, service: str, registries):
    image = registries.open.ref("echo:v1")
    fn = create_container(client, service, image)
    data = assert_active_2(classic_client, service, fn)
    assert data["runtime"] == "custom-container"
    assert data["customContainerConfig"]["image"] == image, data
    got = client.get_function(service, fn, m.GetFunctionRequest()).body
    assert got.custom_container_config.image == image

    resp = invoke(client, service, fn, b"hello container", tail=True)
    r = report_of(resp)
    # The process's output is the function's log.
    assert f"fixture handler: POST /invoke request {r['request_id']}" in log_tail(resp), log_tail(resp)
    assert r["version"] == "v1", r
    assert (r["method"], r["path"], r["body"]) == ("POST", "/invoke", "hello container"), r
    assert r["request_id"] == resp.headers["x-fc-request-id"], (r, resp.headers)
    # The image's ENTRYPOINT + CMD, WORKDIR and ENV.
    assert r["args"] == "image-cmd", r
    assert r["cwd"] == "/srv", r
    assert r["env"]["IMAGE_VAR"] == "from-image" and r["env"]["FIXTURE_VAR"] == "from-image", r
    assert r["env"]["FC_FUNCTION_NAME"] == fn, r
    assert r["v1_only_file"] is True, r
    # The classic client invokes it too.
    out = json.loads(classic_client.invoke_function(service, fn, payload=b"classic").data)
    assert (out["version"], out["body"]) == ("v1", "classic"), out


def test_environment_variables_reach_the_process(client: Client, service: str, registries):
    fn = create_container(
        client, service, registries.open.ref("echo:v1"),
        environment_variables={"FIXTURE_VAR": "from-function"},
    )
    r = call(client, service, fn)
    # The function's variables win over the image's ENV; the image's others stay.
    assert r["env"]["FIXTURE_VAR"] == "from-function", r
    assert r["env"]["IMAGE_VAR"] == "from-image", r
    assert r["env"]["FC_FUNCTION_NAME"] == fn and r["env"]["FC_SERVICE_NAME"] == service, r


def test_image_files_are_read_only_and_the_function_is_not_root(client: Client, service: str, registries):
    fn = create_container(client, service, registries.open.ref("echo:v1"))
    r = call(client, service, fn)
    assert int(r["uid"]) != 0, r
    assert r["root_write"] != "ok", r
    # /data is world-writable in the image: only a read-only root refuses the write.
    assert r["image_dir_write"] != "ok" and "read-only" in r["image_dir_write"].lower(), r
    assert r["tmp_write"] == "ok", r
    # fcd's /dev and /proc, though the image has none of its own.
    assert r["dev_null"] is True and r["proc"] is True, r


def test_the_image_s_user_is_who_the_function_is(client: Client, service: str, registries):
    # USER app:staff, names the image's /etc/passwd and /etc/group give as 4242:4343: the
    # process sees them (mapped onto the instance's own uid on the host), and /tmp is its own.
    fn = create_container(client, service, registries.open.ref("user:v1"))
    r = call(client, service, fn)
    assert r["uid"] == "4242", r
    assert r["tmp_write"] == "ok", r
    assert r["root_write"] != "ok", r


def test_async_invoke_runs_in_the_container(client: Client, service: str, registries):
    fn = create_container(client, service, registries.open.ref("echo:v1"))
    resp = client.invoke_function_with_options(
        service, fn, m.InvokeFunctionRequest(body=b"async body"),
        m.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_stateful_async_invocation_id="cc_async_1"),
        util_models.RuntimeOptions(),
    )
    assert resp.status_code == 202, (resp.status_code, resp.body)
    deadline = time.monotonic() + 120
    while True:
        inv = client.get_stateful_async_invocation(
            service, fn, "cc_async_1", m.GetStatefulAsyncInvocationRequest()
        ).body
        if inv.status in ("Succeeded", "Failed", "Stopped", "Expired", "Invalid"):
            break
        assert time.monotonic() < deadline, inv.to_map()
        time.sleep(0.1)
    assert inv.status == "Succeeded", inv.to_map()
    r = json.loads(inv.return_payload)
    assert (r["version"], r["path"], r["body"]) == ("v1", "/invoke", "async body"), r


def test_http_trigger_reaches_the_server(fcd: FcdServer, client: Client, service: str, registries):
    fn = create_container(client, service, registries.open.ref("echo:v1"))
    http_trigger(client, service, fn)
    base = f"/2021-04-06/proxy/{service}/{fn}"
    resp = requests.put(f"http://{fcd.addr}{base}/items/7?x=1", data=b"put body", timeout=120)
    assert resp.status_code == 200, (resp.status_code, resp.text)
    r = resp.json()
    assert (r["version"], r["method"], r["body"]) == ("v1", "PUT", "put body"), r
    assert r["path"] == f"{base}/items/7" and r["query"] == "x=1", r
    r = requests.get(f"http://{fcd.addr}{base}/", timeout=120).json()
    assert (r["method"], r["path"]) == ("GET", f"{base}/"), r
    # A streamed (chunked) request body arrives whole, however fcd forwards it.
    resp = requests.post(f"http://{fcd.addr}{base}/stream", data=iter([b"chunk-one ", b"chunk-two"]), timeout=120)
    assert resp.status_code == 200, (resp.status_code, resp.text)
    assert resp.json()["body"] == "chunk-one chunk-two", resp.text


# --------------------------------------------------------------------------------------------
# command / args, entrypoint / command
# --------------------------------------------------------------------------------------------


def test_command_and_args_override_the_image(client: Client, classic_client: fc2.Client, service: str, registries):
    notserver = registries.open.ref("notserver:v1")
    # Only command + args make this image serve.
    fn = create_container(client, service, notserver, command=["/serve"], args=["from", "args"])
    r = call(client, service, fn)
    assert (r["version"], r["args"]) == ("notserver", "from args"), r

    echo = registries.open.ref("echo:v1")
    # args alone: the image's ENTRYPOINT with these arguments instead of its CMD.
    fn = create_container(client, service, echo, args=["only-args"])
    assert call(client, service, fn)["args"] == "only-args"
    # command alone: the image's CMD is dropped (as Docker does).
    fn = create_container(client, service, echo, command=["/serve"])
    assert call(client, service, fn)["args"] == ""
    # An update of args alone restarts with them.
    client.update_function(service, fn, m.UpdateFunctionRequest(
        custom_container_config=cc_config(echo, ["/serve"], ["updated"])))
    assert call(client, service, fn)["args"] == "updated"

    # The classic SDK's customContainerConfig (a dict, as users pass it).
    name = unique("cc")
    classic_client.create_function(
        service, name, "custom-container", "not-used",
        customContainerConfig={"image": notserver, "command": '["/serve"]', "args": '["classic"]'},
    )
    out = json.loads(classic_client.invoke_function(service, name, payload=b"x").data)
    assert (out["version"], out["args"]) == ("notserver", "classic"), out


def test_fc3_entrypoint_command_and_port(fc3: Fc3Client, fn3, registries):
    name = fn3(
        registries.open.ref("notserver:v1"),
        entrypoint=["/serve"], command=["three", "zero"], port=9000,
    )
    f = fc3_wait_settled(fc3, name)
    assert (f.state, f.last_update_status) == ("Active", "Successful"), f.to_map()
    assert f.custom_container_config.entrypoint == ["/serve"], f.to_map()
    assert f.custom_container_config.command == ["three", "zero"], f.to_map()
    r = report_of(fc3_invoke(fc3, name, b"via 3.0"))
    assert (r["version"], r["args"], r["body"]) == ("notserver", "three zero", "via 3.0"), r

    # Another port: the server is told by its own variable (SERVE_PORT), fcd waits on `port`.
    body = m3.CreateFunctionInput(
        function_name=unique("cc3"),
        runtime="custom-container",
        handler="not-used",
        environment_variables={"SERVE_PORT": "8088"},
        custom_container_config=m3.CustomContainerConfig(
            image=registries.open.ref("echo:v1"),
            port=8088,
            health_check_config=m3.CustomHealthCheckConfig(
                http_get_url="/health", initial_delay_seconds=0, period_seconds=1,
                timeout_seconds=2, failure_threshold=3, success_threshold=1,
            ),
        ),
    )
    other = fc3.create_function(m3.CreateFunctionRequest(body=body)).body.function_name
    try:
        assert report_of(fc3_invoke(fc3, other))["version"] == "v1"
    finally:
        fc3.delete_function(other)


def test_health_check_gates_the_instance(client: Client, service: str, registries):
    echo = registries.open.ref("echo:v1")
    fn = create_container(
        client, service, echo,
        custom_health_check_config=m.CustomHealthCheckConfig(
            http_get_url="/health", initial_delay_seconds=0, period_seconds=1,
            timeout_seconds=2, failure_threshold=3, success_threshold=1,
        ),
    )
    assert call(client, service, fn)["version"] == "v1"
    bad = create_container(
        client, service, echo,
        custom_health_check_config=m.CustomHealthCheckConfig(
            http_get_url="/unhealthy", initial_delay_seconds=0, period_seconds=1,
            timeout_seconds=1, failure_threshold=2, success_threshold=1,
        ),
    )
    expect_error("FunctionNotStarted", 412, invoke, client, service, bad)


# --------------------------------------------------------------------------------------------
# Updates
# --------------------------------------------------------------------------------------------


def test_update_to_a_new_tag_replaces_instances(client: Client, classic_client: fc2.Client, service: str, registries):
    v1 = registries.open.ref("echo:v1")
    fn = create_container(client, service, v1)
    r = call(client, service, fn)
    assert (r["version"], r["v1_only_file"]) == ("v1", True), r

    v2 = registries.open.ref("echo:v2")  # a Docker v2 schema 2 manifest, two layers, a whiteout
    client.update_function(service, fn, m.UpdateFunctionRequest(custom_container_config=cc_config(v2)))
    data = assert_active_2(classic_client, service, fn)
    assert data["customContainerConfig"]["image"] == v2, data
    r = call(client, service, fn)
    assert (r["version"], r["v1_only_file"]) == ("v2", False), r

    # By digest, back to v1.
    by_digest = f"{registries.open.host}/echo@{registries.images['echo:v1']['digest']}"
    client.update_function(service, fn, m.UpdateFunctionRequest(custom_container_config=cc_config(by_digest)))
    assert call(client, service, fn)["version"] == "v1"


def test_a_tag_pushed_anew_is_picked_up_by_an_update(fcd: FcdServer, service: str, registries):
    """A tag no fcd has pulled yet; then the same tag pushed anew (now v2's manifest): an update
    naming the image pulls it again and the next instance runs the new one. (Other nodes of a
    cluster pull it again when they hear of the update, a moment later: under
    ``FCD_TEST_CLUSTER`` every call here goes to one node.)"""
    client = getattr(fcd, "nodes", [fcd])[0].client()
    tag = unique("moving")
    moving = registries.open.tag("echo:v1", tag)
    fn = create_container(client, service, moving)
    assert call(client, service, fn)["version"] == "v1"
    assert registries.open.tag("echo:v2", tag) == moving
    client.update_function(service, fn, m.UpdateFunctionRequest(custom_container_config=cc_config(moving)))
    assert call(client, service, fn)["version"] == "v2"


def test_a_failed_update_keeps_the_function_as_it_was(client: Client, classic_client: fc2.Client, service: str, registries):
    v1 = registries.open.ref("echo:v1")
    fn = create_container(client, service, v1)
    assert call(client, service, fn)["version"] == "v1"
    expect_error(
        "ImageNotFound", 400, client.update_function, service, fn,
        m.UpdateFunctionRequest(custom_container_config=cc_config(registries.open.ref("echo:no-such-tag"))),
    )
    data = raw_function(classic_client, service, fn)
    assert data["customContainerConfig"]["image"] == v1, data
    assert call(client, service, fn)["version"] == "v1"


def test_an_image_index_gives_linux_amd64_and_other_platforms_are_refused(client: Client, service: str, registries):
    fn = create_container(client, service, registries.open.ref("echo:multi"))
    assert call(client, service, fn)["version"] == "v1"
    for tag in ("echo:arm64", "echo:arm64-only"):
        err = expect_error(
            "ImagePlatformMismatch", 400, create_container, client, service, registries.open.ref(tag)
        )
        assert "arm64" in err.message, err.message


def test_a_slow_pull_is_pending_until_it_ends(fcd: FcdServer, service: str, registries):
    """A pull longer than CreateFunction's 5 s wait: the function exists, Pending/InProgress
    while it goes on, an invocation waits for it; a slow pull that fails leaves it Failed with
    the reason and its code, on both APIs, and invocations fail with that code.

    The pull state is a node's own (each node of a cluster pulls for itself), so under
    ``FCD_TEST_CLUSTER`` every call here goes to one node, not through the balancer."""
    node = getattr(fcd, "nodes", [fcd])[0]
    client, classic_client, fc3 = node.client(), node.classic_client(), node.fc3_client()
    with slow_registry(registries.open, delay_s=6.5) as host:
        started = time.monotonic()
        fn = create_container(client, service, f"{host}/echo:v1")
        assert time.monotonic() - started < 6.5, "CreateFunction waited for the whole pull"
        data = raw_function(classic_client, service, fn)
        assert (data.get("state"), data.get("lastUpdateStatus")) == ("Pending", "InProgress"), data
        f3 = fc3.get_function(f"{service}${fn}", m3.GetFunctionRequest()).body
        assert (f3.state, f3.last_update_status) == ("Pending", "InProgress"), f3.to_map()
        assert call(client, service, fn, b"waited")["body"] == "waited"
        assert_active_2(classic_client, service, fn)

        bad = create_container(client, service, f"{host}/echo:v9")
        data = wait_settled_2(classic_client, service, bad)
        assert (data.get("state"), data.get("stateReasonCode")) == ("Failed", "ImageNotFound"), data
        assert (data.get("lastUpdateStatus"), data.get("lastUpdateStatusReasonCode")) == ("Failed", "ImageNotFound"), data
        assert "echo:v9" in data.get("stateReason", ""), data
        f3 = fc3.get_function(f"{service}${bad}", m3.GetFunctionRequest()).body
        assert (f3.state, f3.state_reason_code) == ("Failed", "ImageNotFound"), f3.to_map()
        with pytest.raises(ApiError) as excinfo:
            invoke(client, service, bad)
        assert excinfo.value.code == "ImageNotFound", excinfo.value


# --------------------------------------------------------------------------------------------
# Bad images
# --------------------------------------------------------------------------------------------


def test_bad_image_references_are_refused(client: Client, classic_client: fc2.Client, service: str, registries):
    host = registries.open.host
    cases = [
        ("InvalidImage", "echo:v1"),  # no registry host: fcd has no default registry
        ("InvalidImage", f"{host}/echo@sha256:1234"),
        ("ImageNotFound", f"{host}/echo:v9"),
        ("ImageNotFound", f"{host}/no-such-repo:v1"),
    ]
    for code, image in cases:
        name = unique("cc")
        err = expect_error(code, 400, create_container, client, service, image, name=name)
        assert err.message, image
        if code == "ImageNotFound":
            assert image in err.message, (image, err.message)
        # Nothing was created.
        expect_error("FunctionNotFound", 404, client.get_function, service, name, m.GetFunctionRequest())
    expect_fc2_error(
        "ImageNotFound", 400, classic_client.create_function, service, unique("cc"), "custom-container",
        "not-used", customContainerConfig={"image": f"{host}/echo:v9"},
    )
    # Nothing listens there.
    expect_error(
        "ImageRegistryUnreachable", 400, create_container, client, service, f"127.0.0.1:{_free_port()}/echo:v1"
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_never_listens_is_function_not_started(fcd_factory, registries):
    server = fcd_factory(extra_args=("--instance-start-timeout-secs", "3"))
    client = server.client()
    service = client.create_service(m.CreateServiceRequest(service_name=unique("svc"))).body.service_name
    for image in ("nolisten:v1", "notserver:v1"):
        fn = create_container(client, service, registries.open.ref(image), initialization_timeout=1)
        started = time.monotonic()
        err = expect_error("FunctionNotStarted", 412, invoke, client, service, fn)
        assert "9000" in err.message, err.message
        assert time.monotonic() - started < 60


# --------------------------------------------------------------------------------------------
# Registry credentials
# --------------------------------------------------------------------------------------------


def test_fc3_registry_credentials(fc3: Fc3Client, fn3, registries):
    image = registries.auth.ref("echo:v1")
    name = fn3(image, registry_config=m3.RegistryConfig(
        auth_config=m3.RegistryAuthConfig(user_name=AUTH_USER, password=AUTH_PASSWORD)))
    f = fc3_wait_settled(fc3, name)
    assert (f.state, f.last_update_status) == ("Active", "Successful"), f.to_map()
    assert report_of(fc3_invoke(fc3, name, b"with credentials"))["version"] == "v1"
    wrong = m3.RegistryConfig(auth_config=m3.RegistryAuthConfig(user_name=AUTH_USER, password=WRONG_PASSWORD))
    expect_error("ImageAccessDenied", 400, fc3_create, fc3, image, registry_config=wrong)
    # No credentials at all.
    expect_error("ImageAccessDenied", 400, fc3_create, fc3, image)


def test_registry_auth_file(fcd_factory, tmp_path: Path, registries):
    image = registries.auth.ref("echo:v1")
    # The session server has no credentials for it.
    right = docker_config(tmp_path / "right.json", {registries.auth.host: (AUTH_USER, AUTH_PASSWORD)})
    wrong = docker_config(tmp_path / "wrong.json", {registries.auth.host: (AUTH_USER, WRONG_PASSWORD)})

    good = fcd_factory(extra_env={"FCD_REGISTRY_AUTH_FILE": str(right)})
    client = good.client()
    service = client.create_service(m.CreateServiceRequest(service_name=unique("svc"))).body.service_name
    fn = create_container(client, service, image)
    assert call(client, service, fn)["version"] == "v1"

    bad = fcd_factory(extra_env={"FCD_REGISTRY_AUTH_FILE": str(wrong)})
    client = bad.client()
    service = client.create_service(m.CreateServiceRequest(service_name=unique("svc"))).body.service_name
    err = expect_error("ImageAccessDenied", 400, create_container, client, service, image)
    assert registries.auth.host in err.message, err.message
    expect_fc2_error(
        "ImageAccessDenied", 400, bad.classic_client().create_function, service, unique("cc"),
        "custom-container", "not-used", customContainerConfig={"image": image},
    )


# --------------------------------------------------------------------------------------------
# The image cache across restarts
# --------------------------------------------------------------------------------------------


def test_pulled_images_survive_a_restart_and_are_pulled_again_when_gone(fcd_factory, tmp_path: Path):
    """An image pulled once runs after a restart with its registry gone; a server whose cache
    was emptied pulls again at the cold start, and says why it cannot when the registry is
    gone."""
    registry = Registry(tmp_path / "private").start()
    try:
        data = tmp_path / "data"
        server = fcd_factory(data_dir=data)
        client = server.client()
        service = client.create_service(m.CreateServiceRequest(service_name=unique("svc"))).body.service_name
        fn = create_container(client, service, registry.ref("echo:v1"))
        assert call(client, service, fn)["version"] == "v1"
        server.stop()
        registry.stop()

        server = fcd_factory(data_dir=data)
        client = server.client()
        assert call(client, service, fn, b"from the cache")["body"] == "from the cache"
        server.stop()

        # No unpacked image left, no registry: the cold start's pull fails, with its code.
        images = data / "images"
        assert images.is_dir(), sorted(p.name for p in data.iterdir())
        import shutil

        shutil.rmtree(images)
        server = fcd_factory(data_dir=data)
        client = server.client()
        with pytest.raises(ApiError) as excinfo:
            invoke(client, service, fn)
        assert excinfo.value.code == "ImageRegistryUnreachable", excinfo.value

        # The registry back (same port): the same server pulls at the next cold start.
        registry.start()
        assert call(client, service, fn)["version"] == "v1"
    finally:
        registry.stop()
