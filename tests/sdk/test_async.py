"""Asynchronous invocation through the official SDK (``alibabacloud-fc-open20210406``).

Covers async InvokeFunction (202, stateful task ids, validation), the stateful-invocation API
(Get / List / Stop / ListStatefulAsyncInvocationFunctions), async invoke configs
(Put / Get / Delete / List, merging, bad input), retries of failing functions, destinations
(the record FC sends to an onSuccess / onFailure function), expiry, and recovery after the
server is killed mid-run. Every test is marked ``invoke``.

Instances are jailed with a private ``/tmp`` and network, so a function cannot leave a trace
for the test anywhere but in fcd itself. What a destination function received is therefore read
back from the destination's own stateful records: the sinks have ``statefulInvocation: true``
and return their event, so ``ListStatefulAsyncInvocations(includePayload=true)`` shows the
destination record as ``invocationPayload``.

Timing never decides a result: every wait is a bounded polling loop with a generous limit.
``test_measure_*`` print numbers (accepted async calls per second, 202 -> Succeeded latency)
and assert nothing about speed; run with ``-s`` to see them.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Optional

import pytest

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_util import models as util_models

from fcdkit import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    ACCOUNT_ID,
    REGION,
    FcdServer,
    _new_server,
    create_function,
    create_service,
    expect_error,
    unique,
)

pytestmark = pytest.mark.invoke

POLL_S = 60.0  # the most any single wait below may take
TERMINAL = {"Succeeded", "Failed", "Stopped", "Expired", "Invalid"}

# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------

# Reports what the runtime told it.
CONTEXT_HANDLER = """\
import json


def handler(event, context):
    return json.dumps({
        'event': event.decode(),
        'requestId': context.request_id,
        'retryCount': context.retry_count,
    })
"""

# Sleeps as many seconds as the event says (empty: none), then answers.
SLEEP_HANDLER = """\
import time


def handler(event, context):
    text = event.decode() or '0'
    time.sleep(float(text))
    return 'slept ' + text
"""

# Always fails, saying which attempt it was.
FAIL_HANDLER = """\
def handler(event, context):
    raise Exception('failing on purpose: retry=%d event=%s' % (context.retry_count, event.decode()))
"""

# Fails on the event ``fail``, else echoes the event.
ECHO_OR_FAIL_HANDLER = """\
def handler(event, context):
    if event == b'fail':
        raise Exception('asked to fail')
    return event
"""

# A destination: keeps nothing itself, returns its event (which its stateful record then shows).
SINK_HANDLER = """\
def handler(event, context):
    return event
"""

SUCCESS_HANDLER = """\
def handler(event, context):
    return 'ok:' + event.decode() + ':retry=' + str(context.retry_count)
"""


def py_function(client: Client, service: str, source: str, name: Optional[str] = None, **kwargs) -> str:
    return create_function(client, service, name, files={"index.py": source}, **kwargs).function_name


# --------------------------------------------------------------------------------------------
# SDK call helpers
# --------------------------------------------------------------------------------------------


def async_invoke(
    client: Client,
    service: str,
    function: str,
    body: bytes | None = b"",
    *,
    invocation_id: Optional[str] = None,
    enable: Optional[str] = None,
    qualifier: Optional[str] = None,
) -> m.InvokeFunctionResponse:
    """``invoke_function_with_options`` with ``X-Fc-Invocation-Type: Async``, as the docs show."""
    return client.invoke_function_with_options(
        service,
        function,
        m.InvokeFunctionRequest(body=body, qualifier=qualifier),
        m.InvokeFunctionHeaders(
            x_fc_invocation_type="Async",
            x_fc_stateful_async_invocation_id=invocation_id,
            x_fc_stateful_async_invocation_enable=enable,
        ),
        util_models.RuntimeOptions(),
    )


def accepted(resp: m.InvokeFunctionResponse, invocation_id: Optional[str] = None) -> str:
    """Checks a 202 and returns its request id. With ``invocation_id``, the stateful id header
    must name it; ``invocation_id=""`` means the call must not be stateful."""
    assert resp.status_code == 202, (resp.status_code, resp.headers, resp.body)
    rid = resp.headers.get("x-fc-request-id")
    assert rid, resp.headers
    if invocation_id == "":
        assert "x-fc-stateful-async-invocation-id" not in resp.headers, resp.headers
    elif invocation_id is not None:
        assert resp.headers.get("x-fc-stateful-async-invocation-id") == invocation_id, resp.headers
    return rid


def get_invocation(client: Client, service: str, function: str, inv_id: str) -> m.StatefulAsyncInvocation:
    resp = client.get_stateful_async_invocation(
        service, function, inv_id, m.GetStatefulAsyncInvocationRequest()
    )
    assert resp.status_code == 200, resp.status_code
    return resp.body


def wait_status(
    client: Client,
    service: str,
    function: str,
    inv_id: str,
    statuses: Iterable[str],
    timeout_s: float = POLL_S,
) -> m.StatefulAsyncInvocation:
    """Polls GetStatefulAsyncInvocation until the status is one of ``statuses``. A different
    terminal status, or the time limit, fails the test with the last record seen."""
    want = set(statuses)
    deadline = time.monotonic() + timeout_s
    while True:
        inv = get_invocation(client, service, function, inv_id)
        if inv.status in want:
            return inv
        if inv.status in TERMINAL:
            pytest.fail(f"{inv_id} ended {inv.status}, expected one of {sorted(want)}: {inv.to_map()}")
        if time.monotonic() >= deadline:
            pytest.fail(f"{inv_id} still {inv.status} after {timeout_s} s (expected {sorted(want)}): {inv.to_map()}")
        time.sleep(0.05)


def list_invocations(client: Client, service: str, function: str, **kwargs) -> m.ListStatefulAsyncInvocationsResponseBody:
    resp = client.list_stateful_async_invocations(
        service, function, m.ListStatefulAsyncInvocationsRequest(**kwargs)
    )
    assert resp.status_code == 200, resp.status_code
    return resp.body


def list_all(client: Client, service: str, function: str, **kwargs) -> list[m.StatefulAsyncInvocation]:
    """Every page of ListStatefulAsyncInvocations."""
    out: list[m.StatefulAsyncInvocation] = []
    token = None
    for _ in range(10_000):
        body = list_invocations(client, service, function, next_token=token, **kwargs)
        out.extend(body.invocations or [])
        token = body.next_token
        if not token:
            return out
    raise AssertionError("ListStatefulAsyncInvocations never ended")


def wait_records(
    client: Client,
    service: str,
    function: str,
    predicate: Callable[[list[m.StatefulAsyncInvocation]], bool],
    timeout_s: float = POLL_S,
    **kwargs,
) -> list[m.StatefulAsyncInvocation]:
    """Polls the full listing until ``predicate(records)`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = list_all(client, service, function, **kwargs)
        if predicate(records):
            return records
        if time.monotonic() >= deadline:
            pytest.fail(
                f"the invocations of {service}/{function} never reached the expected state within "
                f"{timeout_s} s: {[r.to_map() for r in records]}"
            )
        time.sleep(0.1)


def stop(client: Client, service: str, function: str, inv_id: str) -> m.StopStatefulAsyncInvocationResponse:
    return client.stop_stateful_async_invocation(
        service, function, inv_id, m.StopStatefulAsyncInvocationRequest()
    )


def put_config(client: Client, service: str, function: str, **kwargs) -> m.PutFunctionAsyncInvokeConfigResponse:
    return client.put_function_async_invoke_config(
        service, function, m.PutFunctionAsyncInvokeConfigRequest(**kwargs)
    )


def get_config(client: Client, service: str, function: str, **kwargs) -> m.GetFunctionAsyncInvokeConfigResponse:
    return client.get_function_async_invoke_config(
        service, function, m.GetFunctionAsyncInvokeConfigRequest(**kwargs)
    )


def fc_arn(service: str, function: str, qualifier: str = "LATEST") -> str:
    return f"acs:fc:{REGION}:{ACCOUNT_ID}:services/{service}.{qualifier}/functions/{function}"


def destinations(on_success: Optional[str] = None, on_failure: Optional[str] = None) -> m.DestinationConfig:
    return m.DestinationConfig(
        on_success=m.Destination(destination=on_success) if on_success else None,
        on_failure=m.Destination(destination=on_failure) if on_failure else None,
    )


def statuses(inv: m.StatefulAsyncInvocation) -> list[str]:
    return [e.status for e in inv.events or []]


def now_ms() -> int:
    return int(time.time() * 1000)


def stateful_functions(client: Client) -> list[tuple[str, str, str]]:
    out = []
    token = None
    for _ in range(1000):
        body = client.list_stateful_async_invocation_functions(
            m.ListStatefulAsyncInvocationFunctionsRequest(limit=100, next_token=token)
        ).body
        out.extend((d.service_name, d.function_name, d.qualifier) for d in body.data or [])
        token = body.next_token
        if not token:
            return out
    raise AssertionError("ListStatefulAsyncInvocationFunctions never ended")


@pytest.fixture
def fcd_with(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., FcdServer]:
    """``start(*extra_serve_args, data_dir=None) -> FcdServer``: a private server with extra
    ``fcd serve`` arguments (e.g. ``--async-workers 1``); stopped at teardown."""
    started: list[FcdServer] = []
    counter = iter(range(1_000_000))

    def start(*extra_args: str, data_dir: Optional[Path] = None) -> FcdServer:
        base = tmp_path / f"fcd-{next(counter)}"
        server = _new_server(base, owner=request.node.nodeid, data_dir=data_dir, extra_args=extra_args)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------------------------
# Async InvokeFunction and GetStatefulAsyncInvocation
# --------------------------------------------------------------------------------------------


def test_stateful_async_invoke_runs_and_records_the_task(client, service):
    fn = py_function(client, service, CONTEXT_HANDLER)
    before = now_ms()
    resp = async_invoke(client, service, fn, b"hello async", invocation_id="job_1")
    rid = accepted(resp, "job_1")
    assert not resp.body, resp.body

    inv = wait_status(client, service, fn, "job_1", {"Succeeded"})
    after = now_ms()
    assert inv.invocation_id == "job_1"
    assert inv.service_name == service
    assert inv.function_name == fn
    assert inv.qualifier == "LATEST"
    assert inv.request_id == rid
    assert inv.already_retried_times == 0
    out = json.loads(inv.return_payload)
    assert out == {"event": "hello async", "requestId": rid, "retryCount": 0}
    assert not inv.invocation_error_message

    # Epoch milliseconds, in order.
    for name in ("started_time", "end_time", "duration_ms"):
        assert isinstance(getattr(inv, name), int), (name, inv.to_map())
    assert before - 60_000 <= inv.started_time <= inv.end_time <= after + 60_000, inv.to_map()
    assert 0 <= inv.duration_ms <= inv.end_time - inv.started_time + 2, inv.to_map()

    assert statuses(inv) == ["Enqueued", "Running", "Succeeded"], inv.to_map()
    assert [e.event_id for e in inv.events] == [1, 2, 3]
    stamps = [e.timestamp for e in inv.events]
    assert all(isinstance(t, int) for t in stamps), stamps
    assert stamps == sorted(stamps), stamps
    assert before - 60_000 <= stamps[0] <= inv.started_time, (stamps, inv.to_map())
    assert stamps[-1] <= after + 60_000
    if inv.invocation_payload is not None:
        assert inv.invocation_payload == "hello async"


def test_stateful_by_enable_header_or_by_config_and_plain_async_is_not(client, service):
    fn = py_function(client, service, CONTEXT_HANDLER)

    # Plain async: accepted, no task id, not queryable.
    plain_rid = accepted(async_invoke(client, service, fn, b"plain"), "")
    expect_error("StatefulAsyncInvocationNotFound", 404, get_invocation, client, service, fn, plain_rid)

    # The request header makes this one call a task; its id is the request id.
    resp = async_invoke(client, service, fn, b"by-header", enable="true")
    header_rid = accepted(resp)
    assert resp.headers.get("x-fc-stateful-async-invocation-id") == header_rid, resp.headers
    inv = wait_status(client, service, fn, header_rid, {"Succeeded"})
    assert json.loads(inv.return_payload)["event"] == "by-header"
    assert inv.request_id == header_rid

    # "false" is not "true".
    accepted(async_invoke(client, service, fn, b"header-false", enable="false"), "")

    # statefulInvocation in the function's async config makes every async call a task.
    put_config(client, service, fn, stateful_invocation=True)
    resp = async_invoke(client, service, fn, b"by-config")
    rid = accepted(resp)
    assert resp.headers.get("x-fc-stateful-async-invocation-id") == rid, resp.headers
    inv = wait_status(client, service, fn, rid, {"Succeeded"})
    assert json.loads(inv.return_payload) == {"event": "by-config", "requestId": rid, "retryCount": 0}

    # Only the two tasks are listed.
    listed = [i.invocation_id for i in list_all(client, service, fn)]
    assert sorted(listed) == sorted([header_rid, rid]), listed


def test_duplicate_invocation_id_is_refused_and_the_first_runs_once(client, service):
    fn = py_function(client, service, SLEEP_HANDLER)
    rid = accepted(async_invoke(client, service, fn, b"0.5", invocation_id="dup_1"), "dup_1")
    err = expect_error(
        "StatefulAsyncInvocationAlreadyExists", 409,
        async_invoke, client, service, fn, b"0", invocation_id="dup_1",
    )
    assert "dup_1" in err.message
    first = wait_status(client, service, fn, "dup_1", {"Succeeded"})
    assert first.request_id == rid
    assert first.return_payload == "slept 0.5"
    # Still refused once it has finished.
    expect_error(
        "StatefulAsyncInvocationAlreadyExists", 409,
        async_invoke, client, service, fn, b"0", invocation_id="dup_1",
    )
    # Exactly one record, run exactly once.
    records = list_all(client, service, fn, invocation_id_prefix="dup_1")
    assert [(r.invocation_id, r.status) for r in records] == [("dup_1", "Succeeded")]
    again = get_invocation(client, service, fn, "dup_1")
    assert statuses(again) == ["Enqueued", "Running", "Succeeded"], again.to_map()
    assert again.already_retried_times == 0

    # Ids are per function: another function may use the same one.
    other = py_function(client, service, SLEEP_HANDLER)
    accepted(async_invoke(client, service, other, b"0", invocation_id="dup_1"), "dup_1")
    assert wait_status(client, service, other, "dup_1", {"Succeeded"}).return_payload == "slept 0"


def test_async_invoke_bad_input(client, service):
    fn = py_function(client, service, SLEEP_HANDLER)
    for bad in ("1abc", "a b", "a" * 129, "abc.def", "-x"):
        expect_error("InvalidArgument", 400, async_invoke, client, service, fn, b"0", invocation_id=bad)
    # The longest and oddest valid ids are accepted.
    for good in ("a" * 128, "_x", "A-b_9"):
        accepted(async_invoke(client, service, fn, b"0", invocation_id=good), good)
        wait_status(client, service, fn, good, {"Succeeded"})

    # 128 KB is the async payload limit.
    expect_error("EntityTooLarge", 400, async_invoke, client, service, fn, b"0" * (128 * 1024 + 1), invocation_id="big")
    expect_error("StatefulAsyncInvocationNotFound", 404, get_invocation, client, service, fn, "big")
    accepted(async_invoke(client, service, fn, b"0" * (128 * 1024), invocation_id="max"), "max")
    assert wait_status(client, service, fn, "max", {"Succeeded"}).return_payload == "slept " + "0" * (128 * 1024)

    expect_error("FunctionNotFound", 404, async_invoke, client, service, "no-such-fn", b"0", invocation_id="j")
    expect_error("ServiceNotFound", 404, async_invoke, client, unique("nosvc"), fn, b"0", invocation_id="j")
    expect_error("VersionNotFound", 404, async_invoke, client, service, fn, b"0", qualifier="7")

    expect_error("StatefulAsyncInvocationNotFound", 404, get_invocation, client, service, fn, "never_sent")
    expect_error("FunctionNotFound", 404, get_invocation, client, service, "no-such-fn", "x")
    expect_error("StatefulAsyncInvocationNotFound", 404, stop, client, service, fn, "never_sent")

    # An unknown invocation type is refused rather than run synchronously.
    with pytest.raises(Exception) as excinfo:
        client.invoke_function_with_options(
            service, fn, m.InvokeFunctionRequest(body=b"0"),
            m.InvokeFunctionHeaders(x_fc_invocation_type="Later"), util_models.RuntimeOptions(),
        )
    assert getattr(excinfo.value, "code", None) == "InvalidArgument", excinfo.value


# --------------------------------------------------------------------------------------------
# ListStatefulAsyncInvocations
# --------------------------------------------------------------------------------------------


def test_list_stateful_invocations_filters_pages_and_sorts(client, service):
    fn = py_function(client, service, ECHO_OR_FAIL_HANDLER)
    put_config(client, service, fn, max_async_retry_attempts=0)
    ids = ["lst_a_0", "lst_a_1", "lst_a_2", "lst_b_0", "lst_fail", "lst_b_1", "other_0"]
    payload = {i: ("fail" if i == "lst_fail" else f"payload-{i}") for i in ids}
    # One at a time, each finished before the next is sent: start order = enqueue order.
    for i in ids:
        accepted(async_invoke(client, service, fn, payload[i].encode(), invocation_id=i), i)
        wait_status(client, service, fn, i, {"Succeeded", "Failed"})

    asc = list_all(client, service, fn, sort_order_by_time="asc")
    assert [r.invocation_id for r in asc] == ids
    desc = list_all(client, service, fn, sort_order_by_time="desc")
    assert [r.invocation_id for r in desc] == ids[::-1]
    starts = [r.started_time for r in asc]
    assert starts == sorted(starts), starts

    by_id = {r.invocation_id: r for r in asc}
    assert by_id["lst_fail"].status == "Failed"
    assert by_id["lst_fail"].invocation_error_message
    for i in ids:
        if i != "lst_fail":
            assert by_id[i].status == "Succeeded" and by_id[i].return_payload == payload[i], by_id[i].to_map()
        assert by_id[i].invocation_payload is None, by_id[i].to_map()  # only with includePayload

    # includePayload
    with_payload = list_all(client, service, fn, include_payload=True, sort_order_by_time="asc")
    assert [(r.invocation_id, r.invocation_payload) for r in with_payload] == [(i, payload[i]) for i in ids]
    assert all(r.invocation_payload is None for r in list_all(client, service, fn, include_payload=False))

    # invocationIdPrefix
    def prefixed(p: str) -> list[str]:
        return [r.invocation_id for r in list_all(client, service, fn, invocation_id_prefix=p, sort_order_by_time="asc")]

    assert prefixed("lst_a_") == ["lst_a_0", "lst_a_1", "lst_a_2"]
    assert prefixed("lst_") == [i for i in ids if i.startswith("lst_")]
    assert prefixed("other") == ["other_0"]
    assert prefixed("lst_a_1") == ["lst_a_1"]
    empty = list_invocations(client, service, fn, invocation_id_prefix="nothing")
    assert not empty.invocations and not empty.next_token

    # status
    def with_status(s: str) -> list[str]:
        return [r.invocation_id for r in list_all(client, service, fn, status=s, sort_order_by_time="asc")]

    assert with_status("Failed") == ["lst_fail"]
    assert with_status("Succeeded") == [i for i in ids if i != "lst_fail"]
    assert with_status("Running") == []
    both = list_all(client, service, fn, status="Succeeded", invocation_id_prefix="lst_b", sort_order_by_time="asc")
    assert [r.invocation_id for r in both] == ["lst_b_0", "lst_b_1"]

    # limit + nextToken, both directions
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        pages = []
        token = None
        for _ in range(20):
            body = list_invocations(client, service, fn, limit=2, next_token=token, sort_order_by_time=order)
            pages.append([r.invocation_id for r in body.invocations or []])
            token = body.next_token
            if not token:
                break
        assert [len(p) for p in pages] == [2, 2, 2, 1], pages
        assert [i for p in pages for i in p] == expected
    body = list_invocations(client, service, fn, limit=len(ids))
    assert len(body.invocations) == len(ids) and not body.next_token

    # startedTimeBegin / startedTimeEnd (ms, inclusive)
    begin, end = asc[2].started_time, asc[4].started_time
    window = [r.invocation_id for r in list_all(
        client, service, fn, started_time_begin=begin, started_time_end=end, sort_order_by_time="asc"
    )]
    assert window == [r.invocation_id for r in asc if begin <= r.started_time <= end]
    assert set(ids[2:5]) <= set(window), window
    after = [r.invocation_id for r in list_all(client, service, fn, started_time_begin=asc[-1].started_time + 1)]
    assert after == []
    upto = [r.invocation_id for r in list_all(client, service, fn, started_time_end=asc[0].started_time, sort_order_by_time="asc")]
    assert upto == [r.invocation_id for r in asc if r.started_time <= asc[0].started_time]
    assert upto[:1] == ["lst_a_0"]

    # Bad filters.
    expect_error("InvalidArgument", 400, list_invocations, client, service, fn, limit=101)
    expect_error("InvalidArgument", 400, lambda: list_invocations(client, service, fn, status="Sleeping"))
    expect_error("InvalidArgument", 400, list_invocations, client, service, fn, sort_order_by_time="sideways")
    expect_error("FunctionNotFound", 404, list_invocations, client, service, "no-such-fn")


# --------------------------------------------------------------------------------------------
# StopStatefulAsyncInvocation
# --------------------------------------------------------------------------------------------


def test_stop_a_running_invocation(client, service):
    fn = py_function(client, service, SLEEP_HANDLER, timeout=60)
    accepted(async_invoke(client, service, fn, b"30", invocation_id="long_1"), "long_1")
    wait_status(client, service, fn, "long_1", {"Running"})
    t0 = time.monotonic()
    resp = stop(client, service, fn, "long_1")
    assert resp.status_code in (200, 204), resp.status_code
    inv = wait_status(client, service, fn, "long_1", {"Stopped"})
    print(f"stop -> Stopped took {time.monotonic() - t0:.2f} s")
    seen = statuses(inv)
    assert seen[:2] == ["Enqueued", "Running"], inv.to_map()
    assert seen[-1] == "Stopped", inv.to_map()
    assert set(seen[2:-1]) <= {"Stopping"}, inv.to_map()
    assert [e.event_id for e in inv.events] == list(range(1, len(seen) + 1))
    assert inv.return_payload is None, inv.to_map()
    assert isinstance(inv.end_time, int) and inv.end_time >= inv.started_time
    # It stays stopped, and the handler's result (if it ever finished) is not recorded.
    assert get_invocation(client, service, fn, "long_1").status == "Stopped"

    expect_error("AsyncInvocationStopped", 412, stop, client, service, fn, "long_1")

    # A finished one cannot be stopped.
    accepted(async_invoke(client, service, fn, b"0", invocation_id="short_1"), "short_1")
    wait_status(client, service, fn, "short_1", {"Succeeded"})
    expect_error("InvalidArgument", 400, stop, client, service, fn, "short_1")
    assert get_invocation(client, service, fn, "short_1").status == "Succeeded"

    # The function still works after its instance was stopped.
    accepted(async_invoke(client, service, fn, b"0", invocation_id="after_stop"), "after_stop")
    assert wait_status(client, service, fn, "after_stop", {"Succeeded"}).return_payload == "slept 0"


def test_stop_an_enqueued_invocation_it_never_runs(fcd_with):
    server = fcd_with("--async-workers", "1")
    c = server.client()
    service = create_service(c, unique("stopq")).service_name
    fn = py_function(c, service, SLEEP_HANDLER, timeout=60)

    # The only async worker is busy with A, so B waits.
    accepted(async_invoke(c, service, fn, b"30", invocation_id="task_a"), "task_a")
    wait_status(c, service, fn, "task_a", {"Running"})
    accepted(async_invoke(c, service, fn, b"0", invocation_id="task_b"), "task_b")
    assert get_invocation(c, service, fn, "task_b").status == "Enqueued"
    assert get_invocation(c, service, fn, "task_a").status == "Running"

    stop(c, service, fn, "task_b")
    b = wait_status(c, service, fn, "task_b", {"Stopped"})
    assert statuses(b) == ["Enqueued", "Stopped"], b.to_map()
    expect_error("AsyncInvocationStopped", 412, stop, c, service, fn, "task_b")

    # Free the worker; C, queued after B, runs, so the worker has passed B.
    stop(c, service, fn, "task_a")
    wait_status(c, service, fn, "task_a", {"Stopped"})
    accepted(async_invoke(c, service, fn, b"0", invocation_id="task_c"), "task_c")
    wait_status(c, service, fn, "task_c", {"Succeeded"})

    b = get_invocation(c, service, fn, "task_b")
    assert b.status == "Stopped"
    assert statuses(b) == ["Enqueued", "Stopped"], b.to_map()
    assert b.return_payload is None


def test_stop_a_task_waiting_for_its_retry(client, service):
    fn = py_function(client, service, FAIL_HANDLER)
    put_config(client, service, fn, max_async_retry_attempts=8)
    accepted(async_invoke(client, service, fn, b"x", invocation_id="retry_stop"), "retry_stop")
    wait_status(client, service, fn, "retry_stop", {"Retrying"})
    stop(client, service, fn, "retry_stop")
    inv = wait_status(client, service, fn, "retry_stop", {"Stopped"})
    attempts = statuses(inv).count("Running")
    assert statuses(inv)[-1] == "Stopped", inv.to_map()
    # Stopped is final: no further attempt is recorded later (the next retry was due within 2 s).
    time.sleep(2.5)
    inv = get_invocation(client, service, fn, "retry_stop")
    assert inv.status == "Stopped" and statuses(inv).count("Running") == attempts, inv.to_map()
    expect_error("AsyncInvocationStopped", 412, stop, client, service, fn, "retry_stop")


def test_invocation_of_a_version_deleted_before_it_ran_is_invalid(fcd_with):
    server = fcd_with("--async-workers", "1")
    c = server.client()
    service = create_service(c, unique("invalid")).service_name
    blocker = py_function(c, service, SLEEP_HANDLER, timeout=60)
    fn = py_function(c, service, SUCCESS_HANDLER)
    assert c.publish_service_version(service, m.PublishServiceVersionRequest()).body.version_id == "1"

    accepted(async_invoke(c, service, blocker, b"30", invocation_id="blocker"), "blocker")
    wait_status(c, service, blocker, "blocker", {"Running"})
    accepted(async_invoke(c, service, fn, b"v1", invocation_id="on_v1", qualifier="1"), "on_v1")
    c.delete_service_version(service, "1")
    accepted(async_invoke(c, service, fn, b"sentinel", invocation_id="sentinel"), "sentinel")
    stop(c, service, blocker, "blocker")
    # One worker, first in first out: once the sentinel ran, on_v1 has been dealt with.
    wait_status(c, service, fn, "sentinel", {"Succeeded"})
    inv = wait_status(c, service, fn, "on_v1", {"Invalid"})
    assert inv.qualifier == "1"
    assert statuses(inv)[0] == "Enqueued" and statuses(inv)[-1] == "Invalid", inv.to_map()
    assert inv.invocation_error_message, inv.to_map()
    assert inv.return_payload is None


# --------------------------------------------------------------------------------------------
# Async invoke configs
# --------------------------------------------------------------------------------------------


def test_async_invoke_config_put_merge_get_list_delete(client, service):
    fn = py_function(client, service, SLEEP_HANDLER)
    ok_sink = py_function(client, service, SINK_HANDLER, "ok_sink")
    bad_sink = py_function(client, service, SINK_HANDLER, "bad_sink")
    on_ok, on_bad = fc_arn(service, ok_sink), fc_arn(service, bad_sink)

    assert (service, fn, "LATEST") not in stateful_functions(client)
    expect_error("AsyncConfigNotExists", 404, get_config, client, service, fn)

    resp = put_config(
        client, service, fn,
        max_async_retry_attempts=2,
        max_async_event_age_in_seconds=7200,
        stateful_invocation=True,
        destination_config=destinations(on_ok, on_bad),
    )
    assert resp.status_code == 200
    cfg = resp.body
    assert (cfg.service, cfg.function, cfg.qualifier) == (service, fn, "LATEST")
    assert (cfg.max_async_retry_attempts, cfg.max_async_event_age_in_seconds, cfg.stateful_invocation) == (2, 7200, True)
    assert cfg.destination_config.on_success.destination == on_ok
    assert cfg.destination_config.on_failure.destination == on_bad
    assert cfg.created_time and cfg.last_modified_time
    created = cfg.created_time

    got = get_config(client, service, fn).body
    assert got.to_map() == cfg.to_map()
    assert (service, fn, "LATEST") in stateful_functions(client)

    # PUT merges: only the retry count changes.
    time.sleep(1.1)  # so a second-resolution lastModifiedTime can move; not a pass/fail timing
    merged = put_config(client, service, fn, max_async_retry_attempts=0).body
    assert merged.max_async_retry_attempts == 0
    assert merged.max_async_event_age_in_seconds == 7200
    assert merged.stateful_invocation is True
    assert merged.destination_config.on_success.destination == on_ok
    assert merged.destination_config.on_failure.destination == on_bad
    assert merged.created_time == created
    assert merged.last_modified_time >= cfg.last_modified_time
    assert merged.last_modified_time != cfg.last_modified_time
    # Only onFailure changes; onSuccess is kept.
    merged = put_config(client, service, fn, destination_config=destinations(on_failure=on_ok)).body
    assert merged.destination_config.on_success.destination == on_ok
    assert merged.destination_config.on_failure.destination == on_ok
    assert get_config(client, service, fn).body.to_map() == merged.to_map()

    listed = client.list_function_async_invoke_configs(service, fn, m.ListFunctionAsyncInvokeConfigsRequest()).body
    assert [c.to_map() for c in listed.configs] == [merged.to_map()]

    # Turning statefulInvocation off takes the function out of ListStatefulAsyncInvocationFunctions.
    put_config(client, service, fn, stateful_invocation=False)
    assert (service, fn, "LATEST") not in stateful_functions(client)
    put_config(client, service, fn, stateful_invocation=True)
    assert (service, fn, "LATEST") in stateful_functions(client)

    resp = client.delete_function_async_invoke_config(service, fn, m.DeleteFunctionAsyncInvokeConfigRequest())
    assert resp.status_code == 204
    expect_error("AsyncConfigNotExists", 404, get_config, client, service, fn)
    expect_error(
        "AsyncConfigNotExists", 404,
        client.delete_function_async_invoke_config, service, fn, m.DeleteFunctionAsyncInvokeConfigRequest(),
    )
    listed = client.list_function_async_invoke_configs(service, fn, m.ListFunctionAsyncInvokeConfigsRequest()).body
    assert not listed.configs
    assert (service, fn, "LATEST") not in stateful_functions(client)

    # A fresh PUT after the delete starts from the defaults again (3 retries, one day).
    fresh = put_config(client, service, fn, stateful_invocation=True).body
    assert (fresh.max_async_retry_attempts, fresh.max_async_event_age_in_seconds) == (3, 86400)
    assert not (fresh.destination_config and fresh.destination_config.on_success)


def test_async_invoke_config_per_qualifier(client, service):
    fn = py_function(client, service, SLEEP_HANDLER)
    client.publish_service_version(service, m.PublishServiceVersionRequest())
    client.create_alias(service, m.CreateAliasRequest(alias_name="prod", version_id="1"))
    try:
        put_config(client, service, fn, max_async_retry_attempts=1)
        prod = put_config(client, service, fn, qualifier="prod", max_async_retry_attempts=5, stateful_invocation=True).body
        assert prod.qualifier == "prod"
        assert get_config(client, service, fn, qualifier="prod").body.max_async_retry_attempts == 5
        assert get_config(client, service, fn).body.max_async_retry_attempts == 1
        configs = client.list_function_async_invoke_configs(service, fn, m.ListFunctionAsyncInvokeConfigsRequest()).body.configs
        assert sorted((c.qualifier, c.max_async_retry_attempts) for c in configs) == [("LATEST", 1), ("prod", 5)]
        assert (service, fn, "prod") in stateful_functions(client)
        assert (service, fn, "LATEST") not in stateful_functions(client)
        expect_error("AsyncConfigNotExists", 404, get_config, client, service, fn, qualifier="1")

        # The alias's config makes calls through the alias tasks; LATEST's does not.
        resp = async_invoke(client, service, fn, b"0", qualifier="prod")
        rid = accepted(resp)
        assert resp.headers.get("x-fc-stateful-async-invocation-id") == rid, resp.headers
        inv = wait_status(client, service, fn, rid, {"Succeeded"})
        assert inv.qualifier == "prod"
        accepted(async_invoke(client, service, fn, b"0"), "")
        assert [r.qualifier for r in list_all(client, service, fn, qualifier="prod")] == ["prod"]
        assert list_all(client, service, fn, qualifier="LATEST") == []

        expect_error("AliasNotFound", 404, put_config, client, service, fn, qualifier="nope", max_async_retry_attempts=1)
    finally:
        client.delete_alias(service, "prod")


def test_async_invoke_config_bad_input(client, service):
    fn = py_function(client, service, SLEEP_HANDLER)
    sink = py_function(client, service, SINK_HANDLER)
    expect_error("InvalidArgument", 400, put_config, client, service, fn, max_async_retry_attempts=9)
    expect_error("InvalidArgument", 400, put_config, client, service, fn, max_async_event_age_in_seconds=0)
    expect_error("InvalidArgument", 400, put_config, client, service, fn, max_async_event_age_in_seconds=604801)
    err = expect_error(
        "InvalidArgument", 400, put_config, client, service, fn,
        destination_config=destinations(on_failure="acs:mns:cn-hangzhou:1:/queues/q/messages"),
    )
    assert "acs:fc" in err.message and "MNS" in err.message, err.message
    err = expect_error(
        "InvalidArgument", 400, put_config, client, service, fn,
        destination_config=destinations(on_success=fc_arn(service, "no-such-sink")),
    )
    assert "no-such-sink" in err.message, err.message
    expect_error(
        "InvalidArgument", 400, put_config, client, service, fn,
        destination_config=destinations(on_success=fc_arn(unique("nosvc"), sink)),
    )
    expect_error("InvalidArgument", 400, put_config, client, service, fn,
                 destination_config=destinations(on_success="not an arn"))
    # Nothing was stored by the refused requests.
    expect_error("AsyncConfigNotExists", 404, get_config, client, service, fn)

    # The edges of the ranges are fine.
    cfg = put_config(client, service, fn, max_async_retry_attempts=8, max_async_event_age_in_seconds=604800).body
    assert (cfg.max_async_retry_attempts, cfg.max_async_event_age_in_seconds) == (8, 604800)
    cfg = put_config(client, service, fn, max_async_retry_attempts=0, max_async_event_age_in_seconds=1).body
    assert (cfg.max_async_retry_attempts, cfg.max_async_event_age_in_seconds) == (0, 1)
    # A short ARN form is accepted too.
    cfg = put_config(client, service, fn, destination_config=destinations(on_success=f"acs:fc:::services/{service}/functions/{sink}")).body
    assert cfg.destination_config.on_success.destination == f"acs:fc:::services/{service}/functions/{sink}"

    expect_error("FunctionNotFound", 404, put_config, client, service, "no-such-fn", max_async_retry_attempts=1)
    expect_error("FunctionNotFound", 404, get_config, client, service, "no-such-fn")
    expect_error("ServiceNotFound", 404, put_config, client, unique("nosvc"), fn, max_async_retry_attempts=1)
    expect_error(
        "FunctionNotFound", 404,
        client.delete_function_async_invoke_config, service, "no-such-fn", m.DeleteFunctionAsyncInvokeConfigRequest(),
    )


def test_deleting_a_function_takes_its_async_config_along(client, service):
    fn = py_function(client, service, SLEEP_HANDLER)
    put_config(client, service, fn, stateful_invocation=True, max_async_retry_attempts=1)
    assert (service, fn, "LATEST") in stateful_functions(client)
    client.delete_function(service, fn)
    assert (service, fn, "LATEST") not in stateful_functions(client)
    # A new function of the same name starts without the old one's config.
    py_function(client, service, SLEEP_HANDLER, fn)
    expect_error("AsyncConfigNotExists", 404, get_config, client, service, fn)
    accepted(async_invoke(client, service, fn, b"0"), "")


def test_classic_client_async_invoke_and_configs(client, classic_client, service):
    fn = py_function(client, service, SUCCESS_HANDLER)
    cfg = classic_client.put_function_async_invoke_config(
        service, "LATEST", fn, {"maxAsyncRetryAttempts": 1, "statefulInvocation": True}
    ).data
    assert (cfg["service"], cfg["function"], cfg["qualifier"]) == (service, fn, "LATEST")
    assert cfg["maxAsyncRetryAttempts"] == 1 and cfg["statefulInvocation"] is True
    got = classic_client.get_function_async_invoke_config(service, "LATEST", fn).data
    assert got == cfg
    configs = classic_client.list_function_async_invoke_configs(service, fn).data["configs"]
    assert configs == [cfg]

    resp = classic_client.invoke_function(
        service, fn, payload=b"classic",
        headers={"x-fc-invocation-type": "Async", "x-fc-stateful-async-invocation-id": "classic_1"},
    )
    assert resp.headers.get("x-fc-stateful-async-invocation-id") == "classic_1", resp.headers
    assert wait_status(client, service, fn, "classic_1", {"Succeeded"}).return_payload == "ok:classic:retry=0"

    classic_client.delete_function_async_invoke_config(service, "LATEST", fn)
    expect_error("AsyncConfigNotExists", 404, get_config, client, service, fn)


# --------------------------------------------------------------------------------------------
# Retries and destinations
# --------------------------------------------------------------------------------------------


def make_sinks(client: Client, service: str) -> tuple[str, str]:
    """Two destination functions whose async calls are tasks (so what they got can be read)."""
    ok_sink = py_function(client, service, SINK_HANDLER, "ok_sink")
    fail_sink = py_function(client, service, SINK_HANDLER, "fail_sink")
    for sink in (ok_sink, fail_sink):
        put_config(client, service, sink, stateful_invocation=True, max_async_retry_attempts=0)
    return ok_sink, fail_sink


def sink_records(client: Client, service: str, sink: str, count: int) -> list[m.StatefulAsyncInvocation]:
    """Waits for ``count`` finished records of a sink; returns them (oldest first)."""
    return wait_records(
        client, service, sink,
        lambda rs: len(rs) >= count and all(r.status in TERMINAL for r in rs),
        include_payload=True, sort_order_by_time="asc",
    )


def test_failing_function_is_retried_then_sent_to_on_failure(client, service):
    ok_sink, fail_sink = make_sinks(client, service)
    fn = py_function(client, service, FAIL_HANDLER)
    put_config(
        client, service, fn,
        max_async_retry_attempts=2,
        destination_config=destinations(fc_arn(service, ok_sink), fc_arn(service, fail_sink)),
    )
    rid = accepted(async_invoke(client, service, fn, b"original-event", invocation_id="fail_1"), "fail_1")
    inv = wait_status(client, service, fn, "fail_1", {"Failed"})
    assert inv.already_retried_times == 2, inv.to_map()
    assert statuses(inv) == [
        "Enqueued", "Running", "Retrying", "Running", "Retrying", "Running", "Failed",
    ], inv.to_map()
    assert [e.event_id for e in inv.events] == list(range(1, 8))
    assert "UnhandledInvocationError" in inv.invocation_error_message, inv.to_map()
    for e in inv.events:
        if e.status in ("Retrying", "Failed"):
            assert "UnhandledInvocationError" in e.event_detail, inv.to_map()
    assert inv.return_payload is None

    records = sink_records(client, service, fail_sink, 1)
    assert len(records) == 1, [r.to_map() for r in records]
    sink_inv = records[0]
    assert sink_inv.status == "Succeeded", sink_inv.to_map()
    record = json.loads(sink_inv.invocation_payload)
    assert json.loads(sink_inv.return_payload) == record  # the sink returned what it got
    assert isinstance(record["timestamp"], int) and abs(record["timestamp"] - now_ms()) < 3_600_000
    ctx = record["requestContext"]
    assert ctx["requestId"] == rid
    assert ctx["functionArn"] == fc_arn(service, fn)
    assert ctx["condition"]
    assert ctx["approximateInvokeCount"] == 3
    assert record["requestPayload"] == "original-event"
    assert record["responseContext"]["statusCode"] == 200
    assert record["responseContext"]["functionError"] == "UnhandledInvocationError"
    # The last attempt's error body, which says which retry it was.
    err = json.loads(record["responsePayload"])
    assert "retry=2 event=original-event" in err["errorMessage"], err

    assert wait_status(client, service, fn, "fail_1", {"Failed"}).destination_status == "Succeeded"
    assert list_all(client, service, ok_sink) == []


def test_succeeding_function_is_sent_to_on_success(client, service):
    ok_sink, fail_sink = make_sinks(client, service)
    fn = py_function(client, service, SUCCESS_HANDLER)
    put_config(
        client, service, fn,
        destination_config=destinations(fc_arn(service, ok_sink), fc_arn(service, fail_sink)),
    )
    rid = accepted(async_invoke(client, service, fn, b"good", invocation_id="ok_1"), "ok_1")
    inv = wait_status(client, service, fn, "ok_1", {"Succeeded"})
    assert inv.return_payload == "ok:good:retry=0"

    records = sink_records(client, service, ok_sink, 1)
    assert len(records) == 1, [r.to_map() for r in records]
    record = json.loads(records[0].invocation_payload)
    assert record["requestContext"]["requestId"] == rid
    assert record["requestContext"]["functionArn"] == fc_arn(service, fn)
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == "good"
    assert record["responseContext"] == {"statusCode": 200, "functionError": ""}
    assert record["responsePayload"] == "ok:good:retry=0"
    assert wait_status(client, service, fn, "ok_1", {"Succeeded"}).destination_status == "Succeeded"

    # A plain (not stateful) async call is delivered as well.
    plain_rid = accepted(async_invoke(client, service, fn, b"plain"), "")
    records = sink_records(client, service, ok_sink, 2)
    assert len(records) == 2
    record = json.loads(records[1].invocation_payload)
    assert record["requestContext"]["requestId"] == plain_rid
    assert record["responsePayload"] == "ok:plain:retry=0"
    assert list_all(client, service, fail_sink) == []


# --------------------------------------------------------------------------------------------
# Expiry
# --------------------------------------------------------------------------------------------


def test_invocation_older_than_max_age_expires(fcd_with):
    server = fcd_with("--async-workers", "1")
    c = server.client()
    service = create_service(c, unique("expire")).service_name
    blocker = py_function(c, service, SLEEP_HANDLER, timeout=60)
    short = py_function(c, service, SUCCESS_HANDLER)
    put_config(c, service, short, max_async_event_age_in_seconds=1, stateful_invocation=True)

    # The only worker is busy, so the short-lived call waits past its age.
    accepted(async_invoke(c, service, blocker, b"30", invocation_id="blocker"), "blocker")
    wait_status(c, service, blocker, "blocker", {"Running"})
    rid = accepted(async_invoke(c, service, short, b"too late"))
    assert get_invocation(c, service, short, rid).status == "Enqueued"
    assert get_invocation(c, service, blocker, "blocker").status == "Running"
    time.sleep(2)  # > maxAsyncEventAgeInSeconds while the worker is known to be busy
    stop(c, service, blocker, "blocker")

    inv = wait_status(c, service, short, rid, {"Expired"})
    assert statuses(inv)[0] == "Enqueued" and statuses(inv)[-1] == "Expired", inv.to_map()
    assert "Running" not in statuses(inv), f"an expired invocation never ran: {inv.to_map()}"
    assert inv.return_payload is None
    assert isinstance(inv.end_time, int)

    # A fresh call of the same function runs normally once the worker is free.
    rid = accepted(async_invoke(c, service, short, b"in time"))
    assert wait_status(c, service, short, rid, {"Succeeded"}).return_payload == "ok:in time:retry=0"


# --------------------------------------------------------------------------------------------
# Crash recovery
# --------------------------------------------------------------------------------------------


def test_accepted_invocations_survive_a_crash(fcd_with, tmp_path):
    data_dir = tmp_path / "crash-data"
    first = fcd_with("--async-workers", "2", data_dir=data_dir)
    c1 = first.client()
    service = create_service(c1, unique("crash")).service_name
    fn = py_function(c1, service, SLEEP_HANDLER)
    n = 30
    ids = [f"crash_{i:02d}" for i in range(n)]
    for i in ids:
        accepted(async_invoke(c1, service, fn, b"0.2", invocation_id=i), i)

    # Kill it once a few have finished (and others are surely still waiting).
    wait_records(c1, service, fn, lambda rs: sum(r.status == "Succeeded" for r in rs) >= 3, timeout_s=POLL_S)
    first.kill()

    second = fcd_with("--async-workers", "2", data_dir=data_dir)
    c2 = second.client()
    records = wait_records(c2, service, fn, lambda rs: len(rs) == n and all(r.status in TERMINAL for r in rs))
    listed = [r.invocation_id for r in records]
    assert sorted(listed) == ids, listed  # every one, exactly once
    retried = []
    for r in records:
        assert r.status == "Succeeded", r.to_map()
        assert r.return_payload == "slept 0.2"
        assert r.already_retried_times in (0, 1), r.to_map()
        if r.already_retried_times == 1:
            retried.append(r.invocation_id)
            assert "Retrying" in statuses(r), r.to_map()
        assert statuses(r)[-1] == "Succeeded"
    print(f"crash test: {len(retried)} invocation(s) were running at the crash and ran again: {retried}")

    # Ids stay taken across the restart.
    expect_error(
        "StatefulAsyncInvocationAlreadyExists", 409,
        async_invoke, c2, service, fn, b"0", invocation_id=ids[0],
    )
    # The restarted server keeps accepting and running async work.
    accepted(async_invoke(c2, service, fn, b"0", invocation_id="after_crash"), "after_crash")
    wait_status(c2, service, fn, "after_crash", {"Succeeded"})


def test_a_crash_under_load_loses_no_accept_and_records_each_end_once(fcd_with, tmp_path):
    """SIGKILL while 16 connections keep accepting and the results of a quick function are
    being recorded many per commit (the default --async-workers runs many at once). After the
    restart every call that got its 202 is there and ends exactly once in its record, as
    Succeeded. A call that was running, or whose result was still waiting for its commit, runs
    again: at-least-once execution, one terminal record."""
    data_dir = tmp_path / "crash-load-data"
    first = fcd_with(data_dir=data_dir)
    c1 = first.client()
    service = create_service(c1, unique("crashload")).service_name
    fn = py_function(c1, service, SUCCESS_HANDLER)
    accepted(async_invoke(c1, service, fn, b"warm", invocation_id="warm"), "warm")
    wait_status(c1, service, fn, "warm", {"Succeeded"})

    path = f"/2021-04-06/services/{service}/functions/{fn}/invocations"
    host, port = first.addr.rsplit(":", 1)
    got_202: set[str] = set()
    other: list[int] = []
    lock = threading.Lock()
    stopping = threading.Event()

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        i = 0
        while not stopping.is_set():
            inv_id = f"load_{k}_{i}"
            i += 1
            body = inv_id.encode()
            extra = {"x-fc-invocation-type": "Async", "x-fc-stateful-async-invocation-id": inv_id}
            try:
                conn.request("POST", path, body=body, headers=acs3_headers(first.addr, path, body, extra))
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            with lock:
                if resp.status == 202:
                    got_202.add(inv_id)
                else:
                    other.append(resp.status)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    try:
        # Kill mid-load: accepts still arriving, earlier calls running and being recorded.
        deadline = time.monotonic() + POLL_S
        while True:
            with lock:
                n = len(got_202)
            if n >= 1500:
                break
            assert time.monotonic() < deadline, f"only {n} accepts within {POLL_S} s"
            time.sleep(0.01)
        first.kill()
    finally:
        stopping.set()
        for t in threads:
            t.join(timeout=60)
    assert not other, sorted(set(other))

    second = fcd_with(data_dir=data_dir)
    c2 = second.client()
    records = wait_records(
        c2, service, fn,
        lambda rs: {r.invocation_id for r in rs} >= got_202 and all(r.status in TERMINAL for r in rs),
        timeout_s=180,
    )
    listed = [r.invocation_id for r in records]
    assert len(listed) == len(set(listed)), "an invocation listed twice"
    assert got_202 <= set(listed), sorted(got_202 - set(listed))[:10]  # nothing accepted is lost
    ran_again = 0
    for r in records:
        seen = statuses(r)
        assert r.status == "Succeeded", r.to_map()
        assert seen[0] == "Enqueued" and seen[-1] == "Succeeded", r.to_map()
        assert seen.count("Succeeded") == 1, r.to_map()  # one terminal record
        assert [e.event_id for e in r.events] == list(range(1, len(seen) + 1)), r.to_map()
        assert r.return_payload.startswith(f"ok:{r.invocation_id}:retry="), r.to_map()
        assert r.already_retried_times in (0, 1), r.to_map()
        if r.already_retried_times == 1:
            ran_again += 1
            assert "Retrying" in seen, r.to_map()
    print(f"crash under load: {len(got_202)} accepted before the kill, {len(listed)} recorded, {ran_again} ran again")


# --------------------------------------------------------------------------------------------
# Measurements (printed, never asserted)
# --------------------------------------------------------------------------------------------


def acs3_headers(addr: str, path: str, body: bytes, extra: dict[str, str]) -> dict[str, str]:
    """ACS3-HMAC-SHA256 signed headers for a POST without query, as the Python SDK signs."""
    headers = {
        "host": addr,
        "x-acs-version": "2021-04-06",
        "x-acs-action": "InvokeFunction",
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "accept": "application/json",
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        **{k.lower(): v for k, v in extra.items()},
    }
    names = sorted(headers)
    canonical = "\n".join([
        "POST", path, "",
        "".join(f"{n}:{headers[n].strip()}\n" for n in names),
        ";".join(names),
        headers["x-acs-content-sha256"],
    ])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    sig = hmac.new(ACCESS_KEY_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={ACCESS_KEY_ID},SignedHeaders={';'.join(names)},Signature={sig}"
    )
    return headers


def blast_async(addr: str, service: str, function: str, total: int, threads: int, stateful: bool) -> tuple[float, list[int]]:
    """``total`` async invokes over raw signed HTTP/1.1 keep-alive from ``threads`` threads.
    Returns (seconds, status codes)."""
    path = f"/2021-04-06/services/{service}/functions/{function}/invocations"
    host, port = addr.rsplit(":", 1)
    counter = iter(range(total))
    lock = threading.Lock()
    codes: list[int] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = b"0"
            extra = {"x-fc-invocation-type": "Async"}
            if stateful:
                extra["x-fc-stateful-async-invocation-id"] = f"bench_{i}"
            conn.request("POST", path, body=body, headers=acs3_headers(addr, path, body, extra))
            resp = conn.getresponse()
            resp.read()
            with lock:
                codes.append(resp.status)
        conn.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(worker) for _ in range(threads)]:
            f.result()
    return time.perf_counter() - t0, codes


def test_measure_async_accept_rate_and_latency(fcd_with, capsys):
    server = fcd_with()
    c = server.client()
    service = create_service(c, unique("bench")).service_name
    fn = py_function(c, service, SLEEP_HANDLER)
    stateful_fn = py_function(c, service, SLEEP_HANDLER)
    lines = []

    # Latency at low load: one call at a time on a warm function.
    accepted(async_invoke(c, service, stateful_fn, b"0", invocation_id="warmup"), "warmup")
    wait_status(c, service, stateful_fn, "warmup", {"Succeeded"})
    client_ms, server_ms = [], []
    for i in range(30):
        t0 = time.perf_counter()
        accepted(async_invoke(c, service, stateful_fn, b"0", invocation_id=f"lat_{i}"), f"lat_{i}")
        deadline = time.monotonic() + POLL_S
        while True:
            inv = get_invocation(c, service, stateful_fn, f"lat_{i}")
            if inv.status in TERMINAL or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        client_ms.append((time.perf_counter() - t0) * 1000)
        assert inv.status == "Succeeded", inv.to_map()
        server_ms.append(inv.end_time - inv.events[0].timestamp)
    lines.append(
        "202 -> Succeeded at low load (30 sequential calls, warm, polling every 2 ms): "
        f"client-observed median {statistics.median(client_ms):.1f} ms, max {max(client_ms):.1f} ms; "
        f"server enqueue->end median {statistics.median(server_ms):.1f} ms, max {max(server_ms)} ms"
    )

    for stateful, target in ((False, fn), (True, stateful_fn)):
        seconds, codes = blast_async(server.addr, service, target, 2000, 16, stateful)
        ok = sum(1 for s in codes if s == 202)
        lines.append(
            f"accepted async {'stateful ' if stateful else ''}invokes: {ok}/{len(codes)} x 202 in {seconds:.2f} s "
            f"= {ok / seconds:.0f}/s (16 threads, raw signed HTTP keep-alive, payload 1 byte)"
        )
        assert ok == len(codes) == 2000, sorted(set(codes))

    # SDK-driven rate for comparison (Python SDK overhead dominates).
    clients = [server.client() for _ in range(16)]
    counter = iter(range(400))
    lock = threading.Lock()

    def sdk_worker(k: int) -> int:
        n = 0
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return n
            resp = async_invoke(clients[k], service, fn, b"0")
            n += resp.status_code == 202

    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        done = sum(pool.map(sdk_worker, range(16)))
    seconds = time.perf_counter() - t0
    lines.append(f"accepted async invokes through the Python SDK: {done} in {seconds:.2f} s = {done / seconds:.0f}/s (16 threads)")

    # How long the stateful backlog took to drain (2000 calls of a no-op handler).
    t0 = time.perf_counter()
    wait_records(
        c, service, stateful_fn,
        lambda rs: sum(r.status == "Succeeded" for r in rs) >= 2031,
        timeout_s=300,
    )
    lines.append(f"stateful backlog of 2000 drained {time.perf_counter() - t0:.1f} s after the last 202")
    with capsys.disabled():
        print()
        for line in lines:
            print("  [async measurement] " + line)
