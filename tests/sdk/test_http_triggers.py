"""HTTP triggers and custom domains: functions reached by URL.

Through plain HTTP (``requests``, as a browser or curl would) and through the SDKs' own
HTTP-trigger helpers (aliyun-fc2 ``Client.do_http_request``; the 2021-04-06 SDK's
``invoke_httptrigger``, which signs with ``alibabacloud_gateway_fc_util``): a custom-runtime
function (a small ``http.server`` bootstrap that echoes what it received as JSON) behind
``/{2021-04-06|2016-08-15}/proxy/{service}[.{qualifier}]/{function}/{path}`` and behind a
custom domain selected by ``Host`` — on the API listener and on ``--http-listen``.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest
import requests
from alibabacloud_fc_open20210406 import models as fm
from alibabacloud_fc_open20210406.client import Client

from fcdkit import (
    ACCOUNT_ID,
    FcdServer,
    _new_server,
    code_of,
    create_function,
    delete_service_tree,
    make_zip_bytes,
    unique,
    wait_until,
)
from ramkit import (
    ROOT_ARN,
    RamFixture,
    allow,
    assume_role,
    classic_client,
    fc_client,
    policy_document,
    trust_document,
)

pytestmark = pytest.mark.invoke

# A custom runtime answering every method. HTTP invocations (dispatched on
# x-fc-control-path, never on the path) are echoed as JSON: what the function received.
# Query switches: status=N answers N; raw answers the body itself with the request's
# content type; fail reports a function error; bigheaders answers 9 KB of headers.
HTTP_BOOTSTRAP = r'''#!/usr/bin/env python3
import base64
import http.server
import json
import os
import socketserver
import time
import urllib.parse

PORT = int(os.environ.get("FC_SERVER_PORT", "9000"))
TAG = "__TAG__"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("x-fc-control-path") != "/http-invoke":
            self._send(200, [("x-fc-status", "200")], b"event " + TAG.encode())
            return
        rid = self.headers.get("x-fc-request-id", "")
        print("FC Invoke Start RequestId: " + rid, flush=True)
        print("http " + TAG + " " + self.command + " " + self.path, flush=True)
        print("FC Invoke End RequestId: " + rid, flush=True)
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "sleep" in params:
            time.sleep(float(params["sleep"][0]))
        if "exit" in params:
            os._exit(3)
        if "fail" in params:
            err = json.dumps({"errorMessage": "boom", "errorType": "Error", "stackTrace": []})
            self._send(200, [("x-fc-status", "404"),
                             ("x-fc-error-type", "UnhandledInvocationError")], err.encode())
            return
        headers = [("X-Echo-Tag", TAG), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                   ("x-fc-secret", "must-not-leak"), ("Server", "bootstrap"),
                   ("x-fc-status", "200")]
        if "bigheaders" in params:
            headers.append(("X-Big", "b" * 9000))
        if "raw" in params:
            headers.append(("Content-Type", self.headers.get("Content-Type", "")))
            out = body
        else:
            headers.append(("Content-Type", "application/json"))
            out = json.dumps({
                "tag": TAG,
                "method": self.command,
                "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "body": base64.b64encode(body).decode(),
            }).encode()
        self._send(int(params.get("status", ["200"])[0]), headers, out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

    def log_message(self, fmt, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("0.0.0.0", PORT), Handler).serve_forever()
'''


def http_function(
    client: Client, service: str, tag: str, name: Optional[str] = None, **kwargs
) -> str:
    zip_bytes = make_zip_bytes(
        {"bootstrap": HTTP_BOOTSTRAP.replace("__TAG__", tag)}, executable=("bootstrap",)
    )
    return create_function(
        client,
        service,
        name,
        zip_bytes=zip_bytes,
        runtime="custom",
        handler="index.handler",
        **kwargs,
    ).function_name


def http_trigger(
    client: Client,
    service: str,
    function: str,
    auth_type: str = "anonymous",
    methods: tuple[str, ...] = ("GET", "POST"),
    qualifier: Optional[str] = None,
    name: Optional[str] = None,
) -> None:
    resp = client.create_trigger(
        service,
        function,
        fm.CreateTriggerRequest(
            trigger_name=name or unique("http"),
            trigger_type="http",
            trigger_config=json.dumps({"authType": auth_type, "methods": list(methods)}),
            qualifier=qualifier,
        ),
    )
    assert resp.status_code == 200, resp.status_code


def echoed(resp: requests.Response) -> dict:
    assert resp.status_code < 300, (resp.status_code, resp.headers, resp.text)
    return resp.json()


def headers_of(echo: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in echo["headers"]:
        out.setdefault(k, []).append(v)
    return out


def assert_common_error(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers.get("x-fc-error-type") == "FcCommonError", resp.headers
    assert resp.json()["ErrorCode"] == code, resp.text
    assert resp.headers.get("x-fc-request-id")


@pytest.fixture
def anon(client: Client, service: str) -> tuple[str, str]:
    """A custom function with an anonymous GET/POST trigger on LATEST."""
    fn = http_function(client, service, "anon")
    http_trigger(client, service, fn)
    return service, fn


def test_anonymous_get_passes_path_query_and_headers_and_returns_the_functions_response(
    fcd: FcdServer, anon: tuple[str, str]
):
    service, fn = anon
    base = f"/2021-04-06/proxy/{service}/{fn}"
    resp = requests.get(
        f"http://{fcd.addr}{base}/users/1%20x?a=1&a=2&b=x+y&status=203",
        headers={
            "X-Custom": "v1",
            "X-Fc-Invocation-Code-Version": "spoofed",
            "X-Forwarded-For": "203.0.113.7",
            "X-Fc-Log-Type": "Tail",
        },
        timeout=60,
    )
    echo = echoed(resp)
    # Anonymous callers never read the function's log.
    assert "x-fc-log-result" not in resp.headers
    assert resp.status_code == 203
    # A custom runtime gets the full request-target, exactly as sent.
    assert echo["method"] == "GET"
    assert echo["path"] == f"{base}/users/1%20x?a=1&a=2&b=x+y&status=203"
    h = headers_of(echo)
    assert h["x-custom"] == ["v1"]
    assert h["x-fc-control-path"] == ["/http-invoke"]
    assert h["x-fc-base-path"] == [base]
    assert h["x-fc-function-name"] == [fn]
    assert h["x-fc-request-id"] == [resp.headers["x-fc-request-id"]]
    assert h["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert "x-fc-invocation-code-version" not in h, "clients cannot set x-fc-* headers"
    # The function's own headers come back; reserved ones do not.
    assert resp.headers["x-echo-tag"] == "anon"
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert "x-fc-secret" not in resp.headers
    assert resp.headers.get("server") != "bootstrap"
    assert resp.headers["content-type"] == "application/json"


def test_the_triggers_url_internet_reaches_it(fcd: FcdServer, client: Client, anon: tuple[str, str]):
    service, fn = anon
    listing = client.list_triggers(service, fn, fm.ListTriggersRequest()).body
    (trigger,) = listing.triggers
    echo = echoed(requests.get(trigger.url_internet + "hello?x=1", timeout=60))
    assert echo["path"] == f"/2016-08-15/proxy/{service}/{fn}/hello?x=1"


def test_anonymous_post_round_trips_a_binary_body(fcd: FcdServer, anon: tuple[str, str]):
    service, fn = anon
    payload = bytes(range(256)) * 64
    resp = requests.post(
        f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/upload?raw=1",
        data=payload,
        headers={"Content-Type": "application/x-thing"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.content == payload
    assert resp.headers["content-type"] == "application/x-thing"
    assert int(resp.headers["content-length"]) == len(payload)
    echo = echoed(
        requests.post(
            f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/invoke",
            data=payload,
            timeout=60,
        )
    )
    # `/invoke` as the client's own path is just a path: dispatch is by x-fc-control-path.
    assert echo["method"] == "POST" and echo["path"].endswith(f"/{fn}/invoke")
    assert base64.b64decode(echo["body"]) == payload


def test_methods_outside_the_trigger_and_unknown_functions_are_refused(
    fcd: FcdServer, client: Client, anon: tuple[str, str]
):
    service, fn = anon
    url = f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/x"
    assert_common_error(requests.put(url, data=b"x", timeout=60), 403, "AccessDenied")
    assert_common_error(requests.delete(url, timeout=60), 403, "AccessDenied")
    # A function without an HTTP trigger, and one that does not exist.
    other = http_function(client, service, "other")
    resp = requests.get(f"http://{fcd.addr}/2021-04-06/proxy/{service}/{other}/", timeout=60)
    assert_common_error(resp, 404, "TriggerNotFound")
    resp = requests.get(f"http://{fcd.addr}/2021-04-06/proxy/{service}/nope/", timeout=60)
    assert resp.status_code == 404 and resp.headers.get("x-fc-error-type") == "FcCommonError"


def test_limits_and_function_errors(fcd: FcdServer, anon: tuple[str, str]):
    service, fn = anon
    url = f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}"
    # Request headers over 8 KB, path and query over 4 KB: 400 before the function runs.
    assert_common_error(
        requests.get(url + "/", headers={"X-Big": "h" * 9000}, timeout=60), 400, "InvalidArgument"
    )
    assert_common_error(requests.get(url + "/" + "p" * 4200, timeout=60), 400, "InvalidArgument")
    # A function error: 502 with its error type and FC's error body.
    resp = requests.get(url + "/?fail=1", timeout=60)
    assert resp.status_code == 502, resp.text
    assert resp.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert resp.json()["errorMessage"] == "boom"
    # Response headers over 8 KB: 502 BadResponse.
    resp = requests.get(url + "/?bigheaders=1", timeout=60)
    assert resp.status_code == 502, resp.text
    assert resp.json()["ErrorCode"] == "BadResponse"


def test_timeouts_and_crashes_are_502_function_errors(
    fcd: FcdServer, client: Client, service: str
):
    fn = http_function(client, service, "slow", timeout=1)
    http_trigger(client, service, fn)
    url = f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/"
    # The handler sleeps far past the function's 1 s timeout.
    resp = requests.get(url + "?sleep=20", timeout=60)
    assert resp.status_code == 502, resp.text
    assert resp.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert "timed out after 1 seconds" in resp.json()["errorMessage"]
    resp = requests.get(url + "?exit=1", timeout=60)
    assert resp.status_code == 502, resp.text
    assert "Process exited unexpectedly" in resp.json()["errorMessage"]
    # A fresh instance serves the next request.
    assert echoed(requests.get(url, timeout=60))["tag"] == "slow"


def test_2016_prefix_and_a_qualified_path_reach_the_alias(
    fcd: FcdServer, client: Client, service: str
):
    fn = http_function(client, service, "v1")
    client.publish_service_version(service, fm.PublishServiceVersionRequest())
    client.create_alias(service, fm.CreateAliasRequest(alias_name="prod", version_id="1"))
    http_trigger(client, service, fn, qualifier="prod")
    # LATEST moves on; the alias keeps serving version 1.
    zip_bytes = make_zip_bytes(
        {"bootstrap": HTTP_BOOTSTRAP.replace("__TAG__", "v2")}, executable=("bootstrap",)
    )
    client.update_function(
        service,
        fn,
        fm.UpdateFunctionRequest(code=code_of(zip_bytes)),
    )
    http_trigger(client, service, fn, qualifier="LATEST")
    for prefix in ("2016-08-15", "2021-04-06"):
        base = f"/{prefix}/proxy/{service}.prod/{fn}"
        echo = echoed(requests.get(f"http://{fcd.addr}{base}/a?x=1", timeout=60))
        assert echo["tag"] == "v1"
        h = headers_of(echo)
        assert h["x-fc-qualifier"] == ["prod"] and h["x-fc-version-id"] == ["1"]
        assert h["x-fc-base-path"] == [base]
        latest = echoed(requests.get(f"http://{fcd.addr}/{prefix}/proxy/{service}/{fn}/a", timeout=60))
        assert latest["tag"] == "v2"
    # No trigger for this qualifier.
    resp = requests.get(f"http://{fcd.addr}/2016-08-15/proxy/{service}.1/{fn}/a", timeout=60)
    assert_common_error(resp, 404, "TriggerNotFound")


def test_sdk_helpers_reach_anonymous_triggers(
    fcd: FcdServer, client: Client, classic_client, anon: tuple[str, str]
):
    service, fn = anon
    r = classic_client.do_http_request(
        "POST", service, fn, "/classic", headers={"X-Through": "fc2"}, params={"k": "v"}, body=b"hi"
    )
    echo = echoed(r)
    assert echo["path"] == f"/2016-08-15/proxy/{service}/{fn}/classic?k=v"
    assert headers_of(echo)["x-through"] == ["fc2"]
    assert base64.b64decode(echo["body"]) == b"hi"
    r = client.invoke_anonymous_httptrigger(
        f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/new?z=1", "GET", b"", {"X-Through": "tea"}
    )
    echo = echoed(r)
    assert echo["path"] == f"/2021-04-06/proxy/{service}/{fn}/new?z=1"


@pytest.fixture
def iam(fcd: FcdServer) -> Iterator[RamFixture]:
    fixture = RamFixture(fcd.addr)
    yield fixture
    fixture.cleanup()


def test_auth_type_function_needs_a_signature_of_someone_allowed_to_invoke(
    fcd: FcdServer, client: Client, service: str, iam: RamFixture
):
    fn = http_function(client, service, "signed")
    http_trigger(client, service, fn, auth_type="function", methods=("GET", "POST"))
    url = f"http://{fcd.addr}/2016-08-15/proxy/{service}/{fn}/secret?b=2&a=1"
    # Unsigned: refused before the function runs.
    assert_common_error(requests.get(url, timeout=60), 400, "MissingRequiredHeader")
    forged = requests.get(
        url,
        headers={"Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
                 "Authorization": "FC testAccessKeyId:" + base64.b64encode(b"x" * 32).decode()},
        timeout=60,
    )
    assert_common_error(forged, 403, "SignatureNotMatch")
    # Signed by aliyun-fc2 (sorted query) with the root key.
    r = classic_client(fcd.addr).do_http_request(
        "GET", service, fn, "/secret", params={"b": "2", "a": "1"}
    )
    echo = echoed(r)
    assert echo["path"] == f"/2016-08-15/proxy/{service}/{fn}/secret?b=2&a=1"
    # Signed by the 2021-04-06 SDK's helper (URL-order query).
    r = client.invoke_httptrigger(
        f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/tea?b=2&a=1", "POST", b"body", {}
    )
    assert base64.b64decode(echoed(r)["body"]) == b"body"
    # A RAM user: refused without fc:InvokeFunction on the function, served with it.
    nobody = iam.user(policy_document(allow("fc:GetService", "*")))
    r = classic_client(fcd.addr, nobody.keys).do_http_request("GET", service, fn, "/secret")
    assert_common_error(r, 403, "AccessDenied")
    invoker = iam.user(
        policy_document(
            allow("fc:InvokeFunction", f"acs:fc:*:{ACCOUNT_ID}:services/{service}.LATEST/functions/{fn}")
        )
    )
    r = classic_client(fcd.addr, invoker.keys).do_http_request(
        "GET", service, fn, "/secret", headers={"X-Fc-Log-Type": "Tail"}
    )
    assert echoed(r)["tag"] == "signed"
    # A caller allowed to invoke may read the log tail, as with InvokeFunction.
    tail = base64.b64decode(r.headers["x-fc-log-result"]).decode()
    assert f"http signed GET /2016-08-15/proxy/{service}/{fn}/secret" in tail, tail
    r = fc_client(fcd.addr, invoker.keys).invoke_httptrigger(
        f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/x", "GET", b"", {}
    )
    assert echoed(r)["tag"] == "signed"
    # An STS session (its token in the signed x-fc-security-token) with the role's permission.
    role = iam.role(
        trust_document(ROOT_ARN),
        policy_document(
            allow("fc:InvokeFunction", f"acs:fc:*:*:services/{service}.*/functions/*")
        ),
    )
    assumer = iam.user(system=("AliyunSTSAssumeRoleAccess",))
    session, _ = assume_role(fcd.addr, assumer.keys, role)
    r = classic_client(fcd.addr, session).do_http_request("POST", service, fn, "/sts", body=b"s")
    assert echoed(r)["tag"] == "signed"
    r = classic_client(fcd.addr, assumer.keys).do_http_request("POST", service, fn, "/sts", body=b"s")
    assert_common_error(r, 403, "AccessDenied")


def test_async_http_invocation_is_replayed_as_the_same_request(
    fcd: FcdServer, client: Client, anon: tuple[str, str]
):
    service, fn = anon
    inv_id = unique("inv")
    payload = bytes(range(256))
    resp = requests.post(
        f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/jobs/7?q=1",
        data=payload,
        headers={
            "X-Fc-Invocation-Type": "Async",
            "X-Fc-Stateful-Async-Invocation-Id": inv_id,
            "X-Job": "seven",
            "Content-Type": "application/x-job",
        },
        timeout=60,
    )
    assert resp.status_code == 202, resp.text
    assert resp.headers["x-fc-stateful-async-invocation-id"] == inv_id

    def record():
        return client.get_stateful_async_invocation(
            service, fn, inv_id, fm.GetStatefulAsyncInvocationRequest()
        ).body

    assert wait_until(lambda: record().status in ("Succeeded", "Failed"), 60), record().to_map()
    inv = record()
    assert inv.status == "Succeeded", inv.to_map()
    echo = json.loads(inv.return_payload)
    assert echo["method"] == "POST"
    assert echo["path"] == f"/2021-04-06/proxy/{service}/{fn}/jobs/7?q=1"
    h = headers_of(echo)
    assert h["x-job"] == ["seven"] and h["content-type"] == ["application/x-job"]
    assert h["x-fc-control-path"] == ["/http-invoke"]
    assert base64.b64decode(echo["body"]) == payload
    # The async body limit is 128 KB.
    resp = requests.post(
        f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/big",
        data=b"x" * (128 * 1024 + 1),
        headers={"X-Fc-Invocation-Type": "Async"},
        timeout=60,
    )
    assert_common_error(resp, 400, "EntityTooLarge")


def create_domain(client: Client, domain: str, routes: list[tuple[str, str, str]]) -> None:
    client.create_custom_domain(
        fm.CreateCustomDomainRequest(
            domain_name=domain,
            protocol="HTTP",
            route_config=fm.RouteConfig(
                routes=[
                    fm.PathConfig(path=p, service_name=s, function_name=f, qualifier="LATEST")
                    for p, s, f in routes
                ]
            ),
        )
    )


@pytest.fixture
def web_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FcdServer]:
    server = _new_server(
        tmp_path / "fcd-web", owner=request.node.nodeid, extra_args=("--http-listen", "127.0.0.1:0")
    )
    server.start()
    yield server
    server.stop()


def test_a_custom_domain_routes_two_paths_to_two_functions_by_host(web_server: FcdServer):
    client = web_server.client()
    service = unique("svc")
    client.create_service(fm.CreateServiceRequest(service_name=service))
    domain = f"{unique('api')}.example.test".lower()
    try:
        users = http_function(client, service, "users")
        orders = http_function(client, service, "orders")
        http_trigger(client, service, users)
        http_trigger(client, service, orders, methods=("GET",))
        secure = http_function(client, service, "secure")
        http_trigger(client, service, secure, auth_type="function")
        create_domain(
            client,
            domain,
            [("/users/*", service, users), ("/orders", service, orders), ("/secure", service, secure)],
        )
        web_addr = (web_server.data_dir / "http-addr").read_text().strip()
        for addr in (web_server.addr, web_addr):
            host = {"Host": domain.upper() + ":8080"}
            echo = echoed(requests.get(f"http://{addr}/users/1?x=y", headers=host, timeout=60))
            assert echo["tag"] == "users" and echo["path"] == "/users/1?x=y"
            assert "x-fc-base-path" not in headers_of(echo)
            echo = echoed(requests.get(f"http://{addr}/orders", headers=host, timeout=60))
            assert echo["tag"] == "orders" and echo["path"] == "/orders"
            # The trigger's methods still apply; a path no route matches is 404.
            assert_common_error(requests.post(f"http://{addr}/orders", headers=host, timeout=60), 403, "AccessDenied")
            assert_common_error(requests.get(f"http://{addr}/nothing", headers=host, timeout=60), 404, "RouteNotFound")
            # authType function applies on the domain too: the query is signed with the path.
            secure_url = f"http://{addr}/secure?b=2&a=1"
            assert_common_error(requests.get(secure_url, headers=host, timeout=60), 400, "MissingRequiredHeader")
            r = client.invoke_httptrigger(secure_url, "GET", b"", {"Host": domain})
            assert echoed(r)["tag"] == "secure" and echoed(r)["path"] == "/secure?b=2&a=1"
        # /proxy/ URLs work on the web listener too; the API does not.
        echo = echoed(requests.get(f"http://{web_addr}/2021-04-06/proxy/{service}/{users}/p", timeout=60))
        assert echo["tag"] == "users"
        resp = requests.get(f"http://{web_addr}/2021-04-06/services", timeout=60)
        assert resp.status_code == 404, resp.text
        # On the API listener an unknown Host is an API call as always (unsigned: refused), and
        # so is an API path under the domain's Host: a domain never captures API traffic.
        for h in ("unknown.example.test", domain):
            resp = requests.get(
                f"http://{web_server.addr}/2021-04-06/services", headers={"Host": h}, timeout=60
            )
            assert resp.status_code == 403 and resp.json()["ErrorCode"] == "AccessDenied", resp.text
    finally:
        try:
            client.delete_custom_domain(domain)
        except Exception:
            pass
        delete_service_tree(client, service)


# --------------------------------------------------------------------------------------------
# Built-in runtimes' HTTP handler shapes (the bootstraps): python WSGI
# --------------------------------------------------------------------------------------------

WSGI_HANDLER = """\
import base64
import json


def handler(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    if "raw" in environ["QUERY_STRING"]:
        start_response("200 OK", [("Content-Type", environ.get("CONTENT_TYPE", ""))])
        return [body]
    out = json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "remote": environ["REMOTE_ADDR"],
        "custom": environ.get("HTTP_X_CUSTOM"),
        "request_uri": environ.get("fc.request_uri"),
        "request_id": environ["fc.context"].request_id,
        "body": base64.b64encode(body).decode(),
    }).encode()
    start_response("201 Created", [
        ("Content-Type", "application/json"),
        ("X-Wsgi", "yes"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ])
    return [out]
"""


def test_python_wsgi_function_get_and_post(fcd: FcdServer, client: Client, service: str):
    fn = create_function(
        client, service, files={"index.py": WSGI_HANDLER}, runtime="python3.10"
    ).function_name
    http_trigger(client, service, fn)
    base = f"/2016-08-15/proxy/{service}/{fn}"
    resp = requests.get(
        f"http://{fcd.addr}{base}/users/1?a=1&a=2", headers={"X-Custom": "c"}, timeout=60
    )
    assert resp.status_code == 201, resp.text
    echo = resp.json()
    # Built-in handlers see the path after the function.
    assert echo["method"] == "GET" and echo["path"] == "/users/1"
    assert echo["query"] == "a=1&a=2" and echo["custom"] == "c"
    assert echo["remote"] == "127.0.0.1"
    assert echo["request_id"] == resp.headers["x-fc-request-id"]
    assert resp.headers["x-wsgi"] == "yes"
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    payload = bytes(range(256)) * 16
    resp = requests.post(
        f"http://{fcd.addr}{base}/up?raw=1",
        data=payload,
        headers={"Content-Type": "application/x-bin"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.content == payload and resp.headers["content-type"] == "application/x-bin"


# nodejs: FC's (req, resp, context)
NODE_HANDLER = """\
exports.handler = (req, resp, context) => {
  if (req.queries.raw !== undefined) {
    resp.setStatusCode(200);
    resp.setHeader('content-type', req.headers['content-type']);
    resp.send(req.body);
    return;
  }
  resp.setStatusCode(201);
  resp.setHeader('content-type', 'application/json');
  resp.setHeader('x-node', 'yes');
  resp.setHeader('set-cookie', ['a=1', 'b=2']);
  resp.send(JSON.stringify({
    method: req.method,
    path: req.path,
    queries: req.queries,
    clientIP: req.clientIP,
    custom: req.headers['x-custom'],
    url: req.url,
    requestId: context.requestId,
    body: req.body.toString('base64'),
  }));
};
"""


def test_nodejs_http_function_get_and_post(fcd: FcdServer, client: Client, service: str):
    fn = create_function(
        client, service, files={"index.js": NODE_HANDLER}, runtime="nodejs18"
    ).function_name
    http_trigger(client, service, fn)
    base = f"/2021-04-06/proxy/{service}/{fn}"
    resp = requests.get(
        f"http://{fcd.addr}{base}/users/1?a=1&a=2&b=x", headers={"X-Custom": "c"}, timeout=60
    )
    assert resp.status_code == 201, resp.text
    echo = resp.json()
    assert echo["method"] == "GET" and echo["path"] == "/users/1"
    assert echo["queries"] == {"a": ["1", "2"], "b": "x"}
    assert echo["clientIP"] == "127.0.0.1" and echo["custom"] == "c"
    assert echo["url"] == f"{base}/users/1?a=1&a=2&b=x"
    assert echo["requestId"] == resp.headers["x-fc-request-id"]
    assert resp.headers["x-node"] == "yes"
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    payload = bytes(range(256)) * 16
    resp = requests.post(
        f"http://{fcd.addr}{base}/up?raw=1",
        data=payload,
        headers={"Content-Type": "application/x-bin"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.content == payload and resp.headers["content-type"] == "application/x-bin"
