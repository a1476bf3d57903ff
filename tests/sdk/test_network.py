"""Outbound network of instances through the official 2021-04-06 SDK.

FC's default (``internetAccess`` true) lets a function reach what the host reaches; fcd also
gives it the host itself, including services bound only on the host's loopback, at the address
in ``FCD_HOST_ADDR`` (also the name ``fcd-host``). With ``internetAccess: false`` an instance
reaches nothing but itself. Traffic goes only to this machine: a server the test binds on
127.0.0.1, reached through fcd's host address.

Where the server cannot give instances outbound network (not root, no nftables), ``/status``
(a signed request) says so under ``isolation.missing`` and these tests are skipped with that
reason.
"""

from __future__ import annotations

import json

import pytest

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_tea_util import models as util_models

from fcdkit import create_function, loopback_pong, server_status, unique

pytestmark = pytest.mark.invoke

PROBE = r"""
import json, os, socket, urllib.request

def handler(event, context):
    target = json.loads(event)
    out = {"hostAddr": os.environ.get("FCD_HOST_ADDR")}
    for key, host in (("byAddr", os.environ.get("FCD_HOST_ADDR") or "unset"), ("byName", "fcd-host")):
        try:
            url = "http://%s:%d/ping" % (host, target["port"])
            with urllib.request.urlopen(url, timeout=3) as r:
                out[key] = r.read().decode()
        except Exception as e:
            out[key] = "error: %s" % type(e).__name__
    return json.dumps(out)
"""


@pytest.fixture(scope="module")
def host_server():
    """An HTTP server bound on the host's loopback only."""
    with loopback_pong(b"pong from the host") as port:
        yield port


def _egress_or_skip(client) -> None:
    status = server_status(client)
    iso = status.get("isolation", {})
    missing = [m for m in iso.get("missing", []) if "outbound" in m or "network" in m]
    if iso.get("network") != "namespace":
        pytest.skip("instances share the host network here: %s" % missing)
    if missing:
        pytest.skip("this server gives instances no outbound network: %s" % missing)


def _probe(client, service, port):
    name = unique("net")
    create_function(client, service, name, files={"index.py": PROBE}, runtime="python3.10")
    resp = client.invoke_function_with_options(
        service, name, m.InvokeFunctionRequest(body=json.dumps({"port": port}).encode()),
        m.InvokeFunctionHeaders(), util_models.RuntimeOptions(read_timeout=60_000),
    )
    assert "x-fc-error-type" not in resp.headers, resp.body
    return json.loads(resp.body)


def test_function_reaches_a_loopback_service_on_the_host(fcd, client, new_service, host_server):
    _egress_or_skip(client)
    service = new_service(internet_access=True)
    out = _probe(client, service, host_server)
    assert out["hostAddr"], out
    assert out["byAddr"] == "pong from the host", out
    assert out["byName"] == "pong from the host", out


def test_internet_access_is_the_default(fcd, client, new_service, host_server):
    _egress_or_skip(client)
    service = new_service()
    assert client.get_service(service, m.GetServiceRequest()).body.internet_access is True
    out = _probe(client, service, host_server)
    assert out["byAddr"] == "pong from the host", out


def test_no_internet_access_reaches_nothing(fcd, client, new_service, host_server):
    _egress_or_skip(client)
    service = new_service(internet_access=False)
    out = _probe(client, service, host_server)
    assert out["hostAddr"] is None, out
    assert out["byAddr"].startswith("error"), out
    assert out["byName"].startswith("error"), out


def test_turning_internet_access_off_applies_to_new_instances(fcd, client, new_service, host_server):
    _egress_or_skip(client)
    service = new_service(internet_access=True)
    name = unique("net")
    create_function(client, service, name, files={"index.py": PROBE}, runtime="python3.10")
    body = json.dumps({"port": host_server}).encode()

    def call():
        r = client.invoke_function(service, name, m.InvokeFunctionRequest(body=body))
        return json.loads(r.body)

    assert call()["byAddr"] == "pong from the host"
    client.update_service(service, m.UpdateServiceRequest(internet_access=False))
    assert call()["byAddr"].startswith("error")
