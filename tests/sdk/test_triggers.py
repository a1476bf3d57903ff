"""The trigger API (Create/Get/Update/Delete/ListTriggers) through both official SDKs.

The 2021-04-06 SDK (``alibabacloud-fc-open20210406``) carries ``triggerConfig`` as a JSON string;
the classic ``aliyun-fc2`` (2016-08-15 paths) sends and reads an object. Covers FC's validation
and error codes, the trigger's ``qualifier`` (which must exist), one ``http`` trigger per
function and qualifier, ``urlInternet``/``urlIntranet`` of HTTP triggers, etags and
``If-Match``, paging, ``FunctionNotEmpty`` when deleting a function that has triggers, and a
RAM user refused a trigger write. No user code runs here (the HTTP path has its own tests).
"""

from __future__ import annotations

import json
from typing import Optional

import pytest

import fc2
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_util import models as util_models
from fc2.fc_exceptions import FcError

from fcdkit import (
    ACCOUNT_ID,
    REGION,
    FcdServer,
    create_function,
    delete_service_tree,
    expect_error,
    unique,
)
from ramkit import RamFixture, allow, expect_fc_error, fc_client, policy_document

HTTP_CONFIG = {"authType": "anonymous", "methods": ["GET", "post"]}
TIMER_CONFIG = {"cronExpression": "@every 5m", "payload": "hello", "enable": True}


@pytest.fixture
def function(client: Client, service: str) -> tuple[str, str]:
    """(service, function): a fresh function, its triggers removed at teardown with it."""
    f = create_function(client, service).function_name
    return service, f


def create_trigger(
    client: Client,
    service: str,
    function: str,
    name: str,
    trigger_type: str,
    config,
    qualifier: Optional[str] = None,
    **kwargs,
):
    resp = client.create_trigger(
        service,
        function,
        m.CreateTriggerRequest(
            trigger_name=name,
            trigger_type=trigger_type,
            trigger_config=config if isinstance(config, str) else json.dumps(config),
            qualifier=qualifier,
            **kwargs,
        ),
    )
    assert resp.status_code == 200
    return resp


def proxy_url(fcd: FcdServer, service: str, function: str, qualifier: Optional[str] = None) -> str:
    segment = f"{service}.{qualifier}" if qualifier else service
    return f"http://{fcd.addr}/2016-08-15/proxy/{segment}/{function}/"


def test_http_trigger_crud(client: Client, fcd: FcdServer, function):
    service, fn = function
    resp = create_trigger(client, service, fn, "web", "http", HTTP_CONFIG, description="site")
    t = resp.body
    assert (t.trigger_name, t.trigger_type, t.qualifier, t.description) == ("web", "http", "LATEST", "site")
    assert t.trigger_id and t.created_time and t.last_modified_time
    # A JSON string on this API version, normalised: methods upper-cased.
    assert isinstance(t.trigger_config, str)
    assert json.loads(t.trigger_config) == {"authType": "anonymous", "methods": ["GET", "POST"]}
    assert t.url_internet == proxy_url(fcd, service, fn)
    assert t.url_intranet == t.url_internet
    etag = resp.headers.get("etag")
    assert etag

    got = client.get_trigger(service, fn, "web")
    assert got.body.to_map() == t.to_map()
    assert got.headers.get("etag") == etag

    listed = client.list_triggers(service, fn, m.ListTriggersRequest()).body
    assert [x.trigger_name for x in listed.triggers] == ["web"]
    assert listed.triggers[0].url_internet == t.url_internet
    assert not listed.next_token

    # Update: a stale If-Match loses; the right one wins and changes the etag.
    new_config = json.dumps({"authType": "function", "methods": ["PUT"]})
    stale = m.UpdateTriggerHeaders(if_match="not-the-etag")
    expect_error(
        "PreconditionFailed",
        412,
        client.update_trigger_with_options,
        service,
        fn,
        "web",
        m.UpdateTriggerRequest(trigger_config=new_config),
        stale,
        util_models.RuntimeOptions(),
    )
    upd = client.update_trigger_with_options(
        service,
        fn,
        "web",
        m.UpdateTriggerRequest(trigger_config=new_config, description="api"),
        m.UpdateTriggerHeaders(if_match=etag),
        util_models.RuntimeOptions(),
    )
    assert json.loads(upd.body.trigger_config) == {"authType": "function", "methods": ["PUT"]}
    assert upd.body.description == "api"
    assert upd.body.created_time == t.created_time
    new_etag = upd.headers.get("etag")
    assert new_etag and new_etag != etag
    # Fields not sent keep their values.
    upd2 = client.update_trigger(service, fn, "web", m.UpdateTriggerRequest(description="again")).body
    assert json.loads(upd2.trigger_config)["methods"] == ["PUT"]
    new_etag = client.get_trigger(service, fn, "web").headers.get("etag")

    expect_error(
        "PreconditionFailed",
        412,
        client.delete_trigger_with_options,
        service,
        fn,
        "web",
        m.DeleteTriggerHeaders(if_match=etag),
        util_models.RuntimeOptions(),
    )
    resp = client.delete_trigger_with_options(
        service, fn, "web", m.DeleteTriggerHeaders(if_match=new_etag), util_models.RuntimeOptions()
    )
    assert resp.status_code == 204
    expect_error("TriggerNotFound", 404, client.get_trigger, service, fn, "web")
    expect_error("TriggerNotFound", 404, client.delete_trigger, service, fn, "web")
    expect_error(
        "TriggerNotFound", 404, client.update_trigger, service, fn, "web", m.UpdateTriggerRequest(description="x")
    )


def test_timer_trigger_defaults_and_update(client: Client, function):
    service, fn = function
    t = create_trigger(client, service, fn, "tick", "timer", {"cronExpression": "0 */5 * * * *"}).body
    # A timer created without `enable` fires; timers have no URL.
    assert json.loads(t.trigger_config) == {"cronExpression": "0 */5 * * * *", "payload": "", "enable": True}
    assert not t.url_internet
    off = json.dumps({"cronExpression": "@every 1m", "payload": "p", "enable": False})
    u = client.update_trigger(service, fn, "tick", m.UpdateTriggerRequest(trigger_config=off)).body
    assert json.loads(u.trigger_config) == {"cronExpression": "@every 1m", "payload": "p", "enable": False}


def test_trigger_errors(client: Client, function):
    service, fn = function
    create_trigger(client, service, fn, "web", "http", HTTP_CONFIG)
    expect_error("TriggerAlreadyExists", 409, create_trigger, client, service, fn, "web", "timer", TIMER_CONFIG)
    # FC's rule: one http trigger per function and qualifier.
    err = expect_error("InvalidArgument", 400, create_trigger, client, service, fn, "web2", "http", HTTP_CONFIG)
    assert "at most one http trigger" in err.data["ErrorMessage"]

    bad = [
        ("oss", {"events": ["oss:ObjectCreated:*"]}),  # a type fcd has no event source for
        ("nope", HTTP_CONFIG),
        ("http", "not json"),
        ("http", {"methods": ["GET"]}),  # authType missing
        ("http", {"authType": "open", "methods": ["GET"]}),
        ("http", {"authType": "anonymous", "methods": ["FETCH"]}),
        ("http", {"authType": "anonymous", "methods": []}),
        ("timer", {"payload": "x"}),  # cronExpression missing
        ("timer", {"cronExpression": "@every 1m", "enable": "yes"}),
    ]
    for trigger_type, config in bad:
        expect_error("InvalidArgument", 400, create_trigger, client, service, fn, "bad", trigger_type, config)
    expect_error("InvalidArgument", 400, create_trigger, client, service, fn, "bad name!", "timer", TIMER_CONFIG)
    expect_error(
        "InvalidArgument",
        400,
        client.update_trigger,
        service,
        fn,
        "web",
        m.UpdateTriggerRequest(trigger_config=json.dumps({"authType": "anonymous"})),
    )

    expect_error("FunctionNotFound", 404, create_trigger, client, service, "missing", "t", "timer", TIMER_CONFIG)
    expect_error("ServiceNotFound", 404, create_trigger, client, unique("gone"), fn, "t", "timer", TIMER_CONFIG)
    expect_error("FunctionNotFound", 404, client.list_triggers, service, "missing", m.ListTriggersRequest())
    expect_error("FunctionNotFound", 404, client.get_trigger, service, "missing", "web")
    # Nothing was stored by the refused requests.
    names = [t.trigger_name for t in client.list_triggers(service, fn, m.ListTriggersRequest()).body.triggers]
    assert names == ["web"]


def test_qualifier_must_exist_and_shapes_the_url(client: Client, fcd: FcdServer, function):
    service, fn = function
    expect_error("AliasNotFound", 404, create_trigger, client, service, fn, "p", "http", HTTP_CONFIG, qualifier="prod")
    expect_error("VersionNotFound", 404, create_trigger, client, service, fn, "p", "http", HTTP_CONFIG, qualifier="1")
    client.publish_service_version(service, m.PublishServiceVersionRequest())
    client.create_alias(service, m.CreateAliasRequest(alias_name="prod", version_id="1"))

    prod = create_trigger(client, service, fn, "p", "http", HTTP_CONFIG, qualifier="prod").body
    assert prod.qualifier == "prod"
    assert prod.url_internet == proxy_url(fcd, service, fn, "prod")
    v1 = create_trigger(client, service, fn, "v1", "http", HTTP_CONFIG, qualifier="1").body
    assert v1.url_internet == proxy_url(fcd, service, fn, "1")
    # LATEST has no http trigger yet, so one more is fine there.
    latest = create_trigger(client, service, fn, "l", "http", HTTP_CONFIG, qualifier="LATEST").body
    assert latest.url_internet == proxy_url(fcd, service, fn)

    # Moving a trigger onto a qualifier that has an http trigger is refused; elsewhere is fine.
    expect_error("InvalidArgument", 400, client.update_trigger, service, fn, "l", m.UpdateTriggerRequest(qualifier="prod"))
    expect_error("AliasNotFound", 404, client.update_trigger, service, fn, "l", m.UpdateTriggerRequest(qualifier="staging"))
    client.delete_trigger(service, fn, "p")
    moved = client.update_trigger(service, fn, "l", m.UpdateTriggerRequest(qualifier="prod")).body
    assert moved.qualifier == "prod" and moved.url_internet == proxy_url(fcd, service, fn, "prod")


def test_paging(client: Client, function):
    service, fn = function
    names = ["a1", "a2", "b1", "b2", "b3"]
    for n in names:
        create_trigger(client, service, fn, n, "timer", TIMER_CONFIG)
    seen: list[str] = []
    token = None
    for _ in range(10):
        page = client.list_triggers(service, fn, m.ListTriggersRequest(limit=2, next_token=token)).body
        seen += [t.trigger_name for t in page.triggers]
        token = page.next_token
        if not token:
            break
    assert seen == names
    page = client.list_triggers(service, fn, m.ListTriggersRequest(prefix="b", start_key="b2")).body
    assert [t.trigger_name for t in page.triggers] == ["b2", "b3"]
    expect_error("InvalidArgument", 400, client.list_triggers, service, fn, m.ListTriggersRequest(limit=0))


def test_function_with_triggers_cannot_be_deleted(client: Client, function):
    service, fn = function
    create_trigger(client, service, fn, "tick", "timer", TIMER_CONFIG)
    expect_error("FunctionNotEmpty", 412, client.delete_function, service, fn)
    assert client.get_function(service, fn, m.GetFunctionRequest()).body.function_name == fn
    client.delete_trigger(service, fn, "tick")
    client.delete_function(service, fn)
    expect_error("FunctionNotFound", 404, client.get_function, service, fn, m.GetFunctionRequest())


def classic_error(code: str, status: int, fn, *args, **kwargs) -> FcError:
    with pytest.raises(FcError) as excinfo:
        fn(*args, **kwargs)
    err = excinfo.value
    assert err.err_code == code and err.status_code == status, (err.err_code, err.status_code, err.message)
    return err


def test_classic_client_reads_and_writes_objects(classic_client: fc2.Client, client: Client, fcd: FcdServer, function):
    service, fn = function
    created = classic_client.create_trigger(service, fn, "web", "http", HTTP_CONFIG, "", "")
    t = created.data
    # The classic SDK sends an object and reads one back.
    assert t["triggerConfig"] == {"authType": "anonymous", "methods": ["GET", "POST"]}
    assert t["qualifier"] == "LATEST"
    assert t["urlInternet"] == proxy_url(fcd, service, fn)
    etag = created.headers.get("etag")
    assert etag

    timer = classic_client.create_trigger(service, fn, "tick", "timer", TIMER_CONFIG, None, None).data
    assert timer["triggerConfig"] == TIMER_CONFIG

    got = classic_client.get_trigger(service, fn, "web")
    assert got.data == t and got.headers.get("etag") == etag
    listed = classic_client.list_triggers(service, fn, limit=1).data
    assert [x["triggerName"] for x in listed["triggers"]] == ["tick"]
    assert listed["nextToken"] == "web"
    assert isinstance(listed["triggers"][0]["triggerConfig"], dict)

    classic_error(
        "PreconditionFailed", 412, classic_client.update_trigger, service, fn, "web",
        triggerConfig={"authType": "function", "methods": ["GET"]}, headers={"if-match": "stale"},
    )
    upd = classic_client.update_trigger(
        service, fn, "web", triggerConfig={"authType": "function", "methods": ["GET"]}, headers={"if-match": etag}
    )
    assert upd.data["triggerConfig"] == {"authType": "function", "methods": ["GET"]}
    # The same trigger read through the 2021-04-06 API: a string there.
    assert json.loads(client.get_trigger(service, fn, "web").body.trigger_config)["authType"] == "function"

    classic_error("TriggerAlreadyExists", 409, classic_client.create_trigger, service, fn, "web", "timer", TIMER_CONFIG, None, None)
    classic_error("InvalidArgument", 400, classic_client.create_trigger, service, fn, "x", "timer", {"enable": True}, None, None)
    classic_error("FunctionNotEmpty", 412, classic_client.delete_function, service, fn)
    classic_client.delete_trigger(service, fn, "web")
    classic_client.delete_trigger(service, fn, "tick")
    classic_error("TriggerNotFound", 404, classic_client.get_trigger, service, fn, "web")


def test_ram_user_needs_the_trigger_action(fcd: FcdServer, client: Client, function):
    service, fn = function
    create_trigger(client, service, fn, "web", "http", HTTP_CONFIG)
    ram = RamFixture(fcd.addr)
    try:
        triggers = f"acs:fc:{REGION}:{ACCOUNT_ID}:services/{service}/functions/{fn}/triggers/*"
        user = ram.user(policy_document(allow(["fc:GetTrigger", "fc:ListTriggers"], triggers)))
        as_user = fc_client(fcd.addr, user.keys)
        assert as_user.get_trigger(service, fn, "web").body.trigger_name == "web"
        assert [t.trigger_name for t in as_user.list_triggers(service, fn, m.ListTriggersRequest()).body.triggers] == ["web"]
        expect_fc_error("AccessDenied", 403, create_trigger, as_user, service, fn, "t2", "timer", TIMER_CONFIG)
        expect_fc_error("AccessDenied", 403, as_user.delete_trigger, service, fn, "web")
        # Refused before anything happened.
        assert client.get_trigger(service, fn, "web").body.trigger_name == "web"
    finally:
        ram.cleanup()
