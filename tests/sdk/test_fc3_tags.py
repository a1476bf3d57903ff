"""FC 3.0's tags (`/tags-v2`) and VPC bindings (`/functions/{f}/vpc-bindings`) through the
unchanged alibabacloud-fc20230330 SDK.

The functions are 2.0 functions made with the 2021-04-06 SDK and named the 3.0 way,
``svc$fn`` (ARN ``acs:fc:{region}:{account}:functions/svc$fn``). 3.0 tags are the same rows
2.0 tags live in, but a function's tags are not its service's.
"""

from __future__ import annotations

from alibabacloud_fc20230330 import models as m3
from alibabacloud_fc_open20210406 import models as m

from fcdkit import ACCOUNT_ID, REGION, create_function, expect_error, unique


def fn_arn(service: str, fn: str) -> str:
    return f"acs:fc:{REGION}:{ACCOUNT_ID}:functions/{service}${fn}"


def tag(fc3, arns, **tags):
    r = fc3.tag_resources(
        m3.TagResourcesRequest(
            body=m3.TagResourcesInput(
                resource_id=list(arns),
                resource_type="function",
                tag=[m3.Tag(key=k, value=v) for k, v in tags.items()],
            )
        )
    )
    assert r.status_code in (200, 204)


def listed(fc3, **kwargs) -> dict:
    """Every row of ListTagResources, following NextToken: {arn: {key: value}}."""
    out: dict = {}
    token = None
    while True:
        body = fc3.list_tag_resources(
            m3.ListTagResourcesRequest(resource_type="function", limit=1, next_token=token, **kwargs)
        ).body
        assert body.request_id
        for row in body.tag_resources or []:
            assert row.resource_type == "ALIYUN::FC::FUNCTION"
            out.setdefault(row.resource_id, {})[row.tag_key] = row.tag_value
        token = body.next_token
        if not token:
            return out


def test_tag_list_untag_functions(client, fc3, service):
    f1 = create_function(client, service).function_name
    f2 = create_function(client, service).function_name
    a1, a2 = fn_arn(service, f1), fn_arn(service, f2)
    tag(fc3, [a1, a2], env="prod", team="a")
    tag(fc3, [a2], env="dev")

    assert listed(fc3, resource_id=[a1]) == {a1: {"env": "prod", "team": "a"}}
    everything = listed(fc3)
    assert everything[a1] == {"env": "prod", "team": "a"}
    assert everything[a2] == {"env": "dev", "team": "a"}
    # Filtered by tag: every given key, with its value when one is given.
    only = listed(fc3, resource_id=[a1, a2], tag=[m3.ListTagResourcesRequestTag(key="env", value="dev")])
    assert only == {a2: {"env": "dev", "team": "a"}}
    # A function's tags are not its service's (2.0's GetResourceTags).
    svc_tags = client.get_resource_tags(
        m.GetResourceTagsRequest(resource_arn=f"acs:fc:{REGION}:{ACCOUNT_ID}:services/{service}")
    ).body.tags
    assert not svc_tags

    r = fc3.untag_resources(m3.UntagResourcesRequest(resource_id=[a1, a2], resource_type="function", tag_key=["team"]))
    assert r.status_code in (200, 204)
    assert listed(fc3, resource_id=[a1, a2]) == {a1: {"env": "prod"}, a2: {"env": "dev"}}
    fc3.untag_resources(m3.UntagResourcesRequest(resource_id=[a1], resource_type="function", all=True))
    assert listed(fc3, resource_id=[a1, a2]) == {a2: {"env": "dev"}}

    # Deleting the function deletes its tags.
    client.delete_function(service, f2)
    assert a2 not in listed(fc3)


def test_tag_errors(client, fc3, service):
    fn = create_function(client, service).function_name
    good = fn_arn(service, fn)
    missing = fn_arn(service, unique("nofn"))
    expect_error("FunctionNotFound", 404, tag, fc3, [missing], a="1")
    expect_error("FunctionNotFound", 404, tag, fc3, [fn_arn(unique("nosvc"), "f")], a="1")
    expect_error("FunctionNotFound", 404, tag, fc3, [f"acs:fc:{REGION}:{ACCOUNT_ID}:functions/{unique('native')}"], a="1")
    # Nothing is written when one resource of the request is refused.
    expect_error("FunctionNotFound", 404, tag, fc3, [good, missing], a="1")
    assert listed(fc3, resource_id=[good]) == {}
    for arn in [
        f"acs:fc:{REGION}:{ACCOUNT_ID}:services/{service}",
        f"acs:fc:{REGION}:999:functions/{service}${fn}",
        f"acs:fc:cn-beijing:{ACCOUNT_ID}:functions/{service}${fn}",
        "not-an-arn",
    ]:
        expect_error("InvalidArgument", 400, tag, fc3, [arn], a="1")
    for bad in [{"aliyun:x": "1"}, {"k" * 65: "1"}, {"k": "v" * 129}, {f"k{i}": "" for i in range(21)}]:
        expect_error("InvalidArgument", 400, tag, fc3, [good], **bad)
    expect_error("InvalidArgument", 400, tag, fc3, [good])
    expect_error(
        "InvalidArgument",
        400,
        fc3.list_tag_resources,
        m3.ListTagResourcesRequest(resource_type="ALIYUN::FC::SERVICE"),
    )
    expect_error(
        "FunctionNotFound",
        404,
        fc3.untag_resources,
        m3.UntagResourcesRequest(resource_id=[missing], resource_type="function", all=True),
    )


def test_vpc_bindings_of_functions(client, fc3, service):
    fn = create_function(client, service).function_name
    name = f"{service}${fn}"
    assert (fc3.list_vpc_bindings(name).body.vpc_ids or []) == []
    for vpc in ["vpc-2", "vpc-1"]:
        r = fc3.create_vpc_binding(name, m3.CreateVpcBindingRequest(body=m3.CreateVpcBindingInput(vpc_id=vpc)))
        assert r.status_code in (200, 204)
    assert fc3.list_vpc_bindings(name).body.vpc_ids == ["vpc-1", "vpc-2"]
    # A 2.0 function binds through its service, as 2.0 does.
    assert client.list_vpc_bindings(service).body.vpc_ids == ["vpc-1", "vpc-2"]
    assert fc3.delete_vpc_binding(name, "vpc-1").status_code in (200, 204)
    assert fc3.list_vpc_bindings(name).body.vpc_ids == ["vpc-2"]
    err = expect_error("VpcBindingNotFound", 404, fc3.delete_vpc_binding, name, "vpc-1")
    assert "service" not in str(err.message)
    expect_error("FunctionNotFound", 404, fc3.list_vpc_bindings, f"{service}${unique('nofn')}")
    expect_error("FunctionNotFound", 404, fc3.list_vpc_bindings, unique("native"))
    expect_error(
        "InvalidArgument",
        400,
        fc3.create_vpc_binding,
        name,
        m3.CreateVpcBindingRequest(body=m3.CreateVpcBindingInput(vpc_id="no/slash")),
    )
