"""RAM 2015-05-01 at fcd's own endpoint, through the unchanged ``alibabacloud-ram20150501``
SDK: users, access keys, custom and system policies, roles, attachments, RAM's quotas, its
duplicate and delete-conflict errors, paging with ``Marker``, and who may call RAM at all."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from alibabacloud_ram20150501 import models as rm
from alibabacloud_sts20150401 import models as sm
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

from fcdkit import ACCOUNT_ID, FcdServer, unique
from ramkit import (
    ROOT_ARN,
    Keys,
    RamFixture,
    allow,
    expect_rpc_error,
    policy_document,
    ram_client,
    sts_client,
    trust_document,
)

INVOKE_PROD = policy_document(
    allow("fc:InvokeFunction", "acs:fc:*:*:services/svc.prod/functions/*")
)


@pytest.fixture
def iam(fcd: FcdServer) -> Iterator[RamFixture]:
    fixture = RamFixture(fcd.addr)
    yield fixture
    fixture.cleanup()


def test_user_lifecycle(iam: RamFixture):
    ram = iam.ram
    name = unique("u")
    created = ram.create_user(
        rm.CreateUserRequest(
            user_name=name,
            display_name="CI bot",
            comments="deploys prod",
            email="ci@example.com",
            mobile_phone="86-18600000000",
        )
    )
    iam.users.append(name)
    assert created.status_code == 200
    user = created.body.user
    assert created.body.request_id
    assert (user.user_name, user.display_name, user.comments, user.email, user.mobile_phone) == (
        name,
        "CI bot",
        "deploys prod",
        "ci@example.com",
        "86-18600000000",
    )
    assert user.user_id.isdigit() and user.create_date.endswith("Z")

    got = ram.get_user(rm.GetUserRequest(user_name=name)).body.user
    assert (got.user_id, got.display_name, got.create_date) == (
        user.user_id,
        "CI bot",
        user.create_date,
    )
    assert got.update_date

    expect_rpc_error(
        "EntityAlreadyExists.User", 409, ram.create_user, rm.CreateUserRequest(user_name=name)
    )
    names = [u.user_name for u in _all_users(ram)]
    assert names.count(name) == 1

    ram.delete_user(rm.DeleteUserRequest(user_name=name))
    expect_rpc_error("EntityNotExist.User", 404, ram.get_user, rm.GetUserRequest(user_name=name))
    expect_rpc_error(
        "EntityNotExist.User", 404, ram.delete_user, rm.DeleteUserRequest(user_name=name)
    )
    # Without a display name, RAM shows the user name.
    other = unique("u")
    iam.users.append(other)
    assert ram.create_user(rm.CreateUserRequest(user_name=other)).body.user.display_name == other


@pytest.mark.parametrize(
    "name, code",
    [
        ("has space", "InvalidParameter.UserName.InvalidChars"),
        ("slash/no", "InvalidParameter.UserName.InvalidChars"),
        ("x" * 65, "InvalidParameter.UserName.Length"),
    ],
)
def test_user_names_follow_rams_rules(iam: RamFixture, name: str, code: str):
    expect_rpc_error(code, 400, iam.ram.create_user, rm.CreateUserRequest(user_name=name))


def test_missing_parameter(iam: RamFixture):
    expect_rpc_error("MissingParameter", 400, iam.ram.create_user, rm.CreateUserRequest())


def test_access_keys(fcd: FcdServer, iam: RamFixture):
    ram = iam.ram
    user = iam.user()  # one key already
    second = ram.create_access_key(rm.CreateAccessKeyRequest(user_name=user.name)).body.access_key
    assert second.status == "Active" and second.access_key_secret and second.create_date
    expect_rpc_error(
        "LimitExceeded.User.AccessKey",
        409,
        ram.create_access_key,
        rm.CreateAccessKeyRequest(user_name=user.name),
    )
    listed = ram.list_access_keys(rm.ListAccessKeysRequest(user_name=user.name)).body
    ids = sorted(k.access_key_id for k in listed.access_keys.access_key)
    assert ids == sorted([user.keys.access_key_id, second.access_key_id])
    # Secrets are shown once, at creation.
    raw = ram.list_access_keys(rm.ListAccessKeysRequest(user_name=user.name)).body.to_map()
    assert "AccessKeySecret" not in json.dumps(raw)

    expect_rpc_error(
        "DeleteConflict.User.AccessKey", 409, ram.delete_user, rm.DeleteUserRequest(user_name=user.name)
    )
    expect_rpc_error(
        "EntityNotExist.User.AccessKey",
        404,
        ram.delete_access_key,
        rm.DeleteAccessKeyRequest(user_name=user.name, user_access_key_id="LTAInotakey"),
    )
    expect_rpc_error(
        "EntityNotExist.User",
        404,
        ram.create_access_key,
        rm.CreateAccessKeyRequest(user_name=unique("ghost")),
    )

    # Both keys sign requests as the user; a deleted key is unknown at the next request.
    for keys in (user.keys, Keys(second.access_key_id, second.access_key_secret)):
        me = sts_client(fcd.addr, keys).get_caller_identity().body
        assert me.arn == user.arn
    ram.delete_access_key(
        rm.DeleteAccessKeyRequest(user_name=user.name, user_access_key_id=second.access_key_id)
    )
    expect_rpc_error(
        "InvalidAccessKeyId.NotFound",
        404,
        sts_client(fcd.addr, Keys(second.access_key_id, second.access_key_secret)).get_caller_identity,
    )
    # A wrong secret for a real key is a bad signature.
    expect_rpc_error(
        "SignatureDoesNotMatch",
        403,
        sts_client(fcd.addr, Keys(user.keys.access_key_id, "not-the-secret")).get_caller_identity,
    )


def test_custom_policies(iam: RamFixture):
    ram = iam.ram
    name = unique("p")
    created = ram.create_policy(
        rm.CreatePolicyRequest(policy_name=name, policy_document=INVOKE_PROD, description="invoke prod")
    ).body.policy
    iam.policies.append(name)
    assert (created.policy_name, created.policy_type, created.default_version, created.description) == (
        name,
        "Custom",
        "v1",
        "invoke prod",
    )
    got = ram.get_policy(rm.GetPolicyRequest(policy_name=name, policy_type="Custom")).body
    assert got.policy.attachment_count == 0
    assert got.default_policy_version.policy_document == INVOKE_PROD
    assert got.default_policy_version.is_default_version is True
    assert got.default_policy_version.version_id == "v1"

    expect_rpc_error(
        "EntityAlreadyExists.Policy",
        409,
        ram.create_policy,
        rm.CreatePolicyRequest(policy_name=name, policy_document=INVOKE_PROD),
    )
    for bad in ("not json", '{"Version":"1"}', '{"Version":"2","Statement":[]}',
                policy_document({"Effect": "Maybe", "Action": "fc:*", "Resource": "*"})):
        expect_rpc_error(
            "MalformedPolicyDocument",
            400,
            ram.create_policy,
            rm.CreatePolicyRequest(policy_name=unique("p"), policy_document=bad),
        )
    expect_rpc_error(
        "InvalidParameter.PolicyName.InvalidChars",
        400,
        ram.create_policy,
        rm.CreatePolicyRequest(policy_name="under_score", policy_document=INVOKE_PROD),
    )
    expect_rpc_error(
        "EntityNotExist.Policy",
        404,
        ram.get_policy,
        rm.GetPolicyRequest(policy_name=unique("ghost"), policy_type="Custom"),
    )
    expect_rpc_error(
        "InvalidParameter.PolicyType",
        400,
        ram.get_policy,
        rm.GetPolicyRequest(policy_name=name, policy_type="Managed"),
    )
    ram.delete_policy(rm.DeletePolicyRequest(policy_name=name))
    expect_rpc_error(
        "EntityNotExist.Policy", 404, ram.delete_policy, rm.DeletePolicyRequest(policy_name=name)
    )


def test_system_policies_are_built_in(iam: RamFixture):
    ram = iam.ram
    full = ram.get_policy(
        rm.GetPolicyRequest(policy_name="AliyunFCFullAccess", policy_type="System")
    ).body
    assert full.policy.policy_type == "System"
    doc = json.loads(full.default_policy_version.policy_document)
    assert doc["Statement"][0]["Action"] == "fc:*"
    system = _all_policies(ram, policy_type="System")
    assert {
        "AdministratorAccess",
        "AliyunFCFullAccess",
        "AliyunFCReadOnlyAccess",
        "AliyunFCInvocationAccess",
        "AliyunSTSAssumeRoleAccess",
    } <= {p.policy_name for p in system}
    assert all(p.policy_type == "System" for p in system)
    custom = iam.policy(INVOKE_PROD)
    listed = _all_policies(ram, policy_type="Custom")
    assert custom in {p.policy_name for p in listed}
    assert all(p.policy_type == "Custom" for p in listed)
    everything = {(p.policy_type, p.policy_name) for p in _all_policies(ram)}
    assert ("System", "AliyunFCFullAccess") in everything and ("Custom", custom) in everything


def test_attachments_quota_and_conflicts(iam: RamFixture):
    ram = iam.ram
    user = iam.user()
    policies = [iam.policy(INVOKE_PROD) for _ in range(6)]
    for p in policies[:5]:
        iam.attach_user(user.name, p)
    expect_rpc_error(
        "EntityAlreadyExists.User.Policy",
        409,
        iam.attach_user,
        user.name,
        policies[0],
    )
    expect_rpc_error("LimitExceeded.User.Policy", 409, iam.attach_user, user.name, policies[5])
    # System policies do not count against the five custom ones.
    iam.attach_user(user.name, "AliyunFCReadOnlyAccess", "System")
    attached = ram.list_policies_for_user(rm.ListPoliciesForUserRequest(user_name=user.name)).body
    got = [(p.policy_type, p.policy_name) for p in attached.policies.policy]
    assert got == [("Custom", p) for p in policies[:5]] + [("System", "AliyunFCReadOnlyAccess")]
    assert all(p.attach_date and p.default_version == "v1" for p in attached.policies.policy)
    count = ram.get_policy(rm.GetPolicyRequest(policy_name=policies[0], policy_type="Custom"))
    assert count.body.policy.attachment_count == 1

    expect_rpc_error("EntityNotExist.Policy", 404, iam.attach_user, user.name, unique("ghost"))
    expect_rpc_error("EntityNotExist.Policy", 404, iam.attach_user, user.name, "NoSuchSystem", "System")
    expect_rpc_error("EntityNotExist.User", 404, iam.attach_user, unique("ghost"), policies[5])
    expect_rpc_error("EntityNotExist.User.Policy", 404, iam.detach_user, user.name, policies[5])

    expect_rpc_error(
        "DeleteConflict.Policy.User", 409, ram.delete_policy, rm.DeletePolicyRequest(policy_name=policies[0])
    )
    ram.delete_access_key(
        rm.DeleteAccessKeyRequest(user_name=user.name, user_access_key_id=user.keys.access_key_id)
    )
    expect_rpc_error(
        "DeleteConflict.User.Policy", 409, ram.delete_user, rm.DeleteUserRequest(user_name=user.name)
    )
    # CascadingDelete (sent as "True" by Python) detaches the policy everywhere first.
    ram.delete_policy(rm.DeletePolicyRequest(policy_name=policies[0], cascading_delete=True))
    left = ram.list_policies_for_user(rm.ListPoliciesForUserRequest(user_name=user.name)).body
    assert policies[0] not in [p.policy_name for p in left.policies.policy]
    # ... which frees a slot.
    iam.attach_user(user.name, policies[5])


def test_roles(iam: RamFixture):
    ram = iam.ram
    name = unique("r")
    trust = trust_document(ROOT_ARN)
    role = ram.create_role(
        rm.CreateRoleRequest(role_name=name, assume_role_policy_document=trust, description="ci")
    ).body.role
    iam.roles.append(name)
    assert role.arn == f"acs:ram::{ACCOUNT_ID}:role/{name}"
    assert role.max_session_duration == 3600 and role.role_id.isdigit()
    got = ram.get_role(rm.GetRoleRequest(role_name=name)).body.role
    assert (got.assume_role_policy_document, got.description, got.arn) == (trust, "ci", role.arn)
    assert name in [r.role_name for r in _all_roles(ram)]

    expect_rpc_error(
        "EntityAlreadyExists.Role",
        409,
        ram.create_role,
        rm.CreateRoleRequest(role_name=name, assume_role_policy_document=trust),
    )
    expect_rpc_error(
        "MalformedPolicyDocument",
        400,
        ram.create_role,
        rm.CreateRoleRequest(role_name=unique("r"), assume_role_policy_document='{"Version":"1"}'),
    )
    for bad in (3599, 43201):
        expect_rpc_error(
            "InvalidParameter.MaxSessionDuration",
            400,
            ram.create_role,
            rm.CreateRoleRequest(
                role_name=unique("r"), assume_role_policy_document=trust, max_session_duration=bad
            ),
        )
    expect_rpc_error(
        "InvalidParameter.RoleName.InvalidChars",
        400,
        ram.create_role,
        rm.CreateRoleRequest(role_name="no_underscore", assume_role_policy_document=trust),
    )

    policy = iam.policy(INVOKE_PROD)
    attach = rm.AttachPolicyToRoleRequest(policy_type="Custom", policy_name=policy, role_name=name)
    ram.attach_policy_to_role(attach)
    expect_rpc_error("EntityAlreadyExists.Role.Policy", 409, ram.attach_policy_to_role, attach)
    listed = ram.list_policies_for_role(rm.ListPoliciesForRoleRequest(role_name=name)).body
    assert [p.policy_name for p in listed.policies.policy] == [policy]
    expect_rpc_error(
        "DeleteConflict.Role.Policy", 409, ram.delete_role, rm.DeleteRoleRequest(role_name=name)
    )
    expect_rpc_error(
        "DeleteConflict.Policy.Role", 409, ram.delete_policy, rm.DeletePolicyRequest(policy_name=policy)
    )
    detach = rm.DetachPolicyFromRoleRequest(policy_type="Custom", policy_name=policy, role_name=name)
    ram.detach_policy_from_role(detach)
    expect_rpc_error("EntityNotExist.Role.Policy", 404, ram.detach_policy_from_role, detach)
    ram.delete_role(rm.DeleteRoleRequest(role_name=name))
    expect_rpc_error("EntityNotExist.Role", 404, ram.get_role, rm.GetRoleRequest(role_name=name))
    expect_rpc_error(
        "EntityNotExist.Role",
        404,
        ram.list_policies_for_role,
        rm.ListPoliciesForRoleRequest(role_name=name),
    )


def test_listing_pages_with_marker(iam: RamFixture):
    ram = iam.ram
    prefix = unique("page")
    mine = [f"{prefix}-{i}" for i in range(5)]
    for name in mine:
        ram.create_user(rm.CreateUserRequest(user_name=name))
        iam.users.append(name)
    pages = _user_pages(ram, max_items=2)
    assert all(len(p) <= 2 for p in pages)
    seen = [n for p in pages for n in p]
    assert len(seen) == len(set(seen)), "a user appeared on two pages"
    assert [n for n in seen if n.startswith(prefix)] == mine
    expect_rpc_error(
        "InvalidParameter.MaxItems", 400, ram.list_users, rm.ListUsersRequest(max_items=1001)
    )


def test_only_the_account_may_call_ram(fcd: FcdServer, iam: RamFixture):
    """RAM users (even with AdministratorAccess) and assumed roles get NoPermission."""
    admin = iam.user(system=("AdministratorAccess",))
    as_user = ram_client(fcd.addr, admin.keys)
    expect_rpc_error("NoPermission", 403, as_user.list_users, rm.ListUsersRequest())
    expect_rpc_error("NoPermission", 403, as_user.create_user, rm.CreateUserRequest(user_name=unique("u")))
    role = iam.role(trust_document(ROOT_ARN), policy_document(allow("*", "*")))
    creds = sts_client(fcd.addr, admin.keys).assume_role(
        sm.AssumeRoleRequest(role_arn=role, role_session_name="admin")
    ).body.credentials
    as_role = ram_client(fcd.addr, Keys(creds.access_key_id, creds.access_key_secret, creds.security_token))
    expect_rpc_error("NoPermission", 403, as_role.get_user, rm.GetUserRequest(user_name=admin.name))


def test_unknown_action_and_version(iam: RamFixture):
    """Through the SDK's generic ``call_api``: an action RAM does not have, a version nobody
    serves."""
    ram = iam.ram

    def call(action: str, version: str):
        params = open_api_models.Params(
            action=action,
            version=version,
            protocol="HTTP",
            pathname="/",
            method="POST",
            auth_type="AK",
            style="RPC",
            req_body_type="formData",
            body_type="json",
        )
        return ram.call_api(params, open_api_models.OpenApiRequest(query={}), util_models.RuntimeOptions())

    expect_rpc_error("InvalidAction.NotFound", 404, call, "CreateGroup", "2015-05-01")
    expect_rpc_error("InvalidParameter", 400, call, "CreateUser", "2099-01-01")
    assert call("ListUsers", "2015-05-01")["statusCode"] == 200


def _user_pages(ram, max_items: int) -> list[list[str]]:
    pages, marker = [], None
    for _ in range(10_000):
        body = ram.list_users(rm.ListUsersRequest(marker=marker, max_items=max_items)).body
        pages.append([u.user_name for u in body.users.user])
        if not body.is_truncated:
            assert not body.marker
            return pages
        assert body.marker
        marker = body.marker
    raise AssertionError("paging did not end")


def _all_users(ram) -> list:
    out, marker = [], None
    while True:
        body = ram.list_users(rm.ListUsersRequest(marker=marker, max_items=1000)).body
        out += body.users.user
        if not body.is_truncated:
            return out
        marker = body.marker


def _all_roles(ram) -> list:
    out, marker = [], None
    while True:
        body = ram.list_roles(rm.ListRolesRequest(marker=marker, max_items=1000)).body
        out += body.roles.role
        if not body.is_truncated:
            return out
        marker = body.marker


def _all_policies(ram, policy_type=None) -> list:
    out, marker = [], None
    while True:
        body = ram.list_policies(
            rm.ListPoliciesRequest(policy_type=policy_type, marker=marker, max_items=2)
        ).body
        out += body.policies.policy
        if not body.is_truncated:
            return out
        marker = body.marker
