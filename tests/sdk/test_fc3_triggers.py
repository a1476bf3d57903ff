"""FC 3.0 triggers and custom domains through the official 3.0 SDK (alibabacloud-fc20230330),
and the 3.0 HTTP trigger URLs reached with plain ``requests``.

Trigger CRUD, URLs and domains are exercised on 2.0 functions (``svc$fn``, created with the
2.0 SDK), which 3.0 shows and manages. The tests marked NATIVE-3.0 create a native function with
the 3.0 SDK's CreateFunction (another part of the 3.0 work): they need it to be merged, and check
what only native functions have — the v1 event of built-in runtimes, its response mapping, no
service name in the context.
"""

from __future__ import annotations

import base64
import json
from typing import Iterator

import pytest
import requests
from alibabacloud_fc20230330 import models as m3
from alibabacloud_fc_open20210406 import models as m2
from alibabacloud_fc_open20210406.client import Client

from fcdkit import (
    ACCOUNT_ID,
    _new_server,
    create_function,
    delete_service_tree,
    expect_error,
    make_zip_bytes,
    unique,
)

pytestmark = pytest.mark.invoke

# A 2.0 Python HTTP function (WSGI): echoes what it was asked.
WSGI = r'''
import json

def handler(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    out = json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING"),
        "body": body.decode("utf-8", "replace"),
    }).encode()
    start_response("200 OK", [("content-type", "application/json"), ("x-wsgi", "1")])
    return [out]
'''

# A native 3.0 Python function: the v1 event in, a response struct out.
V1_HANDLER = r'''
import json

def handler(event, context):
    e = json.loads(event)
    q = e.get("queryParameters", {})
    if "plain" in q:
        return "just text"
    if "obj" in q:
        return {"a": 1}
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-v1": "yes"},
        "body": json.dumps({"event": e, "service": context.service.name,
                            "function": context.function.name}),
    }
'''


def trigger_input(name: str, config: dict, trigger_type: str = "http", **kw) -> m3.CreateTriggerRequest:
    return m3.CreateTriggerRequest(
        body=m3.CreateTriggerInput(
            trigger_name=name, trigger_type=trigger_type, trigger_config=json.dumps(config), **kw
        )
    )


ANON = {"authType": "anonymous", "methods": ["GET", "POST"]}


@pytest.fixture
def v2_function(client: Client) -> Iterator[str]:
    """A 2.0 WSGI function, as 3.0 names it (``svc$fn``)."""
    service = unique("svc")
    client.create_service(m2.CreateServiceRequest(service_name=service))
    create_function(client, service, "web", files={"index.py": WSGI})
    yield f"{service}$web"
    delete_service_tree(client, service)


def test_trigger_crud_speaks_3_0(fc3, v2_function: str) -> None:
    created = fc3.create_trigger(v2_function, trigger_input("http1", ANON, description="d")).body
    assert created.trigger_name == "http1"
    assert created.trigger_type == "http"
    assert json.loads(created.trigger_config)["authType"] == "anonymous"
    assert created.qualifier == "LATEST"
    assert created.target_arn == f"acs:fc:cn-hangzhou:{ACCOUNT_ID}:functions/{v2_function}"
    assert created.status == "OK"
    assert created.trigger_id and created.created_time.endswith("Z")
    assert created.http_trigger.url_internet.startswith("http://")
    assert "/2023-03-30/proxy/" in created.http_trigger.url_internet
    assert "/2023-03-30/proxy-vpc/" in created.http_trigger.url_intranet

    got = fc3.get_trigger(v2_function, "http1").body
    assert got.http_trigger.url_internet == created.http_trigger.url_internet
    listed = fc3.list_triggers(v2_function, m3.ListTriggersRequest()).body
    assert [t.trigger_name for t in listed.triggers] == ["http1"]

    updated = fc3.update_trigger(
        v2_function, "http1", m3.UpdateTriggerRequest(body=m3.UpdateTriggerInput(description="new"))
    ).body
    assert updated.description == "new"
    # The URL is stable across updates.
    assert updated.http_trigger.url_internet == created.http_trigger.url_internet

    err = expect_error("TriggerAlreadyExists", 409, fc3.create_trigger, v2_function, trigger_input("http1", ANON))
    assert "service" not in str(err.message)
    # One HTTP trigger per qualifier.
    expect_error("InvalidArgument", 400, fc3.create_trigger, v2_function, trigger_input("http2", ANON))

    fc3.delete_trigger(v2_function, "http1")
    err = expect_error("TriggerNotFound", 404, fc3.get_trigger, v2_function, "http1")
    assert "service" not in str(err.message)
    expect_error("FunctionNotFound", 404, fc3.get_trigger, "nosuch3fn", "http1")


def test_trigger_urls_reach_the_function_with_its_raw_path(fcd, fc3, v2_function: str) -> None:
    t = fc3.create_trigger(v2_function, trigger_input("web", ANON)).body
    url = t.http_trigger.url_internet
    resp = requests.post(f"{url}/a/b%20c?x=1&x=2", data=b"hi", timeout=60)
    assert resp.status_code == 200, resp.text
    echo = resp.json()
    # 3.0: the function sees the client's path, no /proxy/ base path.
    assert echo["path"] == "/a/b c"
    assert echo["query"] == "x=1&x=2"
    assert echo["body"] == "hi"
    assert resp.headers["x-wsgi"] == "1"
    assert requests.get(url, timeout=60).json()["path"] == "/"

    # The Host form: {urlId}.{region}.fcapp.run, on the API listener.
    url_id = url.rstrip("/").rsplit("/", 1)[1]
    resp = requests.get(
        f"http://{fcd.addr}/x/y", headers={"Host": f"{url_id}.cn-hangzhou.fcapp.run"}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["path"] == "/x/y"

    # An unknown urlId is no trigger; a method the trigger does not admit is refused.
    assert requests.get(url.rsplit("/", 1)[0] + "/nosuch-aaaaaaaaaaaa/", timeout=60).status_code == 404
    assert requests.delete(url, timeout=60).status_code == 403


def test_disabled_internet_url_and_signed_triggers(fcd, fc3, v2_function: str) -> None:
    t = fc3.create_trigger(v2_function, trigger_input("web", ANON)).body
    fc3.update_trigger(
        v2_function,
        "web",
        m3.UpdateTriggerRequest(
            body=m3.UpdateTriggerInput(trigger_config=json.dumps({**ANON, "disableURLInternet": True}))
        ),
    )
    resp = requests.get(t.http_trigger.url_internet, timeout=60)
    assert resp.status_code == 403, resp.text
    assert "internet URL is disable" in resp.text
    # The intranet URL stays open.
    assert requests.get(t.http_trigger.url_intranet, timeout=60).status_code == 200

    # authType function: unsigned calls are refused.
    fc3.update_trigger(
        v2_function,
        "web",
        m3.UpdateTriggerRequest(
            body=m3.UpdateTriggerInput(trigger_config=json.dumps({"methods": ["GET"]}))
        ),
    )
    got = fc3.get_trigger(v2_function, "web").body
    assert json.loads(got.trigger_config)["authType"] == "function"
    resp = requests.get(t.http_trigger.url_internet, timeout=60)
    assert resp.status_code in (400, 401, 403), resp.text


def test_3_0_urls_on_the_web_listener(tmp_path, request) -> None:
    server = _new_server(
        tmp_path / "fcd-web3", owner=request.node.nodeid, extra_args=("--http-listen", "127.0.0.1:0")
    )
    server.start()
    try:
        c2, c3 = server.client(), server.fc3_client()
        service = unique("svc")
        c2.create_service(m2.CreateServiceRequest(service_name=service))
        create_function(c2, service, "web", files={"index.py": WSGI})
        t = c3.create_trigger(f"{service}$web", trigger_input("web", ANON)).body
        url_id = t.http_trigger.url_internet.rsplit("/", 1)[1]
        web_addr = (server.data_dir / "http-addr").read_text().strip()
        resp = requests.get(f"http://{web_addr}/2023-03-30/proxy/{url_id}/q?a=1", timeout=60)
        assert resp.status_code == 200, resp.text
        assert (resp.json()["path"], resp.json()["query"]) == ("/q", "a=1")
        resp = requests.get(
            f"http://{web_addr}/q2", headers={"Host": f"{url_id}.cn-hangzhou.fcapp.run:8080"}, timeout=60
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["path"] == "/q2"
        # A Host that is only a urlId (no further label) is no trigger host.
        resp = requests.get(f"http://{web_addr}/q3", headers={"Host": url_id}, timeout=60)
        assert resp.status_code == 404, resp.text
    finally:
        server.stop()


def test_2_0_proxy_urls_never_reach_hidden_services(fcd) -> None:
    for prefix in ("2021-04-06", "2016-08-15"):
        resp = requests.get(f"http://{fcd.addr}/{prefix}/proxy/~hello/hello/", timeout=60)
        assert resp.status_code == 404, resp.text
        assert resp.json()["ErrorCode"] == "ServiceNotFound"


def test_fc3_custom_domains_route_to_functions_without_triggers(fcd, fc3, client, v2_function: str) -> None:
    domain = f"{unique('d')}.example.test"
    created = fc3.create_custom_domain(
        m3.CreateCustomDomainRequest(
            body=m3.CreateCustomDomainInput(
                domain_name=domain,
                protocol="HTTP",
                route_config=m3.RouteConfig(
                    routes=[m3.PathConfig(path="/api/*", function_name=v2_function, methods=["GET"])]
                ),
                auth_config=m3.AuthConfig(auth_type="anonymous"),
            )
        )
    ).body
    try:
        assert created.api_version == "2023-03-30"
        assert created.route_config.routes[0].function_name == v2_function
        assert created.route_config.routes[0].qualifier == "LATEST"
        got = fc3.get_custom_domain(domain).body
        assert got.auth_config.auth_type == "anonymous"
        names = [d.domain_name for d in fc3.list_custom_domains(m3.ListCustomDomainsRequest()).body.custom_domains]
        assert domain in names
        # No HTTP trigger: a 3.0 domain reaches the function directly.
        resp = requests.get(f"http://{fcd.addr}/api/v?k=1", headers={"Host": domain}, timeout=60)
        assert resp.status_code == 200, resp.text
        assert resp.json()["path"] == "/api/v"
        # 2.0 still lists the domain, with the route's stored service.
        v2 = client.get_custom_domain(domain).body
        service, fn = v2_function.split("$")
        assert (v2.route_config.routes[0].service_name, v2.route_config.routes[0].function_name) == (service, fn)
    finally:
        fc3.delete_custom_domain(domain)
    expect_error("DomainNameNotFound", 404, fc3.get_custom_domain, domain)


# ---- NATIVE-3.0: need the 3.0 CreateFunction (merged from the 3.0 functions work) ----


@pytest.fixture
def native_function(fc3) -> Iterator[str]:
    """NATIVE-3.0: a native 3.0 Python function answering with a v1 response struct."""
    name = unique("n3")
    zip_b64 = base64.b64encode(make_zip_bytes({"index.py": V1_HANDLER})).decode()
    fc3.create_function(
        m3.CreateFunctionRequest(
            body=m3.CreateFunctionInput(
                function_name=name,
                runtime="python3.10",
                handler="index.handler",
                code=m3.InputCodeLocation(zip_file=zip_b64),
            )
        )
    )
    yield name
    for t in fc3.list_triggers(name, m3.ListTriggersRequest()).body.triggers or []:
        fc3.delete_trigger(name, t.trigger_name)
    fc3.delete_function(name)


def test_native_builtin_functions_get_the_v1_event(fcd, fc3, native_function: str) -> None:
    """NATIVE-3.0."""
    t = fc3.create_trigger(native_function, trigger_input("web", ANON)).body
    url = t.http_trigger.url_internet
    resp = requests.post(
        f"{url}/p/a%20b?x=1&x=2", data=b"Hello FC!", headers={"User-Agent": "t/1", "X-A": "1"}, timeout=60
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["x-v1"] == "yes"
    out = resp.json()
    e = out["event"]
    assert e["version"] == "v1"
    assert e["rawPath"] == "/p/a%20b"
    assert e["body"] == "Hello FC!" and e["isBase64Encoded"] is False
    assert e["queryParameters"] == {"x": "1,2"}
    assert e["headers"]["x-a"] == "1"
    rc = e["requestContext"]
    assert rc["accountId"] == ACCOUNT_ID
    assert rc["http"]["method"] == "POST"
    assert rc["http"]["path"] == "/p/a b"
    assert rc["http"]["userAgent"] == "t/1"
    assert rc["domainPrefix"] == url.rsplit("/", 1)[1]
    assert rc["requestId"] == resp.headers["x-fc-request-id"]
    # FC 3.0 functions have no service: the context shows none (never the hidden `~name`).
    assert out["service"] == ""
    assert out["function"] == native_function

    binary = requests.post(url, data=b"\xff\x00A", timeout=60).json()["event"]
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == b"\xff\x00A"
    # Anything but a response struct is the body of a 200.
    plain = requests.get(f"{url}?plain", timeout=60)
    assert (plain.status_code, plain.text) == (200, "just text")
    obj = requests.get(f"{url}?obj", timeout=60)
    assert obj.status_code == 200 and obj.json() == {"a": 1}
    # Async HTTP calls are accepted as events.
    resp = requests.post(url, data=b"later", headers={"X-Fc-Invocation-Type": "Async"}, timeout=60)
    assert resp.status_code == 202, resp.text


NODE_V1_HANDLER = r'''
exports.handler = async (event, context) => {
  const e = JSON.parse(event.toString());
  return {statusCode: 202, headers: {'x-node': 'yes'},
          body: JSON.stringify({rawPath: e.rawPath, query: e.queryParameters,
                                service: context.service.name})};
};
'''


def test_native_nodejs_functions_get_the_v1_event_too(fc3) -> None:
    """NATIVE-3.0."""
    name = unique("n3node")
    zip_b64 = base64.b64encode(make_zip_bytes({"index.js": NODE_V1_HANDLER})).decode()
    fc3.create_function(
        m3.CreateFunctionRequest(
            body=m3.CreateFunctionInput(
                function_name=name,
                runtime="nodejs18",
                handler="index.handler",
                code=m3.InputCodeLocation(zip_file=zip_b64),
            )
        )
    )
    try:
        url = fc3.create_trigger(name, trigger_input("web", ANON)).body.http_trigger.url_internet
        resp = requests.get(f"{url}/n?a=1&a=2", timeout=60)
        assert resp.status_code == 202, resp.text
        assert resp.headers["x-node"] == "yes"
        assert resp.json() == {"rawPath": "/n", "query": {"a": "1,2"}, "service": ""}
    finally:
        fc3.delete_trigger(name, "web")
        fc3.delete_function(name)


def test_native_functions_behind_3_0_custom_domains(fcd, fc3, native_function: str) -> None:
    """NATIVE-3.0."""
    domain = f"{unique('n')}.example.test"
    fc3.create_custom_domain(
        m3.CreateCustomDomainRequest(
            body=m3.CreateCustomDomainInput(
                domain_name=domain,
                protocol="HTTP",
                route_config=m3.RouteConfig(routes=[m3.PathConfig(path="/*", function_name=native_function)]),
            )
        )
    )
    try:
        resp = requests.get(f"http://{fcd.addr}/z?q=1", headers={"Host": domain}, timeout=60)
        assert resp.status_code == 201, resp.text
        e = resp.json()["event"]
        assert e["rawPath"] == "/z"
        assert e["requestContext"]["domainName"] == domain
    finally:
        fc3.delete_custom_domain(domain)
