//! `fcd iam …`: shortcuts for common RAM tasks. They are a convenience on top of the server's
//! own RAM API, not a second model: each command signs RAM calls with the account's key
//! (`FCD_ACCESS_KEY_ID`/`FCD_ACCESS_KEY_SECRET`, else `<data-dir>/credentials.json`) and sends
//! them to a running server, exactly as the RAM SDK would.

use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use serde_json::{Value, json};

const RAM_VERSION: &str = "2015-05-01";

#[derive(Debug, Args)]
pub(crate) struct IamArgs {
    #[command(flatten)]
    server: crate::client::ServerArgs,
    #[command(subcommand)]
    command: IamCommand,
}

#[derive(Debug, Subcommand)]
enum IamCommand {
    /// Create a RAM user with an access key and, optionally, policies; prints the key as JSON.
    CreateUser {
        /// The user's name (1 to 64 of `A-Za-z0-9.-_`).
        #[arg(long)]
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        /// A policy document to create as a custom policy and attach to the user.
        #[arg(long)]
        policy_file: Option<PathBuf>,
        /// The name of that custom policy (default: `<name>-policy`).
        #[arg(long)]
        policy_name: Option<String>,
        /// A system policy to attach (repeatable), e.g. AliyunFCInvocationAccess.
        #[arg(long = "system-policy")]
        system_policies: Vec<String>,
    },
    /// Delete a RAM user: detach its policies, delete its access keys, then the user.
    DeleteUser {
        #[arg(long)]
        name: String,
    },
}

/// Signs and sends RAM calls to one server.
struct RamCaller {
    api: crate::client::Api,
}

impl RamCaller {
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()))
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert("x-acs-version", HeaderValue::from_static(RAM_VERSION));
        headers.insert("x-acs-action", HeaderValue::from_str(action)?);
        let resp = self
            .api
            .send(Method::POST, "/", &query, headers, Bytes::new())
            .await
            .with_context(|| action.to_owned())?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&body)
            .with_context(|| format!("{action}: the answer is not JSON"))?;
        if !status.is_success() {
            bail!(
                "{action}: {} {}: {}",
                status.as_u16(),
                value["Code"].as_str().unwrap_or("?"),
                value["Message"].as_str().unwrap_or("")
            );
        }
        Ok(value)
    }
}

pub(crate) async fn run(args: IamArgs) -> anyhow::Result<()> {
    let ram = RamCaller {
        api: crate::client::Api::new(&args.server)?,
    };
    match args.command {
        IamCommand::CreateUser {
            name,
            display_name,
            policy_file,
            policy_name,
            system_policies,
        } => {
            let document = policy_file
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
                })
                .transpose()?;
            let display = display_name.unwrap_or_default();
            ram.call(
                "CreateUser",
                &[
                    ("UserName", name.as_str()),
                    ("DisplayName", display.as_str()),
                ],
            )
            .await?;
            let mut attached = Vec::new();
            if let Some(document) = document {
                let policy = policy_name.unwrap_or_else(|| format!("{name}-policy"));
                ram.call(
                    "CreatePolicy",
                    &[
                        ("PolicyName", policy.as_str()),
                        ("PolicyDocument", document.as_str()),
                    ],
                )
                .await?;
                attach(&ram, &name, "Custom", &policy).await?;
                attached.push(json!({"PolicyType": "Custom", "PolicyName": policy}));
            }
            for policy in &system_policies {
                attach(&ram, &name, "System", policy).await?;
                attached.push(json!({"PolicyType": "System", "PolicyName": policy}));
            }
            let key = ram
                .call("CreateAccessKey", &[("UserName", name.as_str())])
                .await?;
            let out = json!({
                "UserName": name,
                "AccessKeyId": key["AccessKey"]["AccessKeyId"],
                "AccessKeySecret": key["AccessKey"]["AccessKeySecret"],
                "Policies": attached,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        IamCommand::DeleteUser { name } => {
            let user = [("UserName", name.as_str())];
            let policies = ram.call("ListPoliciesForUser", &user).await?;
            for p in policies["Policies"]["Policy"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let (t, n) = (
                    p["PolicyType"].as_str().unwrap_or_default(),
                    p["PolicyName"].as_str().unwrap_or_default(),
                );
                ram.call(
                    "DetachPolicyFromUser",
                    &[
                        ("UserName", name.as_str()),
                        ("PolicyType", t),
                        ("PolicyName", n),
                    ],
                )
                .await?;
            }
            let keys = ram.call("ListAccessKeys", &user).await?;
            for k in keys["AccessKeys"]["AccessKey"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let id = k["AccessKeyId"].as_str().unwrap_or_default();
                ram.call(
                    "DeleteAccessKey",
                    &[("UserName", name.as_str()), ("UserAccessKeyId", id)],
                )
                .await?;
            }
            ram.call("DeleteUser", &user).await?;
            println!("deleted user {name}");
        }
    }
    Ok(())
}

async fn attach(ram: &RamCaller, user: &str, t: &str, policy: &str) -> anyhow::Result<()> {
    ram.call(
        "AttachPolicyToUser",
        &[
            ("UserName", user),
            ("PolicyType", t),
            ("PolicyName", policy),
        ],
    )
    .await
    .map(|_| ())
}
