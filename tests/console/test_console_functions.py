"""Working with services and functions in the console, in a real browser, signed in as the
account's root key; every result is read back through the official SDK as well:

* a service made from the services page, a python function made from a real zip file chosen in
  the file input, invoked from the page (status, headers, body and the decoded log tail);
* a function made from a single-file handler typed into the page, and its code updated from the
  code tab;
* versions published and a weighted alias made from the service page (and FC's refusal of a
  publish with nothing new shown with its code);
* an async invoke whose task reaches Succeeded in the tasks tab;
* the instances, logs (with follow), metrics, config and triggers tabs.

Screenshots of every page and tab land in target/console-screenshots/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from alibabacloud_fc_open20210406 import models as fm

from consolekit import HANDLER, Console
from fcdkit import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    FcdServer,
    crc64_xz,
    create_function,
    make_zip_bytes,
    unique,
    wait_until,
)

pytestmark = pytest.mark.invoke


def sign_in(console: Console) -> None:
    console.sign_in(ACCESS_KEY_ID, ACCESS_KEY_SECRET)


def get_function(client, svc: str, fn: str) -> fm.GetFunctionResponseBody:
    return client.get_function(svc, fn, fm.GetFunctionRequest()).body


def sdk_invoke(client, svc: str, fn: str, payload: str, qualifier: str | None = None) -> str:
    resp = client.invoke_function(svc, fn, fm.InvokeFunctionRequest(body=payload.encode(), qualifier=qualifier))
    assert resp.status_code == 200, resp.status_code
    return resp.body.decode()


def invoke_in_page(console: Console, payload: str, qualifier: str = "", asynchronous: bool = False) -> None:
    console.tab("invoke")
    console.type("#invoke-payload", payload)
    console.type("#invoke-qualifier", qualifier)
    console.check("#invoke-async", asynchronous)
    console.click("#invoke-submit")


def test_create_service_and_python_function_from_zip_then_invoke(
    console: Console, client, new_service, tmp_path: Path
):
    sign_in(console)
    svc = unique("svc")
    new_service.names.append(svc)  # removed at teardown, with what the page made in it

    # The services page makes the service.
    console.type("#service-name", svc)
    console.type("#service-description", "made in the console")
    console.click("#create-service-submit")
    console.el(f'#services-table tr[data-service="{svc}"]')
    console.no_error()
    console.shot("services")
    assert client.get_service(svc, fm.GetServiceRequest()).body.description == "made in the console"

    # Its page, by the link in its row.
    console.click(f'#services-table tr[data-service="{svc}"] a')
    console.page("service")
    console.el("#create-function-form")
    console.shot("service")

    # A python function from a real zip file on disk, chosen in the file input.
    zip_bytes = make_zip_bytes({"index.py": HANDLER})
    zip_path = tmp_path / "code.zip"
    zip_path.write_bytes(zip_bytes)
    console.type("#function-name", "f")
    console.select("#function-runtime", "python3.10")
    console.type("#function-handler", "index.handler")
    console.type("#function-memory", "256")
    console.type("#function-timeout", "20")
    console.present("#function-zip").send_keys(str(zip_path))
    console.click("#create-function-submit")
    console.el('#functions-table tr[data-function="f"]')
    console.no_error()
    console.shot("service-with-function")

    fn = get_function(client, svc, "f")
    assert (fn.runtime, fn.handler, fn.memory_size, fn.timeout) == ("python3.10", "index.handler", 256, 20)
    # The very bytes of the file: FC's checksum is the CRC-64 of the zip.
    assert fn.code_checksum == str(crc64_xz(zip_bytes)), fn.code_checksum
    assert fn.code_size == len(zip_bytes)

    # The function's page shows the checksum and size in its config.
    console.click('#functions-table tr[data-function="f"] a')
    console.page("function")
    console.tab("config")
    console.text_of("#function-config", fn.code_checksum)
    console.text_of("#function-config", str(len(zip_bytes)))
    console.shot("function-config")

    # Test-invoke with a payload: status, headers, body and the decoded log tail.
    invoke_in_page(console, "from-browser")
    console.el("#invoke-result")
    console.text_of("#invoke-body", "hello from-browser")
    console.text_of("#invoke-status", "200")
    console.text_of("#invoke-headers", "x-fc-request-id")
    console.text_of("#invoke-log", "console-log-line from-browser")
    console.no_error()
    console.shot("function-invoke")


def test_single_file_handler_from_the_page_and_code_update_from_the_code_tab(
    console: Console, client, new_service
):
    svc = new_service(unique("svc"))
    sign_in(console)
    console.go(f"#/services/{svc}")
    console.page("service")
    console.type("#function-name", "typed")
    console.select("#function-runtime", "python3.10")
    console.type("#function-handler", "index.handler")
    source_el = console.el("#function-source")
    source_el.clear()
    source_el.send_keys("def handler(event, context):\n    return 'typed in the page'\n")
    console.click("#create-function-submit")
    console.el('#functions-table tr[data-function="typed"]')
    console.no_error()
    assert sdk_invoke(client, svc, "typed", "") == "typed in the page"
    before = get_function(client, svc, "typed").code_checksum

    # The code tab replaces the handler.
    console.open_function(svc, "typed")
    console.tab("code")
    console.shot("function-code")
    src = console.el("#update-source")
    src.clear()
    src.send_keys("def handler(event, context):\n    return 'updated in the page'\n")
    console.click("#update-code-submit")
    assert wait_until(lambda: get_function(client, svc, "typed").code_checksum != before, 20), (
        "the code tab did not change the function's code"
    )
    console.no_error()
    assert sdk_invoke(client, svc, "typed", "") == "updated in the page"


def test_publish_versions_and_a_weighted_alias(console: Console, client, deployed):
    svc, fn = deployed
    sign_in(console)
    console.go(f"#/services/{svc}")
    console.page("service")

    console.type("#version-description", "first from the console")
    console.click("#publish-version")
    console.text_of("#versions-table", "first from the console")
    # Nothing changed since: FC refuses a second publish, and the page shows FC's code.
    console.type("#version-description", "nothing new")
    console.click("#publish-version")
    code, text = console.error("InvalidArgument")
    assert "nothing new" not in console.el("#versions-table").text

    client.update_function(svc, fn, fm.UpdateFunctionRequest(description="changed"))
    console.type("#version-description", "second from the console")
    console.click("#publish-version")
    console.text_of("#versions-table", "second from the console")
    versions = client.list_service_versions(svc, fm.ListServiceVersionsRequest()).body.versions
    assert sorted((v.version_id, v.description) for v in versions) == [
        ("1", "first from the console"),
        ("2", "second from the console"),
    ]

    # An alias on version 1 sending a fifth of the calls to version 2.
    console.type("#alias-name", "prod")
    console.type("#alias-version", "1")
    console.type("#alias-additional-version", "2")
    console.type("#alias-additional-weight", "20")  # percent, as the form labels it
    console.click("#create-alias-submit")
    console.text_of("#aliases-table", "prod")
    console.shot("service-versions-aliases")
    alias = client.get_alias(svc, "prod").body
    assert alias.version_id == "1"
    assert alias.additional_version_weight == {"2": 0.2}, alias.additional_version_weight
    # The table shows the split too.
    console.text_of("#aliases-table", "2: 20%")
    console.text_of("#aliases-table", "1: 80%")
    # And the alias serves calls.
    assert sdk_invoke(client, svc, fn, "x", qualifier="prod") == "hello x"


def test_async_invoke_task_reaches_succeeded_in_the_tasks_tab(console: Console, client, deployed):
    svc, fn = deployed
    sign_in(console)
    console.open_function(svc, fn)
    invoke_in_page(console, "async-from-browser", asynchronous=True)
    console.text_of("#invoke-status", "202")
    task = console.until(
        lambda: (console.el("#invoke-task-id").get_attribute("textContent") or "").strip(),
        "no task id shown for the async invoke",
    )
    console.shot("function-invoke-async")

    # The server has it as a stateful task that succeeds.
    def sdk_status() -> str:
        return client.get_stateful_async_invocation(svc, fn, task, fm.GetStatefulAsyncInvocationRequest()).body.status

    assert wait_until(lambda: sdk_status() == "Succeeded", 30, 0.3), sdk_status()

    # The tasks tab shows it Succeeded (refreshing until it does).
    console.tab("tasks")
    row = f'#tasks-table tr[data-task="{task}"]'

    def succeeded():
        cells = console.driver.find_elements("css selector", f"{row} .task-status")
        if cells and "Succeeded" in cells[0].text:
            return True
        console.click("#tasks-refresh")
        time.sleep(0.5)
        return False

    console.until(succeeded, f"task {task} never shown Succeeded", timeout=30)
    console.no_error()
    console.shot("function-tasks")

    # The status filter keeps it under Succeeded and hides it under Failed.
    console.select("#tasks-status-filter", "Failed")
    console.click("#tasks-refresh")
    console.until(
        lambda: not console.driver.find_elements("css selector", row), "a Succeeded task listed under Failed"
    )
    console.select("#tasks-status-filter", "Succeeded")
    console.click("#tasks-refresh")
    console.el(row)

    # Its events and result, opened from its row.
    console.click(f'#tasks-table button[data-events="{task}"]')
    console.text_of("#task-events", "Enqueued")
    console.text_of("#task-events", "Succeeded")
    console.text_of("#task-events", "hello async-from-browser")
    console.shot("function-task-events")


SLEEPER = """\
import time


def handler(event, context):
    time.sleep(30)
    return 'woke up'
"""


def test_stop_a_running_task_from_the_tasks_tab(console: Console, client, new_service):
    svc = new_service(unique("svc"))
    create_function(client, svc, "sleeper", files={"index.py": SLEEPER}, timeout=60)
    sign_in(console)
    console.open_function(svc, "sleeper")
    invoke_in_page(console, "", asynchronous=True)
    task = console.until(
        lambda: (console.el("#invoke-task-id").get_attribute("textContent") or "").strip(),
        "no task id shown for the async invoke",
    )

    def sdk_status() -> str:
        return client.get_stateful_async_invocation(
            svc, "sleeper", task, fm.GetStatefulAsyncInvocationRequest()
        ).body.status

    assert wait_until(lambda: sdk_status() == "Running", 30, 0.2), sdk_status()
    console.tab("tasks")
    console.click("#tasks-refresh")
    console.text_of(f'#tasks-table tr[data-task="{task}"] .task-status', "Running")
    console.click(f'#tasks-table button[data-stop="{task}"]')
    assert wait_until(lambda: sdk_status() == "Stopped", 20, 0.2), sdk_status()

    def shown_stopped():
        cells = console.driver.find_elements("css selector", f'#tasks-table tr[data-task="{task}"] .task-status')
        if cells and cells[0].text.strip() == "Stopped":
            return True
        console.click("#tasks-refresh")
        time.sleep(0.5)
        return False

    console.until(shown_stopped, f"task {task} never shown Stopped", timeout=20)
    # Its events, opened again now that it is final, end with Stopped.
    console.click(f'#tasks-table button[data-events="{task}"]')
    console.text_of("#task-events", "Stopped")
    console.no_error()
    console.shot("function-task-stopped")
    # Once stopped it cannot be stopped again: the button is off.
    assert not console.el(f'#tasks-table button[data-stop="{task}"]').is_enabled()


def test_instances_tab_lists_the_instance_after_an_invoke(console: Console, client, deployed):
    svc, fn = deployed
    assert sdk_invoke(client, svc, fn, "warm") == "hello warm"
    instances = client.list_instances(svc, fn, fm.ListInstancesRequest()).body.instances or []
    assert instances, "the invoke left no instance to show"
    sign_in(console)
    console.open_function(svc, fn)
    console.tab("instances")
    console.text_of("#instances-table", instances[0].instance_id)
    console.shot("function-instances")


def test_logs_tab_shows_lines_and_follows_new_ones(console: Console, client, deployed):
    svc, fn = deployed
    first = unique("first")
    assert sdk_invoke(client, svc, fn, first) == f"hello {first}"
    sign_in(console)
    console.open_function(svc, fn)
    console.tab("logs")
    console.text_of("#logs-view", f"console-log-line {first}")
    console.shot("function-logs")

    # With follow on, a line written after the page asked shows up by itself.
    console.check("#logs-follow", True)
    second = unique("second")
    # The page opens its follow stream asynchronously: call again (a few seconds apart) until a
    # line written after the box was ticked shows up, without anything else clicked.
    deadline = time.monotonic() + 30
    while True:
        assert sdk_invoke(client, svc, fn, second) == f"hello {second}"
        try:
            console.text_of("#logs-view", f"console-log-line {second}", timeout=4)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    console.no_error()


def function_metrics(client, svc: str, fn: str) -> dict:
    """fcd's metrics of a function (the charts' data), through the SDK's generic call."""
    from alibabacloud_tea_openapi import models as om
    from alibabacloud_tea_util import models as um

    params = om.Params(
        action="GetFunctionMetrics",
        version="2021-04-06",
        protocol="HTTP",
        pathname=f"/2021-04-06/services/{svc}/functions/{fn}/metrics",
        method="GET",
        auth_type="AK",
        style="ROA",
        req_body_type="json",
        body_type="json",
    )
    body = client.call_api(params, om.OpenApiRequest(), um.RuntimeOptions())["body"]
    assert body["periodSeconds"] == 60 and len(body["points"]) == 60, json.dumps(body)[:500]
    return body


# The y coordinates of an SVG path's points ("M x,y L x,y …").
PATH_YS_JS = """
const ys = [];
for (const p of arguments[0].querySelectorAll('path.series')) {
  for (const m of (p.getAttribute('d') || '').matchAll(/[ML]\\s*[-\\d.]+\\s*,\\s*([-\\d.]+)/g)) ys.push(Number(m[1]));
}
return ys;
"""


def test_metrics_tab_draws_the_four_charts(console: Console, client, deployed):
    svc, fn = deployed
    for i in range(3):
        sdk_invoke(client, svc, fn, f"m{i}")
    sign_in(console)
    console.open_function(svc, fn)
    assert wait_until(
        lambda: sum(p["invocations"] for p in function_metrics(client, svc, fn)["points"]) >= 3, 15, 0.5
    ), function_metrics(client, svc, fn)

    charts = console.tab("metrics")
    for name in ("invocations", "errors", "duration", "cold-starts"):
        svg = console.el(f'#metrics-charts svg[data-chart="{name}"]')
        assert svg.size["width"] > 100 and svg.size["height"] > 40, (name, svg.size)
    # The invocations line is not flat: the three calls just made are drawn above the zeros.
    ys = console.until(
        lambda: console.driver.execute_script(
            PATH_YS_JS, console.el('#metrics-charts svg[data-chart="invocations"]')
        ),
        "the invocations chart draws no series",
    )
    assert len(set(ys)) > 1, f"the invocations line is flat: {sorted(set(ys))}"
    # The duration chart has points for those minutes (p50/p99 are null where nothing ran).
    assert console.driver.execute_script(
        PATH_YS_JS, console.el('#metrics-charts svg[data-chart="duration"]')
    ) or console.driver.find_elements("css selector", '#metrics-charts svg[data-chart="duration"] circle')
    console.no_error()
    assert charts.is_displayed()
    console.shot("function-metrics")


def test_every_tab_of_a_function(console: Console, client, deployed, fcd: FcdServer):
    """A tour of the function page: each tab opens without an error, and a screenshot of each."""
    svc, fn = deployed
    client.create_trigger(
        svc,
        fn,
        fm.CreateTriggerRequest(
            trigger_name="web",
            trigger_type="http",
            trigger_config=json.dumps({"authType": "anonymous", "methods": ["GET", "POST"]}),
        ),
    )
    client.put_function_async_invoke_config(
        svc, fn, fm.PutFunctionAsyncInvokeConfigRequest(max_async_retry_attempts=1, stateful_invocation=True)
    )
    code = get_function(client, svc, fn)
    sign_in(console)
    console.shot("services")
    console.go(f"#/services/{svc}")
    console.page("service")
    console.el(f'#functions-table tr[data-function="{fn}"]')
    console.shot("service")
    console.open_function(svc, fn)
    for tab in ("config", "code", "invoke", "tasks", "instances", "logs", "triggers"):
        console.tab(tab)
        console.no_error()
        console.shot(f"function-{tab}")
    console.tab("config")
    console.text_of("#function-config", code.code_checksum)
    console.text_of("#function-config", str(code.code_size))
    console.present("#async-config")
    console.text_of("#async-config", "1")
    console.tab("triggers")
    console.text_of("#triggers-table", "web")
    # A tab is reachable by its address too (#/services/<s>/functions/<f>/<tab>).
    console.go(console.function_route(svc, fn, "logs"))
    console.el("#logs-view")
    console.assert_clean_log()
