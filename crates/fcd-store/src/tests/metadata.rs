//! The metadata store's services, functions, versions, aliases and configs.

use crate::{
    ListQuery, MetadataStore, ProvisionQuery, StoreError, StoredAlias, StoredFunction,
    StoredOnDemandConfig, StoredService,
};
use fcd_core::configs::ProvisionConfig;
use fcd_core::model::{CodeRef, Function, FunctionUpdate, Service, ServiceUpdate};
use fcd_core::versions::Alias;

pub(super) fn svc(name: &str) -> StoredService {
    StoredService {
        service: Service::create(
            "id".into(),
            name.into(),
            ServiceUpdate::default(),
            "t".into(),
        )
        .unwrap(),
        etag: format!("e-{name}"),
    }
}

pub(super) fn func(name: &str) -> StoredFunction {
    let u = FunctionUpdate {
        runtime: Some("custom".into()),
        ..Default::default()
    };
    let code = CodeRef {
        checksum: "1".into(),
        size: 1,
    };
    StoredFunction {
        function: Function::create("fid".into(), name.into(), u, code, "t".into()).unwrap(),
        code_digest: "d".into(),
        etag: "e1".into(),
    }
}

async fn services_crud_and_paging<S: MetadataStore + Clone>(s: S) {
    for n in ["b", "a", "c", "ab", "x_y"] {
        s.insert_service("acc", &svc(n)).await.unwrap();
    }
    assert!(matches!(
        s.insert_service("acc", &svc("a")).await,
        Err(StoreError::AlreadyExists)
    ));
    // Accounts are separate namespaces.
    s.insert_service("other", &svc("a")).await.unwrap();
    let q = ListQuery {
        prefix: Some("a".into()),
        from: None,
        limit: 10,
    };
    let names: Vec<_> = s
        .list_services("acc", &q)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.service.service_name)
        .collect();
    assert_eq!(names, ["a", "ab"]);
    // '_' is not a wildcard.
    let q = ListQuery {
        prefix: Some("x_".into()),
        from: None,
        limit: 10,
    };
    assert_eq!(s.list_services("acc", &q).await.unwrap().len(), 1);
    let q = ListQuery {
        prefix: None,
        from: Some("b".into()),
        limit: 2,
    };
    let names: Vec<_> = s
        .list_services("acc", &q)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.service.service_name)
        .collect();
    assert_eq!(names, ["b", "c"]);
}

async fn compare_and_swap_and_non_empty_delete<S: MetadataStore + Clone>(s: S) {
    s.insert_service("acc", &svc("s")).await.unwrap();
    let mut updated = svc("s");
    updated.etag = "e2".into();
    assert!(matches!(
        s.replace_service("acc", &updated, "stale").await,
        Err(StoreError::Conflict)
    ));
    s.replace_service("acc", &updated, "e-s").await.unwrap();
    s.insert_function("acc", "s", &func("f")).await.unwrap();
    assert!(matches!(
        s.insert_function("acc", "s", &func("f")).await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(matches!(
        s.insert_function("acc", "nope", &func("f")).await,
        Err(StoreError::ParentNotFound)
    ));
    assert!(matches!(
        s.delete_service("acc", "s").await,
        Err(StoreError::NotEmpty)
    ));
    assert!(s.get_function("acc", "s", "f").await.unwrap().is_some());
    s.delete_function("acc", "s", "f").await.unwrap();
    s.delete_service("acc", "s").await.unwrap();
    assert!(s.get_service("acc", "s").await.unwrap().is_none());
}

fn alias(name: &str, version: &str, extra: Option<(&str, f64)>) -> StoredAlias {
    let u = fcd_core::versions::AliasUpdate {
        version_id: Some(version.into()),
        additional_version_weight: extra.map(|(v, w)| [(v.to_string(), w)].into()),
        ..Default::default()
    };
    StoredAlias {
        alias: Alias::create(name.into(), u, "t".into()).unwrap(),
        etag: format!("a-{name}-{version}"),
    }
}

async fn versions_snapshot_and_aliases_guard_them<S: MetadataStore + Clone>(s: S) {
    let r = s.publish_version("acc", "s", "", "t", None).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    s.insert_service("acc", &svc("s")).await.unwrap();
    s.insert_function("acc", "s", &func("f")).await.unwrap();
    assert!(matches!(
        s.publish_version("acc", "s", "", "t", Some("stale")).await,
        Err(StoreError::Conflict)
    ));
    let v1 = s
        .publish_version("acc", "s", "first", "t", Some("e-s"))
        .await
        .unwrap();
    assert_eq!(v1.version_id, "1");
    assert!(
        matches!(s.publish_version("acc", "s", "", "t", None).await, Err(StoreError::NotChanged(v)) if v == "1")
    );
    let mut changed = func("f");
    changed.etag = "e2".into();
    changed.function.description = "v2".into();
    s.replace_function("acc", "s", &changed, "e1")
        .await
        .unwrap();
    let v2 = s.publish_version("acc", "s", "", "t", None).await.unwrap();
    assert_eq!(v2.version_id, "2");
    // The snapshot keeps what the function was.
    let snap = s.get_version("acc", "s", 1).await.unwrap().unwrap();
    assert_eq!(snap.functions[0].function.description, "");
    assert_eq!(snap.info.description, "first");

    assert!(matches!(
        s.insert_alias("acc", "s", &alias("prod", "3", None)).await,
        Err(StoreError::VersionMissing(v)) if v == "3"
    ));
    s.insert_alias("acc", "s", &alias("prod", "1", Some(("2", 0.1))))
        .await
        .unwrap();
    assert!(matches!(
        s.insert_alias("acc", "s", &alias("prod", "1", None)).await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(
        matches!(s.delete_version("acc", "s", 2).await, Err(StoreError::InUse(a)) if a == "prod")
    );
    assert!(matches!(
        s.delete_service("acc", "s").await,
        Err(StoreError::NotEmpty)
    ));

    let updated = alias("prod", "2", None);
    assert!(matches!(
        s.replace_alias("acc", "s", &updated, "wrong").await,
        Err(StoreError::Conflict)
    ));
    s.replace_alias("acc", "s", &updated, "a-prod-1")
        .await
        .unwrap();
    s.delete_version("acc", "s", 1).await.unwrap();
    let listed = s.list_versions("acc", "s", None, 10, true).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|v| v.version_id.as_str())
            .collect::<Vec<_>>(),
        ["2"]
    );

    // Numbers are never reused, even after a delete.
    let mut again = func("f");
    again.etag = "e3".into();
    s.replace_function("acc", "s", &again, "e2").await.unwrap();
    assert_eq!(
        s.publish_version("acc", "s", "", "t", None)
            .await
            .unwrap()
            .version_id,
        "3"
    );
    let asc = s
        .list_versions("acc", "s", Some(3), 10, false)
        .await
        .unwrap();
    assert_eq!(asc.len(), 1);
}

fn on_demand(service: &str, q: &str, f: &str, n: u32, etag: &str) -> StoredOnDemandConfig {
    StoredOnDemandConfig {
        config: fcd_core::configs::OnDemandConfig {
            service_name: service.into(),
            qualifier: q.into(),
            function_name: f.into(),
            maximum_instance_count: n,
        },
        etag: etag.into(),
    }
}

fn provision(service: &str, q: &str, f: &str, target: u32) -> ProvisionConfig {
    fcd_core::configs::ProvisionConfigUpdate {
        target: Some(i64::from(target)),
        ..Default::default()
    }
    .into_config(service, q, f)
    .unwrap()
}

async fn on_demand_configs_put_get_list_delete<S: MetadataStore + Clone>(s: S) {
    assert!(matches!(
        s.put_on_demand_config("acc", &on_demand("s", "LATEST", "f", 1, "e1"), None)
            .await,
        Err(StoreError::ParentNotFound)
    ));
    s.insert_service("acc", &svc("s")).await.unwrap();
    s.insert_service("acc", &svc("s-b")).await.unwrap();
    s.put_on_demand_config("acc", &on_demand("s", "LATEST", "f", 1, "e1"), None)
        .await
        .unwrap();
    let got = s
        .get_on_demand_config("acc", "s", "LATEST", "f")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.config.maximum_instance_count, 1);
    assert_eq!(got.etag, "e1");
    // Replace, guarded by the etag.
    assert!(matches!(
        s.put_on_demand_config("acc", &on_demand("s", "LATEST", "f", 2, "e2"), Some("old"))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.put_on_demand_config("acc", &on_demand("s", "prod", "f", 2, "e2"), Some("e1"))
            .await,
        Err(StoreError::Conflict)
    ));
    s.put_on_demand_config("acc", &on_demand("s", "LATEST", "f", 2, "e2"), Some("e1"))
        .await
        .unwrap();
    s.put_on_demand_config("acc", &on_demand("s", "prod", "f", 0, "e3"), None)
        .await
        .unwrap();
    s.put_on_demand_config("acc", &on_demand("s-b", "LATEST", "g", 5, "e4"), None)
        .await
        .unwrap();
    assert!(
        s.get_on_demand_config("other", "s", "LATEST", "f")
            .await
            .unwrap()
            .is_none()
    );

    // Listed by the resource name without its account: "s#" sorts before "s-b#" ('#' < '-').
    let all = |q: ListQuery| {
        let s = s.clone();
        async move {
            s.list_on_demand_configs("acc", &q)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.config.list_key())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        all(ListQuery {
            limit: 10,
            ..Default::default()
        })
        .await,
        ["s#LATEST#f", "s#prod#f", "s-b#LATEST#g"]
    );
    assert_eq!(
        all(ListQuery {
            prefix: Some("s#".into()),
            from: Some("s#m".into()),
            limit: 10,
        })
        .await,
        ["s#prod#f"]
    );
    assert_eq!(
        all(ListQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .len(),
        1
    );

    assert!(matches!(
        s.delete_on_demand_config("acc", "s", "LATEST", "f", Some("e1"))
            .await,
        Err(StoreError::Conflict)
    ));
    s.delete_on_demand_config("acc", "s", "LATEST", "f", Some("e2"))
        .await
        .unwrap();
    assert!(matches!(
        s.delete_on_demand_config("acc", "s", "LATEST", "f", None)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn provision_configs_put_get_list<S: MetadataStore + Clone>(s: S) {
    assert!(matches!(
        s.put_provision_config("acc", &provision("s", "prod", "f", 1))
            .await,
        Err(StoreError::ParentNotFound)
    ));
    s.insert_service("acc", &svc("s")).await.unwrap();
    s.insert_service("acc", &svc("t")).await.unwrap();
    s.insert_service("acc2", &svc("s")).await.unwrap();
    let mut with_actions = provision("s", "prod", "f", 2);
    with_actions.scheduled_actions = vec![fcd_core::configs::ScheduledAction {
        name: Some("morning".into()),
        target: Some(4),
        ..Default::default()
    }];
    with_actions.always_allocate_cpu = false;
    s.put_provision_config("acc", &with_actions).await.unwrap();
    assert_eq!(
        s.get_provision_config("acc", "s", "prod", "f")
            .await
            .unwrap()
            .unwrap(),
        with_actions
    );
    // A put replaces the whole config.
    s.put_provision_config("acc", &provision("s", "prod", "f", 3))
        .await
        .unwrap();
    let got = s
        .get_provision_config("acc", "s", "prod", "f")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.target, 3);
    assert!(got.scheduled_actions.is_empty());
    for (svc_name, q, f) in [("s", "1", "f"), ("s", "prod", "g"), ("t", "prod", "f")] {
        s.put_provision_config("acc", &provision(svc_name, q, f, 1))
            .await
            .unwrap();
    }
    s.put_provision_config("acc2", &provision("s", "prod", "f", 1))
        .await
        .unwrap();
    let list = |q: ProvisionQuery| {
        let s = s.clone();
        async move {
            s.list_provision_configs("acc", &q)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.resource("acc"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(ProvisionQuery {
            limit: 10,
            ..Default::default()
        })
        .await,
        ["acc#s#1#f", "acc#s#prod#f", "acc#s#prod#g", "acc#t#prod#f"]
    );
    assert_eq!(
        list(ProvisionQuery {
            service: Some("s".into()),
            qualifier: Some("prod".into()),
            limit: 10,
            ..Default::default()
        })
        .await,
        ["acc#s#prod#f", "acc#s#prod#g"]
    );
    assert_eq!(
        list(ProvisionQuery {
            from: Some(("s".into(), "prod".into(), "g".into())),
            limit: 1,
            ..Default::default()
        })
        .await,
        ["acc#s#prod#g"]
    );
    let all = s.all_provision_configs().await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all.iter().filter(|(a, _)| a == "acc2").count(), 1);

    // Target 0 without actions or policies removes the config.
    s.put_provision_config("acc", &provision("s", "1", "f", 0))
        .await
        .unwrap();
    assert!(
        s.get_provision_config("acc", "s", "1", "f")
            .await
            .unwrap()
            .is_none()
    );
    let mut kept = provision("s", "1", "f", 0);
    kept.scheduled_actions = vec![Default::default()];
    s.put_provision_config("acc", &kept).await.unwrap();
    assert_eq!(
        s.get_provision_config("acc", "s", "1", "f")
            .await
            .unwrap()
            .unwrap()
            .target,
        0
    );
}

/// The qualifiers of the on-demand configs left in account `acc`.
async fn on_demand_qualifiers(s: &impl MetadataStore) -> Vec<String> {
    s.list_on_demand_configs(
        "acc",
        &ListQuery {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.config.qualifier)
    .collect()
}

async fn deletes_take_their_configs_along_or_refuse<S: MetadataStore>(s: S) {
    s.insert_service("acc", &svc("s")).await.unwrap();
    s.insert_function("acc", "s", &func("f")).await.unwrap();
    s.publish_version("acc", "s", "", "t", None).await.unwrap();
    s.insert_alias("acc", "s", &alias("prod", "1", None))
        .await
        .unwrap();
    for q in ["LATEST", "prod", "1"] {
        s.put_on_demand_config("acc", &on_demand("s", q, "f", 1, "e"), None)
            .await
            .unwrap();
    }
    s.put_provision_config("acc", &provision("s", "prod", "f", 2))
        .await
        .unwrap();
    s.put_provision_config("acc", &provision("s", "1", "f", 1))
        .await
        .unwrap();

    // Deleting LATEST takes only its LATEST on-demand config.
    s.delete_function("acc", "s", "f").await.unwrap();
    assert_eq!(on_demand_qualifiers(&s).await, ["1", "prod"]);

    // Provisioned capacity blocks deleting the alias or version it is kept for.
    assert!(
        matches!(s.delete_alias("acc", "s", "prod").await, Err(StoreError::Provisioned(f)) if f == "f")
    );
    assert!(s.get_alias("acc", "s", "prod").await.unwrap().is_some());
    s.put_provision_config("acc", &provision("s", "prod", "f", 0))
        .await
        .unwrap();
    s.delete_alias("acc", "s", "prod").await.unwrap();
    assert_eq!(on_demand_qualifiers(&s).await, ["1"]);
    assert!(matches!(
        s.delete_version("acc", "s", 1).await,
        Err(StoreError::Provisioned(_))
    ));
    assert!(s.get_version("acc", "s", 1).await.unwrap().is_some());
    s.put_provision_config("acc", &provision("s", "1", "f", 0))
        .await
        .unwrap();
    s.delete_version("acc", "s", 1).await.unwrap();
    assert!(on_demand_qualifiers(&s).await.is_empty());

    // A service delete sweeps whatever configs remain under it.
    let mut leftover = provision("s", "9", "f", 0);
    leftover.target_tracking_policies = vec![Default::default()];
    s.put_provision_config("acc", &leftover).await.unwrap();
    s.put_on_demand_config("acc", &on_demand("s", "gone", "f", 1, "e"), None)
        .await
        .unwrap();
    s.delete_service("acc", "s").await.unwrap();
    assert!(s.all_provision_configs().await.unwrap().is_empty());
    s.insert_service("acc", &svc("s")).await.unwrap();
    assert!(on_demand_qualifiers(&s).await.is_empty());
}

async fn referenced_code_covers_functions_and_versions<S: MetadataStore>(s: S) {
    let digests = |v: &[&str]| v.iter().map(|d| (*d).to_owned()).collect();
    assert_eq!(s.referenced_code().await.unwrap(), digests(&[]));
    s.insert_service("acc", &svc("s")).await.unwrap();
    let mut f = func("f");
    f.code_digest = "old".into();
    s.insert_function("acc", "s", &f).await.unwrap();
    s.publish_version("acc", "s", "", "t", None).await.unwrap();
    let mut g = func("g");
    g.code_digest = "old".into();
    s.insert_function("acc", "s", &g).await.unwrap();
    f.code_digest = "new".into();
    f.etag = "e2".into();
    s.replace_function("acc", "s", &f, "e1").await.unwrap();
    assert_eq!(s.referenced_code().await.unwrap(), digests(&["old", "new"]));
    s.delete_function("acc", "s", "g").await.unwrap();
    // The version still runs the old code.
    assert_eq!(s.referenced_code().await.unwrap(), digests(&["old", "new"]));
    s.delete_version("acc", "s", 1).await.unwrap();
    assert_eq!(s.referenced_code().await.unwrap(), digests(&["new"]));
}

async fn referenced_images_cover_container_functions_and_versions<S: MetadataStore>(s: S) {
    let images = |v: &[&str]| v.iter().map(|d| (*d).to_owned()).collect();
    s.insert_service("acc", &svc("s")).await.unwrap();
    let container = |name: &str, image: &str| {
        let mut f = func(name);
        f.function.runtime = "custom-container".into();
        f.function.custom_container_config =
            serde_json::json!({ "image": image }).as_object().cloned();
        f
    };
    let mut f = container("f", "r.test:5000/app:v1");
    s.insert_function("acc", "s", &f).await.unwrap();
    // Another runtime's config naming an image is not a reference.
    let mut other = func("o");
    other.function.custom_container_config = serde_json::json!({ "image": "r.test/x:1" })
        .as_object()
        .cloned();
    s.insert_function("acc", "s", &other).await.unwrap();
    s.publish_version("acc", "s", "", "t", None).await.unwrap();
    f = container("f", "r.test:5000/app:v2");
    f.etag = "e2".into();
    s.replace_function("acc", "s", &f, "e1").await.unwrap();
    assert_eq!(
        s.referenced_images().await.unwrap(),
        images(&["r.test:5000/app:v1", "r.test:5000/app:v2"])
    );
    s.delete_version("acc", "s", 1).await.unwrap();
    assert_eq!(
        s.referenced_images().await.unwrap(),
        images(&["r.test:5000/app:v2"])
    );
}

crate::tests::both_backends!(
    referenced_images_cover_container_functions_and_versions,
    services_crud_and_paging,
    compare_and_swap_and_non_empty_delete,
    versions_snapshot_and_aliases_guard_them,
    on_demand_configs_put_get_list_delete,
    provision_configs_put_get_list,
    deletes_take_their_configs_along_or_refuse,
    referenced_code_covers_functions_and_versions
);
