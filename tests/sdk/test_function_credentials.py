"""Function credentials: a service's ``role`` gives its functions temporary STS credentials.

A function whose service has a role reads ``context.credentials`` (and the
``ALIBABA_CLOUD_*`` variables) and calls fcd itself through the official classic SDK
(``aliyun-fc2``, vendored into the code package like a user would) — with exactly the
permissions of the role: invoking the function the role allows works, anything else is
``AccessDenied``. The role, its trust policy (``fc.aliyuncs.com``) and its policy are made with
the official RAM SDK.

Functions reach fcd at ``fcd-host`` (the host's address inside an instance's network). Where
the server gives instances no network to the host, the tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_ram20150501.client import Client as RamClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

import fc2
from fcdkit import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    ACCOUNT_ID,
    REGION,
    create_function,
    make_zip_bytes,
    server_status,
    unique,
)

pytestmark = pytest.mark.invoke

CALLER = r"""
import json, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor"))
import fc2

def handler(event, context):
    req = json.loads(event)
    creds = context.credentials
    out = {
        "keyPrefix": (creds.access_key_id or "")[:4],
        "camelCaseAgrees": creds.accessKeyId == creds.access_key_id,
        "hasToken": bool(creds.security_token),
        "envAgrees": os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID", "")[:4] == "STS.",
    }
    client = fc2.Client(
        endpoint=req["endpoint"],
        accessKeyID=creds.access_key_id,
        accessKeySecret=creds.access_key_secret,
        securityToken=creds.security_token,
        Timeout=30,
    )
    resp = client.invoke_function(req["service"], req["function"], payload=b"hello from a function")
    out["invoked"] = resp.data.decode()
    for name, call in (
        ("getService", lambda: client.get_service(req["service"])),
        ("invokeOther", lambda: client.invoke_function(req["service"], req["other"], payload=b"x")),
    ):
        try:
            call()
            out[name] = "allowed"
        except fc2.FcError as e:
            out[name] = "%s %s" % (e.status_code, e.err_code)
    return json.dumps(out)
"""

ECHO = r"""
def handler(event, context):
    return b"echo: " + event
"""

# The classic SDK and what it imports, copied from this test's own environment into the code
# package, as a user vendors dependencies.
VENDORED = ("fc2", "requests", "urllib3", "idna", "certifi", "charset_normalizer", "websocket")


def _vendored_files() -> dict[str, bytes]:
    site = Path(fc2.__file__).resolve().parent.parent
    files: dict[str, bytes] = {}
    for pkg in VENDORED:
        root = site / pkg
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                files["vendor/" + str(path.relative_to(site))] = path.read_bytes()
    return files


def _ram(fcd) -> RamClient:
    return RamClient(
        open_api_models.Config(
            access_key_id=ACCESS_KEY_ID,
            access_key_secret=ACCESS_KEY_SECRET,
            endpoint=fcd.addr,
            protocol="http",
            region_id=REGION,
        )
    )


def _host_network_or_skip(fcd) -> None:
    iso = server_status(fcd.client()).get("isolation", {})
    missing = [x for x in iso.get("missing", []) if "outbound" in x or "network" in x]
    if iso.get("network") != "namespace" or missing:
        pytest.skip("instances cannot reach the host here: %s" % (missing or iso.get("network")))


def _role(ram: RamClient, policy_document: dict, trusted_service: str = "fc.aliyuncs.com") -> str:
    role = unique("role")
    trust = {
        "Version": "1",
        "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow",
                       "Principal": {"Service": [trusted_service]}}],
    }
    arn = ram.create_role(ram_models.CreateRoleRequest(
        role_name=role, assume_role_policy_document=json.dumps(trust))).body.role.arn
    policy = unique("pol")
    ram.create_policy(ram_models.CreatePolicyRequest(
        policy_name=policy, policy_document=json.dumps(policy_document)))
    ram.attach_policy_to_role(ram_models.AttachPolicyToRoleRequest(
        policy_type="Custom", policy_name=policy, role_name=role))
    return arn


def _invoke(client, service: str, function: str, body: bytes):
    return client.invoke_function_with_options(
        service, function, m.InvokeFunctionRequest(body=body), m.InvokeFunctionHeaders(),
        util_models.RuntimeOptions(read_timeout=90_000),
    )


def test_a_function_calls_another_with_only_its_roles_rights(fcd, client, new_service):
    _host_network_or_skip(fcd)
    ram = _ram(fcd)
    target = new_service()
    create_function(client, target, "echo", files={"index.py": ECHO})
    create_function(client, target, "other", files={"index.py": ECHO})
    role_arn = _role(ram, {
        "Version": "1",
        "Statement": [{"Effect": "Allow", "Action": "fc:InvokeFunction",
                       "Resource": "acs:fc:*:%s:services/%s.LATEST/functions/echo" % (ACCOUNT_ID, target)}],
    })
    assert role_arn == "acs:ram::%s:role/%s" % (ACCOUNT_ID, role_arn.rsplit("/", 1)[1])

    caller = new_service(role=role_arn)
    files = {"index.py": CALLER, **_vendored_files()}
    create_function(client, caller, "caller", zip_bytes=make_zip_bytes(files), timeout=60)

    port = fcd.addr.rsplit(":", 1)[1]
    req = {"endpoint": "http://fcd-host:%s" % port, "service": target, "function": "echo",
           "other": "other"}
    resp = _invoke(client, caller, "caller", json.dumps(req).encode())
    assert "x-fc-error-type" not in resp.headers, resp.body
    out = json.loads(resp.body)
    assert out["keyPrefix"] == "STS.", out
    assert out["camelCaseAgrees"] and out["hasToken"] and out["envAgrees"], out
    assert out["invoked"] == "echo: hello from a function", out
    assert out["getService"] == "403 AccessDenied", out
    assert out["invokeOther"] == "403 AccessDenied", out


def test_a_role_not_trusting_function_compute_gives_no_credentials(fcd, client, new_service):
    ram = _ram(fcd)
    role_arn = _role(
        ram,
        {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "fc:*", "Resource": "*"}]},
        trusted_service="ecs.aliyuncs.com",
    )
    caller = new_service(role=role_arn)
    create_function(client, caller, "echo", files={"index.py": ECHO})
    with pytest.raises(Exception) as err:
        _invoke(client, caller, "echo", b"x")
    assert "fc.aliyuncs.com" in str(err.value), err.value
    assert getattr(err.value, "code", None) in ("AccessDenied", "InvalidArgument"), err.value


def test_a_function_without_a_role_gets_empty_credentials(fcd, client, new_service):
    service = new_service()
    create_function(client, service, "who", files={"index.py": r"""
import json, os
def handler(event, context):
    c = context.credentials
    return json.dumps([c.access_key_id, c.access_key_secret, c.security_token,
                       os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")])
"""})
    out = json.loads(_invoke(client, service, "who", b"").body)
    assert not any(out), out
