//! RAM state: users, keys, policies, roles, attachments and the generation.

use crate::MetadataStore;
use crate::iam::{
    IamStoreError, PolicyType, PrincipalKind, RamAccessKey, RamAttachment, RamPolicy, RamRole,
    RamUser,
};

fn user(name: &str) -> RamUser {
    RamUser {
        user_id: format!("id-{name}"),
        user_name: name.into(),
        display_name: name.into(),
        comments: String::new(),
        email: String::new(),
        mobile_phone: String::new(),
        create_date: "2024-01-01T00:00:00Z".into(),
        update_date: "2024-01-01T00:00:00Z".into(),
    }
}

fn key(id: &str, user: &str) -> RamAccessKey {
    RamAccessKey {
        access_key_id: id.into(),
        access_key_secret: format!("secret-{id}"),
        user_name: user.into(),
        status: "Active".into(),
        create_date: "2024-01-01T00:00:00Z".into(),
    }
}

fn policy(name: &str) -> RamPolicy {
    RamPolicy {
        policy_name: name.into(),
        description: String::new(),
        document: "{}".into(),
        default_version: "v1".into(),
        create_date: "t".into(),
        update_date: "t".into(),
    }
}

fn role(name: &str) -> RamRole {
    RamRole {
        role_id: format!("rid-{name}"),
        role_name: name.into(),
        arn: format!("acs:ram::1:role/{name}"),
        assume_role_policy_document: "{}".into(),
        description: String::new(),
        max_session_duration: 3600,
        create_date: "t".into(),
        update_date: "t".into(),
    }
}

fn attach(kind: PrincipalKind, who: &str, t: PolicyType, name: &str) -> RamAttachment {
    RamAttachment {
        kind,
        principal: who.into(),
        policy_type: t,
        policy_name: name.into(),
        attach_date: "t".into(),
    }
}

fn is<T: std::fmt::Debug>(r: Result<T, IamStoreError>, want: &str) {
    let got = format!("{:?}", r.map(|_| ()).unwrap_err());
    assert!(got.contains(want), "{got} should be {want}");
}

async fn every_write_bumps_the_generation_and_the_state_reads_back<S: MetadataStore>(s: S) {
    let g0 = s.iam_generation().await.unwrap();
    s.create_ram_user("a", &user("ci")).await.unwrap();
    s.create_ram_access_key("a", &key("K1", "ci"), 2)
        .await
        .unwrap();
    s.create_ram_policy("a", &policy("p")).await.unwrap();
    s.create_ram_role("a", &role("r")).await.unwrap();
    s.attach_ram_policy(
        "a",
        &attach(PrincipalKind::User, "ci", PolicyType::Custom, "p"),
        5,
    )
    .await
    .unwrap();
    s.attach_ram_policy(
        "a",
        &attach(
            PrincipalKind::Role,
            "r",
            PolicyType::System,
            "AliyunFCFullAccess",
        ),
        5,
    )
    .await
    .unwrap();
    let g1 = s.iam_generation().await.unwrap();
    assert_eq!(g1, g0 + 6);
    // A refused write changes nothing.
    is(
        s.create_ram_user("a", &user("ci")).await,
        "AlreadyExists(User)",
    );
    assert_eq!(s.iam_generation().await.unwrap(), g1);

    let state = s.iam_state().await.unwrap();
    assert_eq!(state.generation, g1);
    let acct = &state.accounts["a"];
    assert_eq!(acct.users, vec![user("ci")]);
    assert_eq!(acct.access_keys, vec![key("K1", "ci")]);
    assert_eq!(acct.policies, vec![policy("p")]);
    assert_eq!(acct.roles, vec![role("r")]);
    assert_eq!(acct.attachments.len(), 2);
    assert!(!state.accounts.contains_key("b"));
    // Accounts are separate namespaces.
    s.create_ram_user("b", &user("ci")).await.unwrap();
}

async fn quotas_and_conflicts<S: MetadataStore>(s: S) {
    is(
        s.create_ram_access_key("a", &key("K0", "nobody"), 2).await,
        "NotFound(User)",
    );
    s.create_ram_user("a", &user("u")).await.unwrap();
    s.create_ram_access_key("a", &key("K1", "u"), 2)
        .await
        .unwrap();
    is(
        s.create_ram_access_key("a", &key("K1", "u"), 2).await,
        "AlreadyExists(UserAccessKey)",
    );
    s.create_ram_access_key("a", &key("K2", "u"), 2)
        .await
        .unwrap();
    is(
        s.create_ram_access_key("a", &key("K3", "u"), 2).await,
        "LimitExceeded(UserAccessKey)",
    );
    is(
        s.delete_ram_user("a", "u").await,
        "DeleteConflict(UserAccessKey)",
    );
    is(
        s.delete_ram_access_key("a", "u", "K9").await,
        "NotFound(UserAccessKey)",
    );
    is(
        s.delete_ram_access_key("a", "x", "K1").await,
        "NotFound(User)",
    );
    s.delete_ram_access_key("a", "u", "K1").await.unwrap();
    s.delete_ram_access_key("a", "u", "K2").await.unwrap();

    for i in 0..6 {
        s.create_ram_policy("a", &policy(&format!("p{i}")))
            .await
            .unwrap();
    }
    for i in 0..5 {
        let a = attach(
            PrincipalKind::User,
            "u",
            PolicyType::Custom,
            &format!("p{i}"),
        );
        s.attach_ram_policy("a", &a, 5).await.unwrap();
    }
    let sixth = attach(PrincipalKind::User, "u", PolicyType::Custom, "p5");
    is(
        s.attach_ram_policy("a", &sixth, 5).await,
        "LimitExceeded(UserPolicy)",
    );
    // System policies do not count against the custom quota.
    let sys = attach(
        PrincipalKind::User,
        "u",
        PolicyType::System,
        "AdministratorAccess",
    );
    s.attach_ram_policy("a", &sys, 5).await.unwrap();
    is(
        s.attach_ram_policy("a", &sys, 5).await,
        "AlreadyExists(UserPolicy)",
    );
    let ghost = attach(PrincipalKind::User, "u", PolicyType::Custom, "ghost");
    is(
        s.attach_ram_policy("a", &ghost, 5).await,
        "NotFound(Policy)",
    );
    let nobody = attach(PrincipalKind::Role, "r", PolicyType::Custom, "p0");
    is(s.attach_ram_policy("a", &nobody, 5).await, "NotFound(Role)");

    is(
        s.delete_ram_user("a", "u").await,
        "DeleteConflict(UserPolicy)",
    );
    is(
        s.delete_ram_policy("a", "p0", false).await,
        "DeleteConflict(PolicyUser)",
    );
    s.create_ram_role("a", &role("r")).await.unwrap();
    s.attach_ram_policy(
        "a",
        &attach(PrincipalKind::Role, "r", PolicyType::Custom, "p5"),
        5,
    )
    .await
    .unwrap();
    is(
        s.delete_ram_policy("a", "p5", false).await,
        "DeleteConflict(PolicyRole)",
    );
    is(
        s.delete_ram_role("a", "r").await,
        "DeleteConflict(RolePolicy)",
    );
    // Cascading delete detaches everywhere.
    s.delete_ram_policy("a", "p5", true).await.unwrap();
    s.delete_ram_role("a", "r").await.unwrap();

    is(
        s.detach_ram_policy("a", PrincipalKind::User, "u", PolicyType::Custom, "p5")
            .await,
        "NotFound(Policy)",
    );
    for i in 0..5 {
        s.detach_ram_policy(
            "a",
            PrincipalKind::User,
            "u",
            PolicyType::Custom,
            &format!("p{i}"),
        )
        .await
        .unwrap();
    }
    is(
        s.detach_ram_policy("a", PrincipalKind::User, "u", PolicyType::Custom, "p0")
            .await,
        "NotFound(UserPolicy)",
    );
    s.detach_ram_policy(
        "a",
        PrincipalKind::User,
        "u",
        PolicyType::System,
        "AdministratorAccess",
    )
    .await
    .unwrap();
    s.delete_ram_user("a", "u").await.unwrap();
    is(s.delete_ram_user("a", "u").await, "NotFound(User)");
    let state = s.iam_state().await.unwrap();
    let acct = &state.accounts["a"];
    assert!(acct.users.is_empty() && acct.attachments.is_empty() && acct.roles.is_empty());
    assert_eq!(acct.policies.len(), 5);
}

/// The checks a write makes hold against concurrent writes (on PostgreSQL, through the write
/// lock; at READ COMMITTED alone, every writer would count the same keys and all would pass).
async fn concurrent_writes_see_each_other<S: MetadataStore + Clone>(s: S) {
    s.create_ram_user("a", &user("u")).await.unwrap();
    // Concurrent reads first, so the pool holds a connection for every writer and the writes
    // below really overlap.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.iam_state().await.map(|_| ()) })
        })
        .collect();
    for r in reads {
        r.await.unwrap().unwrap();
    }
    let writes: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_ram_access_key("a", &key(&format!("K{i}"), "u"), 2)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for w in writes {
        match w.await.unwrap() {
            Ok(()) => created += 1,
            Err(e) => assert!(
                format!("{e:?}").contains("LimitExceeded(UserAccessKey)"),
                "{e:?}"
            ),
        }
    }
    assert_eq!(created, 2);
    let state = s.iam_state().await.unwrap();
    assert_eq!(state.accounts["a"].access_keys.len(), 2);
}

crate::tests::both_backends!(
    every_write_bumps_the_generation_and_the_state_reads_back,
    quotas_and_conflicts,
    concurrent_writes_see_each_other,
);
