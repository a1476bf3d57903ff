"""A native FC 3.0 function end to end through the official 3.0 SDK (alibabacloud-fc20230330):
its async invoke config, async tasks started by a 3.0 InvokeFunction with ``x-fc-async-task-id``
(then Get/List/Stop), provision and concurrency configs, and tags given at creation — and what
the 2.0 API sees of all of it (nothing: a native function lives in a hidden service).

The other 3.0 test files cover each resource in depth, mostly on 2.0 functions named
``svc$fn``; this one checks the same operations on a function that only 3.0 knows.
"""

from __future__ import annotations

import base64

import pytest

from alibabacloud_fc20230330 import models as m3
from alibabacloud_fc_open20210406 import models as m2

from fcdkit import ACCOUNT_ID, REGION, make_zip_bytes, unique, wait_until
from test_fc3_async_configs import SLEEP_HANDLER, TERMINAL, get_task, put_async_config, wait_task
from test_fc3_functions import body_of, invoke

pytestmark = pytest.mark.invoke


@pytest.fixture
def native(fc3):
    """A native python function that sleeps as many seconds as its event says, tagged at
    creation; deleted afterwards."""
    name = unique("n3")
    fc3.create_function(
        m3.CreateFunctionRequest(
            body=m3.CreateFunctionInput(
                function_name=name,
                runtime="python3.10",
                handler="index.handler",
                timeout=60,
                code=m3.InputCodeLocation(
                    zip_file=base64.b64encode(make_zip_bytes({"index.py": SLEEP_HANDLER})).decode()
                ),
                tags=[m3.Tag(key="team", value="fc3")],
            )
        )
    )
    yield name
    for q in ("prod",):
        try:
            fc3.delete_provision_config(name, m3.DeleteProvisionConfigRequest(qualifier=q))
        except Exception:
            pass
    for a in ("prod",):
        try:
            fc3.delete_alias(name, a)
        except Exception:
            pass
    try:
        fc3.delete_function(name)
    except Exception:
        pass


def test_async_tasks_of_a_native_function(fc3, native: str):
    put_async_config(fc3, native, async_task=True, max_async_retry_attempts=0)
    quick = unique("quick")
    resp = invoke(fc3, native, b"0", x_fc_invocation_type="Async", x_fc_async_task_id=quick)
    assert resp.status_code == 202
    assert resp.headers.get("x-fc-async-task-id") == quick
    done = wait_task(fc3, native, quick, {"Succeeded"})
    assert done.task_id == quick
    assert done.function_arn == f"acs:fc:{REGION}:{ACCOUNT_ID}:functions/{native}"
    assert done.return_payload == "slept 0"

    slow = unique("slow")
    invoke(fc3, native, b"30", x_fc_invocation_type="Async", x_fc_async_task_id=slow)
    wait_task(fc3, native, slow, {"Running"})
    listed = fc3.list_async_tasks(native, m3.ListAsyncTasksRequest(limit=100)).body.tasks
    assert {t.task_id for t in listed} >= {quick, slow}
    assert fc3.stop_async_task(native, slow, m3.StopAsyncTaskRequest()).status_code in (200, 204)
    assert wait_until(lambda: get_task(fc3, native, slow).status in TERMINAL, 60)
    assert get_task(fc3, native, slow).status == "Stopped"

    # The config is the function's, under its 3.0 ARN; 2.0 shows no trace of the function.
    got = fc3.get_async_invoke_config(native, m3.GetAsyncInvokeConfigRequest()).body
    assert got.async_task is True
    assert got.function_arn == f"acs:fc:{REGION}:{ACCOUNT_ID}:functions/{native}"


def test_provision_and_concurrency_configs_of_a_native_function(fc3, client, native: str):
    version = fc3.publish_function_version(
        native, m3.PublishFunctionVersionRequest(body=m3.PublishVersionInput(description="v1"))
    ).body.version_id
    fc3.create_alias(
        native,
        m3.CreateAliasRequest(body=m3.CreateAliasInput(alias_name="prod", version_id=version)),
    )
    put = fc3.put_provision_config(
        native,
        m3.PutProvisionConfigRequest(
            qualifier="prod", body=m3.PutProvisionConfigInput(default_target=1)
        ),
    ).body
    assert put.default_target == 1
    assert put.function_arn == f"acs:fc:{REGION}:{ACCOUNT_ID}:functions/{native}"
    listed = fc3.list_provision_configs(m3.ListProvisionConfigsRequest(function_name=native)).body
    assert [c.function_arn for c in listed.provision_configs] == [put.function_arn]
    assert wait_until(
        lambda: fc3.get_provision_config(native, m3.GetProvisionConfigRequest(qualifier="prod")).body.current == 1,
        60,
    )
    # 2.0's account-wide listing never shows a native function's config.
    v2 = client.list_provision_configs(m2.ListProvisionConfigsRequest(limit=100)).body.provision_configs or []
    assert not [c for c in v2 if native in (c.resource or "")]

    cc = fc3.put_concurrency_config(
        native,
        m3.PutConcurrencyConfigRequest(body=m3.PutConcurrencyInput(reserved_concurrency=3)),
    ).body
    assert cc.reserved_concurrency == 3
    assert fc3.get_concurrency_config(native).body.reserved_concurrency == 3
    resp = invoke(fc3, native, b"0", qualifier="prod")
    assert resp.status_code == 200 and body_of(resp) == b"slept 0"
    fc3.delete_concurrency_config(native)
    fc3.delete_provision_config(native, m3.DeleteProvisionConfigRequest(qualifier="prod"))


def test_creation_tags_reach_the_tag_store(fc3, native: str):
    arn = f"acs:fc:{REGION}:{ACCOUNT_ID}:functions/{native}"
    got = fc3.get_function(native, m3.GetFunctionRequest()).body
    assert [(t.key, t.value) for t in got.tags] == [("team", "fc3")]
    listed = fc3.list_tag_resources(
        m3.ListTagResourcesRequest(resource_type="function", resource_id=[arn])
    ).body.tag_resources
    assert [(t.resource_id, t.tag_key, t.tag_value) for t in listed] == [(arn, "team", "fc3")]
    tagged = fc3.list_functions(
        m3.ListFunctionsRequest(tags=[m3.Tag(key="team", value="fc3")], prefix=native)
    ).body.functions
    assert [f.function_name for f in tagged] == [native]
    untagged = fc3.list_functions(
        m3.ListFunctionsRequest(tags=[m3.Tag(key="team", value="other")], prefix=native)
    ).body.functions
    assert not untagged
