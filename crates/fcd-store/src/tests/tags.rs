//! Tags and VPC bindings: set, overwrite, limit, untag, list by kind and page, and the
//! deletes that take them along.

use super::metadata::{func, svc};
use crate::tags::{TagKind, TagOwner, TaggedResource};
use crate::{MetadataStore, StoreError};

const SVC_ARN: &str = "acs:fc:r:acc:services/s";
const FN_ARN: &str = "acs:fc:r:acc:functions/s$f";

fn service_owner(s: &str) -> TagOwner {
    TagOwner {
        service: s.into(),
        function: None,
    }
}

fn function_owner(s: &str, f: &str) -> TagOwner {
    TagOwner {
        service: s.into(),
        function: Some(f.into()),
    }
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn tags_set_overwrite_limit_and_untag<S: MetadataStore>(s: S) {
    let owner = service_owner("s");
    assert!(matches!(
        s.tag_resource("acc", SVC_ARN, &owner, &kv(&[("a", "1")]), 3)
            .await,
        Err(StoreError::ParentNotFound)
    ));
    s.insert_service("acc", &svc("s")).await.unwrap();
    s.tag_resource("acc", SVC_ARN, &owner, &kv(&[("b", "2"), ("a", "1")]), 3)
        .await
        .unwrap();
    // A key it has takes the new value; the count stays.
    s.tag_resource("acc", SVC_ARN, &owner, &kv(&[("a", "x"), ("c", "3")]), 3)
        .await
        .unwrap();
    assert_eq!(
        s.resource_tags("acc", SVC_ARN).await.unwrap(),
        kv(&[("a", "x"), ("b", "2"), ("c", "3")])
    );
    // Over the limit: refused, and nothing of the request stays.
    assert!(matches!(
        s.tag_resource("acc", SVC_ARN, &owner, &kv(&[("a", "y"), ("d", "4")]), 3)
            .await,
        Err(StoreError::LimitExceeded(_))
    ));
    assert_eq!(s.resource_tags("acc", SVC_ARN).await.unwrap().len(), 3);
    assert_eq!(s.resource_tags("acc", SVC_ARN).await.unwrap()[0].1, "x");
    // Another account sees none of it.
    assert!(s.resource_tags("other", SVC_ARN).await.unwrap().is_empty());

    s.untag_resource("acc", SVC_ARN, Some(&["a".into(), "nope".into()]))
        .await
        .unwrap();
    assert_eq!(
        s.resource_tags("acc", SVC_ARN).await.unwrap(),
        kv(&[("b", "2"), ("c", "3")])
    );
    s.untag_resource("acc", SVC_ARN, None).await.unwrap();
    assert!(s.resource_tags("acc", SVC_ARN).await.unwrap().is_empty());
}

async fn tagged_resources_list_by_kind_and_page<S: MetadataStore>(s: S) {
    for name in ["s", "t", "u"] {
        s.insert_service("acc", &svc(name)).await.unwrap();
        let arn = format!("acs:fc:r:acc:services/{name}");
        s.tag_resource(
            "acc",
            &arn,
            &service_owner(name),
            &kv(&[("k2", name), ("k1", "v")]),
            20,
        )
        .await
        .unwrap();
    }
    s.insert_function("acc", "s", &func("f")).await.unwrap();
    assert!(matches!(
        s.tag_resource(
            "acc",
            "acs:fc:r:acc:functions/s$nope",
            &function_owner("s", "nope"),
            &kv(&[("a", "1")]),
            20
        )
        .await,
        Err(StoreError::ParentNotFound)
    ));
    s.tag_resource(
        "acc",
        FN_ARN,
        &function_owner("s", "f"),
        &kv(&[("a", "1")]),
        20,
    )
    .await
    .unwrap();

    let page = s
        .list_tagged_resources("acc", TagKind::Services, None, 2)
        .await
        .unwrap();
    assert_eq!(
        page,
        [
            TaggedResource {
                arn: "acs:fc:r:acc:services/s".into(),
                tags: kv(&[("k1", "v"), ("k2", "s")]),
            },
            TaggedResource {
                arn: "acs:fc:r:acc:services/t".into(),
                tags: kv(&[("k1", "v"), ("k2", "t")]),
            },
        ]
    );
    let rest = s
        .list_tagged_resources("acc", TagKind::Services, Some("acs:fc:r:acc:services/u"), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].arn, "acs:fc:r:acc:services/u");
    let functions = s
        .list_tagged_resources("acc", TagKind::Functions, None, 10)
        .await
        .unwrap();
    assert_eq!(
        functions,
        [TaggedResource {
            arn: FN_ARN.into(),
            tags: kv(&[("a", "1")]),
        }]
    );
    assert!(
        s.list_tagged_resources("other", TagKind::Services, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deletes_take_tags_and_bindings_along<S: MetadataStore>(s: S) {
    s.insert_service("acc", &svc("s")).await.unwrap();
    s.insert_function("acc", "s", &func("f")).await.unwrap();
    s.tag_resource("acc", SVC_ARN, &service_owner("s"), &kv(&[("a", "1")]), 20)
        .await
        .unwrap();
    s.tag_resource(
        "acc",
        FN_ARN,
        &function_owner("s", "f"),
        &kv(&[("b", "2")]),
        20,
    )
    .await
    .unwrap();
    s.put_vpc_binding("acc", "s", "vpc-1").await.unwrap();

    s.delete_function("acc", "s", "f").await.unwrap();
    assert!(s.resource_tags("acc", FN_ARN).await.unwrap().is_empty());
    assert_eq!(s.resource_tags("acc", SVC_ARN).await.unwrap().len(), 1);

    s.delete_service("acc", "s").await.unwrap();
    assert!(s.resource_tags("acc", SVC_ARN).await.unwrap().is_empty());
    // A new service of the same name starts bare.
    s.insert_service("acc", &svc("s")).await.unwrap();
    assert!(s.list_vpc_bindings("acc", "s").await.unwrap().is_empty());
    assert!(s.resource_tags("acc", SVC_ARN).await.unwrap().is_empty());
}

async fn vpc_bindings_put_list_delete<S: MetadataStore>(s: S) {
    assert!(matches!(
        s.put_vpc_binding("acc", "s", "vpc-1").await,
        Err(StoreError::ParentNotFound)
    ));
    s.insert_service("acc", &svc("s")).await.unwrap();
    s.put_vpc_binding("acc", "s", "vpc-2").await.unwrap();
    s.put_vpc_binding("acc", "s", "vpc-1").await.unwrap();
    // Binding again is no change.
    s.put_vpc_binding("acc", "s", "vpc-1").await.unwrap();
    assert_eq!(
        s.list_vpc_bindings("acc", "s").await.unwrap(),
        ["vpc-1", "vpc-2"]
    );
    assert!(s.list_vpc_bindings("other", "s").await.unwrap().is_empty());
    s.delete_vpc_binding("acc", "s", "vpc-1").await.unwrap();
    assert!(matches!(
        s.delete_vpc_binding("acc", "s", "vpc-1").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.list_vpc_bindings("acc", "s").await.unwrap(), ["vpc-2"]);
}

crate::tests::both_backends!(
    tags_set_overwrite_limit_and_untag,
    tagged_resources_list_by_kind_and_page,
    deletes_take_tags_and_bindings_along,
    vpc_bindings_put_list_delete
);
