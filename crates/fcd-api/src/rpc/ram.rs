//! RAM 2015-05-01: parameters in, the SDK models' JSON out (spec/ram-sts.md 5.1).

use serde_json::{Value, json};

use fcd_control::iam::ram::{
    AttachedPolicy, Listing, NewRole, NewUser, Paging, PolicyInfo, policy_type,
};
use fcd_core::FcError;
use fcd_store::iam::{PolicyType, PrincipalKind, RamAccessKey, RamRole, RamUser};

use super::{Call, Obj, obj, s};
use crate::error::{ApiError, ApiResult};

pub(super) async fn call(c: &Call<'_>, action: &str) -> ApiResult<Obj> {
    let ram = c.state.iam.ram(c.principal)?;
    let p = &c.params;
    let out = match action {
        "CreateUser" => {
            let user = ram
                .create_user(NewUser {
                    user_name: p.string("UserName"),
                    display_name: p.opt("DisplayName"),
                    comments: p.opt("Comments"),
                    email: p.opt("Email"),
                    mobile_phone: p.opt("MobilePhone"),
                })
                .await?;
            obj([("User", user_json(&user, false))])
        }
        "GetUser" => {
            let user = ram.get_user(&p.string("UserName")).await?;
            obj([("User", user_json(&user, true))])
        }
        "ListUsers" => {
            let page = ram.list_users(&paging(c)?).await?;
            listing(page, "Users", "User", |u| user_json(u, true))
        }
        "DeleteUser" => {
            ram.delete_user(&p.string("UserName")).await?;
            Obj::new()
        }
        "CreateAccessKey" => {
            let key = ram.create_access_key(&user_for_keys(c)?).await?;
            obj([(
                "AccessKey",
                json!({
                    "AccessKeyId": key.access_key_id,
                    "AccessKeySecret": key.access_key_secret,
                    "Status": key.status,
                    "CreateDate": key.create_date,
                }),
            )])
        }
        "ListAccessKeys" => {
            let keys = ram.list_access_keys(&user_for_keys(c)?).await?;
            let keys: Vec<Value> = keys.iter().map(key_json).collect();
            obj([("AccessKeys", json!({ "AccessKey": keys }))])
        }
        "DeleteAccessKey" => {
            ram.delete_access_key(&user_for_keys(c)?, &p.string("UserAccessKeyId"))
                .await?;
            Obj::new()
        }
        "CreatePolicy" => {
            let policy = ram
                .create_policy(
                    &p.string("PolicyName"),
                    &p.string("PolicyDocument"),
                    p.get("Description"),
                )
                .await?;
            obj([(
                "Policy",
                json!({
                    "PolicyName": policy.policy_name,
                    "PolicyType": policy.policy_type.as_str(),
                    "Description": policy.description,
                    "DefaultVersion": policy.default_version,
                    "CreateDate": policy.create_date,
                }),
            )])
        }
        "GetPolicy" => {
            let t = required_type(c)?;
            let policy = ram.get_policy(&p.string("PolicyName"), t).await?;
            let mut body = policy_json(&policy);
            body.insert("PolicyDocument".into(), s(&policy.document));
            obj([
                (
                    "DefaultPolicyVersion",
                    json!({
                        "VersionId": policy.default_version,
                        "IsDefaultVersion": true,
                        "PolicyDocument": policy.document,
                        "CreateDate": policy.create_date,
                    }),
                ),
                ("Policy", Value::Object(body)),
            ])
        }
        "ListPolicies" => {
            let only = p.get("PolicyType").map(policy_type).transpose()?;
            let page = ram.list_policies(only, &paging(c)?).await?;
            listing(page, "Policies", "Policy", |p| {
                Value::Object(policy_json(p))
            })
        }
        "DeletePolicy" => {
            ram.delete_policy(&p.string("PolicyName"), p.bool("CascadingDelete")?)
                .await?;
            Obj::new()
        }
        "AttachPolicyToUser"
        | "DetachPolicyFromUser"
        | "AttachPolicyToRole"
        | "DetachPolicyFromRole" => {
            let (kind, principal) = if action.ends_with("User") {
                (PrincipalKind::User, p.string("UserName"))
            } else {
                (PrincipalKind::Role, p.string("RoleName"))
            };
            let t = required_type(c)?;
            let name = p.string("PolicyName");
            if action.starts_with("Attach") {
                ram.attach_policy(kind, &principal, t, &name).await?;
            } else {
                ram.detach_policy(kind, &principal, t, &name).await?;
            }
            Obj::new()
        }
        "ListPoliciesForUser" | "ListPoliciesForRole" => {
            let (kind, principal) = if action.ends_with("User") {
                (PrincipalKind::User, p.string("UserName"))
            } else {
                (PrincipalKind::Role, p.string("RoleName"))
            };
            let attached = ram.list_policies_for(kind, &principal).await?;
            let items: Vec<Value> = attached.iter().map(attached_json).collect();
            obj([("Policies", json!({ "Policy": items }))])
        }
        "CreateRole" => {
            let role = ram
                .create_role(NewRole {
                    role_name: p.string("RoleName"),
                    assume_role_policy_document: p.string("AssumeRolePolicyDocument"),
                    description: p.opt("Description"),
                    max_session_duration: p.u32("MaxSessionDuration")?,
                })
                .await?;
            obj([("Role", role_json(&role, true, false))])
        }
        "GetRole" => {
            let role = ram.get_role(&p.string("RoleName")).await?;
            obj([("Role", role_json(&role, true, true))])
        }
        "ListRoles" => {
            let page = ram.list_roles(&paging(c)?).await?;
            listing(page, "Roles", "Role", |r| role_json(r, false, true))
        }
        "DeleteRole" => {
            ram.delete_role(&p.string("RoleName")).await?;
            Obj::new()
        }
        other => return Err(ApiError(FcError::InvalidAction(other.to_owned()))),
    };
    Ok(out)
}

fn paging(c: &Call<'_>) -> ApiResult<Paging> {
    Ok(Paging {
        marker: c.params.opt("Marker"),
        max_items: c.params.u32("MaxItems")?,
    })
}

fn required_type(c: &Call<'_>) -> ApiResult<PolicyType> {
    let t = c
        .params
        .get("PolicyType")
        .ok_or_else(|| ApiError(FcError::MissingParameter("PolicyType".into())))?;
    Ok(policy_type(t)?)
}

/// The user whose keys an access-key call is about: `UserName`, required because only the
/// account's root (which has no user) calls RAM here.
fn user_for_keys(c: &Call<'_>) -> ApiResult<String> {
    c.params
        .opt("UserName")
        .ok_or_else(|| ApiError(FcError::MissingParameter("UserName".into())))
}

fn listing<T>(
    page: Listing<T>,
    outer: &'static str,
    inner: &'static str,
    render: impl Fn(&T) -> Value,
) -> Obj {
    let items: Vec<Value> = page.items.iter().map(render).collect();
    let mut out = obj([
        ("IsTruncated", Value::Bool(page.marker.is_some())),
        (outer, json!({ inner: items })),
    ]);
    if let Some(m) = page.marker {
        out.insert("Marker".into(), s(m));
    }
    out
}

fn user_json(u: &RamUser, full: bool) -> Value {
    let mut v = json!({
        "UserId": u.user_id,
        "UserName": u.user_name,
        "DisplayName": u.display_name,
        "CreateDate": u.create_date,
        "Comments": u.comments,
        "Email": u.email,
        "MobilePhone": u.mobile_phone,
    });
    if full {
        v["UpdateDate"] = s(&u.update_date);
    }
    v
}

fn key_json(k: &RamAccessKey) -> Value {
    json!({
        "AccessKeyId": k.access_key_id,
        "Status": k.status,
        "CreateDate": k.create_date,
    })
}

fn policy_json(p: &PolicyInfo) -> Obj {
    obj([
        ("PolicyName", s(&p.policy_name)),
        ("PolicyType", s(p.policy_type.as_str())),
        ("Description", s(&p.description)),
        ("DefaultVersion", s(&p.default_version)),
        ("AttachmentCount", json!(p.attachment_count)),
        ("CreateDate", s(&p.create_date)),
        ("UpdateDate", s(&p.update_date)),
    ])
}

fn attached_json(a: &AttachedPolicy) -> Value {
    json!({
        "PolicyName": a.policy.policy_name,
        "PolicyType": a.policy.policy_type.as_str(),
        "Description": a.policy.description,
        "DefaultVersion": a.policy.default_version,
        "AttachDate": a.attach_date,
    })
}

fn role_json(r: &RamRole, with_document: bool, with_update: bool) -> Value {
    let mut v = json!({
        "RoleId": r.role_id,
        "RoleName": r.role_name,
        "Arn": r.arn,
        "Description": r.description,
        "MaxSessionDuration": r.max_session_duration,
        "CreateDate": r.create_date,
    });
    if with_document {
        v["AssumeRolePolicyDocument"] = s(&r.assume_role_policy_document);
    }
    if with_update {
        v["UpdateDate"] = s(&r.update_date);
    }
    v
}
