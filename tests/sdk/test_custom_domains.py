"""The custom-domain API (Create/Get/Update/Delete/ListCustomDomains) through both official SDKs.

Domain names are one namespace for the whole server; routes name a service, function and
qualifier per path (``*`` only as a final ``/*``) and are not checked against existing
functions when written (FC resolves them per request, and so does fcd). fcd serves custom
domains over plain HTTP, so HTTPS protocols and certificates are refused with a reason. Serving
requests on a domain is the HTTP path's and tested there.
"""

from __future__ import annotations

from typing import Optional

import pytest

import fc2
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from fc2.fc_exceptions import FcError

from fcdkit import ACCOUNT_ID, expect_error, unique


def domain_name() -> str:
    return f"{unique('d')}.example.test"


def route(path: str, function: str, service: str = "svc", qualifier: Optional[str] = None, methods=None) -> m.PathConfig:
    return m.PathConfig(path=path, service_name=service, function_name=function, qualifier=qualifier, methods=methods)


@pytest.fixture
def domains(client: Client):
    """Names to delete at teardown (best effort)."""
    names: list[str] = []
    yield names
    for n in names:
        try:
            client.delete_custom_domain(n)
        except Exception:
            pass


def create(client: Client, domains: list[str], name: str, routes: list[m.PathConfig], protocol: Optional[str] = "HTTP"):
    resp = client.create_custom_domain(
        m.CreateCustomDomainRequest(domain_name=name, protocol=protocol, route_config=m.RouteConfig(routes=routes))
    )
    assert resp.status_code == 200
    domains.append(name)
    return resp


def test_custom_domain_crud(client: Client, domains):
    name = domain_name()
    resp = create(
        client,
        domains,
        name,
        [route("/users/*", "users", methods=["get", "POST"]), route("/", "home", qualifier="prod")],
    )
    d = resp.body
    assert (d.domain_name, d.account_id, d.protocol, d.api_version) == (name, ACCOUNT_ID, "HTTP", "2016-08-15")
    assert d.created_time and d.last_modified_time
    routes = d.route_config.routes
    # Normalised: LATEST when no qualifier, methods upper-cased.
    assert [(r.path, r.function_name, r.qualifier, r.methods) for r in routes] == [
        ("/users/*", "users", "LATEST", ["GET", "POST"]),
        ("/", "home", "prod", None),
    ]
    assert resp.headers.get("etag")

    got = client.get_custom_domain(name).body
    assert got.to_map() == d.to_map()
    listed = client.list_custom_domains(m.ListCustomDomainsRequest(prefix=name)).body
    assert [x.domain_name for x in listed.custom_domains] == [name]

    # Update replaces the routes as a whole and keeps what is not sent.
    upd = client.update_custom_domain(
        name, m.UpdateCustomDomainRequest(route_config=m.RouteConfig(routes=[route("/*", "all")]))
    ).body
    assert [(r.path, r.function_name) for r in upd.route_config.routes] == [("/*", "all")]
    assert upd.protocol == "HTTP" and upd.created_time == d.created_time
    assert client.get_custom_domain(name).body.route_config.routes[0].function_name == "all"

    assert client.delete_custom_domain(name).status_code == 204
    expect_error("DomainNameNotFound", 404, client.get_custom_domain, name)
    expect_error("DomainNameNotFound", 404, client.delete_custom_domain, name)
    expect_error(
        "DomainNameNotFound", 404, client.update_custom_domain, name,
        m.UpdateCustomDomainRequest(route_config=m.RouteConfig(routes=[])),
    )


def test_custom_domain_errors(client: Client, domains):
    name = domain_name()
    create(client, domains, name, [route("/*", "f")])
    expect_error("DomainNameAlreadyExists", 409, create, client, [], name, [route("/*", "g")])

    fresh = domain_name()
    for bad_routes, protocol in [
        ([route("users", "f")], "HTTP"),  # path must start with '/'
        ([route("/a*", "f")], "HTTP"),  # '*' only as a final '/*'
        ([route("/a", "f"), route("/a", "g")], "HTTP"),  # a path twice
        ([route("/a", "bad name")], "HTTP"),
        ([route("/a", "f", methods=["FETCH"])], "HTTP"),
        ([route("/a", "f", qualifier="pr od")], "HTTP"),
        ([route("/a", "f")], "HTTPS"),  # fcd serves plain HTTP only
        ([route("/a", "f")], "HTTP,HTTPS"),
    ]:
        expect_error("InvalidArgument", 400, create, client, [], fresh, bad_routes, protocol)
    for bad_name in ["Upper.example.test", "*.example.test", "-x.example.test"]:
        expect_error("InvalidArgument", 400, create, client, [], bad_name, [route("/a", "f")])
    # Nothing was stored by the refused requests.
    expect_error("DomainNameNotFound", 404, client.get_custom_domain, fresh)
    expect_error(
        "InvalidArgument", 400, client.update_custom_domain, name,
        m.UpdateCustomDomainRequest(route_config=m.RouteConfig(routes=[route("nope", "f")])),
    )
    assert client.get_custom_domain(name).body.route_config.routes[0].path == "/*"


def test_paging(client: Client, domains):
    base = unique("pg")
    names = [f"{base}-{i}.example.test" for i in range(5)]
    for n in names:
        create(client, domains, n, [route("/*", "f")])
    seen: list[str] = []
    token = None
    for _ in range(10):
        page = client.list_custom_domains(m.ListCustomDomainsRequest(prefix=base, limit=2, next_token=token)).body
        seen += [d.domain_name for d in page.custom_domains]
        token = page.next_token
        if not token:
            break
    assert seen == names
    page = client.list_custom_domains(m.ListCustomDomainsRequest(prefix=base, start_key=names[3])).body
    assert [d.domain_name for d in page.custom_domains] == names[3:]


def classic_error(code: str, status: int, fn, *args, **kwargs) -> FcError:
    with pytest.raises(FcError) as excinfo:
        fn(*args, **kwargs)
    err = excinfo.value
    assert err.err_code == code and err.status_code == status, (err.err_code, err.status_code, err.message)
    return err


def test_classic_client(classic_client: fc2.Client, client: Client, domains):
    name = domain_name()
    routes = {"routes": [{"path": "/api/*", "serviceName": "s", "functionName": "f", "qualifier": "1"}]}
    created = classic_client.create_custom_domain(name, protocol="HTTP", routeConfig=routes)
    domains.append(name)
    assert created.data["domainName"] == name
    assert created.data["routeConfig"]["routes"][0]["qualifier"] == "1"
    got = classic_client.get_custom_domain(name).data
    assert got == created.data
    listed = classic_client.list_custom_domains(prefix=name).data
    assert [d["domainName"] for d in listed["customDomains"]] == [name]
    upd = classic_client.update_custom_domain(
        name, routeConfig={"routes": [{"path": "/", "serviceName": "s", "functionName": "g"}]}
    ).data
    assert upd["routeConfig"]["routes"] == [{"path": "/", "serviceName": "s", "functionName": "g", "qualifier": "LATEST"}]
    classic_error("DomainNameAlreadyExists", 409, classic_client.create_custom_domain, name, routeConfig=routes)
    classic_error("InvalidArgument", 400, classic_client.create_custom_domain, domain_name(), protocol="HTTPS")
    classic_client.delete_custom_domain(name)
    classic_error("DomainNameNotFound", 404, classic_client.get_custom_domain, name)
