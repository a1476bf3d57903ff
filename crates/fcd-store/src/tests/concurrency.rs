//! Concurrency configs: one per function, replaced in place, gone with the function.

use crate::concurrency::{ConcurrencyConfig, ConcurrencyQuery};
use crate::tests::triggers::with_function;
use crate::{MetadataStore, StoreError};

fn cfg(service: &str, function: &str, n: u32, time: &str) -> ConcurrencyConfig {
    ConcurrencyConfig {
        service: service.into(),
        function: function.into(),
        reserved_concurrency: n,
        created_time: time.into(),
        last_modified_time: time.into(),
    }
}

async fn concurrency_configs_crud_paging_and_cascade<S: MetadataStore>(s: S) {
    assert!(matches!(
        s.put_concurrency_config("acc", &cfg("s", "f", 1, "t1"))
            .await,
        Err(StoreError::ParentNotFound)
    ));
    with_function(&s, "acc", "s", "f").await;
    with_function(&s, "acc", "s", "g").await;
    with_function(&s, "acc", "~n", "n").await;
    with_function(&s, "other", "s", "f").await;

    let put = s
        .put_concurrency_config("acc", &cfg("s", "f", 0, "t1"))
        .await
        .unwrap();
    assert_eq!(put, cfg("s", "f", 0, "t1"));
    // A replace keeps the creation time.
    let put = s
        .put_concurrency_config("acc", &cfg("s", "f", 7, "t2"))
        .await
        .unwrap();
    assert_eq!(put.reserved_concurrency, 7);
    assert_eq!(put.created_time, "t1");
    assert_eq!(put.last_modified_time, "t2");
    assert_eq!(
        s.get_concurrency_config("acc", "s", "f").await.unwrap(),
        Some(put.clone())
    );
    assert_eq!(
        s.get_concurrency_config("acc", "s", "g").await.unwrap(),
        None
    );
    assert_eq!(
        s.get_concurrency_config("other", "s", "f").await.unwrap(),
        None
    );

    s.put_concurrency_config("acc", &cfg("s", "g", 2, "t3"))
        .await
        .unwrap();
    s.put_concurrency_config("acc", &cfg("~n", "n", 3, "t3"))
        .await
        .unwrap();
    s.put_concurrency_config("other", &cfg("s", "f", 9, "t3"))
        .await
        .unwrap();
    let names = |v: Vec<ConcurrencyConfig>| {
        v.into_iter()
            .map(|c| format!("{}/{}", c.service, c.function))
            .collect::<Vec<_>>()
    };
    let all = |limit| ConcurrencyQuery {
        limit,
        ..Default::default()
    };
    assert_eq!(
        names(s.list_concurrency_configs("acc", &all(10)).await.unwrap()),
        ["s/f", "s/g", "~n/n"]
    );
    assert_eq!(
        names(s.list_concurrency_configs("acc", &all(2)).await.unwrap()),
        ["s/f", "s/g"]
    );
    let from = ConcurrencyQuery {
        from: Some(("s".into(), "g".into())),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        names(s.list_concurrency_configs("acc", &from).await.unwrap()),
        ["s/g", "~n/n"]
    );
    let one = ConcurrencyQuery {
        service: Some("s".into()),
        function: Some("g".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        names(s.list_concurrency_configs("acc", &one).await.unwrap()),
        ["s/g"]
    );

    s.delete_concurrency_config("acc", "s", "g").await.unwrap();
    assert!(matches!(
        s.delete_concurrency_config("acc", "s", "g").await,
        Err(StoreError::NotFound)
    ));
    // Deleting the function takes its config with it.
    s.delete_function("acc", "s", "f").await.unwrap();
    assert_eq!(
        s.get_concurrency_config("acc", "s", "f").await.unwrap(),
        None
    );
    with_function(&s, "acc", "s", "f").await;
    assert_eq!(
        s.get_concurrency_config("acc", "s", "f").await.unwrap(),
        None
    );
    assert_eq!(
        s.get_concurrency_config("other", "s", "f")
            .await
            .unwrap()
            .map(|c| c.reserved_concurrency),
        Some(9)
    );
}

crate::tests::both_backends!(concurrency_configs_crud_paging_and_cascade);
