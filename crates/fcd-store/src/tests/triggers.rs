//! Triggers and custom domains.

use crate::triggers::{StoredCustomDomain, StoredTrigger};
use crate::{ListQuery, MetadataStore, StoreError, StoredFunction, StoredService};
use fcd_core::domains::{CustomDomainInput, PathConfig, RouteConfig};
use fcd_core::model::{CodeRef, Function, FunctionUpdate, Service, ServiceUpdate};
use fcd_core::triggers::{Trigger, TriggerInput};
use serde_json::json;

pub(crate) async fn with_function(
    s: &impl MetadataStore,
    account: &str,
    service: &str,
    function: &str,
) {
    let svc = StoredService {
        service: Service::create(
            "id".into(),
            service.into(),
            ServiceUpdate::default(),
            "t".into(),
        )
        .unwrap(),
        etag: "se".into(),
    };
    // The service may already be there.
    let _ = s.insert_service(account, &svc).await;
    let u = FunctionUpdate {
        runtime: Some("custom".into()),
        ..Default::default()
    };
    let code = CodeRef {
        checksum: "1".into(),
        size: 1,
    };
    let f = StoredFunction {
        function: Function::create("fid".into(), function.into(), u, code, "t".into()).unwrap(),
        code_digest: "d".into(),
        etag: "fe".into(),
    };
    s.insert_function(account, service, &f).await.unwrap();
}

fn trigger(name: &str, kind: &str, qualifier: &str, etag: &str) -> StoredTrigger {
    let config = match kind {
        "http" => json!({"authType": "anonymous", "methods": ["GET"]}),
        _ => json!({"cronExpression": "@every 1m", "enable": true}),
    };
    let t = Trigger::create(
        format!("id-{name}"),
        TriggerInput {
            trigger_name: Some(name.into()),
            trigger_type: Some(kind.into()),
            qualifier: Some(qualifier.into()),
            trigger_config: Some(config),
            ..TriggerInput::default()
        },
        "t".into(),
    )
    .unwrap();
    StoredTrigger {
        trigger: t,
        etag: etag.into(),
    }
}

async fn triggers_crud_paging_and_rules<S: MetadataStore>(s: S) {
    assert!(matches!(
        s.insert_trigger("acc", "s", "f", &trigger("h", "http", "LATEST", "e1"))
            .await,
        Err(StoreError::ParentNotFound)
    ));
    with_function(&s, "acc", "s", "f").await;
    with_function(&s, "acc", "s", "g").await;
    s.insert_trigger("acc", "s", "f", &trigger("h", "http", "LATEST", "e1"))
        .await
        .unwrap();
    for kind in ["timer", "http"] {
        assert!(matches!(
            s.insert_trigger("acc", "s", "f", &trigger("h", kind, "LATEST", "e"))
                .await,
            Err(StoreError::AlreadyExists)
        ));
    }
    // One http trigger per qualifier; another qualifier or another function is fine.
    assert!(matches!(
        s.insert_trigger("acc", "s", "f", &trigger("h2", "http", "LATEST", "e"))
            .await,
        Err(StoreError::HttpTriggerExists(n)) if n == "h"
    ));
    s.insert_trigger("acc", "s", "f", &trigger("h2", "http", "prod", "e2"))
        .await
        .unwrap();
    s.insert_trigger("acc", "s", "g", &trigger("h", "http", "LATEST", "e3"))
        .await
        .unwrap();
    for n in ["t1", "t2", "t3"] {
        s.insert_trigger("acc", "s", "f", &trigger(n, "timer", "LATEST", "et"))
            .await
            .unwrap();
    }

    let got = s.get_trigger("acc", "s", "f", "h").await.unwrap().unwrap();
    assert_eq!(got.etag, "e1");
    assert_eq!(got.trigger.trigger_type, "http");
    assert!(
        s.get_trigger("other", "s", "f", "h")
            .await
            .unwrap()
            .is_none()
    );

    let names = |v: Vec<StoredTrigger>| {
        v.into_iter()
            .map(|t| t.trigger.trigger_name)
            .collect::<Vec<_>>()
    };
    let q = |prefix: Option<&str>, from: Option<&str>, limit| ListQuery {
        prefix: prefix.map(Into::into),
        from: from.map(Into::into),
        limit,
    };
    assert_eq!(
        names(
            s.list_triggers("acc", "s", "f", &q(None, None, 10))
                .await
                .unwrap()
        ),
        ["h", "h2", "t1", "t2", "t3"]
    );
    assert_eq!(
        names(
            s.list_triggers("acc", "s", "f", &q(Some("t"), Some("t2"), 1))
                .await
                .unwrap()
        ),
        ["t2"]
    );
    assert_eq!(
        names(
            s.find_triggers("acc", "s", "f", "http", "prod")
                .await
                .unwrap()
        ),
        ["h2"]
    );

    // Replace: etag-guarded, and moving h2 onto LATEST would give LATEST two http triggers.
    let moved = trigger("h2", "http", "LATEST", "e4");
    assert!(matches!(
        s.replace_trigger("acc", "s", "f", &moved, "stale").await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.replace_trigger("acc", "s", "f", &moved, "e2").await,
        Err(StoreError::HttpTriggerExists(n)) if n == "h"
    ));
    // Replacing a trigger with itself on its own qualifier is no clash.
    s.replace_trigger("acc", "s", "f", &trigger("h", "http", "LATEST", "e5"), "e1")
        .await
        .unwrap();
    assert!(matches!(
        s.replace_trigger(
            "acc",
            "s",
            "f",
            &trigger("nope", "timer", "LATEST", "x"),
            "x"
        )
        .await,
        Err(StoreError::NotFound)
    ));

    let timers = s.all_triggers("timer").await.unwrap();
    assert_eq!(timers.len(), 3);
    assert!(
        timers
            .iter()
            .all(|t| t.account == "acc" && t.service == "s" && t.function == "f")
    );

    // A function with triggers cannot be deleted; without them it can.
    assert!(matches!(
        s.delete_function("acc", "s", "f").await,
        Err(StoreError::NotEmpty)
    ));
    assert!(s.get_function("acc", "s", "f").await.unwrap().is_some());
    assert!(matches!(
        s.delete_trigger("acc", "s", "f", "h", Some("e1")).await,
        Err(StoreError::Conflict)
    ));
    s.delete_trigger("acc", "s", "f", "h", Some("e5"))
        .await
        .unwrap();
    for n in ["h2", "t1", "t2", "t3"] {
        s.delete_trigger("acc", "s", "f", n, None).await.unwrap();
    }
    assert!(matches!(
        s.delete_trigger("acc", "s", "f", "h", None).await,
        Err(StoreError::NotFound)
    ));
    s.delete_function("acc", "s", "f").await.unwrap();
    assert!(s.all_triggers("timer").await.unwrap().is_empty());
}

fn domain(account: &str, name: &str, etag: &str) -> StoredCustomDomain {
    let d = fcd_core::domains::CustomDomain::create(
        account.into(),
        CustomDomainInput {
            domain_name: Some(name.into()),
            route_config: Some(RouteConfig {
                routes: vec![PathConfig {
                    path: "/*".into(),
                    service_name: "s".into(),
                    function_name: "f".into(),
                    qualifier: String::new(),
                    methods: vec![],
                    rewrite_config: None,
                }],
            }),
            ..CustomDomainInput::default()
        },
        "t".into(),
    )
    .unwrap();
    StoredCustomDomain {
        domain: d,
        etag: etag.into(),
    }
}

async fn custom_domains_are_one_namespace<S: MetadataStore>(s: S) {
    s.insert_custom_domain(&domain("acc", "a.example.test", "e1"))
        .await
        .unwrap();
    s.insert_custom_domain(&domain("acc", "b.example.test", "e2"))
        .await
        .unwrap();
    s.insert_custom_domain(&domain("acc2", "c.example.test", "e3"))
        .await
        .unwrap();
    // Another account cannot take a name already in use.
    assert!(matches!(
        s.insert_custom_domain(&domain("acc2", "a.example.test", "e"))
            .await,
        Err(StoreError::AlreadyExists)
    ));
    let got = s
        .get_custom_domain("a.example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.domain.account_id, "acc");
    assert_eq!(got.domain.route_config.routes[0].qualifier, "LATEST");

    let names = |v: Vec<StoredCustomDomain>| {
        v.into_iter()
            .map(|d| d.domain.domain_name)
            .collect::<Vec<_>>()
    };
    let all = ListQuery {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        names(s.list_custom_domains("acc", &all).await.unwrap()),
        ["a.example.test", "b.example.test"]
    );
    let paged = ListQuery {
        prefix: Some("b.".into()),
        from: Some("b".into()),
        limit: 1,
    };
    assert_eq!(
        names(s.list_custom_domains("acc", &paged).await.unwrap()),
        ["b.example.test"]
    );
    assert_eq!(s.all_custom_domains().await.unwrap().len(), 3);

    // Replace is etag-guarded and cannot touch another account's domain.
    let mut changed = domain("acc", "a.example.test", "e4");
    changed.domain.route_config.routes[0].function_name = "g".into();
    assert!(matches!(
        s.replace_custom_domain(&changed, "stale").await,
        Err(StoreError::Conflict)
    ));
    s.replace_custom_domain(&changed, "e1").await.unwrap();
    assert!(matches!(
        s.replace_custom_domain(&domain("acc2", "a.example.test", "x"), "e4")
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_custom_domain("acc2", "a.example.test", None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_custom_domain("acc", "a.example.test", Some("e1"))
            .await,
        Err(StoreError::Conflict)
    ));
    s.delete_custom_domain("acc", "a.example.test", Some("e4"))
        .await
        .unwrap();
    assert!(
        s.get_custom_domain("a.example.test")
            .await
            .unwrap()
            .is_none()
    );
    // The name is free again, for any account.
    s.insert_custom_domain(&domain("acc2", "a.example.test", "e5"))
        .await
        .unwrap();
}

crate::tests::both_backends!(
    triggers_crud_paging_and_rules,
    custom_domains_are_one_namespace
);
