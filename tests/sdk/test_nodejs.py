"""The built-in Node.js runtimes (nodejs12 … nodejs20) through the official 2021-04-06 SDK.

fcd runs them on its embedded bootstrap (crates/fcd-runtime/src/runtimes/nodejs/bootstrap.js).
Most tests run for nodejs16 (FC 2.0 semantics: results only through callback) and nodejs20
(FC 3.0 semantics: an async handler's returned value is the result).

Marked ``invoke`` so a quick control-plane run can deselect it (``-m 'not invoke'``).
"""

from __future__ import annotations

import base64
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_util import models as util_models

from fcdkit import ACCOUNT_ID, REGION, create_function, function_error, log_tail

pytestmark = pytest.mark.invoke

RUNTIMES = ["nodejs16", "nodejs20"]
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

INDEX_JS = r"""
'use strict';

let count = 0;
let init = 0;
let initRequestId = null;
let inFlight = 0;
let maxInFlight = 0;
// Identifies this process: jailed instances each have their own PID namespace (pid 1 in all).
const processToken = process.pid + '-' + Math.random().toString(36).slice(2);

exports.initialize = (context, callback) => {
  init += 1;
  initRequestId = context.requestId;
  console.log('initializer ran');
  callback(null);
};

exports.echo = (event, context, callback) => {
  callback(null, event);
};

exports.eventInfo = (event, context, callback) => {
  callback(null, { isBuffer: Buffer.isBuffer(event), length: event.length, base64: event.toString('base64') });
};

exports.ctx = (event, context, callback) => {
  callback(null, JSON.stringify(context));
};

exports.cbString = (event, context, callback) => callback(null, 'hello world');
exports.cbObject = (event, context, callback) => callback(null, { b: 1, a: [true, null], s: 'x' });
exports.cbNumber = (event, context, callback) => callback(null, 42);
exports.cbNothing = (event, context, callback) => callback();
exports.cbError = (event, context, callback) => callback(new Error('oops'));
exports.cbStringError = (event, context, callback) => callback('oops');

function fail() {
  throw new TypeError('something is wrong');
}
exports.throws = (event, context, callback) => { fail(); };
exports.asyncThrows = async (event, context) => { await null; fail(); };

exports.asyncReturn = async (event, context) => {
  await new Promise((r) => setTimeout(r, 5));
  return { returned: context.requestId };
};
exports.asyncCallback = async (event, context, callback) => {
  await new Promise((r) => setTimeout(r, 5));
  callback(null, 'async via callback');
};

exports.log = (event, context, callback) => {
  const text = event.toString();
  console.log('console-log ' + text);
  console.info('console-info ' + text);
  console.warn('console-warn ' + text);
  console.error('console-error ' + text);
  context.logger.info('logger-info ' + text);
  callback(null, 'logged');
};

exports.counter = (event, context, callback) => {
  count += 1;
  callback(null, { count: count, init: init, initRequestId: initRequestId, pid: processToken });
};

exports.slow = (event, context, callback) => {
  inFlight += 1;
  maxInFlight = Math.max(maxInFlight, inFlight);
  setTimeout(() => {
    inFlight -= 1;
    callback(null, { pid: processToken, rid: context.requestId, maxInFlight: maxInFlight });
  }, 500);
};
"""


def node_function(client: Client, service: str, runtime: str, handler: str, **kwargs):
    return create_function(
        client, service, files={"index.js": INDEX_JS}, runtime=runtime, handler=handler, **kwargs
    )


def invoke(client: Client, service: str, function: str, body: bytes | None = None, *, tail: bool = False):
    return client.invoke_function_with_options(
        service,
        function,
        m.InvokeFunctionRequest(body=body),
        m.InvokeFunctionHeaders(x_fc_log_type="Tail" if tail else None),
        util_models.RuntimeOptions(read_timeout=60_000),
    )


def ok_body(resp: m.InvokeFunctionResponse) -> bytes:
    assert resp.status_code == 200, resp.status_code
    assert "x-fc-error-type" not in resp.headers, (resp.headers, resp.body)
    return resp.body or b""




def unhandled_type(runtime: str, name: str) -> str:
    """FC 2.0 (nodejs16 and earlier) prefixes a thrown error's name; Node 18+ does not."""
    return name if runtime in ("nodejs18", "nodejs20") else "FunctionUnhandledError: " + name


# --------------------------------------------------------------------------------------------


def test_create_function_accepts_every_nodejs_runtime(client: Client, service: str):
    for runtime in ("nodejs12", "nodejs14", "nodejs16", "nodejs18", "nodejs20"):
        fn = node_function(client, service, runtime, "index.cbString")
        assert fn.runtime == runtime
        got = client.get_function(service, fn.function_name, m.GetFunctionRequest()).body
        assert (got.runtime, got.handler) == (runtime, "index.cbString")
        assert ok_body(invoke(client, service, fn.function_name, b"{}")) == b"hello world", runtime


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_buffer_event_round_trips(client: Client, service: str, runtime: str):
    fn = node_function(client, service, runtime, "index.echo")
    for event in (bytes(range(256)), b"\xff\xfe\x00 not utf-8 \xc3\x28\x80", b'{"key":"value"}'):
        assert ok_body(invoke(client, service, fn.function_name, event)) == event
    info_fn = node_function(client, service, runtime, "index.eventInfo")
    info = json.loads(ok_body(invoke(client, service, info_fn.function_name, b"\x00\xff")))
    assert info == {"isBuffer": True, "length": 2, "base64": base64.b64encode(b"\x00\xff").decode()}
    empty = json.loads(ok_body(invoke(client, service, info_fn.function_name, None)))
    assert (empty["isBuffer"], empty["length"]) == (True, 0)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_context_fields(client: Client, service: str, runtime: str):
    fn = node_function(client, service, runtime, "index.ctx", memory_size=256, timeout=42)
    resp = invoke(client, service, fn.function_name, b"{}")
    ctx = json.loads(ok_body(resp))
    assert ctx["requestId"] == resp.headers["x-fc-request-id"]
    assert ctx["function"] == {"name": fn.function_name, "handler": "index.ctx", "memory": 256, "timeout": 42}
    assert ctx["service"]["name"] == service
    assert ctx["service"]["qualifier"] == "LATEST"
    assert set(ctx["service"]) == {"name", "logProject", "logStore", "qualifier", "versionId"}
    assert ctx["region"] == REGION
    assert ctx["accountId"] == ACCOUNT_ID
    assert ctx["retryCount"] == 0
    assert set(ctx["credentials"]) == {"accessKeyId", "accessKeySecret", "securityToken"}
    assert set(ctx["tracing"]) == {"openTracingSpanContext", "openTracingSpanBaggages", "jaegerEndpoint"}
    # A second call has its own request id.
    again = invoke(client, service, fn.function_name, b"{}")
    assert json.loads(ok_body(again))["requestId"] == again.headers["x-fc-request-id"] != ctx["requestId"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_callback_results(client: Client, service: str, runtime: str):
    expected = {
        "index.cbString": b"hello world",
        "index.cbObject": b'{"b":1,"a":[true,null],"s":"x"}',
        "index.cbNumber": b"42",
        "index.cbNothing": b"",
    }
    for handler, body in expected.items():
        fn = node_function(client, service, runtime, handler)
        assert ok_body(invoke(client, service, fn.function_name, b"{}")) == body, handler


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_callback_errors_are_handled(client: Client, service: str, runtime: str):
    fn = node_function(client, service, runtime, "index.cbError")
    resp = invoke(client, service, fn.function_name, b"{}", tail=True)
    err = function_error(resp, "HandledInvocationError")
    assert (err["errorMessage"], err["errorType"]) == ("oops", "Error")
    assert err["stackTrace"][0] == "Error: oops"
    assert any("index.js" in line for line in err["stackTrace"]), err
    rid = resp.headers["x-fc-request-id"]
    assert f"FC Invoke End RequestId: {rid}, Error: Handled function error" in log_tail(resp)

    fn = node_function(client, service, runtime, "index.cbStringError")
    err = function_error(invoke(client, service, fn.function_name, b"{}"), "HandledInvocationError")
    assert err == {"errorMessage": "oops", "errorType": "FunctionHandledError"}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_thrown_errors_are_unhandled(client: Client, service: str, runtime: str):
    fn = node_function(client, service, runtime, "index.throws")
    resp = invoke(client, service, fn.function_name, b"{}", tail=True)
    err = function_error(resp, "UnhandledInvocationError")
    assert err["errorMessage"] == "something is wrong"
    assert err["errorType"] == unhandled_type(runtime, "TypeError")
    assert any("at fail (" in line for line in err["stackTrace"]), err
    assert not any("bootstrap" in line for line in err["stackTrace"]), err
    rid = resp.headers["x-fc-request-id"]
    assert f"FC Invoke End RequestId: {rid}, Error: Unhandled function error" in log_tail(resp)
    # The instance is still usable: the same error again, not a crash.
    again = function_error(invoke(client, service, fn.function_name, b"{}"), "UnhandledInvocationError")
    assert again["errorMessage"] == "something is wrong"

    fn = node_function(client, service, runtime, "index.asyncThrows")
    err = function_error(invoke(client, service, fn.function_name, b"{}"), "UnhandledInvocationError")
    assert err["errorType"] == unhandled_type(runtime, "TypeError")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_async_handlers(client: Client, service: str, runtime: str):
    fn = node_function(client, service, runtime, "index.asyncCallback")
    assert ok_body(invoke(client, service, fn.function_name, b"{}")) == b"async via callback"

    fn = node_function(client, service, runtime, "index.asyncReturn", timeout=1)
    resp = invoke(client, service, fn.function_name, b"{}")
    if runtime == "nodejs20":
        # FC 3.0: the resolved value is the result.
        assert json.loads(ok_body(resp)) == {"returned": resp.headers["x-fc-request-id"]}
    else:
        # FC 2.0: the promise's value is ignored; without callback the call runs into the timeout.
        err = function_error(resp, "UnhandledInvocationError")
        assert "timed out after 1 seconds" in err["errorMessage"], err


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_console_lines_in_the_log_tail(client: Client, service: str, runtime: str):
    fn = node_function(client, service, runtime, "index.log")
    resp = invoke(client, service, fn.function_name, b"msg-7", tail=True)
    assert ok_body(resp) == b"logged"
    rid = resp.headers["x-fc-request-id"]
    log = log_tail(resp)
    start = log.index(f"FC Invoke Start RequestId: {rid}")
    end = log.index(f"FC Invoke End RequestId: {rid}")
    r = re.escape(rid)
    for level, text in (("verbose", "console-log"), ("info", "console-info"), ("warn", "console-warn"),
                        ("error", "console-error"), ("info", "logger-info")):
        found = re.search(rf"^{TS} {r} \[{level}\] {text} msg-7$", log, re.M)
        assert found, (level, text, log)
        assert start < found.start() < end, log


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_initializer_runs_once_per_instance(client: Client, service: str, runtime: str):
    fn = node_function(client, service, runtime, "index.counter",
                       initializer="index.initialize", initialization_timeout=30)
    first = invoke(client, service, fn.function_name, b"{}", tail=True)
    rid = first.headers["x-fc-request-id"]
    results = [json.loads(ok_body(first))]
    # On a cold start the initializer runs with the request's id, and its lines are in the tail.
    log = log_tail(first)
    assert f"FC Initialize Start RequestId: {rid}" in log, log
    assert re.search(rf"^{TS} {re.escape(rid)} \[verbose\] initializer ran$", log, re.M), log
    assert results[0]["initRequestId"] == rid
    instances = {first.headers.get("x-fc-instance-id")}
    for _ in range(2):
        resp = invoke(client, service, fn.function_name, b"{}")
        results.append(json.loads(ok_body(resp)))
        instances.add(resp.headers.get("x-fc-instance-id"))
    assert [r["count"] for r in results] == [1, 2, 3]
    assert [r["init"] for r in results] == [1, 1, 1]
    assert len({r["pid"] for r in results}) == 1
    assert len(instances) == 1, instances


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_instance_concurrency(client: Client, service: str, runtime: str):
    fn = node_function(client, service, runtime, "index.slow", instance_concurrency=5)

    def call(_):
        return invoke(client, service, fn.function_name, b"{}")

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(call, range(10)))
    results = [json.loads(ok_body(r)) for r in responses]
    for resp, got in zip(responses, results):
        assert got["rid"] == resp.headers["x-fc-request-id"]
    assert len({r["rid"] for r in results}) == 10
    pids = {r["pid"] for r in results}
    instance_ids = {r.headers.get("x-fc-instance-id") for r in responses}
    assert 1 <= len(pids) <= 2, pids
    assert len(instance_ids) == len(pids), (instance_ids, pids)
    # Several requests ran at once inside one process.
    assert max(r["maxInFlight"] for r in results) >= 2, results
    listed = client.list_instances(service, fn.function_name, m.ListInstancesRequest()).body.instances or []
    assert len(listed) <= 2, listed
