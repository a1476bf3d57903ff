"""FC 2.0's tags, VPC bindings, account settings and the `resource` name of on-demand and
provision configs, through the unchanged 2021-04-06 SDK (and the classic SDK's DELETE /tag).

Tags are on services (``acs:fc:{region}:{account}:services/{name}``); fcd records and lists
tags and VPC bindings and deletes them with their service.
"""

from __future__ import annotations

from alibabacloud_fc_open20210406 import models as m

from fcdkit import ACCOUNT_ID, REGION, create_function, expect_error, unique
from ramkit import RamFixture, allow, expect_fc_error, fc_client, policy_document


def arn(service: str) -> str:
    return f"acs:fc:{REGION}:{ACCOUNT_ID}:services/{service}"


def tags_of(client, service: str) -> dict:
    body = client.get_resource_tags(m.GetResourceTagsRequest(resource_arn=arn(service))).body
    assert body.resource_arn == arn(service)
    return body.tags or {}


def all_tagged(client) -> dict:
    """Every tagged service of the account, paging two at a time: {arn: tags}."""
    out, token = {}, None
    while True:
        body = client.list_tagged_resources(m.ListTaggedResourcesRequest(limit=2, next_token=token)).body
        for r in body.resources or []:
            assert r.resource_arn not in out, "a resource was listed twice"
            out[r.resource_arn] = r.tags
        token = body.next_token
        if not token:
            return out


def test_tag_get_overwrite_untag(client, service):
    assert tags_of(client, service) == {}
    r = client.tag_resource(m.TagResourceRequest(resource_arn=arn(service), tags={"env": "prod", "team": "a"}))
    assert r.status_code in (200, 204)
    assert tags_of(client, service) == {"env": "prod", "team": "a"}

    # A key it has takes the new value; the others stay.
    client.tag_resource(m.TagResourceRequest(resource_arn=arn(service), tags={"env": "dev", "empty": ""}))
    assert tags_of(client, service) == {"env": "dev", "team": "a", "empty": ""}

    client.untag_resource(m.UntagResourceRequest(resource_arn=arn(service), tag_keys=["env", "missing"]))
    assert tags_of(client, service) == {"team": "a", "empty": ""}
    client.untag_resource(m.UntagResourceRequest(resource_arn=arn(service), all=True))
    assert tags_of(client, service) == {}


def test_classic_sdk_untags_with_delete(client, classic_client, service):
    client.tag_resource(m.TagResourceRequest(resource_arn=arn(service), tags={"a": "1", "b": "2"}))
    classic_client.untag_resource(arn(service), ["a"], False)
    assert tags_of(client, service) == {"b": "2"}


def test_list_tagged_resources_pages_and_shows_only_tagged_services(client, new_service):
    names = [new_service() for _ in range(3)]
    untagged = new_service()
    for i, name in enumerate(names):
        client.tag_resource(m.TagResourceRequest(resource_arn=arn(name), tags={"n": str(i)}))
    listed = all_tagged(client)
    for i, name in enumerate(names):
        assert listed[arn(name)] == {"n": str(i)}
    assert arn(untagged) not in listed
    # A service's tags go with it: deleted and created again, it starts bare.
    client.delete_service(names[0])
    assert arn(names[0]) not in all_tagged(client)
    new_service(names[0])
    assert tags_of(client, names[0]) == {}


def test_tag_errors(client, service):
    missing = unique("nosvc")
    expect_error(
        "ServiceNotFound", 404, client.tag_resource, m.TagResourceRequest(resource_arn=arn(missing), tags={"a": "1"})
    )
    expect_error("ServiceNotFound", 404, client.get_resource_tags, m.GetResourceTagsRequest(resource_arn=arn(missing)))
    expect_error(
        "ServiceNotFound", 404, client.untag_resource, m.UntagResourceRequest(resource_arn=arn(missing), all=True)
    )
    bad_requests = [
        m.TagResourceRequest(resource_arn=arn(service), tags={}),
        m.TagResourceRequest(tags={"a": "1"}),
        m.TagResourceRequest(resource_arn=f"acs:fc:cn-beijing:{ACCOUNT_ID}:services/{service}", tags={"a": "1"}),
        m.TagResourceRequest(resource_arn=f"acs:fc:{REGION}:999:services/{service}", tags={"a": "1"}),
        m.TagResourceRequest(resource_arn=f"acs:fc:{REGION}:{ACCOUNT_ID}:functions/{service}$f", tags={"a": "1"}),
        m.TagResourceRequest(resource_arn=arn(service), tags={"aliyun-x": "1"}),
        m.TagResourceRequest(resource_arn=arn(service), tags={"acs:x": "1"}),
        m.TagResourceRequest(resource_arn=arn(service), tags={"k" * 65: "1"}),
        m.TagResourceRequest(resource_arn=arn(service), tags={"k": "v" * 129}),
        m.TagResourceRequest(resource_arn=arn(service), tags={"k": "see https://example.com"}),
        m.TagResourceRequest(resource_arn=arn(service), tags={f"k{i}": "" for i in range(21)}),
    ]
    for req in bad_requests:
        expect_error("InvalidArgument", 400, client.tag_resource, req)
    # Twenty in all at most, counting the ones it has.
    client.tag_resource(m.TagResourceRequest(resource_arn=arn(service), tags={f"k{i}": "" for i in range(15)}))
    expect_error(
        "InvalidArgument",
        400,
        client.tag_resource,
        m.TagResourceRequest(resource_arn=arn(service), tags={f"x{i}": "" for i in range(6)}),
    )
    assert len(tags_of(client, service)) == 15
    client.tag_resource(m.TagResourceRequest(resource_arn=arn(service), tags={f"x{i}": "" for i in range(5)}))
    assert len(tags_of(client, service)) == 20
    # Untag needs keys or all.
    expect_error("InvalidArgument", 400, client.untag_resource, m.UntagResourceRequest(resource_arn=arn(service)))
    expect_error(
        "InvalidArgument", 400, client.list_tagged_resources, m.ListTaggedResourcesRequest(limit=101)
    )


def test_vpc_bindings_are_recorded_listed_and_go_with_the_service(client, new_service):
    service = new_service()
    assert (client.list_vpc_bindings(service).body.vpc_ids or []) == []
    for vpc in ["vpc-b", "vpc-a", "vpc-a"]:
        r = client.create_vpc_binding(service, m.CreateVpcBindingRequest(vpc_id=vpc))
        assert r.status_code in (200, 204)
    assert client.list_vpc_bindings(service).body.vpc_ids == ["vpc-a", "vpc-b"]
    assert client.delete_vpc_binding(service, "vpc-a").status_code == 204
    assert client.list_vpc_bindings(service).body.vpc_ids == ["vpc-b"]
    expect_error("VpcBindingNotFound", 404, client.delete_vpc_binding, service, "vpc-a")
    expect_error(
        "InvalidArgument", 400, client.create_vpc_binding, service, m.CreateVpcBindingRequest(vpc_id="bad id")
    )
    expect_error("InvalidArgument", 400, client.create_vpc_binding, service, m.CreateVpcBindingRequest())
    missing = unique("nosvc")
    expect_error("ServiceNotFound", 404, client.list_vpc_bindings, missing)
    expect_error(
        "ServiceNotFound", 404, client.create_vpc_binding, missing, m.CreateVpcBindingRequest(vpc_id="vpc-a")
    )
    expect_error("ServiceNotFound", 404, client.delete_vpc_binding, missing, "vpc-a")
    # Deleted with the service.
    client.delete_service(service)
    new_service(service)
    assert (client.list_vpc_bindings(service).body.vpc_ids or []) == []


def test_account_settings_are_what_fcd_offers(client):
    body = client.get_account_settings().body
    assert body.available_azs == [REGION]
    # fcd has no default role.
    assert body.default_role is None


def test_on_demand_and_provision_configs_name_their_resource_alike(client, service):
    fn = create_function(client, service).function_name
    want = f"{ACCOUNT_ID}#{service}#LATEST#{fn}"
    put = client.put_function_on_demand_config(
        service, fn, m.PutFunctionOnDemandConfigRequest(qualifier="LATEST", maximum_instance_count=3)
    ).body
    assert put.resource == want
    got = client.get_function_on_demand_config(service, fn, m.GetFunctionOnDemandConfigRequest(qualifier="LATEST"))
    assert got.body.resource == want
    listed = client.list_on_demand_configs(m.ListOnDemandConfigsRequest(prefix=service)).body.configs
    assert [(c.resource, c.maximum_instance_count) for c in listed] == [(want, 3)]
    # A resource name from an answer works as a prefix and a start key too.
    listed = client.list_on_demand_configs(m.ListOnDemandConfigsRequest(prefix=want, start_key=want)).body.configs
    assert [c.resource for c in listed] == [want]

    version = client.publish_service_version(service, m.PublishServiceVersionRequest()).body.version_id
    client.create_alias(service, m.CreateAliasRequest(alias_name="prod", version_id=version))
    try:
        put = client.put_provision_config(service, fn, m.PutProvisionConfigRequest(qualifier="prod", target=1)).body
        assert put.resource == f"{ACCOUNT_ID}#{service}#prod#{fn}"
        listed = client.list_provision_configs(m.ListProvisionConfigsRequest(service_name=service)).body
        assert [c.resource for c in listed.provision_configs] == [put.resource]
    finally:
        client.put_provision_config(service, fn, m.PutProvisionConfigRequest(qualifier="prod", target=0))
    got = client.get_provision_config(service, fn, m.GetProvisionConfigRequest(qualifier="prod")).body
    assert (got.resource, got.target) == (f"{ACCOUNT_ID}#{service}#prod#{fn}", 0)
    client.delete_function_on_demand_config(
        service, fn, m.DeleteFunctionOnDemandConfigRequest(qualifier="LATEST")
    )


def test_grants_tags_need_everything_and_bindings_the_service(fcd, client, service):
    """The tagged resource travels in the body or query, which the one authorization check
    does not read: tag operations are granted on ``*``. A VPC binding is the service's."""
    iam = RamFixture(fcd.addr)
    try:
        services_only = fc_client(fcd.addr, iam.user(policy_document(allow("fc:*", "acs:fc:*:*:services/*"))).keys)
        everything = fc_client(fcd.addr, iam.user(policy_document(allow("fc:*", "*"))).keys)
        req = m.TagResourceRequest(resource_arn=arn(service), tags={"a": "1"})
        expect_fc_error("AccessDenied", 403, services_only.tag_resource, req)
        expect_fc_error("AccessDenied", 403, services_only.get_account_settings)
        services_only.create_vpc_binding(service, m.CreateVpcBindingRequest(vpc_id="vpc-1"))
        assert services_only.list_vpc_bindings(service).body.vpc_ids == ["vpc-1"]
        everything.tag_resource(req)
        assert tags_of(everything, service) == {"a": "1"}
    finally:
        iam.cleanup()
