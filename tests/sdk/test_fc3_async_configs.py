"""FC 3.0 (``alibabacloud-fc20230330``) async invoke configs, async tasks, provision configs and
concurrency configs, on 2.0 functions addressed as ``svc$fn``.

Async tasks are started through the 2.0 SDK (async InvokeFunction on a function whose async
config, put through 3.0, has ``asyncTask`` on) and read and stopped through 3.0. The
``reservedConcurrency`` cap is checked with real concurrent calls: the first one sleeps and is
known to be in flight (its instance exists) before the second is sent, and the second's
refusal is checked to have come while the first was still running — results and their order,
never durations, decide. Timing never decides a result: every wait is a bounded polling loop.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

import pytest
import requests

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_fc20230330 import models as m3
from alibabacloud_tea_util import models as util_models

from fcdkit import ACCOUNT_ID, REGION, create_function, expect_error
from test_http_triggers import assert_common_error, http_function, http_trigger

POLL_S = 60.0
TERMINAL = {"Succeeded", "Failed", "Stopped", "Expired", "Invalid"}

# Sleeps as many seconds as the event says (empty: none), then answers.
SLEEP_HANDLER = """\
import time


def handler(event, context):
    text = event.decode() or '0'
    time.sleep(float(text))
    return 'slept ' + text
"""


def py_function(client: Client, service: str, **kwargs) -> str:
    return create_function(client, service, files={"index.py": SLEEP_HANDLER}, timeout=60, **kwargs).function_name


def arn(name: str) -> str:
    return f"acs:fc:{REGION}:{ACCOUNT_ID}:functions/{name}"


def async_invoke(client: Client, service: str, function: str, body: bytes, task_id: Optional[str] = None):
    resp = client.invoke_function_with_options(
        service,
        function,
        m.InvokeFunctionRequest(body=body),
        m.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_stateful_async_invocation_id=task_id),
        util_models.RuntimeOptions(),
    )
    assert resp.status_code == 202, resp.status_code
    return resp


def get_task(fc3, name: str, task_id: str, qualifier: Optional[str] = None) -> m3.AsyncTask:
    resp = fc3.get_async_task(name, task_id, m3.GetAsyncTaskRequest(qualifier=qualifier))
    assert resp.status_code == 200, resp.status_code
    return resp.body


def wait_task(fc3, name: str, task_id: str, want: set[str]) -> m3.AsyncTask:
    deadline = time.monotonic() + POLL_S
    while True:
        t = get_task(fc3, name, task_id)
        if t.status in want:
            return t
        if t.status in TERMINAL:
            pytest.fail(f"{task_id} ended {t.status}, expected one of {sorted(want)}: {t.to_map()}")
        if time.monotonic() >= deadline:
            pytest.fail(f"{task_id} still {t.status} after {POLL_S} s: {t.to_map()}")
        time.sleep(0.05)


def put_async_config(fc3, name: str, qualifier: Optional[str] = None, **kwargs) -> m3.AsyncConfig:
    resp = fc3.put_async_invoke_config(
        name,
        m3.PutAsyncInvokeConfigRequest(body=m3.PutAsyncInvokeConfigInput(**kwargs), qualifier=qualifier),
    )
    assert resp.status_code == 200, resp.status_code
    return resp.body


def list_all_async_configs(fc3, **kwargs) -> list[m3.AsyncConfig]:
    out, token = [], None
    for _ in range(1000):
        body = fc3.list_async_invoke_configs(m3.ListAsyncInvokeConfigsRequest(next_token=token, **kwargs)).body
        out.extend(body.configs or [])
        token = body.next_token
        if not token:
            return out
    raise AssertionError("ListAsyncInvokeConfigs never ended")


# --------------------------------------------------------------------------------------------
# Async invoke configs
# --------------------------------------------------------------------------------------------


def test_async_invoke_config_put_get_list_delete(client, fc3, service):
    fn = py_function(client, service)
    other = py_function(client, service)
    name = f"{service}${fn}"
    sink = f"{service}${other}"

    expect_error("AsyncConfigNotExists", 404, fc3.get_async_invoke_config, name, m3.GetAsyncInvokeConfigRequest())
    err = expect_error("AsyncConfigNotExists", 404, fc3.delete_async_invoke_config, name, m3.DeleteAsyncInvokeConfigRequest())
    assert "service" not in err.message, err.message
    expect_error(
        "FunctionNotFound", 404, fc3.get_async_invoke_config, f"{service}$nope", m3.GetAsyncInvokeConfigRequest()
    )

    # Destinations in FC 3.0's ARN form and in 2.0's.
    cfg = put_async_config(
        fc3,
        name,
        async_task=True,
        max_async_retry_attempts=1,
        max_async_event_age_in_seconds=600,
        destination_config=m3.DestinationConfig(
            on_success=m3.Destination(destination=arn(sink)),
            on_failure=m3.Destination(
                destination=f"acs:fc:{REGION}:{ACCOUNT_ID}:services/{service}.LATEST/functions/{other}"
            ),
        ),
    )
    assert cfg.async_task is True
    assert cfg.function_arn == arn(name)
    assert (cfg.max_async_retry_attempts, cfg.max_async_event_age_in_seconds) == (1, 600)
    assert cfg.destination_config.on_success.destination == arn(sink)
    assert cfg.created_time and cfg.last_modified_time

    got = fc3.get_async_invoke_config(name, m3.GetAsyncInvokeConfigRequest()).body
    assert got.to_map() == cfg.to_map()
    # 2.0 sees the same config, with asyncTask as statefulInvocation.
    v2 = client.get_function_async_invoke_config(service, fn, m.GetFunctionAsyncInvokeConfigRequest()).body
    assert v2.stateful_invocation is True and v2.max_async_retry_attempts == 1

    # A PUT replaces the whole config: what it leaves out takes its default.
    cfg2 = put_async_config(fc3, name, max_async_retry_attempts=2)
    assert cfg2.async_task is False
    assert cfg2.max_async_retry_attempts == 2
    assert cfg2.max_async_event_age_in_seconds == 86400
    assert cfg2.destination_config is None
    assert cfg2.created_time == cfg.created_time

    # Bad input.
    expect_error("InvalidArgument", 400, put_async_config, fc3, name, max_async_retry_attempts=9)
    expect_error(
        "InvalidArgument",
        400,
        put_async_config,
        fc3,
        name,
        destination_config=m3.DestinationConfig(on_success=m3.Destination(destination=arn(f"{service}$missing"))),
    )

    # The account-wide list has it under its 3.0 name, with or without a filter.
    put_async_config(fc3, sink, async_task=True)
    ours = [c.function_arn for c in list_all_async_configs(fc3, limit=1) if c.function_arn in (arn(name), arn(sink))]
    assert sorted(ours) == sorted([arn(name), arn(sink)])
    only = list_all_async_configs(fc3, function_name=name)
    assert [c.function_arn for c in only] == [arn(name)]
    expect_error(
        "FunctionNotFound",
        404,
        fc3.list_async_invoke_configs,
        m3.ListAsyncInvokeConfigsRequest(function_name=f"{service}$nope"),
    )

    resp = fc3.delete_async_invoke_config(name, m3.DeleteAsyncInvokeConfigRequest())
    assert resp.status_code in (200, 204)
    expect_error("AsyncConfigNotExists", 404, fc3.get_async_invoke_config, name, m3.GetAsyncInvokeConfigRequest())
    assert [c.function_arn for c in list_all_async_configs(fc3, function_name=name)] == []


def test_async_invoke_config_per_qualifier(client, fc3, service):
    fn = py_function(client, service)
    name = f"{service}${fn}"
    client.publish_service_version(service, m.PublishServiceVersionRequest())
    client.create_alias(service, m.CreateAliasRequest(alias_name="prod", version_id="1"))
    put_async_config(fc3, name, qualifier="prod", max_async_retry_attempts=0)
    expect_error("AsyncConfigNotExists", 404, fc3.get_async_invoke_config, name, m3.GetAsyncInvokeConfigRequest())
    got = fc3.get_async_invoke_config(name, m3.GetAsyncInvokeConfigRequest(qualifier="prod")).body
    assert got.max_async_retry_attempts == 0
    expect_error(
        "AliasNotFound", 404, put_async_config, fc3, name, qualifier="nope", max_async_retry_attempts=0
    )


# --------------------------------------------------------------------------------------------
# Async tasks
# --------------------------------------------------------------------------------------------


def test_async_tasks_get_list_stop(client, fc3, service):
    fn = py_function(client, service)
    name = f"{service}${fn}"
    put_async_config(fc3, name, async_task=True)

    async_invoke(client, service, fn, b"0", task_id="quick_1")
    done = wait_task(fc3, name, "quick_1", {"Succeeded"})
    assert done.task_id == "quick_1"
    assert done.function_arn == arn(name)
    assert done.qualifier == "LATEST"
    assert done.return_payload == "slept 0"
    assert [e.status for e in done.events][0] == "Enqueued" and done.events[-1].status == "Succeeded"
    assert done.task_payload == "0"
    got = fc3.get_async_task(name, "quick_1", m3.GetAsyncTaskRequest()).body.to_map()
    for gone in ("invocationId", "serviceName", "functionName"):
        assert gone not in got, got

    # The task config makes a call without an id a task too, named by its request id.
    rid = async_invoke(client, service, fn, b"0").headers["x-fc-request-id"]
    wait_task(fc3, name, rid, {"Succeeded"})

    async_invoke(client, service, fn, b"30", task_id="long_1")
    wait_task(fc3, name, "long_1", {"Running"})

    tasks = fc3.list_async_tasks(name, m3.ListAsyncTasksRequest(include_payload=True, limit=100)).body.tasks
    by_id = {t.task_id: t for t in tasks}
    assert {"quick_1", rid, "long_1"} <= set(by_id), list(by_id)
    assert by_id["quick_1"].task_payload == "0"
    assert by_id["long_1"].task_payload == "30"
    assert all(t.function_arn == arn(name) for t in tasks)

    running = fc3.list_async_tasks(name, m3.ListAsyncTasksRequest(status="Running")).body.tasks
    assert [t.task_id for t in running] == ["long_1"]
    prefixed = fc3.list_async_tasks(name, m3.ListAsyncTasksRequest(prefix="quick")).body.tasks
    assert [t.task_id for t in prefixed] == ["quick_1"]
    assert prefixed[0].task_payload is None

    # Paging: one at a time, oldest first, until the token runs out.
    seen, token = [], None
    for _ in range(10):
        body = fc3.list_async_tasks(name, m3.ListAsyncTasksRequest(limit=1, next_token=token, sort_order_by_time="asc")).body
        seen.extend(t.task_id for t in body.tasks)
        token = body.next_token
        if not token:
            break
    assert seen == ["quick_1", rid, "long_1"], seen
    expect_error("InvalidArgument", 400, fc3.list_async_tasks, name, m3.ListAsyncTasksRequest(limit=101))

    resp = fc3.stop_async_task(name, "long_1", m3.StopAsyncTaskRequest())
    assert resp.status_code in (200, 204)
    stopped = wait_task(fc3, name, "long_1", {"Stopped"})
    assert stopped.events[-1].status == "Stopped"
    expect_error("AsyncInvocationStopped", 412, fc3.stop_async_task, name, "long_1", m3.StopAsyncTaskRequest())

    err = expect_error("StatefulAsyncInvocationNotFound", 404, fc3.get_async_task, name, "nope", m3.GetAsyncTaskRequest())
    assert name in err.message and "service" not in err.message
    # A qualifier the task did not run under does not find it.
    expect_error(
        "StatefulAsyncInvocationNotFound", 404, fc3.get_async_task, name, "quick_1", m3.GetAsyncTaskRequest(qualifier="prod")
    )
    expect_error("FunctionNotFound", 404, fc3.list_async_tasks, f"{service}$nope", m3.ListAsyncTasksRequest())


# --------------------------------------------------------------------------------------------
# Provision configs
# --------------------------------------------------------------------------------------------


def test_provision_config_put_get_list_delete(client, fc3, service):
    fn = py_function(client, service)
    name = f"{service}${fn}"
    client.publish_service_version(service, m.PublishServiceVersionRequest())
    client.create_alias(service, m.CreateAliasRequest(alias_name="prod", version_id="1"))

    def put(qualifier, **kwargs):
        return fc3.put_provision_config(
            name, m3.PutProvisionConfigRequest(body=m3.PutProvisionConfigInput(**kwargs), qualifier=qualifier)
        )

    # Python sends empty policy lists: they mean none.
    resp = put("prod", default_target=1, scheduled_actions=[], target_tracking_policies=[], always_allocate_gpu=False)
    assert resp.status_code == 200
    cfg = resp.body
    assert (cfg.default_target, cfg.target) == (1, 1)
    assert cfg.function_arn == arn(name)
    assert cfg.always_allocate_cpu is True and cfg.always_allocate_gpu is False
    assert cfg.scheduled_actions == [] and cfg.target_tracking_policies == []

    # The reconciler starts the instance.
    deadline = time.monotonic() + POLL_S
    while True:
        got = fc3.get_provision_config(name, m3.GetProvisionConfigRequest(qualifier="prod")).body
        if got.current == 1:
            break
        assert time.monotonic() < deadline, got.to_map()
        time.sleep(0.2)
    assert (got.default_target, got.target, got.current_error) == (1, 1, "")

    # `target` is the deprecated spelling of defaultTarget.
    assert put("prod", target=2).body.default_target == 2
    assert put("prod", default_target=1).body.default_target == 1

    listed = fc3.list_provision_configs(m3.ListProvisionConfigsRequest(function_name=name)).body.provision_configs
    # (The SDK's ProvisionConfig has no qualifier; fcd sends one beside functionArn.)
    assert [(c.function_arn, c.default_target) for c in listed] == [(arn(name), 1)]

    # LATEST cannot be provisioned (as in fcd's 2.0); a missing qualifier is refused.
    expect_error("InvalidArgument", 400, put, "LATEST", default_target=1)
    expect_error("InvalidArgument", 400, put, None, default_target=1)
    expect_error("InvalidArgument", 400, put, "prod", default_target=10001)
    expect_error("AliasNotFound", 404, put, "nope", default_target=1)

    resp = fc3.delete_provision_config(name, m3.DeleteProvisionConfigRequest(qualifier="prod"))
    assert resp.status_code in (200, 204)
    assert fc3.list_provision_configs(m3.ListProvisionConfigsRequest(function_name=name)).body.provision_configs == []
    after = fc3.get_provision_config(name, m3.GetProvisionConfigRequest(qualifier="prod")).body
    assert after.default_target == 0
    # 2.0 agrees.
    assert client.get_provision_config(service, fn, m.GetProvisionConfigRequest(qualifier="prod")).body.target == 0


# --------------------------------------------------------------------------------------------
# Concurrency configs
# --------------------------------------------------------------------------------------------


def put_concurrency(fc3, name: str, n: Optional[int]) -> m3.ConcurrencyConfig:
    resp = fc3.put_concurrency_config(
        name, m3.PutConcurrencyConfigRequest(body=m3.PutConcurrencyInput(reserved_concurrency=n))
    )
    assert resp.status_code == 200, resp.status_code
    return resp.body


def test_concurrency_config_put_get_list_delete(client, fc3, service):
    fn = py_function(client, service)
    fn2 = py_function(client, service)
    name, name2 = f"{service}${fn}", f"{service}${fn2}"

    err = expect_error("ConcurrencyConfigNotFound", 404, fc3.get_concurrency_config, name)
    assert name in err.message and "service" not in err.message
    expect_error("ConcurrencyConfigNotFound", 404, fc3.delete_concurrency_config, name)
    expect_error("FunctionNotFound", 404, fc3.get_concurrency_config, f"{service}$nope")
    expect_error("FunctionNotFound", 404, put_concurrency, fc3, f"{service}$nope", 1)

    cfg = put_concurrency(fc3, name, 5)
    assert (cfg.function_arn, cfg.reserved_concurrency) == (arn(name), 5)
    assert put_concurrency(fc3, name, 3).reserved_concurrency == 3
    assert fc3.get_concurrency_config(name).body.to_map() == {"functionArn": arn(name), "reservedConcurrency": 3}
    put_concurrency(fc3, name2, 0)

    expect_error("InvalidArgument", 400, put_concurrency, fc3, name, -1)
    expect_error("InvalidArgument", 400, put_concurrency, fc3, name, None)

    only = fc3.list_concurrency_configs(m3.ListConcurrencyConfigsRequest(function_name=name2)).body
    assert [(c.function_arn, c.reserved_concurrency) for c in only.configs] == [(arn(name2), 0)]
    seen, token = [], None
    for _ in range(1000):
        body = fc3.list_concurrency_configs(m3.ListConcurrencyConfigsRequest(limit=1, next_token=token)).body
        assert len(body.configs) <= 1
        seen.extend(c.function_arn for c in body.configs)
        token = body.next_token
        if not token:
            break
    assert [a for a in seen if a in (arn(name), arn(name2))] == sorted([arn(name), arn(name2)])

    resp = fc3.delete_concurrency_config(name)
    assert resp.status_code in (200, 204)
    expect_error("ConcurrencyConfigNotFound", 404, fc3.get_concurrency_config, name)

    # A function deleted and created again starts without one.
    client.delete_function(service, fn2)
    create_function(client, service, fn2, files={"index.py": SLEEP_HANDLER})
    expect_error("ConcurrencyConfigNotFound", 404, fc3.get_concurrency_config, name2)


def instance_count(client: Client, service: str, fn: str) -> int:
    return len(client.list_instances(service, fn, m.ListInstancesRequest()).body.instances or [])


def test_reserved_concurrency_caps_requests_in_flight(client, fc3, service):
    fn = py_function(client, service)
    name = f"{service}${fn}"
    put_concurrency(fc3, name, 1)

    first: dict = {}

    def slow_call():
        try:
            first["body"] = client.invoke_function(service, fn, m.InvokeFunctionRequest(body=b"15")).body
        except Exception as e:  # reported below
            first["error"] = e

    t = threading.Thread(target=slow_call)
    t.start()
    try:
        # The first call is in flight once its instance exists (the function had none).
        deadline = time.monotonic() + POLL_S
        while instance_count(client, service, fn) == 0:
            assert t.is_alive(), first
            assert time.monotonic() < deadline, "the first call never started an instance"
            time.sleep(0.05)
        err = expect_error(
            "ResourceExhausted", 429, client.invoke_function, service, fn, m.InvokeFunctionRequest(body=b"0")
        )
        assert "reservedConcurrency" in err.message, err.message
        # The refusal came while the first call was still running.
        assert t.is_alive() and not first, first
    finally:
        t.join(POLL_S)
    assert first.get("body") == b"slept 15", first

    # With the first call done, there is room again.
    assert client.invoke_function(service, fn, m.InvokeFunctionRequest(body=b"0")).body == b"slept 0"

    # 0 stops the function; a raised cap applies at once.
    put_concurrency(fc3, name, 0)
    expect_error("ResourceExhausted", 429, client.invoke_function, service, fn, m.InvokeFunctionRequest(body=b"0"))
    put_concurrency(fc3, name, 2)
    assert client.invoke_function(service, fn, m.InvokeFunctionRequest(body=b"0")).body == b"slept 0"


def test_async_calls_over_the_cap_wait_rather_than_fail(client, fc3, service):
    fn = py_function(client, service)
    name = f"{service}${fn}"
    put_concurrency(fc3, name, 0)
    async_invoke(client, service, fn, b"0", task_id="held_1")
    # It is throttled and retried, not failed.
    deadline = time.monotonic() + POLL_S
    while True:
        task = get_task(fc3, name, "held_1")
        assert task.status not in TERMINAL, task.to_map()
        if "Retrying" in [e.status for e in task.events or []]:
            break
        assert time.monotonic() < deadline, task.to_map()
        time.sleep(0.05)
    fc3.delete_concurrency_config(name)
    done = wait_task(fc3, name, "held_1", {"Succeeded"})
    assert done.return_payload == "slept 0"


def test_reserved_concurrency_applies_to_http_triggers(fcd, client, fc3, service):
    fn = http_function(client, service, "cap")
    http_trigger(client, service, fn)
    url = f"http://{fcd.addr}/2021-04-06/proxy/{service}/{fn}/x"
    assert requests.get(url, timeout=60).status_code == 200
    put_concurrency(fc3, f"{service}${fn}", 0)
    assert_common_error(requests.get(url, timeout=60), 429, "ResourceExhausted")
    fc3.delete_concurrency_config(f"{service}${fn}")
    assert requests.get(url, timeout=60).status_code == 200
