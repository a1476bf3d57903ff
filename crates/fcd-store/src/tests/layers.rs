//! Layer versions: numbering, listings, tombstones, ACL, and the packages kept for them.

use std::collections::HashSet;

use super::metadata::{func, svc};
use crate::{ListQuery, MetadataStore, StoreError};
use fcd_core::layers::LayerVersion;

fn layer(name: &str, digest: &str) -> LayerVersion {
    LayerVersion {
        layer_name: name.into(),
        version: 0,
        description: format!("{name} from {digest}"),
        compatible_runtime: vec!["python3.10".into()],
        license: String::new(),
        acl: 0,
        code_checksum: "1".into(),
        code_size: 1,
        code_digest: digest.into(),
        create_time: "t".into(),
    }
}

fn q(prefix: Option<&str>, from: Option<&str>, limit: u32) -> ListQuery {
    ListQuery {
        prefix: prefix.map(Into::into),
        from: from.map(Into::into),
        limit,
    }
}

fn versions(v: &[LayerVersion]) -> Vec<(String, u64)> {
    v.iter()
        .map(|l| (l.layer_name.clone(), l.version))
        .collect()
}

async fn versions_are_numbered_and_never_reused<S: MetadataStore>(s: S) {
    let v1 = s
        .publish_layer_version("acc", &layer("lib", "d1"))
        .await
        .unwrap();
    let v2 = s
        .publish_layer_version("acc", &layer("lib", "d2"))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    // Another account's layer of the same name counts on its own.
    let other = s
        .publish_layer_version("b", &layer("lib", "d3"))
        .await
        .unwrap();
    assert_eq!(other.version, 1);
    let got = s
        .get_layer_version("acc", "lib", 2, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, v2);
    assert!(
        s.get_layer_version("acc", "lib", 3, false)
            .await
            .unwrap()
            .is_none()
    );

    s.delete_layer_version("acc", "lib", 2).await.unwrap();
    assert!(matches!(
        s.delete_layer_version("acc", "lib", 2).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.get_layer_version("acc", "lib", 2, false)
            .await
            .unwrap()
            .is_none()
    );
    // The tombstone still answers for functions that use it.
    assert_eq!(
        s.get_layer_version("acc", "lib", 2, true)
            .await
            .unwrap()
            .unwrap()
            .code_digest,
        "d2"
    );
    // Deleting every version does not free the numbers.
    s.delete_layer_version("acc", "lib", 1).await.unwrap();
    let v3 = s
        .publish_layer_version("acc", &layer("lib", "d4"))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
}

async fn listings_show_live_versions<S: MetadataStore>(s: S) {
    for (name, n) in [("a-lib", 3), ("b-lib", 1), ("c-other", 2)] {
        for i in 0..n {
            s.publish_layer_version("acc", &layer(name, &format!("{name}{i}")))
                .await
                .unwrap();
        }
    }
    s.publish_layer_version("b", &layer("z", "z"))
        .await
        .unwrap();
    s.delete_layer_version("acc", "a-lib", 3).await.unwrap();
    s.delete_layer_version("acc", "b-lib", 1).await.unwrap();
    // The newest live version of each layer with one, by name.
    let all = s
        .list_layers("acc", &q(None, None, 10), false)
        .await
        .unwrap();
    assert_eq!(
        versions(&all),
        [("a-lib".to_owned(), 2), ("c-other".to_owned(), 2)]
    );
    let libs = s
        .list_layers("acc", &q(Some("a-"), None, 10), false)
        .await
        .unwrap();
    assert_eq!(versions(&libs), [("a-lib".to_owned(), 2)]);
    let page = s
        .list_layers("acc", &q(None, Some("b"), 1), false)
        .await
        .unwrap();
    assert_eq!(versions(&page), [("c-other".to_owned(), 2)]);

    let v = s.list_layer_versions("acc", "a-lib", 1, 10).await.unwrap();
    assert_eq!(
        versions(&v),
        [("a-lib".to_owned(), 1), ("a-lib".to_owned(), 2)]
    );
    let v = s.list_layer_versions("acc", "a-lib", 2, 1).await.unwrap();
    assert_eq!(versions(&v), [("a-lib".to_owned(), 2)]);
    assert!(
        s.list_layer_versions("acc", "nope", 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn acl_applies_to_every_version<S: MetadataStore>(s: S) {
    s.publish_layer_version("acc", &layer("lib", "d1"))
        .await
        .unwrap();
    s.publish_layer_version("acc", &layer("priv", "d2"))
        .await
        .unwrap();
    assert!(matches!(
        s.set_layer_acl("acc", "nope", 1).await,
        Err(StoreError::NotFound)
    ));
    s.set_layer_acl("acc", "lib", 1).await.unwrap();
    assert_eq!(
        s.get_layer_version("acc", "lib", 1, false)
            .await
            .unwrap()
            .unwrap()
            .acl,
        1
    );
    // A version published later has the layer's ACL too.
    assert_eq!(
        s.publish_layer_version("acc", &layer("lib", "d3"))
            .await
            .unwrap()
            .acl,
        1
    );
    let public = s
        .list_layers("acc", &q(None, None, 10), true)
        .await
        .unwrap();
    assert_eq!(versions(&public), [("lib".to_owned(), 2)]);
    s.set_layer_acl("acc", "lib", 0).await.unwrap();
    assert!(
        s.list_layers("acc", &q(None, None, 10), true)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn layer_packages_are_kept_while_named<S: MetadataStore>(s: S) {
    let digests = |v: &[&str]| {
        v.iter()
            .map(|d| (*d).to_owned())
            .collect::<HashSet<String>>()
    };
    s.publish_layer_version("acc", &layer("lib", "l1"))
        .await
        .unwrap();
    s.publish_layer_version("acc", &layer("lib", "l2"))
        .await
        .unwrap();
    s.publish_layer_version("acc", &layer("gone", "l3"))
        .await
        .unwrap();
    s.insert_service("acc", &svc("s")).await.unwrap();
    let mut f = func("f");
    f.code_digest = "code".into();
    f.function.layers = vec!["acs:fc:r:acc:layers/lib/versions/1".into()];
    s.insert_function("acc", "s", &f).await.unwrap();
    s.publish_version("acc", "s", "", "t", None).await.unwrap();
    assert_eq!(
        s.referenced_code().await.unwrap(),
        digests(&["code", "l1", "l2", "l3"])
    );
    // Deleted and named by nothing: collectable. Deleted but named by the function: kept.
    s.delete_layer_version("acc", "gone", 1).await.unwrap();
    s.delete_layer_version("acc", "lib", 1).await.unwrap();
    assert_eq!(
        s.referenced_code().await.unwrap(),
        digests(&["code", "l1", "l2"])
    );
    // Only the published version names it now (legacy ARN form on LATEST).
    f.function.layers = vec!["x#lib#2".into()];
    f.etag = "e2".into();
    s.replace_function("acc", "s", &f, "e1").await.unwrap();
    s.delete_layer_version("acc", "lib", 2).await.unwrap();
    assert_eq!(
        s.referenced_code().await.unwrap(),
        digests(&["code", "l1", "l2"])
    );
    s.delete_version("acc", "s", 1).await.unwrap();
    assert_eq!(s.referenced_code().await.unwrap(), digests(&["code", "l2"]));
}

crate::tests::both_backends!(
    versions_are_numbered_and_never_reused,
    listings_show_live_versions,
    acl_applies_to_every_version,
    layer_packages_are_kept_while_named
);
