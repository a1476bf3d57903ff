//! `fcd iam …`: shortcuts for common RAM tasks. They are a convenience on top of the server's
//! own RAM API, not a second model: each command signs RAM calls with the account's key
//! (`FCD_ACCESS_KEY_ID`/`FCD_ACCESS_KEY_SECRET`, else `<data-dir>/credentials.json`) and sends
//! them to a running server, exactly as the RAM SDK would.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const RAM_VERSION: &str = "2015-05-01";

#[derive(Debug, Args)]
pub(crate) struct IamArgs {
    /// The server's data dir: where the account's credentials and the listen address are read
    /// from when not given otherwise.
    #[arg(
        long,
        env = "FCD_DATA_DIR",
        default_value = "./fcd-data",
        global = true
    )]
    data_dir: PathBuf,
    /// The server to talk to (`host:port`; default: the data dir's `listen-addr`, else
    /// 127.0.0.1:9000).
    #[arg(long, env = "FCD_ENDPOINT", global = true)]
    endpoint: Option<String>,
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
    endpoint: String,
    key_id: String,
    secret: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl RamCaller {
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()))
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_str(&self.endpoint)?);
        headers.insert("accept", HeaderValue::from_static("application/json"));
        headers.insert("x-acs-version", HeaderValue::from_static(RAM_VERSION));
        headers.insert("x-acs-action", HeaderValue::from_str(action)?);
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        fcd_sign::sign_acs3(
            &self.key_id,
            &self.secret,
            "POST",
            "/",
            &query,
            &mut headers,
            b"",
            SystemTime::now(),
            &hex::encode(nonce),
        )
        .map_err(|e| anyhow::anyhow!("signing {action}: {e}"))?;
        let uri = if query.is_empty() {
            format!("http://{}/", self.endpoint)
        } else {
            format!("http://{}/?{query}", self.endpoint)
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(Full::new(Bytes::new()))?;
        *req.headers_mut() = headers;
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .with_context(|| format!("{action}: no answer from {}", self.endpoint))?
            .with_context(|| format!("{action}: cannot reach fcd at {}", self.endpoint))?;
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

fn endpoint(args: &IamArgs) -> String {
    if let Some(e) = &args.endpoint {
        return e
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
    }
    std::fs::read_to_string(args.data_dir.join("listen-addr"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned())
}

pub(crate) async fn run(args: IamArgs) -> anyhow::Result<()> {
    let creds = crate::credentials::read(&args.data_dir)?;
    let ram = RamCaller {
        endpoint: endpoint(&args),
        key_id: creds.access_key_id,
        secret: creds.access_key_secret,
        client: Client::builder(TokioExecutor::new()).build_http(),
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
