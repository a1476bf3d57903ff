"""Services and functions API, driven through the official SDKs.

Every call here goes through ``alibabacloud-fc-open20210406`` (ACS3-HMAC-SHA256 signing) unless
the test says it uses the classic ``aliyun-fc2`` client (FC signature, 2016-08-15 paths).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import pytest
import requests

import fc2
from fc2.fc_exceptions import FcError
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client

from fcdkit import (
    SIMPLE_HANDLER,
    b64,
    code_of,
    crc64_xz,
    create_function,
    create_service,
    delete_service_tree,
    echo_bootstrap,
    expect_error,
    make_classic_client,
    make_client,
    make_zip_bytes,
    unique,
)

DECIMAL = re.compile(r"^[0-9]+$")


# --------------------------------------------------------------------------------------------
# A canary service + function that every error test checks is still intact afterwards.
# --------------------------------------------------------------------------------------------


@dataclass
class Canary:
    service: str
    function: str
    service_description: str
    zip_bytes: bytes
    function_body: m.GetFunctionResponseBody


@pytest.fixture(scope="module")
def canary(client: Client):
    service = unique("canary")
    create_service(client, service, description="canary service")
    zip_bytes = make_zip_bytes({"index.py": SIMPLE_HANDLER})
    create_function(
        client,
        service,
        "canary-fn",
        zip_bytes=zip_bytes,
        description="canary function",
        environment_variables={"CANARY": "1"},
    )
    body = client.get_function(service, "canary-fn", m.GetFunctionRequest()).body
    yield Canary(service, "canary-fn", "canary service", zip_bytes, body)
    delete_service_tree(client, service)


def assert_still_serving(client: Client, canary: Canary) -> None:
    """The server answers normal calls and the canary data is unchanged."""
    listing = client.list_services(m.ListServicesRequest(prefix=canary.service)).body
    assert [s.service_name for s in listing.services] == [canary.service]
    svc = client.get_service(canary.service, m.GetServiceRequest()).body
    assert svc.service_name == canary.service
    assert svc.description == canary.service_description
    fn = client.get_function(canary.service, canary.function, m.GetFunctionRequest()).body
    before = canary.function_body
    assert fn.function_id == before.function_id
    assert fn.code_checksum == before.code_checksum
    assert fn.code_size == before.code_size
    assert fn.handler == before.handler
    assert fn.runtime == before.runtime
    assert fn.memory_size == before.memory_size
    assert fn.timeout == before.timeout
    assert fn.environment_variables == before.environment_variables
    assert fn.description == before.description


def list_all_services(client: Client, **kwargs) -> list[list[str]]:
    """Follows nextToken; returns the service names page by page."""
    pages: list[list[str]] = []
    token = None
    for _ in range(1000):
        body = client.list_services(m.ListServicesRequest(next_token=token, **kwargs)).body
        pages.append([s.service_name for s in (body.services or [])])
        token = body.next_token
        if not token:
            return pages
    raise AssertionError("ListServices never stopped returning nextToken")


def list_all_functions(client: Client, service: str, **kwargs) -> list[list[str]]:
    pages: list[list[str]] = []
    token = None
    for _ in range(1000):
        body = client.list_functions(service, m.ListFunctionsRequest(next_token=token, **kwargs)).body
        pages.append([f.function_name for f in (body.functions or [])])
        token = body.next_token
        if not token:
            return pages
    raise AssertionError("ListFunctions never stopped returning nextToken")


# --------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------


def test_create_get_update_delete_service(client: Client, new_service):
    name = unique("svc")
    created = client.create_service(
        m.CreateServiceRequest(service_name=name, description="first description")
    )
    assert created.status_code == 200
    body = created.body
    assert body.service_name == name
    assert body.description == "first description"
    assert body.service_id
    assert body.created_time
    assert body.last_modified_time
    new_service.names.append(name)  # cleanup if a later assertion fails

    got = client.get_service(name, m.GetServiceRequest()).body
    assert got.service_name == name
    assert got.description == "first description"
    assert got.service_id == body.service_id
    assert got.created_time == body.created_time

    updated = client.update_service(
        name, m.UpdateServiceRequest(description="second description")
    ).body
    assert updated.service_name == name
    assert updated.description == "second description"
    assert updated.service_id == body.service_id
    assert updated.created_time == body.created_time
    assert updated.last_modified_time

    got = client.get_service(name, m.GetServiceRequest()).body
    assert got.description == "second description"

    deleted = client.delete_service(name)
    assert 200 <= deleted.status_code < 300
    expect_error("ServiceNotFound", 404, client.get_service, name, m.GetServiceRequest())
    names = [n for page in list_all_services(client, prefix=name) for n in page]
    assert name not in names


def test_list_services_pages_with_limit_and_prefix(client: Client, new_service):
    prefix = unique("lsp")
    names = [new_service(f"{prefix}-{i}") for i in (3, 0, 4, 1, 2)]  # created out of order
    expected = sorted(names)

    pages = list_all_services(client, prefix=prefix, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1], pages
    assert [n for p in pages for n in p] == expected

    # A prefix that matches nothing.
    assert list_all_services(client, prefix=prefix + "-nope") == [[]]


def test_list_services_start_key(client: Client, new_service):
    prefix = unique("lsk")
    names = sorted(new_service(f"{prefix}-{i}") for i in range(5))

    body = client.list_services(m.ListServicesRequest(prefix=prefix, start_key=names[2])).body
    assert [s.service_name for s in body.services] == names[2:]
    assert not body.next_token

    pages = list_all_services(client, prefix=prefix, start_key=names[1], limit=2)
    assert [n for p in pages for n in p] == names[1:]


def test_list_all_services_without_prefix_has_no_duplicates(client: Client, new_service):
    prefix = unique("lsa")
    names = {new_service(f"{prefix}-{i}") for i in range(3)}
    pages = list_all_services(client, limit=2)
    flat = [n for p in pages for n in p]
    assert all(len(p) <= 2 for p in pages)
    assert len(flat) == len(set(flat)), "a service was listed twice across pages"
    assert names <= set(flat)
    assert flat == sorted(flat)


def test_list_services_entries_have_fields(client: Client, new_service):
    name = new_service(description="listed")
    body = client.list_services(m.ListServicesRequest(prefix=name)).body
    (svc,) = body.services
    assert svc.service_name == name
    assert svc.description == "listed"
    assert svc.service_id
    assert svc.created_time and svc.last_modified_time


# --------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------

INIT_HANDLER = """\
def initialize(context):
    pass

def handler(event, context):
    return 'ok'
"""


def test_create_function_response_fields(client: Client, service: str):
    zip_bytes = make_zip_bytes({"index.py": INIT_HANDLER})
    name = unique("fn")
    resp = client.create_function(
        service,
        m.CreateFunctionRequest(
            function_name=name,
            runtime="python3.10",
            handler="index.handler",
            code=code_of(zip_bytes),
            description="a function",
            environment_variables={"GREETING": "hello", "EMPTY": ""},
            initializer="index.initialize",
            initialization_timeout=10,
        ),
    )
    assert resp.status_code == 200
    fn = resp.body
    assert fn.function_name == name
    assert fn.runtime == "python3.10"
    assert fn.handler == "index.handler"
    assert fn.description == "a function"
    assert fn.timeout == 3, "default timeout is 3 s"
    assert fn.memory_size == 128, "default memorySize is 128 MB"
    assert isinstance(fn.code_checksum, str) and DECIMAL.match(fn.code_checksum), fn.code_checksum
    assert fn.code_size == len(zip_bytes)
    assert fn.function_id
    assert fn.created_time
    assert fn.last_modified_time
    assert fn.environment_variables == {"GREETING": "hello", "EMPTY": ""}
    assert fn.initializer == "index.initialize"
    assert fn.initialization_timeout == 10

    got = client.get_function(service, name, m.GetFunctionRequest()).body
    for attr in (
        "function_name",
        "function_id",
        "runtime",
        "handler",
        "description",
        "timeout",
        "memory_size",
        "code_checksum",
        "code_size",
        "created_time",
        "environment_variables",
        "initializer",
        "initialization_timeout",
    ):
        assert getattr(got, attr) == getattr(fn, attr), attr


def test_create_function_explicit_timeout_and_memory(client: Client, service: str):
    fn = create_function(client, service, timeout=60, memory_size=512)
    assert fn.timeout == 60
    assert fn.memory_size == 512
    got = client.get_function(service, fn.function_name, m.GetFunctionRequest()).body
    assert got.timeout == 60 and got.memory_size == 512


def test_code_checksum_is_deterministic(client: Client, service: str):
    zip_a = make_zip_bytes({"index.py": SIMPLE_HANDLER})
    zip_b = make_zip_bytes({"index.py": SIMPLE_HANDLER + "\n# different\n"})
    a1 = create_function(client, service, zip_bytes=zip_a)
    a2 = create_function(client, service, zip_bytes=zip_a)
    b = create_function(client, service, zip_bytes=zip_b)
    assert a1.code_checksum == a2.code_checksum
    assert a1.code_checksum != b.code_checksum


def test_code_checksum_is_crc64_xz_of_the_zip(client: Client, service: str):
    """FC's codeChecksum is the CRC-64 (ECMA-182 reflected, a.k.a. CRC-64/XZ, the one OSS uses)
    of the code package, printed as an unsigned decimal. Deploy tools compare it with a local
    CRC-64 of the zip to skip uploads (fc-api.md 7 and 11.4)."""
    zip_bytes = make_zip_bytes({"index.py": SIMPLE_HANDLER})
    fn = create_function(client, service, zip_bytes=zip_bytes)
    assert fn.code_checksum == str(crc64_xz(zip_bytes))


def test_custom_runtime_function_fields(client: Client, service: str):
    zip_bytes = make_zip_bytes({"bootstrap": echo_bootstrap("A")}, executable=("bootstrap",))
    fn = create_function(client, service, zip_bytes=zip_bytes, runtime="custom", handler="index.handler")
    assert fn.runtime == "custom"
    assert fn.ca_port == 9000, "caPort defaults to 9000"

    fn2 = create_function(
        client,
        service,
        zip_bytes=zip_bytes,
        runtime="custom",
        handler="index.handler",
        ca_port=8080,
        custom_runtime_config=m.CustomRuntimeConfig(
            command=["python3", "bootstrap"], args=["--verbose", "x y"]
        ),
    )
    assert fn2.ca_port == 8080
    assert fn2.custom_runtime_config is not None
    assert fn2.custom_runtime_config.command == ["python3", "bootstrap"]
    assert fn2.custom_runtime_config.args == ["--verbose", "x y"]

    got = client.get_function(service, fn2.function_name, m.GetFunctionRequest()).body
    assert got.ca_port == 8080
    assert got.custom_runtime_config.command == ["python3", "bootstrap"]
    assert got.custom_runtime_config.args == ["--verbose", "x y"]


def test_get_function_code_url_serves_the_zip(client: Client, service: str):
    zip_bytes = make_zip_bytes(
        {"index.py": SIMPLE_HANDLER, "lib/data.bin": bytes(range(256)) * 10}
    )
    fn = create_function(client, service, zip_bytes=zip_bytes)
    code = client.get_function_code(service, fn.function_name, m.GetFunctionCodeRequest()).body
    assert code.url
    assert code.checksum == fn.code_checksum
    downloaded = requests.get(code.url, timeout=30)
    assert downloaded.status_code == 200
    assert downloaded.content == zip_bytes


def test_update_function_configuration(client: Client, service: str):
    fn = create_function(
        client,
        service,
        description="before",
        environment_variables={"A": "1"},
        timeout=10,
    )
    resp = client.update_function(
        service,
        fn.function_name,
        m.UpdateFunctionRequest(
            description="after",
            memory_size=256,
            environment_variables={"A": "2", "B": "3"},
            instance_concurrency=5,  # the SDK sends this one as "InstanceConcurrency"
        ),
    )
    assert resp.status_code == 200
    up = resp.body
    assert up.function_name == fn.function_name
    assert up.function_id == fn.function_id
    assert up.description == "after"
    assert up.memory_size == 256
    assert up.environment_variables == {"A": "2", "B": "3"}
    assert up.instance_concurrency == 5
    # Unspecified fields are kept.
    assert up.timeout == 10
    assert up.runtime == fn.runtime
    assert up.handler == fn.handler
    assert up.code_checksum == fn.code_checksum
    assert up.created_time == fn.created_time
    assert up.last_modified_time

    got = client.get_function(service, fn.function_name, m.GetFunctionRequest()).body
    assert got.description == "after"
    assert got.memory_size == 256
    assert got.environment_variables == {"A": "2", "B": "3"}
    assert got.instance_concurrency == 5
    assert got.timeout == 10


def test_update_function_code_changes_checksum(client: Client, service: str):
    old_zip = make_zip_bytes({"index.py": SIMPLE_HANDLER})
    fn = create_function(client, service, zip_bytes=old_zip)
    new_zip = make_zip_bytes({"index.py": "def handler(event, context):\n    return 'v2'\n"})
    up = client.update_function(
        service, fn.function_name, m.UpdateFunctionRequest(code=code_of(new_zip))
    ).body
    assert DECIMAL.match(up.code_checksum)
    assert up.code_checksum != fn.code_checksum
    assert up.code_size == len(new_zip)

    got = client.get_function(service, fn.function_name, m.GetFunctionRequest()).body
    assert got.code_checksum == up.code_checksum
    code = client.get_function_code(service, fn.function_name, m.GetFunctionCodeRequest()).body
    assert code.checksum == up.code_checksum
    assert requests.get(code.url, timeout=30).content == new_zip


def test_list_functions_paging(client: Client, service: str):
    names = [f"f-{i}" for i in (2, 4, 0, 3, 1)]
    for name in names:
        create_function(client, service, name)
    create_function(client, service, "other")

    pages = list_all_functions(client, service, prefix="f-", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1], pages
    assert [n for p in pages for n in p] == sorted(names)

    everything = [n for p in list_all_functions(client, service) for n in p]
    assert everything == sorted(names + ["other"])

    body = client.list_functions(service, m.ListFunctionsRequest(start_key="f-3")).body
    assert [f.function_name for f in body.functions] == ["f-3", "f-4", "other"]


def test_list_functions_entries_have_fields(client: Client, service: str):
    fn = create_function(client, service, description="listed", environment_variables={"K": "v"})
    body = client.list_functions(service, m.ListFunctionsRequest()).body
    (entry,) = body.functions
    assert entry.function_name == fn.function_name
    assert entry.function_id == fn.function_id
    assert entry.runtime == "python3.10"
    assert entry.handler == "index.handler"
    assert entry.description == "listed"
    assert entry.code_checksum == fn.code_checksum
    assert entry.memory_size == 128
    assert entry.timeout == 3
    assert entry.environment_variables == {"K": "v"}


def test_delete_function(client: Client, service: str):
    fn = create_function(client, service)
    keep = create_function(client, service)
    resp = client.delete_function(service, fn.function_name)
    assert 200 <= resp.status_code < 300
    expect_error(
        "FunctionNotFound", 404, client.get_function, service, fn.function_name, m.GetFunctionRequest()
    )
    names = [n for p in list_all_functions(client, service) for n in p]
    assert names == [keep.function_name]
    # The name is free again.
    again = create_function(client, service, fn.function_name)
    assert again.function_name == fn.function_name


def test_delete_service_after_its_functions(client: Client, new_service):
    name = new_service()
    fn = create_function(client, name)
    expect_error("ServiceNotEmpty", 412, client.delete_service, name)
    client.delete_function(name, fn.function_name)
    client.delete_service(name)
    expect_error("ServiceNotFound", 404, client.get_service, name, m.GetServiceRequest())


# --------------------------------------------------------------------------------------------
# Error cases: typed SDK exception with the right code and status, then the server still works.
# --------------------------------------------------------------------------------------------


@dataclass
class ErrorCase:
    id: str
    code: str
    status: int
    call: Callable[[Client, Canary], object]


def _create_fn(canary: Canary, service: str | None = None, name: str | None = None, **overrides):
    """A CreateFunction call on the canary service with one field overridden."""
    fields = dict(
        function_name=unique("bad") if name is None else name,
        runtime="python3.10",
        handler="index.handler",
        code=code_of(canary.zip_bytes),
    )
    fields.update(overrides)

    def call(client: Client, _canary: Canary):
        return client.create_function(service or _canary.service, m.CreateFunctionRequest(**fields))

    return call


def _update_fn(**fields):
    def call(client: Client, canary: Canary):
        return client.update_function(canary.service, canary.function, m.UpdateFunctionRequest(**fields))

    return call


def _zip_with(name: str) -> m.Code:
    return code_of(make_zip_bytes({"index.py": SIMPLE_HANDLER, name: "print('pwned')\n"}))


BIG_ENV = {"BIG": "x" * 5000}
SPLIT_BIG_ENV = {f"K{i}": "v" * 100 for i in range(50)}  # ~5 KB in total, each small

ERROR_CASES = [
    # Not found
    ErrorCase("get-unknown-service", "ServiceNotFound", 404,
              lambda c, k: c.get_service(unique("nosvc"), m.GetServiceRequest())),
    ErrorCase("update-unknown-service", "ServiceNotFound", 404,
              lambda c, k: c.update_service(unique("nosvc"), m.UpdateServiceRequest(description="x"))),
    ErrorCase("delete-unknown-service", "ServiceNotFound", 404,
              lambda c, k: c.delete_service(unique("nosvc"))),
    ErrorCase("list-functions-unknown-service", "ServiceNotFound", 404,
              lambda c, k: c.list_functions(unique("nosvc"), m.ListFunctionsRequest())),
    ErrorCase("create-function-unknown-service", "ServiceNotFound", 404,
              lambda c, k: _create_fn(k, service=unique("nosvc"))(c, k)),
    ErrorCase("get-function-unknown-service", "ServiceNotFound", 404,
              lambda c, k: c.get_function(unique("nosvc"), "f", m.GetFunctionRequest())),
    ErrorCase("get-unknown-function", "FunctionNotFound", 404,
              lambda c, k: c.get_function(k.service, unique("nofn"), m.GetFunctionRequest())),
    ErrorCase("update-unknown-function", "FunctionNotFound", 404,
              lambda c, k: c.update_function(k.service, unique("nofn"), m.UpdateFunctionRequest(description="x"))),
    ErrorCase("delete-unknown-function", "FunctionNotFound", 404,
              lambda c, k: c.delete_function(k.service, unique("nofn"))),
    ErrorCase("get-code-unknown-function", "FunctionNotFound", 404,
              lambda c, k: c.get_function_code(k.service, unique("nofn"), m.GetFunctionCodeRequest())),
    # Conflicts
    ErrorCase("duplicate-service", "ServiceAlreadyExists", 409,
              lambda c, k: c.create_service(m.CreateServiceRequest(service_name=k.service, description="dup"))),
    ErrorCase("duplicate-function", "FunctionAlreadyExists", 409,
              lambda c, k: _create_fn(k, name=k.function, description="dup")(c, k)),
    ErrorCase("delete-non-empty-service", "ServiceNotEmpty", 412,
              lambda c, k: c.delete_service(k.service)),
    # Invalid service names
    *[
        ErrorCase(f"service-name-{label}", "InvalidArgument", 400,
                  (lambda bad: lambda c, k: c.create_service(m.CreateServiceRequest(service_name=bad)))(bad))
        for label, bad in [
            ("empty", ""),
            ("leading-digit", "1abc"),
            ("leading-dash", "-abc"),
            ("dot", "a.b"),
            ("space", "a b"),
            ("non-ascii", "s\u00e4rvice"),
            ("too-long", "s" * 129),
        ]
    ],
    # Invalid function names
    *[
        ErrorCase(f"function-name-{label}", "InvalidArgument", 400,
                  (lambda bad: lambda c, k: _create_fn(k, name=bad)(c, k))(bad))
        for label, bad in [
            ("empty", ""),
            ("leading-digit", "9fn"),
            ("dot", "fn.x"),
            ("slash", "a/b"),
            ("too-long", "f" * 65),
        ]
    ],
    # memorySize: multiple of 64, 128..32768
    *[
        ErrorCase(f"create-memory-{mem}", "InvalidArgument", 400,
                  (lambda mem: lambda c, k: _create_fn(k, memory_size=mem)(c, k))(mem))
        for mem in (64, 100, 129, 200, 32768 + 64, -128)
    ],
    ErrorCase("update-memory-not-multiple-of-64", "InvalidArgument", 400, _update_fn(memory_size=300)),
    ErrorCase("update-memory-too-large", "InvalidArgument", 400, _update_fn(memory_size=65536)),
    # timeout: 1..86400
    *[
        ErrorCase(f"create-timeout-{t}", "InvalidArgument", 400,
                  (lambda t: lambda c, k: _create_fn(k, timeout=t)(c, k))(t))
        for t in (0, -1, 86401)
    ],
    ErrorCase("update-timeout-too-large", "InvalidArgument", 400, _update_fn(timeout=86401)),
    # runtime
    *[
        ErrorCase(f"runtime-{label}", "InvalidArgument", 400,
                  (lambda rt: lambda c, k: _create_fn(k, runtime=rt)(c, k))(rt))
        for label, rt in [("unknown", "cobol85"), ("empty", ""), ("near-miss", "python3.99")]
    ],
    ErrorCase("update-runtime-unknown", "InvalidArgument", 400, _update_fn(runtime="cobol85")),
    # environment variables over 4 KB
    ErrorCase("create-env-one-big-value", "InvalidArgument", 400,
              lambda c, k: _create_fn(k, environment_variables=BIG_ENV)(c, k)),
    ErrorCase("create-env-many-values", "InvalidArgument", 400,
              lambda c, k: _create_fn(k, environment_variables=SPLIT_BIG_ENV)(c, k)),
    ErrorCase("update-env-too-big", "InvalidArgument", 400, _update_fn(environment_variables=BIG_ENV)),
    # Code packages
    ErrorCase("zip-not-base64", "InvalidArgument", 400,
              lambda c, k: _create_fn(k, code=m.Code(zip_file="this is *not* base64!"))(c, k)),
    ErrorCase("zip-not-a-zip", "InvalidArgument", 400,
              lambda c, k: _create_fn(k, code=m.Code(zip_file=b64(b"PK\x03\x04 but not really a zip" * 10)))(c, k)),
    ErrorCase("zip-truncated", "InvalidArgument", 400,
              lambda c, k: _create_fn(k, code=m.Code(zip_file=b64(k.zip_bytes[: len(k.zip_bytes) // 2])))(c, k)),
    ErrorCase("zip-parent-dir-entry", "InvalidArgument", 400,
              lambda c, k: _create_fn(k, code=_zip_with("../evil.py"))(c, k)),
    ErrorCase("zip-nested-parent-dir-entry", "InvalidArgument", 400,
              lambda c, k: _create_fn(k, code=_zip_with("lib/../../evil.py"))(c, k)),
    ErrorCase("zip-absolute-entry", "InvalidArgument", 400,
              lambda c, k: _create_fn(k, code=_zip_with("/tmp/evil.py"))(c, k)),
    ErrorCase("update-zip-unsafe", "InvalidArgument", 400, _update_fn(code=_zip_with("../evil.py"))),
    ErrorCase("update-zip-malformed", "InvalidArgument", 400,
              _update_fn(code=m.Code(zip_file=b64(b"definitely not a zip")))),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.id)
def test_error_case(client: Client, canary: Canary, case: ErrorCase):
    expect_error(case.code, case.status, case.call, client, canary)
    assert_still_serving(client, canary)


def test_rejected_creates_leave_nothing_behind(client: Client, service: str):
    bad_name = unique("bad")
    expect_error(
        "InvalidArgument", 400, client.create_function, service,
        m.CreateFunctionRequest(function_name=bad_name, runtime="python3.10", handler="index.handler",
                                code=_zip_with("../evil.py")),
    )
    expect_error("FunctionNotFound", 404, client.get_function, service, bad_name, m.GetFunctionRequest())
    assert list_all_functions(client, service) == [[]]


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


def test_wrong_secret_is_signature_not_match(fcd, client: Client, canary: Canary):
    bad = make_client(fcd.addr, access_key_secret="not-the-secret")
    expect_error("SignatureNotMatch", 403, bad.list_services, m.ListServicesRequest())
    expect_error("SignatureNotMatch", 403, bad.get_service, canary.service, m.GetServiceRequest())
    expect_error("SignatureNotMatch", 403, bad.delete_service, canary.service)
    assert_still_serving(client, canary)


def test_unknown_access_key_is_invalid_access_key_id(fcd, client: Client, canary: Canary):
    bad = make_client(fcd.addr, access_key_id="unknownAccessKeyId")
    expect_error("InvalidAccessKeyID", 403, bad.list_services, m.ListServicesRequest())
    expect_error("InvalidAccessKeyID", 403, bad.delete_service, canary.service)
    assert_still_serving(client, canary)


def test_classic_client_lists_and_gets_services(classic_client: fc2.Client, client: Client, canary: Canary):
    listing = classic_client.list_services(prefix=canary.service)
    assert [s["serviceName"] for s in listing.data["services"]] == [canary.service]

    got = classic_client.get_service(canary.service)
    assert got.data["serviceName"] == canary.service
    assert got.data["description"] == canary.service_description

    fn = classic_client.get_function(canary.service, canary.function)
    assert fn.data["functionName"] == canary.function
    assert fn.data["codeChecksum"] == canary.function_body.code_checksum

    fns = classic_client.list_functions(canary.service)
    assert canary.function in [f["functionName"] for f in fns.data["functions"]]


def test_classic_client_sees_errors(classic_client: fc2.Client):
    missing = unique("nosvc")
    with pytest.raises(FcError) as excinfo:
        classic_client.get_service(missing)
    err = excinfo.value
    assert err.status_code == 404
    assert err.err_code == "ServiceNotFound"
    # aliyun-fc2 takes the request id from the X-Fc-Request-Id header ('unknown' when absent).
    assert err.request_id and err.request_id != "unknown"


def test_classic_client_wrong_secret_and_unknown_key(fcd, client: Client, canary: Canary):
    with pytest.raises(FcError) as excinfo:
        make_classic_client(fcd.addr, access_key_secret="not-the-secret").list_services()
    assert (excinfo.value.status_code, excinfo.value.err_code) == (403, "SignatureNotMatch")

    with pytest.raises(FcError) as excinfo:
        make_classic_client(fcd.addr, access_key_id="unknownAccessKeyId").list_services()
    assert (excinfo.value.status_code, excinfo.value.err_code) == (403, "InvalidAccessKeyID")
    assert_still_serving(client, canary)


# --------------------------------------------------------------------------------------------
# Persistence across restarts
# --------------------------------------------------------------------------------------------


def test_data_survives_restart(fcd_factory, tmp_path):
    data_dir = tmp_path / "persistent-data"
    first = fcd_factory(data_dir=data_dir)
    c1 = first.client()
    service = unique("persist")
    create_service(c1, service, description="kept across restarts")
    zip_bytes = make_zip_bytes({"index.py": SIMPLE_HANDLER})
    fn = create_function(
        c1, service, "kept", zip_bytes=zip_bytes, memory_size=256, timeout=30,
        environment_variables={"KEEP": "yes"},
    )
    c1.update_function(service, "kept", m.UpdateFunctionRequest(description="updated before restart"))
    first.stop()
    assert not first.running

    second = fcd_factory(data_dir=data_dir)
    c2 = second.client()
    svc = c2.get_service(service, m.GetServiceRequest()).body
    assert svc.service_name == service
    assert svc.description == "kept across restarts"
    got = c2.get_function(service, "kept", m.GetFunctionRequest()).body
    assert got.function_id == fn.function_id
    assert got.code_checksum == fn.code_checksum
    assert got.code_size == fn.code_size
    assert got.memory_size == 256
    assert got.timeout == 30
    assert got.environment_variables == {"KEEP": "yes"}
    assert got.description == "updated before restart"
    assert got.created_time == fn.created_time

    names = [n for p in list_all_services(c2, prefix=service) for n in p]
    assert names == [service]
    code = c2.get_function_code(service, "kept", m.GetFunctionCodeRequest()).body
    assert code.checksum == fn.code_checksum
    assert requests.get(code.url, timeout=30).content == zip_bytes

    # And the restarted server still accepts writes.
    c2.delete_function(service, "kept")
    c2.delete_service(service)
