//! STS 2015-04-01: AssumeRole and GetCallerIdentity.

use serde_json::{Value, json};

use fcd_control::iam::{AssumeRoleRequest, format_unix};
use fcd_core::FcError;

use super::{Call, Obj, obj, s};
use crate::error::{ApiError, ApiResult};

pub(super) async fn call(c: &Call<'_>, action: &str) -> ApiResult<Obj> {
    let p = &c.params;
    match action {
        "AssumeRole" => {
            let req = AssumeRoleRequest {
                role_arn: p.string("RoleArn"),
                role_session_name: p.string("RoleSessionName"),
                duration_seconds: p.u64("DurationSeconds")?,
                policy: p.opt("Policy"),
            };
            let assumed = c.state.iam.assume_role(c.principal, req, &c.auth).await?;
            let creds = &assumed.credentials;
            let mut out = obj([
                (
                    "Credentials",
                    json!({
                        "AccessKeyId": creds.access_key_id,
                        "AccessKeySecret": creds.access_key_secret,
                        "SecurityToken": creds.security_token,
                        "Expiration": format_unix(creds.expires_at),
                    }),
                ),
                (
                    "AssumedRoleUser",
                    json!({
                        "Arn": assumed.arn,
                        "AssumedRoleId": assumed.assumed_role_id,
                    }),
                ),
            ]);
            if let Some(source) = p.opt("SourceIdentity") {
                out.insert("SourceIdentity".into(), s(source));
            }
            Ok(out)
        }
        "GetCallerIdentity" => {
            let id = c.state.iam.caller_identity(c.principal);
            let mut out = obj([
                ("IdentityType", s(id.identity_type)),
                ("AccountId", s(id.account_id)),
                ("PrincipalId", s(id.principal_id)),
                ("Arn", s(id.arn)),
            ]);
            if let Some(u) = id.user_id {
                out.insert("UserId".into(), s(u));
            }
            if let Some(r) = id.role_id {
                out.insert("RoleId".into(), Value::String(r));
            }
            Ok(out)
        }
        other => Err(ApiError(FcError::InvalidAction(other.to_owned()))),
    }
}
