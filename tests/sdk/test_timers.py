"""Timer triggers through the official SDK (``alibabacloud-fc-open20210406``) and the real binary.

A timer trigger fires through the asynchronous path, so what it delivered is read back from the
function's stateful async records: the function has ``statefulInvocation: true`` in its async
config and returns its event, so ``ListStatefulAsyncInvocations(includePayload=true)`` shows
each firing's event as ``invocationPayload`` and what the function received as
``returnPayload``. Instances are jailed (private network and /tmp), so fcd's own records are
the one place a firing can be observed.

Covered: FC's event shape (``triggerTime``, ``triggerName``, ``payload``) from a seconds-field
cron (``*/2 * * * * *``), bad expressions refused at CreateTrigger, ``enable: false`` stopping
it, a server restart between ticks and one right after a tick neither losing nor doubling a
tick (ticks that fall while the server is down are not replayed, by design), and ``@every 1m``
firing on its minute (marked ``slow``: it waits up to about a minute).

Timing never decides a result beyond generous bounds: waits are bounded polling loops, and the
restart checks compare the ticks seen with the recorded down time rather than assume how long
a restart takes.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Callable, Optional

import pytest

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client

from fcdkit import create_function, create_service, expect_error, unique

pytestmark = pytest.mark.invoke

POLL_S = 60.0  # the most any single wait below may take

# Returns the event it was given, so the record shows what the function received.
ECHO_HANDLER = """\
def handler(event, context):
    return event
"""


def setup_function_with_records(client: Client, service: str) -> str:
    fn = create_function(client, service, files={"index.py": ECHO_HANDLER}).function_name
    client.put_function_async_invoke_config(
        service, fn, m.PutFunctionAsyncInvokeConfigRequest(stateful_invocation=True)
    )
    return fn


def create_timer(
    client: Client, service: str, fn: str, cron: str, payload: str, enable: bool = True, name: Optional[str] = None
) -> str:
    name = name or unique("timer")
    config = json.dumps({"cronExpression": cron, "payload": payload, "enable": enable})
    resp = client.create_trigger(
        service,
        fn,
        m.CreateTriggerRequest(trigger_name=name, trigger_type="timer", trigger_config=config),
    )
    assert resp.status_code == 200, resp.status_code
    assert resp.body.trigger_type == "timer"
    return name


def update_timer(client: Client, service: str, fn: str, name: str, **config) -> None:
    resp = client.update_trigger(
        service, fn, name, m.UpdateTriggerRequest(trigger_config=json.dumps(config))
    )
    assert resp.status_code == 200, resp.status_code


def records(client: Client, service: str, fn: str) -> list[m.StatefulAsyncInvocation]:
    out: list[m.StatefulAsyncInvocation] = []
    token = None
    for _ in range(1000):
        body = client.list_stateful_async_invocations(
            service, fn, m.ListStatefulAsyncInvocationsRequest(include_payload=True, limit=100, next_token=token)
        ).body
        out.extend(body.invocations or [])
        token = body.next_token
        if not token:
            return out
    raise AssertionError("ListStatefulAsyncInvocations never ended")


def wait_records(
    client: Client,
    service: str,
    fn: str,
    predicate: Callable[[list[m.StatefulAsyncInvocation]], bool],
    timeout_s: float = POLL_S,
) -> list[m.StatefulAsyncInvocation]:
    deadline = time.monotonic() + timeout_s
    while True:
        rs = records(client, service, fn)
        if predicate(rs):
            return rs
        if time.monotonic() >= deadline:
            pytest.fail(f"timer records of {service}/{fn} never got there in {timeout_s} s: {[r.to_map() for r in rs]}")
        time.sleep(0.05)


def tick_of(r: m.StatefulAsyncInvocation) -> int:
    """The Unix second a record's event says it fired for."""
    event = json.loads(r.invocation_payload)
    return int(datetime.strptime(event["triggerTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def ticks(rs: list[m.StatefulAsyncInvocation]) -> list[int]:
    return sorted(tick_of(r) for r in rs)


def assert_no_doubles(rs: list[m.StatefulAsyncInvocation]) -> None:
    seen = ticks(rs)
    assert len(seen) == len(set(seen)), f"a tick fired twice: {seen}"


def delete_triggers(client: Client, service: str, fn: str, *names: str) -> None:
    for name in names:
        client.delete_trigger(service, fn, name)


def test_seconds_cron_delivers_fcs_event_and_disabling_stops_it(client, service):
    fn = setup_function_with_records(client, service)
    name = create_timer(client, service, fn, "*/2 * * * * *", "hello timer")
    try:
        rs = wait_records(
            client, service, fn, lambda rs: sum(r.status == "Succeeded" for r in rs) >= 2, timeout_s=30
        )
        for r in rs:
            event = json.loads(r.invocation_payload)
            assert set(event) == {"triggerTime", "triggerName", "payload"}, event
            assert event["triggerName"] == name
            assert event["payload"] == "hello timer"
            assert tick_of(r) % 2 == 0, event
            # A timer event is an async invocation like any other, with its own request id.
            assert r.request_id and r.invocation_id == r.request_id, r.to_map()
            if r.status == "Succeeded":
                assert json.loads(r.return_payload) == event, r.to_map()
        assert_no_doubles(rs)

        # Disabled: at most a tick already on its way still lands, then nothing.
        update_timer(client, service, fn, name, cronExpression="*/2 * * * * *", payload="hello timer", enable=False)
        time.sleep(3)
        settled = len(records(client, service, fn))
        time.sleep(5)
        assert len(records(client, service, fn)) == settled, "a disabled timer fired"

        # Enabled again with another payload: fires again, with that payload.
        update_timer(client, service, fn, name, cronExpression="*/2 * * * * *", payload="again", enable=True)
        rs = wait_records(
            client, service, fn,
            lambda rs: any(json.loads(r.invocation_payload)["payload"] == "again" for r in rs), timeout_s=30,
        )
        assert_no_doubles(rs)
    finally:
        delete_triggers(client, service, fn, name)
    # Deleted: nothing more.
    time.sleep(3)
    settled = len(records(client, service, fn))
    time.sleep(4)
    assert len(records(client, service, fn)) == settled, "a deleted timer fired"


def test_bad_expressions_are_refused(client, service):
    fn = create_function(client, service, files={"index.py": ECHO_HANDLER}).function_name
    for cron in ("* * * * *", "@every 10s", "0 0 0 30 2 *", "CRON_TZ=Nowhere/Atall 0 0 4 * * *", "0 0 0 L * *"):
        config = json.dumps({"cronExpression": cron, "payload": "", "enable": True})
        err = expect_error(
            "InvalidArgument", 400,
            client.create_trigger, service, fn,
            m.CreateTriggerRequest(trigger_name=unique("bad"), trigger_type="timer", trigger_config=config),
        )
        assert "cronExpression" in str(err), err
    # FC's time-zone form is accepted.
    name = create_timer(client, service, fn, "CRON_TZ=Asia/Shanghai 0 0 4 1 * *", "tz")
    delete_triggers(client, service, fn, name)


def test_a_restart_neither_loses_nor_doubles_a_tick(fcd_factory, tmp_path):
    data_dir = tmp_path / "timer-data"
    server = fcd_factory(data_dir=data_dir)
    c = server.client()
    service = create_service(c, unique("timers")).service_name
    fn = setup_function_with_records(c, service)
    create_timer(c, service, fn, "*/2 * * * * *", "restart")
    wait_records(c, service, fn, lambda rs: len(rs) >= 2, timeout_s=30)

    downtimes: list[tuple[float, float]] = []

    def restart() -> Client:
        down = time.time()
        server.stop()
        stopped = time.time()
        server.start()
        downtimes.append((down, time.time()))
        print(f"restart: stop {stopped - down:.2f} s, start {time.time() - stopped:.2f} s")
        return server.client()

    # 1. Between ticks: stop just after an odd second, so a quick restart spans no tick.
    now = time.time()
    time.sleep((1.1 - now % 2) % 2)
    c = restart()
    before = len(ticks(records(c, service, fn)))
    wait_records(c, service, fn, lambda rs: len(rs) >= before + 2, timeout_s=30)

    # 2. Right after a tick: as soon as a new tick is recorded, restart; when the server comes
    #    back within that same second, the tick it restarted in must not fire again.
    last = max(ticks(records(c, service, fn)))
    rs = wait_records(c, service, fn, lambda rs: max(ticks(rs)) > last, timeout_s=30)
    fired = max(ticks(rs))
    c = restart()
    same_second = downtimes[-1][1] < fired + 1
    print(f"restart after tick {fired}: back after {downtimes[-1][1] - downtimes[-1][0]:.2f} s "
          f"({'within' if same_second else 'after'} the tick's second)")
    before = len(ticks(records(c, service, fn)))
    rs = wait_records(c, service, fn, lambda rs: len(rs) >= before + 2, timeout_s=30)

    seen = ticks(rs)
    assert_no_doubles(rs)
    # Every even second from the first to the last tick seen fired, except those that fell
    # while the server was down (from the stop request until it was ready again).
    def was_down(t: int) -> bool:
        return any(start - 1 <= t <= end + 1 for start, end in downtimes)

    missing = [t for t in range(seen[0], seen[-1] + 1, 2) if t not in seen]
    assert all(was_down(t) for t in missing), f"lost ticks {missing} (downtimes {downtimes}, seen {seen})"
    print(f"ticks seen {len(seen)}, not fired while down: {missing}, downtimes: "
          f"{[round(e - s, 2) for s, e in downtimes]} s")
    server.stop()


@pytest.mark.slow
def test_every_minute_fires_on_the_minute(client, service):
    """Waits for the first firing of ``@every 1m``: up to about a minute of wall time."""
    fn = setup_function_with_records(client, service)
    started = time.time()
    name = create_timer(client, service, fn, "@every 1m", "each minute")
    try:
        rs = wait_records(client, service, fn, lambda rs: len(rs) >= 1, timeout_s=90)
        first = rs[0]
        event = json.loads(first.invocation_payload)
        assert event["payload"] == "each minute" and event["triggerName"] == name, event
        tick = tick_of(first)
        assert tick % 60 == 0, event
        assert started < tick <= started + 62, (started, event)
        print(f"@every 1m first fired {tick - started:.1f} s after the trigger was created")
    finally:
        delete_triggers(client, service, fn, name)
