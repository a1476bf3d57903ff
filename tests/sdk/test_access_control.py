"""Authorization of FC operations for RAM users and STS sessions, through the unchanged
official SDKs: resource-level grants on a qualified function ARN, explicit Deny, the
``acs:SourceIp`` condition, STS AssumeRole credentials (2021-04-06 SDK with
``Config(security_token=…)`` and the classic ``aliyun-fc2`` with ``securityToken``), expired
and tampered tokens, GetCallerIdentity, and changes applying to the next request.

The module runs its own server with the hidden ``--test-sts-min-duration-secs 1`` so that a
token can expire within seconds; everything else is the default configuration. The server
listens on 127.0.0.1, so ``acs:SourceIp`` is 127.0.0.1.
"""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Iterator

import pytest
from alibabacloud_fc_open20210406 import models as fm
from alibabacloud_ram20150501 import models as rm
from alibabacloud_sts20150401 import models as sm
from fc2.fc_exceptions import FcError

from fcdkit import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    ACCOUNT_ID,
    REGION,
    FcdServer,
    _new_server,
    create_function,
    delete_service_tree,
    fcd_binary,
    unique,
)
from ramkit import (
    ROOT_ARN,
    Keys,
    RamFixture,
    allow,
    assume_role,
    classic_client,
    deny,
    expect_fc_error,
    expect_rpc_error,
    fc_client,
    policy_document,
    sts_client,
    trust_document,
)

pytestmark = pytest.mark.invoke

HANDLER = """\
def handler(event, context):
    return 'hello from ' + context.function.name
"""


@dataclass
class World:
    """Two services, each with function ``f`` published as version 1 behind alias ``prod``."""

    server: FcdServer
    svc: str
    other: str

    @property
    def addr(self) -> str:
        return self.server.addr


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = _new_server(
        tmp_path_factory.mktemp("fcd-acl"),
        owner="session",
        extra_args=("--test-sts-min-duration-secs", "1"),
    )
    server.start()
    root = fc_client(server.addr)
    names = [unique("svc"), unique("other")]
    try:
        for name in names:
            root.create_service(fm.CreateServiceRequest(service_name=name))
            create_function(root, name, "f", files={"index.py": HANDLER})
            root.publish_service_version(name, fm.PublishServiceVersionRequest())
            root.create_alias(name, fm.CreateAliasRequest(alias_name="prod", version_id="1"))
        yield World(server, names[0], names[1])
    finally:
        for name in names:
            delete_service_tree(root, name)
        server.stop()


@pytest.fixture
def iam(world: World) -> Iterator[RamFixture]:
    fixture = RamFixture(world.addr)
    yield fixture
    fixture.cleanup()


def prod_functions(service: str) -> str:
    return f"acs:fc:*:*:services/{service}.prod/functions/*"


def invoke(addr: str, keys: Keys, service: str, qualifier: str | None = None) -> str:
    resp = fc_client(addr, keys).invoke_function(
        service, "f", fm.InvokeFunctionRequest(body=b"{}", qualifier=qualifier)
    )
    assert resp.status_code == 200, resp.status_code
    return resp.body.decode()


def denied(addr: str, keys: Keys, fn, *args) -> str:
    """Calls ``fn(client, *args)`` and asserts FC's 403 AccessDenied; returns the message."""
    err = expect_fc_error("AccessDenied", 403, fn, fc_client(addr, keys), *args)
    return err.data["ErrorMessage"]


def do_invoke(client, service: str, qualifier: str | None = None):
    return client.invoke_function(service, "f", fm.InvokeFunctionRequest(body=b"{}", qualifier=qualifier))


def do_update(client, service: str):
    return client.update_function(service, "f", fm.UpdateFunctionRequest(description="x"))


def do_get_service(client, service: str):
    return client.get_service(service, fm.GetServiceRequest())


def test_invoke_grant_on_prod_only(world: World, iam: RamFixture):
    user = iam.user(policy_document(allow("fc:InvokeFunction", prod_functions(world.svc))))
    assert invoke(world.addr, user.keys, world.svc, "prod") == "hello from f"

    message = denied(world.addr, user.keys, do_invoke, world.svc)
    # The message names the action and the resource (unqualified means LATEST).
    assert "fc:InvokeFunction" in message
    assert f"acs:fc:{REGION}:{ACCOUNT_ID}:services/{world.svc}.LATEST/functions/f" in message
    assert user.arn in message
    denied(world.addr, user.keys, do_invoke, world.svc, "LATEST")
    denied(world.addr, user.keys, do_invoke, world.svc, "1")
    denied(world.addr, user.keys, do_invoke, world.other, "prod")
    message = denied(world.addr, user.keys, do_update, world.svc)
    assert "fc:UpdateFunction" in message
    assert f"services/{world.svc}/functions/f" in message
    denied(world.addr, user.keys, do_get_service, world.svc)
    # A service that does not exist is refused the same way: nothing is revealed.
    denied(world.addr, user.keys, do_invoke, unique("nosuch"), "prod")
    # Within the grant, what does not exist is FC's usual 404.
    expect_fc_error(
        "FunctionNotFound",
        404,
        fc_client(world.addr, user.keys).invoke_function,
        world.svc,
        "nosuch",
        fm.InvokeFunctionRequest(body=b"{}", qualifier="prod"),
    )


def test_explicit_deny_overrides_allow(world: World, iam: RamFixture):
    user = iam.user(
        policy_document(deny("fc:InvokeFunction", prod_functions(world.svc))),
        system=("AliyunFCFullAccess",),
    )
    message = denied(world.addr, user.keys, do_invoke, world.svc, "prod")
    assert "Deny" in message
    # The rest of FC full access still applies.
    assert do_get_service(fc_client(world.addr, user.keys), world.svc).status_code == 200
    assert invoke(world.addr, user.keys, world.other, "prod") == "hello from f"


@pytest.mark.parametrize(
    "condition, allowed",
    [
        ({"IpAddress": {"acs:SourceIp": "127.0.0.1/32"}}, True),
        ({"IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "127.0.0.0/8"]}}, True),
        ({"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}, False),
        ({"NotIpAddress": {"acs:SourceIp": "127.0.0.1"}}, False),
        ({"NotIpAddress": {"acs:SourceIp": "192.168.0.0/16"}}, True),
    ],
)
def test_source_ip_condition(world: World, iam: RamFixture, condition: dict, allowed: bool):
    user = iam.user(
        policy_document(allow("fc:InvokeFunction", prod_functions(world.svc), condition))
    )
    if allowed:
        assert invoke(world.addr, user.keys, world.svc, "prod") == "hello from f"
    else:
        denied(world.addr, user.keys, do_invoke, world.svc, "prod")


def test_current_time_and_secure_transport_conditions(world: World, iam: RamFixture):
    past = {"DateLessThan": {"acs:CurrentTime": "2020-01-01T00:00:00Z"}}
    future = {"DateLessThan": {"acs:CurrentTime": "2999-01-01T00:00:00+08:00"}}
    https_only = {"Bool": {"acs:SecureTransport": "true"}}
    expired = iam.user(policy_document(allow("fc:InvokeFunction", "*", past)))
    denied(world.addr, expired.keys, do_invoke, world.svc, "prod")
    current = iam.user(policy_document(allow("fc:InvokeFunction", "*", future)))
    assert invoke(world.addr, current.keys, world.svc, "prod") == "hello from f"
    # fcd serves plain HTTP.
    secure = iam.user(policy_document(allow("fc:InvokeFunction", "*", https_only)))
    denied(world.addr, secure.keys, do_invoke, world.svc, "prod")


def test_changes_apply_to_the_next_request(world: World, iam: RamFixture):
    user = iam.user()
    denied(world.addr, user.keys, do_invoke, world.svc, "prod")
    policy = iam.policy(policy_document(allow("fc:InvokeFunction", prod_functions(world.svc))))
    iam.attach_user(user.name, policy)
    assert invoke(world.addr, user.keys, world.svc, "prod") == "hello from f"
    iam.detach_user(user.name, policy)
    denied(world.addr, user.keys, do_invoke, world.svc, "prod")
    iam.attach_user(user.name, "AliyunFCInvocationAccess", "System")
    assert invoke(world.addr, user.keys, world.other, "prod") == "hello from f"


def sts_user(iam: RamFixture):
    return iam.user(system=("AliyunSTSAssumeRoleAccess",))


def test_assumed_role_invokes_prod_and_nothing_else(world: World, iam: RamFixture):
    role = iam.role(
        trust_document(ROOT_ARN),
        policy_document(allow("fc:InvokeFunction", prod_functions(world.svc))),
    )
    user = sts_user(iam)
    # The user itself has no FC permission.
    denied(world.addr, user.keys, do_invoke, world.svc, "prod")
    keys, body = assume_role(world.addr, user.keys, role, session="ci-run", duration=900)
    assert keys.access_key_id.startswith("STS.")
    role_name = role.rsplit("/", 1)[1]
    assert body.assumed_role_user.arn == f"acs:ram::{ACCOUNT_ID}:role/{role_name}/ci-run"
    assert body.assumed_role_user.assumed_role_id.endswith(":ci-run")
    expires = calendar.timegm(time.strptime(body.credentials.expiration, "%Y-%m-%dT%H:%M:%SZ"))
    assert 800 < expires - time.time() <= 905

    assert invoke(world.addr, keys, world.svc, "prod") == "hello from f"
    denied(world.addr, keys, do_invoke, world.svc)
    denied(world.addr, keys, do_invoke, world.other, "prod")
    denied(world.addr, keys, do_update, world.svc)

    # The classic SDK sends the token as x-fc-security-token (2016-08-15 paths, svc.prod).
    classic = classic_client(world.addr, keys)
    resp = classic.invoke_function(world.svc, "f", payload=b"{}", qualifier="prod")
    assert resp.data == b"hello from f"
    with pytest.raises(FcError) as excinfo:
        classic.invoke_function(world.svc, "f", payload=b"{}")
    assert excinfo.value.status_code == 403 and excinfo.value.err_code == "AccessDenied"


def test_session_policy_narrows_the_role(world: World, iam: RamFixture):
    role = iam.role(trust_document(ROOT_ARN), policy_document(allow("fc:*", "*")))
    user = sts_user(iam)
    narrow = policy_document(allow("fc:InvokeFunction", prod_functions(world.other)))
    keys, _ = assume_role(world.addr, user.keys, role, policy=narrow)
    assert invoke(world.addr, keys, world.other, "prod") == "hello from f"
    denied(world.addr, keys, do_invoke, world.svc, "prod")
    denied(world.addr, keys, do_get_service, world.other)
    # A session policy cannot widen the role.
    small_role = iam.role(
        trust_document(ROOT_ARN),
        policy_document(allow("fc:InvokeFunction", prod_functions(world.svc))),
    )
    keys, _ = assume_role(world.addr, user.keys, small_role, policy=policy_document(allow("fc:*", "*")))
    denied(world.addr, keys, do_invoke, world.other, "prod")
    assert invoke(world.addr, keys, world.svc, "prod") == "hello from f"


def test_assume_role_refusals(world: World, iam: RamFixture):
    role = iam.role(trust_document(ROOT_ARN), max_session_duration=3600)
    user = sts_user(iam)
    sts = sts_client(world.addr, user.keys)

    def assume(**kwargs):
        kwargs.setdefault("role_arn", role)
        kwargs.setdefault("role_session_name", "s1")
        return sts.assume_role(sm.AssumeRoleRequest(**kwargs))

    # The account's own key cannot assume roles.
    expect_rpc_error(
        "NoPermission",
        403,
        sts_client(world.addr).assume_role,
        sm.AssumeRoleRequest(role_arn=role, role_session_name="s1"),
    )
    # A user without sts:AssumeRole.
    plain = iam.user()
    expect_rpc_error(
        "NoPermission",
        403,
        sts_client(world.addr, plain.keys).assume_role,
        sm.AssumeRoleRequest(role_arn=role, role_session_name="s1"),
    )
    # A role that trusts someone else.
    picky = iam.role(trust_document(f"acs:ram::{ACCOUNT_ID}:user/{unique('someone')}"))
    expect_rpc_error("NoPermission", 403, assume, role_arn=picky)
    # A role trusting exactly this user.
    mine = iam.role(trust_document(user.arn))
    assert assume(role_arn=mine).body.credentials.security_token

    expect_rpc_error("EntityNotExist.Role", 404, assume, role_arn=f"acs:ram::{ACCOUNT_ID}:role/{unique('ghost')}")
    expect_rpc_error("InvalidParameter.RoleArn", 400, assume, role_arn="acs:ram::x:user/y")
    expect_rpc_error("InvalidParameter.DurationSeconds", 400, assume, duration_seconds=3601)
    expect_rpc_error("InvalidParameter.RoleSessionName", 400, assume, role_session_name="a b")
    expect_rpc_error("MissingParameter", 400, assume, role_session_name=None)
    big = policy_document(*[allow("fc:InvokeFunction", f"acs:fc:*:*:services/s{i}/functions/*") for i in range(40)])
    assert len(big) > 2048
    expect_rpc_error("InvalidParameter.PolicySize", 400, assume, policy=big)
    expect_rpc_error("InvalidParameter.PolicyGrammar", 400, assume, policy='{"Version":"1"}')


def test_expired_token_is_refused(world: World, iam: RamFixture):
    role = iam.role(
        trust_document(ROOT_ARN),
        policy_document(allow("fc:InvokeFunction", prod_functions(world.svc))),
    )
    user = sts_user(iam)
    keys, body = assume_role(world.addr, user.keys, role, duration=2)
    expires = calendar.timegm(time.strptime(body.credentials.expiration, "%Y-%m-%dT%H:%M:%SZ"))
    # Wait until the expiry has certainly passed (whole seconds on both sides).
    while time.time() < expires + 1.5:
        time.sleep(0.2)
    expect_fc_error(
        "InvalidSecurityToken.Expired",
        403,
        fc_client(world.addr, keys).invoke_function,
        world.svc,
        "f",
        fm.InvokeFunctionRequest(body=b"{}", qualifier="prod"),
    )
    expect_rpc_error("InvalidSecurityToken.Expired", 403, sts_client(world.addr, keys).get_caller_identity)
    with pytest.raises(FcError) as excinfo:
        classic_client(world.addr, keys).invoke_function(world.svc, "f", payload=b"{}", qualifier="prod")
    assert excinfo.value.status_code == 403
    assert excinfo.value.err_code == "InvalidSecurityToken.Expired"


def test_tampered_or_mismatched_token_is_refused(world: World, iam: RamFixture):
    role = iam.role(
        trust_document(ROOT_ARN),
        policy_document(allow("fc:InvokeFunction", prod_functions(world.svc))),
    )
    user = sts_user(iam)
    keys, _ = assume_role(world.addr, user.keys, role)
    other, _ = assume_role(world.addr, user.keys, role, session="s2")
    token = keys.security_token
    flip = lambda c: "A" if c != "A" else "B"  # noqa: E731
    tampered = [
        token[:-1] + flip(token[-1]),
        token[:-3] + flip(token[-3]) + token[-2:],
        token[: len(token) // 2] + flip(token[len(token) // 2]) + token[len(token) // 2 + 1 :],
        token[:-4],
    ]
    for bad in tampered:
        bad_keys = Keys(keys.access_key_id, keys.access_key_secret, bad)
        expect_fc_error(
            "InvalidSecurityToken.Malformed",
            403,
            fc_client(world.addr, bad_keys).invoke_function,
            world.svc,
            "f",
            fm.InvokeFunctionRequest(body=b"{}", qualifier="prod"),
        )
    # Another session's (valid) token with this session's key.
    swapped = Keys(keys.access_key_id, keys.access_key_secret, other.security_token)
    expect_fc_error(
        "InvalidSecurityToken.MismatchWithAccessKey",
        403,
        do_invoke,
        fc_client(world.addr, swapped),
        world.svc,
        "prod",
    )
    # A temporary key without its token.
    bare = Keys(keys.access_key_id, keys.access_key_secret)
    expect_fc_error("MissingSecurityToken", 403, do_invoke, fc_client(world.addr, bare), world.svc, "prod")
    # The genuine token still works.
    assert invoke(world.addr, keys, world.svc, "prod") == "hello from f"


def test_get_caller_identity(world: World, iam: RamFixture):
    root = sts_client(world.addr).get_caller_identity().body
    assert (root.identity_type, root.account_id, root.arn) == ("Account", ACCOUNT_ID, ROOT_ARN)
    assert root.user_id == ACCOUNT_ID and root.principal_id == ACCOUNT_ID

    user = sts_user(iam)
    me = sts_client(world.addr, user.keys).get_caller_identity().body
    assert (me.identity_type, me.account_id, me.arn) == ("RAMUser", ACCOUNT_ID, user.arn)
    assert me.user_id and me.principal_id == me.user_id and not me.role_id

    role = iam.role(trust_document(ROOT_ARN))
    keys, body = assume_role(world.addr, user.keys, role, session="who")
    it = sts_client(world.addr, keys).get_caller_identity().body
    role_name = role.rsplit("/", 1)[1]
    assert it.identity_type == "AssumedRoleUser" and it.account_id == ACCOUNT_ID
    assert it.arn == f"acs:ram::{ACCOUNT_ID}:assumed-role/{role_name}/who"
    assert it.principal_id == body.assumed_role_user.assumed_role_id
    assert it.role_id and it.principal_id.startswith(it.role_id + ":") and not it.user_id


def test_role_and_user_changes_reach_live_credentials(world: World, iam: RamFixture):
    """Temporary credentials carry no permissions of their own: the role's policies are
    evaluated at each request. A deleted access key is unknown at the next request."""
    role = iam.role(
        trust_document(ROOT_ARN),
        policy_document(allow("fc:InvokeFunction", prod_functions(world.svc))),
    )
    user = iam.user(system=("AliyunSTSAssumeRoleAccess", "AliyunFCInvocationAccess"))
    keys, _ = assume_role(world.addr, user.keys, role)
    assert invoke(world.addr, keys, world.svc, "prod") == "hello from f"
    role_name = role.rsplit("/", 1)[1]
    for p in iam.ram.list_policies_for_role(
        rm.ListPoliciesForRoleRequest(role_name=role_name)
    ).body.policies.policy:
        iam.ram.detach_policy_from_role(
            rm.DetachPolicyFromRoleRequest(
                policy_type=p.policy_type, policy_name=p.policy_name, role_name=role_name
            )
        )
    denied(world.addr, keys, do_invoke, world.svc, "prod")

    assert invoke(world.addr, user.keys, world.svc, "prod") == "hello from f"
    iam.ram.delete_access_key(
        rm.DeleteAccessKeyRequest(user_name=user.name, user_access_key_id=user.keys.access_key_id)
    )
    expect_fc_error("InvalidAccessKeyID", 403, do_invoke, fc_client(world.addr, user.keys), world.svc, "prod")


def test_cli_creates_and_deletes_a_user_through_the_ram_api(world: World, iam: RamFixture, tmp_path):
    """``fcd iam create-user``: user, custom policy from a file, a system policy, an access key
    — all through the server's RAM API with the account's key; ``delete-user`` undoes it."""
    policy = tmp_path / "invoke-prod.json"
    policy.write_text(policy_document(allow("fc:InvokeFunction", prod_functions(world.svc))))
    name = unique("cli")
    env = dict(os.environ, FCD_ACCESS_KEY_ID=ACCESS_KEY_ID, FCD_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET)
    base = [fcd_binary(), "iam", "--endpoint", world.addr, "--data-dir", str(tmp_path)]
    out = subprocess.run(
        base + ["create-user", "--name", name, "--policy-file", str(policy),
                "--system-policy", "AliyunSTSAssumeRoleAccess"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    iam.users.append(name)
    iam.policies.append(f"{name}-policy")
    created = json.loads(out.stdout)
    keys = Keys(created["AccessKeyId"], created["AccessKeySecret"])
    assert created["UserName"] == name
    assert [p["PolicyName"] for p in created["Policies"]] == [f"{name}-policy", "AliyunSTSAssumeRoleAccess"]
    assert invoke(world.addr, keys, world.svc, "prod") == "hello from f"
    denied(world.addr, keys, do_invoke, world.svc)

    again = subprocess.run(base + ["create-user", "--name", name], env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode != 0 and "EntityAlreadyExists.User" in again.stderr

    gone = subprocess.run(base + ["delete-user", "--name", name], env=env, capture_output=True,
                          text=True, timeout=60)
    assert gone.returncode == 0, gone.stderr
    expect_fc_error("InvalidAccessKeyID", 403, do_invoke, fc_client(world.addr, keys), world.svc, "prod")
