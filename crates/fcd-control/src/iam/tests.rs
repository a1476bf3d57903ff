#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fcd_core::FcError;
use fcd_iam::{Decision, TokenKey};
use fcd_store::iam::{PolicyType, PrincipalKind, RamPolicy};
use fcd_store::{MetadataStore, SqliteStore};

use super::ram::{NewRole, NewUser, Paging};
use super::*;

const ACCOUNT: &str = "1234567890123456";
const ROOT_ID: &str = "rootKeyId";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    iam: Iam,
}

fn config(min: u64) -> IamConfig {
    IamConfig {
        region: "cn-hangzhou".into(),
        root_keys: vec![RootKey {
            access_key_id: ROOT_ID.into(),
            access_key_secret: "rootSecret".into(),
            account_id: ACCOUNT.into(),
        }],
        token_key: TokenKey::derive(b"test material"),
        min_session_duration_secs: min,
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MetadataStore> = Arc::new(
        SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap(),
    );
    let iam = Iam::new(store.clone(), config(MIN_SESSION_DURATION_SECS));
    Fixture {
        _dir: dir,
        store,
        iam,
    }
}

fn root() -> Principal {
    Principal::Root {
        account_id: ACCOUNT.into(),
    }
}

fn ctx() -> AuthContext {
    AuthContext {
        source_ip: Some("127.0.0.1".parse().unwrap()),
        now: SystemTime::now(),
        secure_transport: false,
    }
}

fn doc(effect: &str, action: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"{effect}","Action":"{action}","Resource":"{resource}"}}]}}"#
    )
}

fn trust_root() -> String {
    format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{{"RAM":["acs:ram::{ACCOUNT}:root"]}}}}]}}"#
    )
}

fn trust_fc() -> String {
    r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"Service":["fc.aliyuncs.com"]}}]}"#.into()
}

const PROD: &str = "acs:fc:cn-hangzhou:1234567890123456:services/svc.prod/functions/f";
const LATEST: &str = "acs:fc:cn-hangzhou:1234567890123456:services/svc.LATEST/functions/f";

impl Fixture {
    /// A user with one key and `documents` attached as custom policies; returns the key's
    /// credential as resolved.
    async fn user(&self, name: &str, documents: &[String]) -> (String, Credential) {
        let ram = self.iam.ram(&root()).unwrap();
        ram.create_user(NewUser {
            user_name: name.into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
        let key = ram.create_access_key(name).await.unwrap();
        for (i, d) in documents.iter().enumerate() {
            let p = format!("{name}-p{i}");
            ram.create_policy(&p, d, None).await.unwrap();
            ram.attach_policy(PrincipalKind::User, name, PolicyType::Custom, &p)
                .await
                .unwrap();
        }
        let cred = self
            .iam
            .resolve(&key.access_key_id, None, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(cred.secret, key.access_key_secret);
        (key.access_key_id, cred)
    }

    async fn role(&self, name: &str, trust: &str, documents: &[String]) -> String {
        let ram = self.iam.ram(&root()).unwrap();
        let role = ram
            .create_role(NewRole {
                role_name: name.into(),
                assume_role_policy_document: trust.into(),
                ..NewRole::default()
            })
            .await
            .unwrap();
        for (i, d) in documents.iter().enumerate() {
            let p = format!("{name}-p{i}");
            ram.create_policy(&p, d, None).await.unwrap();
            ram.attach_policy(PrincipalKind::Role, name, PolicyType::Custom, &p)
                .await
                .unwrap();
        }
        role.arn
    }

    async fn decide(&self, p: &Principal, action: &str, resource: &str) -> Decision {
        self.iam.decide(p, action, resource, &ctx()).await.unwrap()
    }
}

#[tokio::test]
async fn root_keys_resolve_without_the_store_and_may_do_everything() {
    let f = fixture().await;
    let cred = f
        .iam
        .resolve(ROOT_ID, None, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(cred.secret, "rootSecret");
    assert!(cred.principal.is_root());
    assert_eq!(cred.principal.arn(), format!("acs:ram::{ACCOUNT}:root"));
    assert_eq!(
        f.decide(&cred.principal, "fc:DeleteService", "anything")
            .await,
        Decision::Allow
    );
    let err = f
        .iam
        .resolve("LTAInobody", None, SystemTime::now())
        .await
        .unwrap_err();
    assert_eq!(err, FcError::InvalidAccessKeyId("LTAInobody".into()));
}

#[tokio::test]
async fn users_have_the_union_of_their_policies_and_deny_wins() {
    let f = fixture().await;
    let (_, cred) = f
        .user(
            "ci",
            &[
                doc(
                    "Allow",
                    "fc:InvokeFunction",
                    "acs:fc:*:*:services/svc.prod/functions/*",
                ),
                doc("Allow", "fc:Get*", "*"),
            ],
        )
        .await;
    let p = &cred.principal;
    assert!(matches!(p, Principal::User { user_name, .. } if user_name == "ci"));
    assert_eq!(
        f.decide(p, "fc:InvokeFunction", PROD).await,
        Decision::Allow
    );
    assert_eq!(
        f.decide(p, "fc:InvokeFunction", LATEST).await,
        Decision::ImplicitDeny
    );
    assert_eq!(f.decide(p, "fc:GetService", "x").await, Decision::Allow);
    let err = f
        .iam
        .authorize(p, "fc:UpdateFunction", PROD, &ctx())
        .await
        .unwrap_err();
    let FcError::AccessDenied(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("fc:UpdateFunction") && message.contains(PROD),
        "{message}"
    );
    assert!(
        message.contains("acs:ram::1234567890123456:user/ci"),
        "{message}"
    );

    // A Deny attached later wins at the very next decision.
    let ram = f.iam.ram(&root()).unwrap();
    ram.create_policy("no-prod", &doc("Deny", "fc:*", PROD), None)
        .await
        .unwrap();
    ram.attach_policy(PrincipalKind::User, "ci", PolicyType::Custom, "no-prod")
        .await
        .unwrap();
    assert_eq!(
        f.decide(p, "fc:InvokeFunction", PROD).await,
        Decision::ExplicitDeny
    );
    ram.detach_policy(PrincipalKind::User, "ci", PolicyType::Custom, "no-prod")
        .await
        .unwrap();
    assert_eq!(
        f.decide(p, "fc:InvokeFunction", PROD).await,
        Decision::Allow
    );
    // System policies attach by name.
    ram.attach_policy(
        PrincipalKind::User,
        "ci",
        PolicyType::System,
        "AliyunFCFullAccess",
    )
    .await
    .unwrap();
    assert_eq!(f.decide(p, "fc:DeleteService", "x").await, Decision::Allow);
}

#[tokio::test]
async fn a_deleted_key_or_user_stops_at_the_next_request() {
    let f = fixture().await;
    let (key_id, cred) = f.user("gone", &[doc("Allow", "fc:*", "*")]).await;
    let ram = f.iam.ram(&root()).unwrap();
    ram.delete_access_key("gone", &key_id).await.unwrap();
    let err = f
        .iam
        .resolve(&key_id, None, SystemTime::now())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidAccessKeyID");
    // A principal resolved before the user was deleted and re-created is not the new user.
    ram.detach_policy(PrincipalKind::User, "gone", PolicyType::Custom, "gone-p0")
        .await
        .unwrap();
    ram.delete_user("gone").await.unwrap();
    ram.create_user(NewUser {
        user_name: "gone".into(),
        ..NewUser::default()
    })
    .await
    .unwrap();
    ram.attach_policy(PrincipalKind::User, "gone", PolicyType::Custom, "gone-p0")
        .await
        .unwrap();
    assert_eq!(
        f.decide(&cred.principal, "fc:GetService", "x").await,
        Decision::ImplicitDeny
    );
}

#[tokio::test]
async fn another_node_sees_a_change_at_its_next_request() {
    let f = fixture().await;
    let other = Iam::new(f.store.clone(), config(MIN_SESSION_DURATION_SECS));
    let (key_id, cred) = f.user("shared", &[]).await;
    // The other node resolves the key too (its snapshot is loaded now).
    other
        .resolve(&key_id, None, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        other
            .decide(&cred.principal, "fc:GetService", "x", &ctx())
            .await
            .unwrap(),
        Decision::ImplicitDeny
    );
    f.iam
        .ram(&root())
        .unwrap()
        .attach_policy(
            PrincipalKind::User,
            "shared",
            PolicyType::System,
            "AliyunFCReadOnlyAccess",
        )
        .await
        .unwrap();
    assert_eq!(
        other
            .decide(&cred.principal, "fc:GetService", "x", &ctx())
            .await
            .unwrap(),
        Decision::Allow
    );
}

#[tokio::test]
async fn an_unreadable_stored_policy_denies_everything() {
    let f = fixture().await;
    let (_, cred) = f.user("broken", &[]).await;
    let ram = f.iam.ram(&root()).unwrap();
    ram.attach_policy(
        PrincipalKind::User,
        "broken",
        PolicyType::System,
        "AdministratorAccess",
    )
    .await
    .unwrap();
    assert_eq!(
        f.decide(&cred.principal, "fc:GetService", "x").await,
        Decision::Allow
    );
    // Written around the service layer's validation, as an older or newer version might have.
    f.store
        .create_ram_policy(
            ACCOUNT,
            &RamPolicy {
                policy_name: "garbled".into(),
                description: String::new(),
                document: "{not json".into(),
                default_version: "v1".into(),
                create_date: "t".into(),
                update_date: "t".into(),
            },
        )
        .await
        .unwrap();
    ram.attach_policy(PrincipalKind::User, "broken", PolicyType::Custom, "garbled")
        .await
        .unwrap();
    assert_eq!(
        f.decide(&cred.principal, "fc:GetService", "x").await,
        Decision::ImplicitDeny
    );
}

#[tokio::test]
async fn only_the_root_gets_ram() {
    let f = fixture().await;
    let (_, cred) = f.user("admin", &[doc("Allow", "*", "*")]).await;
    assert_eq!(
        f.iam.ram(&cred.principal).unwrap_err().code(),
        "NoPermission"
    );
}

#[tokio::test]
async fn ram_validation_and_paging() {
    let f = fixture().await;
    let ram = f.iam.ram(&root()).unwrap();
    let code = |e: FcError| e.code();
    let user = |name: &str| NewUser {
        user_name: name.into(),
        ..NewUser::default()
    };
    assert_eq!(
        code(ram.create_user(user("a b")).await.unwrap_err()),
        "InvalidParameter.UserName.InvalidChars"
    );
    assert_eq!(
        code(ram.create_user(user(&"x".repeat(65))).await.unwrap_err()),
        "InvalidParameter.UserName.Length"
    );
    assert_eq!(
        code(ram.create_user(user("")).await.unwrap_err()),
        "MissingParameter"
    );
    assert_eq!(
        code(ram.create_policy("p", "{}", None).await.unwrap_err()),
        "MalformedPolicyDocument"
    );
    let long = format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"fc:*","Resource":"{}"}}]}}"#,
        "x".repeat(6200)
    );
    assert_eq!(
        code(ram.create_policy("p", &long, None).await.unwrap_err()),
        "InvalidParameter.PolicyDocument.Length"
    );
    assert_eq!(
        code(
            ram.create_role(NewRole {
                role_name: "r".into(),
                assume_role_policy_document: trust_root(),
                max_session_duration: Some(100),
                ..NewRole::default()
            })
            .await
            .unwrap_err()
        ),
        "InvalidParameter.MaxSessionDuration"
    );

    for i in 0..5 {
        ram.create_user(user(&format!("u{i}"))).await.unwrap();
    }
    let mut marker = None;
    let mut seen = Vec::new();
    loop {
        let page = ram
            .list_users(&Paging {
                marker: marker.clone(),
                max_items: Some(2),
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|u| u.user_name));
        match page.marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, ["u0", "u1", "u2", "u3", "u4"]);
    assert_eq!(
        code(
            ram.list_users(&Paging {
                marker: None,
                max_items: Some(0)
            })
            .await
            .unwrap_err()
        ),
        "InvalidParameter.MaxItems"
    );
}

#[tokio::test]
async fn assume_role_gives_the_roles_permissions_narrowed_by_the_session_policy() {
    let f = fixture().await;
    let role = f
        .role(
            "ci-role",
            &trust_root(),
            &[doc("Allow", "fc:InvokeFunction", "*")],
        )
        .await;
    let (_, user) = f.user("ci", &[doc("Allow", "sts:AssumeRole", &role)]).await;
    let req = |policy: Option<String>| AssumeRoleRequest {
        role_arn: role.clone(),
        role_session_name: "run-1".into(),
        duration_seconds: Some(900),
        policy,
    };
    let assumed = f
        .iam
        .assume_role(&user.principal, req(None), &ctx())
        .await
        .unwrap();
    assert_eq!(
        assumed.arn,
        format!("acs:ram::{ACCOUNT}:role/ci-role/run-1")
    );
    assert!(assumed.assumed_role_id.ends_with(":run-1"));
    let creds = &assumed.credentials;
    assert!(creds.access_key_id.starts_with("STS."));
    let now = SystemTime::now();
    let expires_in = creds.expires_at - unix_secs(now);
    assert!((899..=900).contains(&expires_in), "{expires_in}");

    let session = f
        .iam
        .resolve(&creds.access_key_id, Some(&creds.security_token), now)
        .await
        .unwrap();
    assert_eq!(session.secret, creds.access_key_secret);
    let p = &session.principal;
    assert_eq!(
        p.arn(),
        format!("acs:ram::{ACCOUNT}:assumed-role/ci-role/run-1")
    );
    assert_eq!(
        f.decide(p, "fc:InvokeFunction", LATEST).await,
        Decision::Allow
    );
    assert_eq!(
        f.decide(p, "fc:GetService", "x").await,
        Decision::ImplicitDeny
    );
    let id = f.iam.caller_identity(p);
    assert_eq!(id.identity_type, "AssumedRoleUser");
    assert_eq!(id.principal_id, assumed.assumed_role_id);

    // Narrowed to prod by the session policy.
    let narrowed = f
        .iam
        .assume_role(
            &user.principal,
            req(Some(doc("Allow", "fc:*", PROD))),
            &ctx(),
        )
        .await
        .unwrap()
        .credentials;
    let p = f
        .iam
        .resolve(
            &narrowed.access_key_id,
            Some(&narrowed.security_token),
            SystemTime::now(),
        )
        .await
        .unwrap()
        .principal;
    assert_eq!(
        f.decide(&p, "fc:InvokeFunction", PROD).await,
        Decision::Allow
    );
    assert_eq!(
        f.decide(&p, "fc:InvokeFunction", LATEST).await,
        Decision::ImplicitDeny
    );

    // The token's problems, each with its own code.
    let code = |r: Result<Credential, FcError>| r.unwrap_err().code();
    assert_eq!(
        code(f.iam.resolve(&creds.access_key_id, None, now).await),
        "MissingSecurityToken"
    );
    assert_eq!(
        code(
            f.iam
                .resolve(
                    &creds.access_key_id,
                    Some(&creds.security_token),
                    now + Duration::from_secs(901)
                )
                .await
        ),
        "InvalidSecurityToken.Expired"
    );
    assert_eq!(
        code(
            f.iam
                .resolve(&narrowed.access_key_id, Some(&creds.security_token), now)
                .await
        ),
        "InvalidSecurityToken.MismatchWithAccessKey"
    );
    let mut tampered = creds.security_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        code(
            f.iam
                .resolve(&creds.access_key_id, Some(&tampered), now)
                .await
        ),
        "InvalidSecurityToken.Malformed"
    );
    // Another server's tokens are not this one's.
    let stranger = Iam::new(
        f.store.clone(),
        IamConfig {
            token_key: TokenKey::derive(b"other material"),
            ..config(MIN_SESSION_DURATION_SECS)
        },
    );
    assert_eq!(
        code(
            stranger
                .resolve(&creds.access_key_id, Some(&creds.security_token), now)
                .await
        ),
        "InvalidSecurityToken.Malformed"
    );

    // Taking the role's policy away (deleting it, detached everywhere) ends its sessions'
    // permissions at once.
    let ram = f.iam.ram(&root()).unwrap();
    ram.delete_policy("ci-role-p0", true).await.unwrap();
    assert_eq!(
        f.decide(&session.principal, "fc:InvokeFunction", LATEST)
            .await,
        Decision::ImplicitDeny
    );
}

#[tokio::test]
async fn assume_role_refusals() {
    let f = fixture().await;
    let role = f.role("r", &trust_root(), &[]).await;
    let (_, allowed) = f.user("ok", &[doc("Allow", "sts:AssumeRole", "*")]).await;
    let (_, plain) = f.user("plain", &[]).await;
    let req = |arn: &str, duration: Option<u64>, name: &str| AssumeRoleRequest {
        role_arn: arn.into(),
        role_session_name: name.into(),
        duration_seconds: duration,
        policy: None,
    };
    let code = |r: Result<AssumedRole, FcError>| r.unwrap_err().code();
    let c = ctx();
    assert_eq!(
        code(f.iam.assume_role(&root(), req(&role, None, "s1"), &c).await),
        "NoPermission"
    );
    assert_eq!(
        code(
            f.iam
                .assume_role(&plain.principal, req(&role, None, "s1"), &c)
                .await
        ),
        "NoPermission"
    );
    let p = &allowed.principal;
    assert_eq!(
        code(f.iam.assume_role(p, req(&role, Some(899), "s1"), &c).await),
        "InvalidParameter.DurationSeconds"
    );
    assert_eq!(
        code(f.iam.assume_role(p, req(&role, Some(3601), "s1"), &c).await),
        "InvalidParameter.DurationSeconds"
    );
    assert_eq!(
        code(
            f.iam
                .assume_role(p, req("acs:ram::1:role/nope", None, "s1"), &c)
                .await
        ),
        "EntityNotExist.Role"
    );
    assert_eq!(
        code(f.iam.assume_role(p, req("arn", None, "s1"), &c).await),
        "InvalidParameter.RoleArn"
    );
    assert_eq!(
        code(f.iam.assume_role(p, req(&role, None, "x"), &c).await),
        "InvalidParameter.RoleSessionName"
    );
    // A role trusting only someone else.
    let picky = f
        .role(
            "picky",
            &trust_root().replace(":root", ":user/someone"),
            &[],
        )
        .await;
    assert_eq!(
        code(f.iam.assume_role(p, req(&picky, None, "s1"), &c).await),
        "NoPermission"
    );
    // The default duration is an hour; the test-only minimum lowers the floor, nothing else.
    let ok = f
        .iam
        .assume_role(p, req(&role, None, "s1"), &c)
        .await
        .unwrap();
    assert_eq!(ok.credentials.expires_at - unix_secs(c.now), 3600);
    let short = Iam::new(f.store.clone(), config(1));
    let quick = short
        .assume_role(p, req(&role, Some(1), "s1"), &c)
        .await
        .unwrap();
    assert_eq!(quick.credentials.expires_at - unix_secs(c.now), 1);
    assert_eq!(
        code(short.assume_role(p, req(&role, Some(0), "s1"), &c).await),
        "InvalidParameter.DurationSeconds"
    );
}

#[tokio::test]
async fn function_credentials_need_a_role_that_trusts_fc() {
    let f = fixture().await;
    let missing = format!("acs:ram::{ACCOUNT}:role/nope");
    let err = f
        .iam
        .function_credentials(ACCOUNT, &missing)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AccessDenied");
    let untrusting = f.role("users-only", &trust_root(), &[]).await;
    let err = f
        .iam
        .function_credentials(ACCOUNT, &untrusting)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fc.aliyuncs.com"), "{err}");
    let err = f
        .iam
        .function_credentials("999", &untrusting)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AccessDenied");

    let role = f
        .role(
            "fn-role",
            &trust_fc(),
            &[doc("Allow", "fc:InvokeFunction", PROD)],
        )
        .await;
    let creds = f.iam.function_credentials(ACCOUNT, &role).await.unwrap();
    // Handed out again while they have life left.
    assert_eq!(
        f.iam.function_credentials(ACCOUNT, &role).await.unwrap(),
        creds
    );
    let p = f
        .iam
        .resolve(
            &creds.access_key_id,
            Some(&creds.security_token),
            SystemTime::now(),
        )
        .await
        .unwrap()
        .principal;
    assert_eq!(
        p.arn(),
        format!("acs:ram::{ACCOUNT}:assumed-role/fn-role/{FUNCTION_SESSION_NAME}")
    );
    assert_eq!(
        f.decide(&p, "fc:InvokeFunction", PROD).await,
        Decision::Allow
    );
    assert_eq!(
        f.decide(&p, "fc:UpdateFunction", PROD).await,
        Decision::ImplicitDeny
    );

    // A role deleted and re-created under the same name is another role: new credentials,
    // and the old ones act for nobody.
    let ram = f.iam.ram(&root()).unwrap();
    ram.detach_policy(
        PrincipalKind::Role,
        "fn-role",
        PolicyType::Custom,
        "fn-role-p0",
    )
    .await
    .unwrap();
    ram.delete_role("fn-role").await.unwrap();
    assert!(f.iam.function_credentials(ACCOUNT, &role).await.is_err());
    ram.create_role(NewRole {
        role_name: "fn-role".into(),
        assume_role_policy_document: trust_fc(),
        ..NewRole::default()
    })
    .await
    .unwrap();
    ram.attach_policy(
        PrincipalKind::Role,
        "fn-role",
        PolicyType::Custom,
        "fn-role-p0",
    )
    .await
    .unwrap();
    let fresh = f.iam.function_credentials(ACCOUNT, &role).await.unwrap();
    assert_ne!(fresh.access_key_id, creds.access_key_id);
    assert_eq!(
        f.decide(&p, "fc:InvokeFunction", PROD).await,
        Decision::ImplicitDeny
    );
}
