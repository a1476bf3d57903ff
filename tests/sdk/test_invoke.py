"""Synchronous InvokeFunction through the official SDKs.

Marked ``invoke`` so a quick control-plane run can deselect it (``-m 'not invoke'``); it runs by
default.
"""

from __future__ import annotations

import base64
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

import fc2
from fc2.fc_exceptions import FcError
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_util import models as util_models

from fcdkit import (
    ApiError,
    create_function,
    echo_bootstrap,
    expect_error,
    function_error,
    log_tail,
    make_zip_bytes,
    unique,
)

pytestmark = pytest.mark.invoke


def invoke(
    client: Client,
    service: str,
    function: str,
    body: bytes | None = None,
    *,
    tail: bool = False,
    read_timeout_ms: int | None = None,
    **headers,
) -> m.InvokeFunctionResponse:
    """``invoke_function_with_options`` exactly as the docs show it."""
    return client.invoke_function_with_options(
        service,
        function,
        m.InvokeFunctionRequest(body=body),
        m.InvokeFunctionHeaders(x_fc_log_type="Tail" if tail else None, **headers),
        util_models.RuntimeOptions(read_timeout=read_timeout_ms),
    )


def ok_body(resp: m.InvokeFunctionResponse) -> bytes:
    """The body of a successful invocation (status 200, no function error)."""
    assert resp.status_code == 200, resp.status_code
    assert "x-fc-error-type" not in resp.headers, (resp.headers, resp.body)
    return resp.body or b""




def py_function(client: Client, service: str, source: str, **kwargs) -> m.CreateFunctionResponseBody:
    return create_function(client, service, files={"index.py": source}, **kwargs)


def custom_function(client: Client, service: str, bootstrap: str, **kwargs) -> m.CreateFunctionResponseBody:
    zip_bytes = make_zip_bytes({"bootstrap": bootstrap}, executable=("bootstrap",))
    return create_function(
        client, service, zip_bytes=zip_bytes, runtime="custom", handler="index.handler", **kwargs
    )


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------

LOGGING_HANDLER = """\
import json
import logging

logger = logging.getLogger()


def handler(event, context):
    text = event.decode('utf-8')
    print('print-line: ' + text)
    logger.info('logger-line: ' + text)
    return json.dumps({'requestId': context.request_id, 'event': text})
"""

# The example of the InvokeFunction API page: event {"key":"value"}, result "hello world".
DOC_EXAMPLE_HANDLER = """\
import logging


def handler(event, context):
    logger = logging.getLogger()
    logger.info('hello world')
    return 'hello world'
"""

ECHO_HANDLER = """\
def handler(event, context):
    return event
"""

LENGTH_HANDLER = """\
def handler(event, context):
    assert isinstance(event, bytes), type(event)
    return str(len(event))
"""

DICT_RESULT = {
    "zeta": 1,
    "alpha": [1, 2.5, {"y": True, "x": None}],
    "mid": {"b": "text", "a": -3},
}
DICT_HANDLER = f"""\
def handler(event, context):
    return {DICT_RESULT!r}
"""

RAISING_HANDLER = """\
def handler(event, context):
    raise ValueError('something is wrong')
"""

COUNTER_HANDLER = """\
import json
import os
import time

COUNT = 0
INIT = 0


def initialize(context):
    global INIT
    INIT += 1


def handler(event, context):
    global COUNT
    COUNT += 1
    if event == b'sleep':
        time.sleep(5)
    if event == b'crash':
        os._exit(3)
    return json.dumps({'count': COUNT, 'init': INIT, 'pid': os.getpid()})
"""

NEVER_LISTENS_BOOTSTRAP = """\
#!/usr/bin/env python3
import time
time.sleep(3600)
"""

EXITS_AT_ONCE_BOOTSTRAP = """\
#!/bin/sh
echo 'bootstrap giving up' >&2
exit 1
"""

DURATION_LINE = re.compile(
    r"^Duration: [0-9]+(\.[0-9]+)? ms, Billed Duration: [0-9]+ ms, "
    r"Memory Size: 128 MB, Max Memory Used: [0-9]+(\.[0-9]+)? MB$",
    re.MULTILINE,
)


# --------------------------------------------------------------------------------------------
# Python runtime
# --------------------------------------------------------------------------------------------


def test_sync_invoke_returns_body_request_id_and_log_tail(client: Client, service: str):
    fn = py_function(client, service, LOGGING_HANDLER)
    resp = invoke(client, service, fn.function_name, b'{"key":"value"}', tail=True)

    result = json.loads(ok_body(resp))
    assert result["event"] == '{"key":"value"}'
    rid = resp.headers.get("x-fc-request-id")
    assert rid, resp.headers
    assert result["requestId"] == rid, "context.request_id must be the X-Fc-Request-Id"

    log = log_tail(resp)
    start = f"FC Invoke Start RequestId: {rid}"
    end = f"FC Invoke End RequestId: {rid}"
    assert start in log, log
    assert end in log, log
    assert 'print-line: {"key":"value"}' in log, log
    logger_lines = [line for line in log.splitlines() if 'logger-line: {"key":"value"}' in line]
    assert logger_lines, log
    assert "[INFO]" in logger_lines[0] and rid in logger_lines[0], logger_lines[0]
    assert log.index(start) < log.index("print-line") < log.index(end), log
    duration = DURATION_LINE.search(log)
    assert duration, f"no Duration summary line in:\n{log}"
    assert duration.start() > log.index(end), log


def test_invoke_response_headers(client: Client, service: str):
    fn = py_function(client, service, LOGGING_HANDLER)
    resp = invoke(client, service, fn.function_name, b"headers")
    ok_body(resp)
    h = resp.headers
    assert h.get("x-fc-request-id")
    assert h.get("x-fc-code-checksum") == fn.code_checksum
    assert re.fullmatch(r"[0-9]+", h.get("x-fc-invocation-duration", "")), h
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", h.get("x-fc-max-memory-usage", "")), h
    assert h.get("x-fc-invocation-service-version") == "LATEST"
    assert h.get("x-fc-instance-id"), h
    expose = [x.strip().lower() for x in h.get("access-control-expose-headers", "").split(",")]
    assert "x-fc-request-id" in expose, h
    assert "x-fc-log-result" not in h, "no log tail unless X-Fc-Log-Type: Tail"


def test_request_ids_are_unique(client: Client, service: str):
    fn = py_function(client, service, LOGGING_HANDLER)
    ids = set()
    for i in range(3):
        resp = invoke(client, service, fn.function_name, str(i).encode())
        result = json.loads(ok_body(resp))
        assert result["requestId"] == resp.headers["x-fc-request-id"]
        ids.add(result["requestId"])
    assert len(ids) == 3


def test_documented_example(client: Client, service: str):
    fn = py_function(client, service, DOC_EXAMPLE_HANDLER)
    resp = invoke(
        client, service, fn.function_name, b'{"key":"value"}', tail=True, x_fc_invocation_type="Sync"
    )
    assert ok_body(resp) == b"hello world"
    assert "hello world" in log_tail(resp)


def test_dict_result_is_pretty_sorted_json(client: Client, service: str):
    fn = py_function(client, service, DICT_HANDLER)
    body = ok_body(invoke(client, service, fn.function_name, b"{}"))
    assert body == json.dumps(DICT_RESULT, indent=4, sort_keys=True).encode()


def test_event_is_bytes_and_empty_body_is_empty_event(client: Client, service: str):
    fn = py_function(client, service, LENGTH_HANDLER)
    assert ok_body(invoke(client, service, fn.function_name, b"12345")) == b"5"
    assert ok_body(invoke(client, service, fn.function_name, None)) == b"0"


def test_updated_code_is_used(client: Client, service: str):
    fn = py_function(client, service, "def handler(event, context):\n    return 'v1'\n")
    first = invoke(client, service, fn.function_name, b"x")
    assert ok_body(first) == b"v1"
    new_zip = make_zip_bytes({"index.py": "def handler(event, context):\n    return 'v2'\n"})
    up = client.update_function(
        service,
        fn.function_name,
        m.UpdateFunctionRequest(code=m.Code(zip_file=base64.b64encode(new_zip).decode())),
    ).body
    second = invoke(client, service, fn.function_name, b"x")
    assert ok_body(second) == b"v2"
    assert second.headers.get("x-fc-code-checksum") == up.code_checksum != fn.code_checksum


def test_updated_environment_is_used(client: Client, service: str):
    source = "import os\n\ndef handler(event, context):\n    return os.environ.get('COLOR', 'unset')\n"
    fn = py_function(client, service, source, environment_variables={"COLOR": "red"})
    assert ok_body(invoke(client, service, fn.function_name, b"")) == b"red"
    client.update_function(
        service, fn.function_name, m.UpdateFunctionRequest(environment_variables={"COLOR": "blue"})
    )
    assert ok_body(invoke(client, service, fn.function_name, b"")) == b"blue"


def test_raising_handler_is_unhandled_invocation_error(client: Client, service: str):
    fn = py_function(client, service, RAISING_HANDLER)
    resp = invoke(client, service, fn.function_name, b"boom", tail=True)
    err = function_error(resp)
    assert err["errorMessage"] == "something is wrong"
    assert err["errorType"] == "ValueError"
    trace = err.get("stackTrace")
    assert isinstance(trace, list) and trace, err
    assert any("handler" in json.dumps(frame) for frame in trace), trace
    assert resp.headers.get("x-fc-request-id")
    # The function is still usable afterwards.
    err2 = function_error(invoke(client, service, fn.function_name, b"again"))
    assert err2["errorMessage"] == "something is wrong"


def test_binary_payload_round_trips(client: Client, service: str):
    fn = py_function(client, service, ECHO_HANDLER)
    every_byte = bytes(range(256))
    assert ok_body(invoke(client, service, fn.function_name, every_byte)) == every_byte


def test_large_random_payload_round_trips(client: Client, service: str):
    fn = py_function(client, service, ECHO_HANDLER)
    payload = os.urandom(5 * 1024 * 1024)
    body = ok_body(invoke(client, service, fn.function_name, payload))
    assert len(body) == len(payload)
    assert body == payload


def test_warm_instance_is_reused_and_initializer_runs_once(client: Client, service: str):
    fn = py_function(
        client, service, COUNTER_HANDLER, initializer="index.initialize", initialization_timeout=30
    )
    results, instances = [], set()
    for _ in range(3):
        resp = invoke(client, service, fn.function_name, b"tick")
        results.append(json.loads(ok_body(resp)))
        instances.add(resp.headers.get("x-fc-instance-id"))
    assert [r["count"] for r in results] == [1, 2, 3]
    assert [r["init"] for r in results] == [1, 1, 1]
    assert len({r["pid"] for r in results}) == 1
    assert len(instances) == 1, instances


def test_timeout_then_fresh_instance(client: Client, service: str):
    fn = py_function(client, service, COUNTER_HANDLER, timeout=1)
    first = invoke(client, service, fn.function_name, b"tick")
    assert json.loads(ok_body(first))["count"] == 1

    timed_out = invoke(client, service, fn.function_name, b"sleep")
    err = function_error(timed_out)
    assert "Function timed out after 1 seconds" in err["errorMessage"], err

    after = invoke(client, service, fn.function_name, b"tick")
    assert json.loads(ok_body(after))["count"] == 1, "the timed-out instance must not be reused"
    assert after.headers.get("x-fc-instance-id") != first.headers.get("x-fc-instance-id")


def test_crashing_handler_then_fresh_instance(client: Client, service: str):
    fn = py_function(client, service, COUNTER_HANDLER)
    first = invoke(client, service, fn.function_name, b"tick")
    assert json.loads(ok_body(first))["count"] == 1

    crashed = invoke(client, service, fn.function_name, b"crash")
    err = function_error(crashed)
    assert err["errorMessage"].startswith(
        "Process exited unexpectedly before completing request"
    ), err

    after = invoke(client, service, fn.function_name, b"tick")
    assert json.loads(ok_body(after))["count"] == 1
    assert after.headers.get("x-fc-instance-id") != first.headers.get("x-fc-instance-id")


def test_unknown_function_and_service(client: Client, service: str):
    expect_error("FunctionNotFound", 404, invoke, client, service, unique("nofn"), b"x")
    expect_error("ServiceNotFound", 404, invoke, client, unique("nosvc"), "f", b"x")


def test_payload_over_32_mb_is_entity_too_large(client: Client, service: str):
    fn = py_function(client, service, LENGTH_HANDLER)
    too_big = b"x" * (32 * 1024 * 1024 + 1)
    expect_error("EntityTooLarge", 400, invoke, client, service, fn.function_name, too_big)
    # The server is fine afterwards.
    assert ok_body(invoke(client, service, fn.function_name, b"abc")) == b"3"


def test_classic_client_invoke(classic_client: fc2.Client, client: Client, service: str):
    fn = py_function(client, service, ECHO_HANDLER)
    resp = classic_client.invoke_function(service, fn.function_name, payload=b"classic \x00\xff payload")
    assert resp.data == b"classic \x00\xff payload"
    assert resp.headers.get("x-fc-request-id")

    dict_fn = py_function(client, service, DICT_HANDLER)
    resp = classic_client.invoke_function(service, dict_fn.function_name, payload=b"{}")
    assert resp.data == json.dumps(DICT_RESULT, indent=4, sort_keys=True).encode()


def test_classic_client_raises_on_function_error(classic_client: fc2.Client, client: Client, service: str):
    """aliyun-fc2 turns a 200 carrying X-Fc-Error-Type into an FcError."""
    fn = py_function(client, service, RAISING_HANDLER)
    with pytest.raises(FcError) as excinfo:
        classic_client.invoke_function(service, fn.function_name, payload=b"boom")
    err = excinfo.value
    assert err.status_code == 200
    body = json.loads(err.message)
    assert body["errorMessage"] == "something is wrong"
    assert body["errorType"] == "ValueError"
    assert err.request_id and err.request_id != "unknown"


# --------------------------------------------------------------------------------------------
# Custom runtime
# --------------------------------------------------------------------------------------------


def test_custom_runtime_echo(client: Client, service: str):
    fn = custom_function(client, service, echo_bootstrap("solo"))
    resp = invoke(client, service, fn.function_name, b"hello custom")
    rid = resp.headers.get("x-fc-request-id")
    assert rid
    # The instance must receive the invocation's request id in x-fc-request-id.
    assert ok_body(resp) == b"solo:" + rid.encode() + b":hello custom"
    again = invoke(client, service, fn.function_name, bytes(range(256)))
    rid2 = again.headers.get("x-fc-request-id")
    assert ok_body(again) == b"solo:" + rid2.encode() + b":" + bytes(range(256))


def test_two_custom_functions_on_port_9000_concurrently(client: Client, service: str):
    a = custom_function(client, service, echo_bootstrap("A"))
    b = custom_function(client, service, echo_bootstrap("B"), ca_port=9000)
    assert a.ca_port == 9000 and b.ca_port == 9000

    calls = [(tag, fn.function_name, i) for i in range(20) for tag, fn in (("A", a), ("B", b))]

    def call(job):
        tag, name, i = job
        payload = f"{name}-{i}".encode()
        resp = invoke(client, service, name, payload)
        return job, payload, resp

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(call, calls))

    request_ids = set()
    for (tag, name, i), payload, resp in outcomes:
        rid = resp.headers.get("x-fc-request-id")
        assert rid
        assert ok_body(resp) == tag.encode() + b":" + rid.encode() + b":" + payload, (tag, name, i, resp.body)
        request_ids.add(rid)
    assert len(request_ids) == len(calls)


def test_custom_runtime_that_never_listens_is_a_platform_error(client: Client, service: str):
    stuck = custom_function(client, service, NEVER_LISTENS_BOOTSTRAP)
    with pytest.raises(ApiError) as excinfo:
        invoke(client, service, stuck.function_name, b"anyone there?", read_timeout_ms=90_000)
    err = excinfo.value
    assert err.code and err.code != "None", err
    assert err.status_code and err.status_code >= 400, err

    # Everything else keeps working.
    echo = custom_function(client, service, echo_bootstrap("alive"))
    tag, _rid, body = ok_body(invoke(client, service, echo.function_name, b"ping")).split(b":", 2)
    assert (tag, body) == (b"alive", b"ping")
    py = py_function(client, service, ECHO_HANDLER)
    assert ok_body(invoke(client, service, py.function_name, b"pong")) == b"pong"


def test_custom_runtime_that_exits_is_a_platform_error(client: Client, service: str):
    dead = custom_function(client, service, EXITS_AT_ONCE_BOOTSTRAP)
    with pytest.raises(ApiError) as excinfo:
        invoke(client, service, dead.function_name, b"hello?", read_timeout_ms=90_000)
    err = excinfo.value
    assert err.code and err.code != "None", err
    assert err.status_code and err.status_code >= 400, err

    echo = custom_function(client, service, echo_bootstrap("still"))
    tag, _rid, body = ok_body(invoke(client, service, echo.function_name, b"up")).split(b":", 2)
    assert (tag, body) == (b"still", b"up")
