"""fcd's function metrics API (``GET /{version}/services/{s}/functions/{f}/metrics``, the
console's charts): the last hour of a function's invocations on this node, per minute.

Read through the 2021-04-06 SDK's generic ``call_api`` (ACS3-signed, as the SDK signs every
call) under both API prefixes. The module runs its own single server, so the counts are the
test's alone also when the session server is a cluster (``FCD_TEST_CLUSTER``), whose nodes
each keep their own.
"""

from __future__ import annotations

import calendar
import time
import pytest
from alibabacloud_fc_open20210406 import models as fm
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

from fcdkit import (
    ApiError,
    _new_server,
    create_function,
    create_service,
    delete_service_tree,
    expect_error,
    function_error,
    make_client,
    unique,
)
from ramkit import RamFixture, allow, expect_fc_error, fc_client, policy_document

pytestmark = pytest.mark.invoke

HANDLER = """\
def handler(event, context):
    if event == b'fail':
        raise ValueError('asked to fail')
    return 'ok'
"""

EXITS_AT_ONCE_BOOTSTRAP = """\
#!/bin/sh
exit 1
"""


def function_metrics(client, svc: str, fn: str, prefix: str = "/2021-04-06", **query) -> dict:
    """fcd's metrics API, signed by the SDK's generic ``call_api``."""
    params = open_api_models.Params(
        action="GetFunctionMetrics", version="2021-04-06", protocol="HTTP",
        pathname=f"{prefix}/services/{svc}/functions/{fn}/metrics", method="GET",
        auth_type="AK", style="ROA", req_body_type="json", body_type="json",
    )
    req = open_api_models.OpenApiRequest(query={k: str(v) for k, v in query.items()})
    return client.call_api(params, req, util_models.RuntimeOptions())["body"]


def totals(body: dict) -> dict:
    return {
        k: sum(p[k] for p in body["points"]) for k in ("invocations", "errors", "coldStarts")
    }


def minute_of(rfc3339: str) -> int:
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = _new_server(tmp_path_factory.mktemp("fcd-metrics"), owner="session")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def svc(server):
    client = make_client(server.addr)
    name = create_service(client).service_name
    yield name
    delete_service_tree(client, name)


def test_counts_errors_cold_starts_and_percentiles(server, svc: str):
    client = make_client(server.addr)
    fn = create_function(client, svc, files={"index.py": HANDLER}).function_name

    # Nothing ran yet: an hour of empty minutes ending with the current one.
    before = time.time()
    body = function_metrics(client, svc, fn)
    after = time.time()
    assert body["periodSeconds"] == 60
    points = body["points"]
    assert len(points) == 60, body
    starts = [minute_of(p["time"]) for p in points]
    assert all(b - a == 60 for a, b in zip(starts, starts[1:])), starts
    assert int(before) // 60 * 60 <= starts[-1] <= int(after) // 60 * 60, (before, starts[-1])
    assert totals(body) == {"invocations": 0, "errors": 0, "coldStarts": 0}
    assert all(p["p50Ms"] is None and p["p99Ms"] is None for p in points), points

    for payload in (b"a", b"b", b"c"):
        r = client.invoke_function(svc, fn, fm.InvokeFunctionRequest(body=payload))
        assert r.body == b"ok"
    function_error(client.invoke_function(svc, fn, fm.InvokeFunctionRequest(body=b"fail")))

    body = function_metrics(client, svc, fn)
    t = totals(body)
    assert t["invocations"] == 4 and t["errors"] == 1, body
    assert 1 <= t["coldStarts"] <= 4, body
    busy = [p for p in body["points"] if p["invocations"] > 0]
    assert busy and all(p["p50Ms"] is not None and p["p99Ms"] is not None for p in busy), busy
    assert all(0 < p["p50Ms"] <= p["p99Ms"] < 60_000 for p in busy), busy
    # The classic prefix answers the same resource.
    assert totals(function_metrics(client, svc, fn, prefix="/2016-08-15")) == t


def test_a_function_that_cannot_start_counts_as_an_error(server, svc: str):
    client = make_client(server.addr)
    fn = create_function(
        client, svc, runtime="custom", handler="index.handler",
        files={"bootstrap": EXITS_AT_ONCE_BOOTSTRAP}, executable=("bootstrap",),
    ).function_name
    with pytest.raises(ApiError):
        make_client(server.addr, read_timeout_ms=90_000).invoke_function(
            svc, fn, fm.InvokeFunctionRequest(body=b"x")
        )
    t = totals(function_metrics(client, svc, fn))
    assert t["invocations"] == 1 and t["errors"] == 1, t


def test_not_found_and_no_qualifier(server, svc: str):
    client = make_client(server.addr)
    fn = create_function(client, svc, files={"index.py": HANDLER}).function_name
    expect_error("FunctionNotFound", 404, function_metrics, client, svc, unique("nosuch"))
    expect_error("ServiceNotFound", 404, function_metrics, client, unique("nosuch"), fn)
    # The numbers are every version's and alias's together: a qualifier is refused.
    expect_error("InvalidArgument", 400, function_metrics, client, svc, fn, qualifier="prod")
    expect_error(
        "InvalidArgument", 400, function_metrics, client, f"{svc}.prod", fn, prefix="/2016-08-15"
    )


def test_a_deleted_function_starts_over(server, svc: str):
    client = make_client(server.addr)
    fn = create_function(client, svc, files={"index.py": HANDLER}).function_name
    client.invoke_function(svc, fn, fm.InvokeFunctionRequest(body=b"a"))
    assert totals(function_metrics(client, svc, fn))["invocations"] == 1
    client.delete_function(svc, fn)
    create_function(client, svc, fn, files={"index.py": HANDLER})
    assert totals(function_metrics(client, svc, fn))["invocations"] == 0


def test_reading_needs_get_function(server, svc: str):
    root = make_client(server.addr)
    fn = create_function(root, svc, files={"index.py": HANDLER}).function_name
    root.invoke_function(svc, fn, fm.InvokeFunctionRequest(body=b"a"))
    arn = f"acs:fc:*:*:services/{svc}/functions/{fn}"
    iam = RamFixture(server.addr)
    try:
        invoker = iam.user(policy_document(allow("fc:InvokeFunction", arn)))
        err = expect_fc_error("AccessDenied", 403, function_metrics, fc_client(server.addr, invoker.keys), svc, fn)
        message = err.data["ErrorMessage"]
        assert "fc:GetFunction" in message and f"services/{svc}/functions/{fn}" in message, message

        reader = iam.user(policy_document(allow("fc:GetFunction", arn)))
        body = function_metrics(fc_client(server.addr, reader.keys), svc, fn)
        assert totals(body)["invocations"] == 1, body
        # The grant is the function's: another function of the service stays closed.
        other = create_function(root, svc, files={"index.py": HANDLER}).function_name
        expect_fc_error("AccessDenied", 403, function_metrics, fc_client(server.addr, reader.keys), svc, other)
    finally:
        iam.cleanup()
