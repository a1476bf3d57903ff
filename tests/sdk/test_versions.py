"""Service versions, aliases and qualifiers, driven through the official SDKs.

Covers PublishServiceVersion / ListServiceVersions / DeleteServiceVersion, the alias API,
qualified reads (GetService, GetFunction, GetFunctionCode, ListFunctions) and qualified
invocations (by version id, by alias, weighted aliases), per-version instances, persistence
across a restart, and the classic ``aliyun-fc2`` client's qualifier-in-the-path form.

Every call goes through ``alibabacloud-fc-open20210406`` unless the test says it uses the
classic client. Invocations are marked ``invoke``.
"""

from __future__ import annotations

import json
import threading
from typing import Optional

import pytest
import requests

import fc2
from fc2.fc_exceptions import FcError
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_util import models as util_models

from fcdkit import (
    ApiError,
    assert_api_error,
    code_of,
    create_function,
    create_service,
    delete_service_tree,
    expect_error,
    make_zip_bytes,
    unique,
)

invoke_mark = pytest.mark.invoke

# A handler that tells which code answered (``CODE``), how many calls its process has served
# (``count``) and what the runtime told it about the qualifier.
TAGGED_HANDLER = """\
import json

CODE = '__CODE__'
COUNT = 0


def handler(event, context):
    global COUNT
    COUNT += 1
    return json.dumps({
        'code': CODE,
        'count': COUNT,
        'qualifier': context.service.qualifier,
        'versionId': context.service.version_id,
    })
"""


def tagged_zip(code: str) -> bytes:
    return make_zip_bytes({"index.py": TAGGED_HANDLER.replace("__CODE__", code)})


def tagged_function(client: Client, service: str, code: str, name: Optional[str] = None, **kwargs):
    return create_function(client, service, name, zip_bytes=tagged_zip(code), **kwargs)


def set_code(client: Client, service: str, function: str, code: str) -> m.UpdateFunctionResponseBody:
    resp = client.update_function(
        service, function, m.UpdateFunctionRequest(code=code_of(tagged_zip(code)))
    )
    assert resp.status_code == 200
    return resp.body


def touch(client: Client, service: str, function: str, description: str) -> None:
    """A change to LATEST, so the next publish has something new."""
    client.update_function(service, function, m.UpdateFunctionRequest(description=description))


def publish(
    client: Client, service: str, description: Optional[str] = None, if_match: Optional[str] = None
) -> m.PublishServiceVersionResponseBody:
    resp = client.publish_service_version_with_options(
        service,
        m.PublishServiceVersionRequest(description=description),
        m.PublishServiceVersionHeaders(if_match=if_match),
        util_models.RuntimeOptions(),
    )
    assert resp.status_code == 200, resp.status_code
    return resp.body


def list_versions(client: Client, service: str, **kwargs) -> m.ListServiceVersionsResponseBody:
    return client.list_service_versions(service, m.ListServiceVersionsRequest(**kwargs)).body


def version_ids(client: Client, service: str, **kwargs) -> list[str]:
    return [v.version_id for v in list_versions(client, service, **kwargs).versions or []]


def all_version_pages(client: Client, service: str, **kwargs) -> list[list[str]]:
    pages, token = [], None
    for _ in range(50):
        body = list_versions(client, service, next_token=token, **kwargs)
        pages.append([v.version_id for v in body.versions or []])
        token = body.next_token
        if not token:
            return pages
    raise AssertionError(f"paging did not end: {pages}")


def create_alias(
    client: Client,
    service: str,
    name: str,
    version_id: Optional[str],
    weights: Optional[dict] = None,
    description: Optional[str] = None,
) -> m.CreateAliasResponse:
    resp = client.create_alias(
        service,
        m.CreateAliasRequest(
            alias_name=name,
            version_id=version_id,
            additional_version_weight=weights,
            description=description,
        ),
    )
    assert resp.status_code == 200, resp.status_code
    return resp


def update_alias(
    client: Client, service: str, name: str, if_match: Optional[str] = None, **kwargs
) -> m.UpdateAliasResponse:
    return client.update_alias_with_options(
        service,
        name,
        m.UpdateAliasRequest(**kwargs),
        m.UpdateAliasHeaders(if_match=if_match),
        util_models.RuntimeOptions(),
    )


def alias_names(client: Client, service: str, **kwargs) -> list[str]:
    body = client.list_aliases(service, m.ListAliasesRequest(**kwargs)).body
    return [a.alias_name for a in body.aliases or []]


def invoke(
    client: Client, service: str, function: str, qualifier: Optional[str] = None, body: bytes = b"{}"
) -> m.InvokeFunctionResponse:
    return client.invoke_function(
        service, function, m.InvokeFunctionRequest(body=body, qualifier=qualifier)
    )


def run(client: Client, service: str, function: str, qualifier: Optional[str] = None) -> tuple[dict, dict]:
    """Invokes and returns (the handler's JSON result, the response headers)."""
    resp = invoke(client, service, function, qualifier)
    assert resp.status_code == 200, resp.status_code
    assert "x-fc-error-type" not in resp.headers, (resp.headers, resp.body)
    return json.loads(resp.body), resp.headers


def served_version(headers: dict) -> str:
    v = headers.get("x-fc-invocation-service-version")
    assert v, headers
    return v


def race(calls: list) -> list[tuple[str, object]]:
    """Runs the callables at the same moment on their own threads; returns ("ok", result) or
    ("error", ApiError) for each, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def worker(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            outcomes[i] = ("ok", calls[i]())
        except ApiError as e:
            outcomes[i] = ("error", e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(o is not None for o in outcomes), outcomes
    return outcomes


def describe(outcomes) -> list:
    return [
        (kind, "ok" if kind == "ok" else (v.status_code, v.code, v.data.get("ErrorMessage")))
        for kind, v in outcomes
    ]


# --------------------------------------------------------------------------------------------
# PublishServiceVersion
# --------------------------------------------------------------------------------------------


def test_publish_returns_increasing_ids_never_reused(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name

    v1 = publish(client, service, description="first")
    assert v1.version_id == "1"
    assert v1.description == "first"
    assert v1.created_time and v1.last_modified_time

    touch(client, service, fn, "change 1")
    assert publish(client, service).version_id == "2"

    # Deleting the newest version does not free its number.
    client.delete_service_version(service, "2")
    touch(client, service, fn, "change 2")
    assert publish(client, service).version_id == "3"

    client.delete_service_version(service, "1")
    client.delete_service_version(service, "3")
    assert version_ids(client, service) == []
    touch(client, service, fn, "change 3")
    v4 = publish(client, service, description="after deleting all")
    assert v4.version_id == "4"
    assert version_ids(client, service) == ["4"]

    # Versions are per service: another service starts at 1.
    other = create_service(client, unique("svc")).service_name
    try:
        assert publish(client, other).version_id == "1"
    finally:
        delete_service_tree(client, other)


def test_publish_without_changes_is_rejected(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    assert publish(client, service).version_id == "1"

    err = expect_error("InvalidArgument", 400, publish, client, service, "nothing new")
    assert "1" in err.data["ErrorMessage"], err.data

    # A change to a function, or to the service, makes the next publish possible.
    touch(client, service, fn, "changed")
    assert publish(client, service).version_id == "2"
    expect_error("InvalidArgument", 400, publish, client, service)
    client.update_service(service, m.UpdateServiceRequest(description="service changed"))
    assert publish(client, service).version_id == "3"
    # A new function is a change too.
    tagged_function(client, service, "B")
    assert publish(client, service).version_id == "4"
    assert version_ids(client, service) == ["4", "3", "2", "1"]


def test_publish_on_missing_service(client: Client):
    expect_error("ServiceNotFound", 404, publish, client, unique("nosvc"))


def test_publish_if_match(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    etag = client.get_service(service, m.GetServiceRequest()).headers.get("etag")
    assert etag, "GetService must return the service's etag"
    assert publish(client, service, if_match=etag).version_id == "1"

    client.update_service(service, m.UpdateServiceRequest(description="new"))
    expect_error("PreconditionFailed", 412, publish, client, service, None, etag)
    assert version_ids(client, service) == ["1"]

    fresh = client.get_service(service, m.GetServiceRequest()).headers.get("etag")
    assert fresh and fresh != etag
    assert publish(client, service, if_match=fresh).version_id == "2"
    touch(client, service, fn, "x")
    assert publish(client, service, if_match=fresh).version_id == "3"  # function writes keep it


# --------------------------------------------------------------------------------------------
# ListServiceVersions
# --------------------------------------------------------------------------------------------


def test_list_versions_directions_paging_and_start_key(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    for i in range(1, 6):
        touch(client, service, fn, f"rev {i}")
        body = publish(client, service, description=f"version {i}")
        assert body.version_id == str(i)

    default = list_versions(client, service)
    assert default.direction == "BACKWARD"
    assert [v.version_id for v in default.versions] == ["5", "4", "3", "2", "1"]
    assert [v.description for v in default.versions] == [f"version {i}" for i in (5, 4, 3, 2, 1)]
    assert all(v.created_time and v.last_modified_time for v in default.versions)
    assert not default.next_token

    backward = list_versions(client, service, direction="BACKWARD")
    assert backward.direction == "BACKWARD"
    assert [v.version_id for v in backward.versions] == ["5", "4", "3", "2", "1"]

    forward = list_versions(client, service, direction="FORWARD")
    assert forward.direction == "FORWARD"
    assert [v.version_id for v in forward.versions] == ["1", "2", "3", "4", "5"]

    first = list_versions(client, service, limit=2)
    assert [v.version_id for v in first.versions] == ["5", "4"]
    assert first.next_token
    assert all_version_pages(client, service, limit=2) == [["5", "4"], ["3", "2"], ["1"]]
    assert all_version_pages(client, service, limit=2, direction="FORWARD") == [
        ["1", "2"], ["3", "4"], ["5"],
    ]
    assert all_version_pages(client, service, limit=5) == [["5", "4", "3", "2", "1"]]

    assert version_ids(client, service, start_key="3") == ["3", "2", "1"]
    assert version_ids(client, service, start_key="3", direction="FORWARD") == ["3", "4", "5"]
    assert version_ids(client, service, start_key="4", limit=1) == ["4"]

    # Paging goes around deleted versions.
    client.delete_service_version(service, "4")
    assert all_version_pages(client, service, limit=2) == [["5", "3"], ["2", "1"]]
    assert all_version_pages(client, service, limit=3, direction="FORWARD") == [["1", "2", "3"], ["5"]]


def test_list_versions_errors(client: Client, service: str):
    assert version_ids(client, service) == []
    expect_error("ServiceNotFound", 404, list_versions, client, unique("nosvc"))
    expect_error("InvalidArgument", 400, list_versions, client, service, direction="SIDEWAYS")


# --------------------------------------------------------------------------------------------
# DeleteServiceVersion
# --------------------------------------------------------------------------------------------


def test_delete_version(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    publish(client, service)
    touch(client, service, fn, "x")
    publish(client, service)

    resp = client.delete_service_version(service, "1")
    assert resp.status_code == 204
    assert version_ids(client, service) == ["2"]
    expect_error("VersionNotFound", 404, client.delete_service_version, service, "1")
    expect_error("VersionNotFound", 404, client.delete_service_version, service, "99")
    expect_error("ServiceNotFound", 404, client.delete_service_version, unique("nosvc"), "1")
    # The deleted version's snapshot is gone.
    expect_error("VersionNotFound", 404, client.get_function, service, fn, m.GetFunctionRequest(qualifier="1"))


def test_delete_version_in_use_by_an_alias(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    publish(client, service)
    touch(client, service, fn, "x")
    publish(client, service)
    touch(client, service, fn, "y")
    publish(client, service)
    create_alias(client, service, "main-user", "1")
    create_alias(client, service, "canary-user", "3", weights={"2": 0.1})

    for version, alias in (("1", "main-user"), ("2", "canary-user"), ("3", "canary-user")):
        err = expect_error("InvalidArgument", 400, client.delete_service_version, service, version)
        assert alias in err.data["ErrorMessage"], err.data
    assert version_ids(client, service) == ["3", "2", "1"]

    # Moving the alias away frees its old versions.
    update_alias(client, service, "canary-user", version_id="3", additional_version_weight={})
    client.delete_service_version(service, "2")
    client.delete_alias(service, "main-user")
    client.delete_service_version(service, "1")
    expect_error("InvalidArgument", 400, client.delete_service_version, service, "3")
    assert version_ids(client, service) == ["3"]


# --------------------------------------------------------------------------------------------
# Aliases
# --------------------------------------------------------------------------------------------


def test_alias_create_get_update_list_delete(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    publish(client, service)
    touch(client, service, fn, "x")
    publish(client, service)

    created = create_alias(client, service, "prod", "1", description="production")
    body = created.body
    assert body.alias_name == "prod"
    assert body.version_id == "1"
    assert body.description == "production"
    assert not body.additional_version_weight
    assert body.created_time and body.last_modified_time
    etag = created.headers.get("etag")
    assert etag, created.headers

    got = client.get_alias(service, "prod")
    assert got.headers.get("etag") == etag
    assert got.body.to_map() == body.to_map()

    updated = update_alias(client, service, "prod", version_id="2", additional_version_weight={"1": 0.25})
    assert updated.status_code == 200
    assert updated.body.version_id == "2"
    assert updated.body.additional_version_weight == {"1": 0.25}
    assert updated.body.description == "production", "fields not sent are kept"
    assert updated.body.created_time == body.created_time
    assert updated.headers.get("etag") and updated.headers.get("etag") != etag

    again = client.get_alias(service, "prod").body
    assert again.version_id == "2"
    assert again.additional_version_weight == {"1": 0.25}

    only_desc = update_alias(client, service, "prod", description="still prod").body
    assert only_desc.version_id == "2"
    assert only_desc.additional_version_weight == {"1": 0.25}
    assert only_desc.description == "still prod"

    create_alias(client, service, "beta", "1")
    create_alias(client, service, "alpha", "2")
    assert alias_names(client, service) == ["alpha", "beta", "prod"]
    listing = client.list_aliases(service, m.ListAliasesRequest()).body
    by_name = {a.alias_name: a for a in listing.aliases}
    assert by_name["prod"].version_id == "2"
    assert by_name["prod"].additional_version_weight == {"1": 0.25}
    assert by_name["prod"].description == "still prod"

    page1 = client.list_aliases(service, m.ListAliasesRequest(limit=2)).body
    assert [a.alias_name for a in page1.aliases] == ["alpha", "beta"]
    assert page1.next_token
    page2 = client.list_aliases(service, m.ListAliasesRequest(limit=2, next_token=page1.next_token)).body
    assert [a.alias_name for a in page2.aliases] == ["prod"]
    assert not page2.next_token
    assert alias_names(client, service, prefix="b") == ["beta"]
    assert alias_names(client, service, start_key="b") == ["beta", "prod"]

    resp = client.delete_alias(service, "beta")
    assert resp.status_code == 204
    assert alias_names(client, service) == ["alpha", "prod"]
    expect_error("AliasNotFound", 404, client.get_alias, service, "beta")
    expect_error("AliasNotFound", 404, client.delete_alias, service, "beta")


def test_alias_errors(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    publish(client, service)
    touch(client, service, fn, "x")
    publish(client, service)

    expect_error("InvalidArgument", 400, create_alias, client, service, "LATEST", "1")
    expect_error("InvalidArgument", 400, create_alias, client, service, "w", "1", {"2": 1.5})
    expect_error("InvalidArgument", 400, create_alias, client, service, "w", "1", {"2": -0.1})
    expect_error("VersionNotFound", 404, create_alias, client, service, "w", "99")
    expect_error("VersionNotFound", 404, create_alias, client, service, "w", "1", {"99": 0.5})
    expect_error(
        "AdditionalVersionContainsMajorVersion", 400, create_alias, client, service, "w", "1", {"1": 0.5}
    )
    # Without any versionId there is nothing to point at.
    expect_error("InvalidArgument", 400, create_alias, client, service, "w", None)
    expect_error("ServiceNotFound", 404, create_alias, client, unique("nosvc"), "w", "1")
    assert alias_names(client, service) == [], "no failed create may leave an alias behind"

    create_alias(client, service, "prod", "1")
    expect_error("AliasAlreadyExists", 409, create_alias, client, service, "prod", "2")
    assert client.get_alias(service, "prod").body.version_id == "1"

    expect_error("AliasNotFound", 404, client.get_alias, service, "nope")
    expect_error("AliasNotFound", 404, update_alias, client, service, "nope", description="x")
    expect_error("AliasNotFound", 404, client.delete_alias, service, "nope")
    expect_error("ServiceNotFound", 404, client.get_alias, unique("nosvc"), "prod")

    # Failed updates change nothing.
    before = client.get_alias(service, "prod")
    expect_error("InvalidArgument", 400, update_alias, client, service, "prod", additional_version_weight={"2": 2})
    expect_error("VersionNotFound", 404, update_alias, client, service, "prod", version_id="99")
    expect_error("VersionNotFound", 404, update_alias, client, service, "prod", additional_version_weight={"7": 0.1})
    expect_error(
        "AdditionalVersionContainsMajorVersion", 400,
        update_alias, client, service, "prod", additional_version_weight={"1": 0.1},
    )
    after = client.get_alias(service, "prod")
    assert after.body.to_map() == before.body.to_map()
    assert after.headers.get("etag") == before.headers.get("etag")


def test_alias_if_match(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    publish(client, service)
    touch(client, service, fn, "x")
    publish(client, service)
    e1 = create_alias(client, service, "prod", "1").headers["etag"]

    e2 = update_alias(client, service, "prod", if_match=e1, description="one").headers["etag"]
    assert e2 != e1
    err = expect_error("PreconditionFailed", 412, update_alias, client, service, "prod", e1, version_id="2")
    assert err.data["ErrorMessage"], err.data
    got = client.get_alias(service, "prod")
    assert got.body.version_id == "1" and got.body.description == "one"
    assert got.headers.get("etag") == e2

    expect_error(
        "PreconditionFailed", 412,
        client.delete_alias_with_options, service, "prod",
        m.DeleteAliasHeaders(if_match=e1), util_models.RuntimeOptions(),
    )
    assert alias_names(client, service) == ["prod"]
    resp = client.delete_alias_with_options(
        service, "prod", m.DeleteAliasHeaders(if_match=e2), util_models.RuntimeOptions()
    )
    assert resp.status_code == 204
    assert alias_names(client, service) == []


def test_concurrent_alias_updates_with_one_etag(fcd, client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    publish(client, service)
    touch(client, service, fn, "x")
    publish(client, service)
    create_alias(client, service, "prod", "1")
    clients = [fcd.client(), fcd.client()]

    for round_no in range(15):
        etag = client.get_alias(service, "prod").headers["etag"]
        outcomes = race([
            lambda i=i, c=c: update_alias(
                c, service, "prod", etag,
                description=f"round {round_no} writer {i}", version_id=str(1 + i),
            )
            for i, c in enumerate(clients)
        ])
        winners = [i for i, o in enumerate(outcomes) if o[0] == "ok"]
        assert len(winners) == 1, f"round {round_no}: exactly one update must win: {describe(outcomes)}"
        loser = outcomes[1 - winners[0]][1]
        assert (loser.code, loser.status_code) in (
            ("PreconditionFailed", 412),
            ("ConcurrentUpdateError", 409),
        ), f"round {round_no}: {describe(outcomes)}"
        assert_api_error(loser, loser.code, loser.status_code)

        w = winners[0]
        final = client.get_alias(service, "prod")
        assert final.body.description == f"round {round_no} writer {w}"
        assert final.body.version_id == str(1 + w)
        assert final.headers.get("etag") == outcomes[w][1].headers.get("etag")


def test_concurrent_alias_creates_with_one_name(fcd, client: Client, service: str):
    tagged_function(client, service, "A")
    publish(client, service)
    clients = [fcd.client(), fcd.client()]
    for round_no in range(15):
        name = f"a{round_no}"
        outcomes = race([
            lambda i=i, c=c: create_alias(c, service, name, "1", description=f"writer {i}")
            for i, c in enumerate(clients)
        ])
        kinds = sorted(kind for kind, _ in outcomes)
        assert kinds == ["error", "ok"], f"round {round_no}: {describe(outcomes)}"
        err = next(v for kind, v in outcomes if kind == "error")
        assert (err.code, err.status_code) == ("AliasAlreadyExists", 409), describe(outcomes)


def test_concurrent_publishes(fcd, client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    clients = [fcd.client(), fcd.client()]
    published: list[str] = []
    for round_no in range(15):
        touch(client, service, fn, f"round {round_no}")
        outcomes = race([lambda c=c: publish(c, service) for c in clients])
        ok = [v.version_id for kind, v in outcomes if kind == "ok"]
        errors = [v for kind, v in outcomes if kind == "error"]
        # One change, so one version; the other publish finds nothing new.
        assert len(ok) == 1, f"round {round_no}: {describe(outcomes)}"
        assert [(e.code, e.status_code) for e in errors] == [("InvalidArgument", 400)], describe(outcomes)
        published.append(ok[0])
    assert published == [str(i) for i in range(1, 16)]
    assert version_ids(client, service, direction="FORWARD", limit=100) == published


# --------------------------------------------------------------------------------------------
# Qualified reads
# --------------------------------------------------------------------------------------------


def test_qualified_reads_return_the_version_snapshot(client: Client, new_service):
    service = new_service(description="svc v1")
    zip_a = tagged_zip("A")
    fn_a = create_function(client, service, "fn", zip_bytes=zip_a, description="fn v1", memory_size=256)
    publish(client, service)
    create_alias(client, service, "prod", "1")

    client.update_service(service, m.UpdateServiceRequest(description="svc latest"))
    zip_b = tagged_zip("B")
    fn_b = client.update_function(
        service, "fn",
        m.UpdateFunctionRequest(code=code_of(zip_b), description="fn latest", memory_size=512),
    ).body
    assert fn_b.code_checksum != fn_a.code_checksum
    create_function(client, service, "added", zip_bytes=zip_b)

    for q in ("1", "prod"):
        svc = client.get_service(service, m.GetServiceRequest(qualifier=q)).body
        assert svc.description == "svc v1", q
        assert svc.service_name == service
        f = client.get_function(service, "fn", m.GetFunctionRequest(qualifier=q)).body
        assert (f.description, f.code_checksum, f.memory_size) == ("fn v1", fn_a.code_checksum, 256), q
        assert f.function_id == fn_a.function_id
        code = client.get_function_code(service, "fn", m.GetFunctionCodeRequest(qualifier=q)).body
        assert code.checksum == fn_a.code_checksum
        assert requests.get(code.url, timeout=30).content == zip_a
        fns = client.list_functions(service, m.ListFunctionsRequest(qualifier=q)).body
        assert [x.function_name for x in fns.functions] == ["fn"], q
        assert fns.functions[0].description == "fn v1"
        expect_error("FunctionNotFound", 404, client.get_function, service, "added", m.GetFunctionRequest(qualifier=q))
        expect_error(
            "FunctionNotFound", 404,
            client.get_function_code, service, "added", m.GetFunctionCodeRequest(qualifier=q),
        )

    for q in (None, "LATEST"):
        svc = client.get_service(service, m.GetServiceRequest(qualifier=q)).body
        assert svc.description == "svc latest"
        f = client.get_function(service, "fn", m.GetFunctionRequest(qualifier=q)).body
        assert (f.description, f.code_checksum, f.memory_size) == ("fn latest", fn_b.code_checksum, 512)
        code = client.get_function_code(service, "fn", m.GetFunctionCodeRequest(qualifier=q)).body
        assert code.checksum == fn_b.code_checksum
        assert requests.get(code.url, timeout=30).content == zip_b
        fns = client.list_functions(service, m.ListFunctionsRequest(qualifier=q)).body
        assert [x.function_name for x in fns.functions] == ["added", "fn"]

    for q, code in (("99", "VersionNotFound"), ("nope", "AliasNotFound")):
        expect_error(code, 404, client.get_service, service, m.GetServiceRequest(qualifier=q))
        expect_error(code, 404, client.get_function, service, "fn", m.GetFunctionRequest(qualifier=q))
        expect_error(code, 404, client.get_function_code, service, "fn", m.GetFunctionCodeRequest(qualifier=q))
        expect_error(code, 404, client.list_functions, service, m.ListFunctionsRequest(qualifier=q))


def test_qualified_read_through_weighted_alias_shows_main_version(client: Client, service: str):
    fn = tagged_function(client, service, "A", description="one").function_name
    publish(client, service)
    touch(client, service, fn, "two")
    publish(client, service)
    create_alias(client, service, "canary", "1", weights={"2": 0.5})
    for _ in range(5):
        f = client.get_function(service, fn, m.GetFunctionRequest(qualifier="canary")).body
        assert f.description == "one"


def test_writes_refuse_a_qualified_service_segment(client: Client, service: str):
    """Only reads and invocations take a qualifier (``svc.q`` in 2016-08-15 paths). A write
    addressed to ``svc.prod`` must fail and change nothing, not act on LATEST of ``svc``."""
    fn = tagged_function(client, service, "A", description="kept").function_name
    publish(client, service)
    create_alias(client, service, "prod", "1")

    def refused(call, *args):
        with pytest.raises(ApiError) as excinfo:
            call(*args)
        err = excinfo.value
        assert (err.code, err.status_code) in (("InvalidArgument", 400), ("ServiceNotFound", 404)), (
            err.code, err.status_code, err.data,
        )

    q = service + ".prod"
    refused(client.update_function, q, fn, m.UpdateFunctionRequest(description="via a qualified path"))
    refused(client.update_service, q, m.UpdateServiceRequest(description="via a qualified path"))
    refused(client.publish_service_version, q, m.PublishServiceVersionRequest())
    refused(client.delete_function, q, fn)
    refused(client.delete_service, service + ".whatever")

    assert client.get_function(service, fn, m.GetFunctionRequest()).body.description == "kept"
    assert client.get_service(service, m.GetServiceRequest()).body.description != "via a qualified path"
    assert version_ids(client, service) == ["1"]


# --------------------------------------------------------------------------------------------
# Qualified invocations
# --------------------------------------------------------------------------------------------


@invoke_mark
def test_invoke_by_alias_version_and_latest(client: Client, service: str):
    created = tagged_function(client, service, "old")
    fn = created.function_name
    assert publish(client, service).version_id == "1"
    create_alias(client, service, "prod", "1")
    new = set_code(client, service, fn, "new")

    out, h = run(client, service, fn, "prod")
    assert out["code"] == "old"
    assert served_version(h) == "1"
    assert (out["qualifier"], out["versionId"]) == ("prod", "1")
    assert h.get("x-fc-code-checksum") == created.code_checksum

    out, h = run(client, service, fn, "1")
    assert out["code"] == "old"
    assert served_version(h) == "1"
    assert (out["qualifier"], out["versionId"]) == ("1", "1")
    assert h.get("x-fc-code-checksum") == created.code_checksum

    for q in (None, "LATEST"):
        out, h = run(client, service, fn, q)
        assert out["code"] == "new", q
        assert served_version(h) == "LATEST"
        assert out["qualifier"] == "LATEST", q
        assert out["versionId"] in ("", "LATEST"), out
        assert h.get("x-fc-code-checksum") == new.code_checksum

    # Pointing the alias at a new version takes effect for the next call.
    assert publish(client, service).version_id == "2"
    update_alias(client, service, "prod", version_id="2")
    out, h = run(client, service, fn, "prod")
    assert (out["code"], served_version(h), out["versionId"], out["qualifier"]) == ("new", "2", "2", "prod")
    out, h = run(client, service, fn, "1")
    assert (out["code"], served_version(h)) == ("old", "1")


@invoke_mark
def test_invoke_qualifier_errors(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    publish(client, service)
    create_alias(client, service, "prod", "1")
    late = tagged_function(client, service, "late").function_name  # not in version 1

    expect_error("VersionNotFound", 404, invoke, client, service, fn, "99")
    expect_error("AliasNotFound", 404, invoke, client, service, fn, "nope")
    expect_error("FunctionNotFound", 404, invoke, client, service, late, "1")
    expect_error("FunctionNotFound", 404, invoke, client, service, late, "prod")
    expect_error("FunctionNotFound", 404, invoke, client, service, unique("nofn"), "1")
    expect_error("ServiceNotFound", 404, invoke, client, unique("nosvc"), fn, "1")
    expect_error("ServiceNotFound", 404, invoke, client, unique("nosvc"), fn, "prod")
    # The late function works on LATEST.
    out, h = run(client, service, late)
    assert out["code"] == "late" and served_version(h) == "LATEST"

    # A deleted alias or version stops resolving at once, even after it was used.
    run(client, service, fn, "prod")
    client.delete_alias(service, "prod")
    expect_error("AliasNotFound", 404, invoke, client, service, fn, "prod")
    run(client, service, fn, "1")
    client.delete_service_version(service, "1")
    expect_error("VersionNotFound", 404, invoke, client, service, fn, "1")


@invoke_mark
def test_instances_are_per_resolved_version(client: Client, service: str):
    fn = tagged_function(client, service, "A").function_name
    publish(client, service)
    create_alias(client, service, "prod", "1")

    latest = [run(client, service, fn) for _ in range(3)]
    assert [o["count"] for o, _ in latest] == [1, 2, 3]
    latest_instance = latest[0][1].get("x-fc-instance-id")
    assert latest_instance

    # The warm LATEST instance runs the same code, but never serves a version call.
    v1, h1 = run(client, service, fn, "1")
    assert (v1["code"], v1["count"]) == ("A", 1)
    assert h1.get("x-fc-instance-id") != latest_instance
    version_instance = h1.get("x-fc-instance-id")

    # An alias that resolves to version 1 uses version 1's instance.
    out, h = run(client, service, fn, "prod")
    assert out["count"] == 2 and h.get("x-fc-instance-id") == version_instance

    # LATEST's instance is still warm and was not touched by the version calls.
    out, h = run(client, service, fn)
    assert out["count"] == 4 and h.get("x-fc-instance-id") == latest_instance

    # Updating LATEST replaces LATEST's instance, not the version's.
    set_code(client, service, fn, "B")
    out, h = run(client, service, fn)
    assert (out["code"], out["count"]) == ("B", 1)
    assert h.get("x-fc-instance-id") not in (latest_instance, version_instance)

    out, h = run(client, service, fn, "1")
    assert (out["code"], out["count"]) == ("A", 3)
    assert h.get("x-fc-instance-id") == version_instance
    out, h = run(client, service, fn, "prod")
    assert (out["code"], out["count"]) == ("A", 4)
    assert h.get("x-fc-instance-id") == version_instance

    # A new version gets its own instance as well.
    publish(client, service)
    out, h = run(client, service, fn, "2")
    assert (out["code"], out["count"], served_version(h)) == ("B", 1, "2")
    assert h.get("x-fc-instance-id") not in (latest_instance, version_instance)


@invoke_mark
def test_weighted_alias_share_is_near_exact(client: Client, service: str):
    fn = tagged_function(client, service, "one").function_name
    publish(client, service)
    set_code(client, service, fn, "two")
    publish(client, service)
    set_code(client, service, fn, "latest")
    create_alias(client, service, "prod", "1", weights={"2": 0.2})

    n = 200
    served = {"1": 0, "2": 0}
    for _ in range(n):
        out, h = run(client, service, fn, "prod")
        v = served_version(h)
        assert v in served, h
        served[v] += 1
        assert out["code"] == {"1": "one", "2": "two"}[v], (v, out)
        assert (out["qualifier"], out["versionId"]) == ("prod", v)
    assert served["1"] + served["2"] == n
    assert 34 <= served["2"] <= 46, f"version 2 served {served['2']} of {n} calls at weight 0.2"

    # A weight of 0 sends nothing to the additional version; weight 1 sends everything.
    update_alias(client, service, "prod", additional_version_weight={"2": 0.0})
    assert {served_version(run(client, service, fn, "prod")[1]) for _ in range(20)} == {"1"}
    update_alias(client, service, "prod", additional_version_weight={"2": 1.0})
    assert {served_version(run(client, service, fn, "prod")[1]) for _ in range(20)} == {"2"}
    # Removing the weights routes everything to the main version again.
    update_alias(client, service, "prod", additional_version_weight={})
    assert {served_version(run(client, service, fn, "prod")[1]) for _ in range(20)} == {"1"}


# --------------------------------------------------------------------------------------------
# Restart, deleting services
# --------------------------------------------------------------------------------------------


@invoke_mark
def test_versions_and_aliases_survive_restart(fcd_factory, tmp_path):
    data_dir = tmp_path / "versions-data"
    first = fcd_factory(data_dir=data_dir)
    c1 = first.client()
    service = unique("persist")
    create_service(c1, service)
    fn = tagged_function(c1, service, "A").function_name
    assert publish(c1, service, description="v-one").version_id == "1"
    set_code(c1, service, fn, "B")
    assert publish(c1, service, description="v-two").version_id == "2"
    set_code(c1, service, fn, "C")
    assert publish(c1, service).version_id == "3"
    c1.delete_service_version(service, "3")
    set_code(c1, service, fn, "D")
    create_alias(c1, service, "prod", "1", description="production")
    create_alias(c1, service, "canary", "1", weights={"2": 0.5})
    versions_before = [v.to_map() for v in list_versions(c1, service).versions]
    aliases_before = [a.to_map() for a in c1.list_aliases(service, m.ListAliasesRequest()).body.aliases]
    etag_before = c1.get_alias(service, "prod").headers.get("etag")
    first.stop()
    assert not first.running

    second = fcd_factory(data_dir=data_dir)
    c2 = second.client()
    assert [v.to_map() for v in list_versions(c2, service).versions] == versions_before
    assert [a.to_map() for a in c2.list_aliases(service, m.ListAliasesRequest()).body.aliases] == aliases_before
    assert c2.get_alias(service, "prod").headers.get("etag") == etag_before

    out, h = run(c2, service, fn, "prod")
    assert (out["code"], served_version(h)) == ("A", "1")
    out, h = run(c2, service, fn, "1")
    assert (out["code"], served_version(h)) == ("A", "1")
    out, h = run(c2, service, fn, "2")
    assert (out["code"], served_version(h)) == ("B", "2")
    out, h = run(c2, service, fn)
    assert (out["code"], served_version(h)) == ("D", "LATEST")
    seen = {run(c2, service, fn, "canary")[0]["code"] for _ in range(10)}
    assert seen == {"A", "B"}, seen
    expect_error("VersionNotFound", 404, invoke, c2, service, fn, "3")

    # The version counter survived too: 3 stays used.
    assert publish(c2, service).version_id == "4"
    delete_service_tree(c2, service)
    expect_error("ServiceNotFound", 404, c2.get_service, service, m.GetServiceRequest())


def test_delete_service_with_versions_or_aliases_is_refused(client: Client):
    service = create_service(client, unique("svc")).service_name
    try:
        fn = tagged_function(client, service, "A").function_name
        publish(client, service)
        create_alias(client, service, "prod", "1")
        client.delete_function(service, fn)

        expect_error("ServiceNotEmpty", 412, client.delete_service, service)
        client.delete_alias(service, "prod")
        expect_error("ServiceNotEmpty", 412, client.delete_service, service)
        assert client.get_service(service, m.GetServiceRequest()).body.service_name == service
        # Versions outlive the function they captured.
        assert version_ids(client, service) == ["1"]

        # An alias keeps its version (and so the service) alive.
        create_alias(client, service, "only-alias", "1")
        expect_error("InvalidArgument", 400, client.delete_service_version, service, "1")
        client.delete_alias(service, "only-alias")
        client.delete_service_version(service, "1")
        assert client.delete_service(service).status_code == 204
        expect_error("ServiceNotFound", 404, client.get_service, service, m.GetServiceRequest())
    finally:
        delete_service_tree(client, service)


def test_delete_service_tree_removes_aliases_and_versions(client: Client):
    service = create_service(client, unique("svc")).service_name
    fn = tagged_function(client, service, "A").function_name
    for i in range(3):
        touch(client, service, fn, f"rev {i}")
        publish(client, service)
    create_alias(client, service, "a1", "1", weights={"2": 0.5})
    create_alias(client, service, "a2", "3")
    delete_service_tree(client, service)
    expect_error("ServiceNotFound", 404, client.get_service, service, m.GetServiceRequest())


# --------------------------------------------------------------------------------------------
# The classic aliyun-fc2 client (2016-08-15 paths, FC signature)
# --------------------------------------------------------------------------------------------


def classic_error(fn, *args, **kwargs) -> FcError:
    with pytest.raises(FcError) as excinfo:
        fn(*args, **kwargs)
    return excinfo.value


@invoke_mark
def test_classic_client_versions_aliases_and_qualifiers(classic_client: fc2.Client, client: Client, tmp_path):
    service = unique("classic")
    classic_client.create_service(service, description="classic")
    try:
        zip_path = tmp_path / "old.zip"
        zip_path.write_bytes(tagged_zip("old"))
        created = classic_client.create_function(
            service, "fn", "python3.10", "index.handler", codeZipFile=str(zip_path)
        ).data
        v1 = classic_client.publish_version(service, description="first").data
        assert v1["versionId"] == "1" and v1["description"] == "first"

        alias = classic_client.create_alias(service, "prod", v1["versionId"], description="production")
        assert alias.data["aliasName"] == "prod" and alias.data["versionId"] == "1"
        assert alias.data["description"] == "production"
        etag = alias.headers.get("etag")
        assert etag

        new_zip = tmp_path / "new.zip"
        new_zip.write_bytes(tagged_zip("new"))
        updated = classic_client.update_function(service, "fn", codeZipFile=str(new_zip)).data
        assert updated["codeChecksum"] != created["codeChecksum"]

        resp = classic_client.invoke_function(service, "fn", payload=b"{}", qualifier="prod")
        out = json.loads(resp.data)
        assert (out["code"], out["qualifier"], out["versionId"]) == ("old", "prod", "1")
        assert resp.headers.get("x-fc-invocation-service-version") == "1"
        resp = classic_client.invoke_function(service, "fn", payload=b"{}", qualifier="1")
        assert json.loads(resp.data)["code"] == "old"
        resp = classic_client.invoke_function(service, "fn", payload=b"{}")
        assert json.loads(resp.data)["code"] == "new"
        assert resp.headers.get("x-fc-invocation-service-version") == "LATEST"

        got = classic_client.get_function(service, "fn", qualifier="prod").data
        assert got["codeChecksum"] == created["codeChecksum"]
        assert classic_client.get_function(service, "fn").data["codeChecksum"] == updated["codeChecksum"]
        assert classic_client.get_service(service, qualifier="1").data["description"] == "classic"
        code = classic_client.get_function_code(service, "fn", qualifier="1").data
        assert code["checksum"] == created["codeChecksum"]
        fns = classic_client.list_functions(service, qualifier="prod").data["functions"]
        assert [f["codeChecksum"] for f in fns] == [created["codeChecksum"]]

        v2 = classic_client.publish_version(service).data
        assert v2["versionId"] == "2"
        listing = classic_client.list_versions(service).data
        assert [v["versionId"] for v in listing["versions"]] == ["2", "1"]
        assert listing["direction"] == "BACKWARD"
        forward = classic_client.list_versions(service, limit=1, direction="FORWARD").data
        assert [v["versionId"] for v in forward["versions"]] == ["1"] and forward["nextToken"]

        got_alias = classic_client.get_alias(service, "prod")
        assert got_alias.headers.get("etag") == etag
        moved = classic_client.update_alias(
            service, "prod", "2", additionalVersionWeight={"1": 0.5}, headers={"if-match": etag}
        ).data
        assert moved["versionId"] == "2" and moved["additionalVersionWeight"] == {"1": 0.5}
        err = classic_error(
            classic_client.update_alias, service, "prod", "1", headers={"if-match": etag}
        )
        assert (err.status_code, err.err_code) == (412, "PreconditionFailed")
        aliases = classic_client.list_aliases(service).data["aliases"]
        assert [a["aliasName"] for a in aliases] == ["prod"]

        # Errors, read through FcError's ErrorCode.
        err = classic_error(classic_client.invoke_function, service, "fn", payload=b"{}", qualifier="nope")
        assert (err.status_code, err.err_code) == (404, "AliasNotFound")
        assert err.request_id and err.request_id != "unknown"
        err = classic_error(classic_client.invoke_function, service, "fn", payload=b"{}", qualifier="99")
        assert (err.status_code, err.err_code) == (404, "VersionNotFound")
        err = classic_error(classic_client.get_alias, service, "nope")
        assert (err.status_code, err.err_code) == (404, "AliasNotFound")
        err = classic_error(classic_client.get_function, service, "fn", qualifier="nope")
        assert (err.status_code, err.err_code) == (404, "AliasNotFound")
        err = classic_error(classic_client.publish_version, unique("nosvc"))
        assert (err.status_code, err.err_code) == (404, "ServiceNotFound")
        err = classic_error(classic_client.invoke_function, unique("nosvc"), "fn", payload=b"{}", qualifier="prod")
        assert (err.status_code, err.err_code) == (404, "ServiceNotFound")
        err = classic_error(classic_client.create_alias, service, "prod", "1")
        assert (err.status_code, err.err_code) == (409, "AliasAlreadyExists")
        err = classic_error(classic_client.publish_version, service)
        assert (err.status_code, err.err_code) == (400, "InvalidArgument")
        err = classic_error(classic_client.delete_version, service, "2")
        assert (err.status_code, err.err_code) == (400, "InvalidArgument")
        err = classic_error(classic_client.delete_service, service)
        assert (err.status_code, err.err_code) == (412, "ServiceNotEmpty")

        classic_client.delete_alias(service, "prod")
        classic_client.delete_version(service, "2")
        classic_client.delete_version(service, "1")
        err = classic_error(classic_client.delete_version, service, "1")
        assert (err.status_code, err.err_code) == (404, "VersionNotFound")
        classic_client.delete_function(service, "fn")
        classic_client.delete_service(service)
    finally:
        delete_service_tree(client, service)
