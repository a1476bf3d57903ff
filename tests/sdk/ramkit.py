"""Helpers for the access-control tests: RAM, STS and FC clients (optionally with STS
credentials) built the way users configure the official SDKs, RAM users with a key and
policies, and assertions on RPC-style errors.

SDKs: ``alibabacloud-ram20150501`` and ``alibabacloud-sts20150401`` (RPC style, ACS3 signed
at ``/``), ``alibabacloud-fc-open20210406`` and ``aliyun-fc2`` for the FC calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Optional

import fc2
import pytest
from alibabacloud_fc_open20210406.client import Client as FcClient
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_ram20150501.client import Client as RamClient
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import exceptions as openapi_exceptions
from alibabacloud_tea_openapi import models as open_api_models

from fcdkit import ACCESS_KEY_ID, ACCESS_KEY_SECRET, ACCOUNT_ID, REGION, unique

ROOT_ARN = f"acs:ram::{ACCOUNT_ID}:root"


@dataclass
class Keys:
    """An access key pair, optionally temporary (with its security token)."""

    access_key_id: str
    access_key_secret: str
    security_token: Optional[str] = None


ROOT = Keys(ACCESS_KEY_ID, ACCESS_KEY_SECRET)


def config(addr: str, keys: Keys) -> open_api_models.Config:
    return open_api_models.Config(
        access_key_id=keys.access_key_id,
        access_key_secret=keys.access_key_secret,
        security_token=keys.security_token,
        endpoint=addr,
        protocol="http",
        region_id=REGION,
        read_timeout=60_000,
    )


def ram_client(addr: str, keys: Keys = ROOT) -> RamClient:
    return RamClient(config(addr, keys))


def sts_client(addr: str, keys: Keys = ROOT) -> StsClient:
    return StsClient(config(addr, keys))


def fc_client(addr: str, keys: Keys = ROOT) -> FcClient:
    return FcClient(config(addr, keys))


def classic_client(addr: str, keys: Keys = ROOT) -> fc2.Client:
    return fc2.Client(
        endpoint="http://" + addr,
        accessKeyID=keys.access_key_id,
        accessKeySecret=keys.access_key_secret,
        securityToken=keys.security_token or "",
        Timeout=60,
    )


def policy_document(*statements: dict) -> str:
    return json.dumps({"Version": "1", "Statement": list(statements)})


def allow(action, resource, condition: Optional[dict] = None) -> dict:
    s = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        s["Condition"] = condition
    return s


def deny(action, resource) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


def trust_document(*principals: str, service: Optional[str] = None) -> str:
    principal: dict = {}
    if principals:
        principal["RAM"] = list(principals)
    if service:
        principal["Service"] = [service]
    return json.dumps(
        {
            "Version": "1",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal}],
        }
    )


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

RPC_ERROR_KEYS = ("RequestId", "HostId", "Code", "Message")


def expect_rpc_error(code: str, status: int, fn: Callable, *args, **kwargs):
    """Calls ``fn`` (a RAM or STS SDK call) and asserts the SDK raised ClientException with
    ``code`` and ``status`` from a body of RPC's error shape."""
    with pytest.raises(openapi_exceptions.AlibabaCloudException) as excinfo:
        fn(*args, **kwargs)
    err = excinfo.value
    if 400 <= status < 500:
        assert isinstance(err, openapi_exceptions.ClientException), f"{type(err)}: {err}"
    assert err.code == code, f"expected {code!r}, got {err.code!r} ({err})"
    assert err.status_code == status, f"expected HTTP {status}, got {err.status_code} ({err})"
    body = err.data
    for key in RPC_ERROR_KEYS:
        assert body.get(key), f"error body lacks {key!r}: {body!r}"
    assert body["Code"] == code, body
    return err


def expect_fc_error(code: str, status: int, fn: Callable, *args, **kwargs):
    """Calls ``fn`` (an FC 2021-04-06 SDK call) and asserts FC's error ``code``/``status``."""
    with pytest.raises(openapi_exceptions.AlibabaCloudException) as excinfo:
        fn(*args, **kwargs)
    err = excinfo.value
    assert err.code == code, f"expected {code!r}, got {err.code!r} ({err})"
    assert err.status_code == status, f"expected HTTP {status}, got {err.status_code} ({err})"
    assert err.data.get("ErrorCode") == code, err.data
    return err


# --------------------------------------------------------------------------------------------
# RAM users with keys and policies, cleaned up afterwards
# --------------------------------------------------------------------------------------------


@dataclass
class RamUser:
    name: str
    keys: Keys
    policies: list[str] = field(default_factory=list)

    @property
    def arn(self) -> str:
        return f"acs:ram::{ACCOUNT_ID}:user/{self.name}"


class RamFixture:
    """Creates RAM users, custom policies and roles through the root's RAM client and removes
    them (detaching first) at teardown."""

    def __init__(self, addr: str):
        self.addr = addr
        self.ram = ram_client(addr)
        self.users: list[str] = []
        self.policies: list[str] = []
        self.roles: list[str] = []

    def policy(self, document: str, name: Optional[str] = None) -> str:
        name = name or unique("p")
        self.ram.create_policy(
            ram_models.CreatePolicyRequest(policy_name=name, policy_document=document)
        )
        self.policies.append(name)
        return name

    def user(self, *documents: str, system: tuple[str, ...] = ()) -> RamUser:
        """A user with one access key, each of ``documents`` as a custom policy and the named
        system policies attached."""
        name = unique("u")
        self.ram.create_user(ram_models.CreateUserRequest(user_name=name))
        self.users.append(name)
        key = self.ram.create_access_key(ram_models.CreateAccessKeyRequest(user_name=name)).body
        user = RamUser(
            name, Keys(key.access_key.access_key_id, key.access_key.access_key_secret)
        )
        for doc in documents:
            self.attach_user(name, self.policy(doc))
        for sys in system:
            self.attach_user(name, sys, "System")
        return user

    def attach_user(self, user: str, policy: str, policy_type: str = "Custom") -> None:
        self.ram.attach_policy_to_user(
            ram_models.AttachPolicyToUserRequest(
                policy_type=policy_type, policy_name=policy, user_name=user
            )
        )

    def detach_user(self, user: str, policy: str, policy_type: str = "Custom") -> None:
        self.ram.detach_policy_from_user(
            ram_models.DetachPolicyFromUserRequest(
                policy_type=policy_type, policy_name=policy, user_name=user
            )
        )

    def role(self, trust: str, *documents: str, max_session_duration: Optional[int] = None) -> str:
        """A role with ``trust`` as its trust policy and ``documents`` attached; returns its ARN."""
        name = unique("r")
        resp = self.ram.create_role(
            ram_models.CreateRoleRequest(
                role_name=name,
                assume_role_policy_document=trust,
                max_session_duration=max_session_duration,
            )
        )
        self.roles.append(name)
        for doc in documents:
            self.ram.attach_policy_to_role(
                ram_models.AttachPolicyToRoleRequest(
                    policy_type="Custom", policy_name=self.policy(doc), role_name=name
                )
            )
        return resp.body.role.arn

    def cleanup(self) -> None:
        for user in self.users:
            _quietly(self._delete_user, user)
        for role in self.roles:
            _quietly(self._delete_role, role)
        for policy in self.policies:
            _quietly(
                self.ram.delete_policy,
                ram_models.DeletePolicyRequest(policy_name=policy, cascading_delete=True),
            )

    def _delete_user(self, name: str) -> None:
        for p in self.ram.list_policies_for_user(
            ram_models.ListPoliciesForUserRequest(user_name=name)
        ).body.policies.policy:
            self.detach_user(name, p.policy_name, p.policy_type)
        for k in self.ram.list_access_keys(
            ram_models.ListAccessKeysRequest(user_name=name)
        ).body.access_keys.access_key:
            self.ram.delete_access_key(
                ram_models.DeleteAccessKeyRequest(user_name=name, user_access_key_id=k.access_key_id)
            )
        self.ram.delete_user(ram_models.DeleteUserRequest(user_name=name))

    def _delete_role(self, name: str) -> None:
        for p in self.ram.list_policies_for_role(
            ram_models.ListPoliciesForRoleRequest(role_name=name)
        ).body.policies.policy:
            self.ram.detach_policy_from_role(
                ram_models.DetachPolicyFromRoleRequest(
                    policy_type=p.policy_type, policy_name=p.policy_name, role_name=name
                )
            )
        self.ram.delete_role(ram_models.DeleteRoleRequest(role_name=name))


def _quietly(fn: Callable, *args) -> None:
    try:
        fn(*args)
    except Exception:
        pass


def assume_role(
    addr: str,
    keys: Keys,
    role_arn: str,
    session: str = "s1",
    duration: Optional[int] = None,
    policy: Optional[str] = None,
) -> tuple[Keys, sts_models.AssumeRoleResponseBody]:
    body = sts_client(addr, keys).assume_role(
        sts_models.AssumeRoleRequest(
            role_arn=role_arn,
            role_session_name=session,
            duration_seconds=duration,
            policy=policy,
        )
    ).body
    c = body.credentials
    return Keys(c.access_key_id, c.access_key_secret, c.security_token), body
