//! Code packages: the shared store on PostgreSQL, the local store as its cache, and collecting
//! what nothing references.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::metadata::{func, svc};
use crate::code::{CodeError, CodeStore, SharedPackages};
use crate::{MetadataStore, PgPackages};

fn zip_of(name: &str, body: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(body).unwrap();
    w.finish().unwrap().into_inner()
}

fn b64(z: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(z)
}

fn digest(z: &[u8]) -> String {
    hex::encode(Sha256::digest(z))
}

fn set(digests: &[&str]) -> HashSet<String> {
    digests.iter().map(|d| (*d).to_owned()).collect()
}

async fn shared() -> Option<(String, PgPackages)> {
    let (url, store) = super::postgres().await?;
    Some((url, store.packages()))
}

#[tokio::test]
async fn shared_packages_in_chunks() {
    let Some((url, p)) = shared().await else {
        return;
    };
    // Two and a half chunks of bytes that are not all alike.
    let big: Vec<u8> = (0..PgPackages::CHUNK * 5 / 2)
        .map(|i| (i % 251) as u8)
        .collect();
    let small = b"small".to_vec();
    p.put("b", &big).await.unwrap();
    p.put("a", &small).await.unwrap();
    // A second put keeps the bytes.
    p.put("a", &small).await.unwrap();
    assert_eq!(p.get("b").await.unwrap().unwrap(), big);
    assert_eq!(p.get("a").await.unwrap().unwrap(), small);
    assert!(p.get("c").await.unwrap().is_none());
    let listed: Vec<_> = p
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.digest)
        .collect();
    assert_eq!(listed, ["a", "b"]);
    assert!(p.delete("b").await.unwrap());
    assert!(!p.delete("b").await.unwrap());
    assert!(p.get("b").await.unwrap().is_none());
    // Concurrent puts of one package: one copy, complete.
    let puts: Vec<_> = (0..4)
        .map(|_| {
            let (p, big) = (p.clone(), big.clone());
            tokio::spawn(async move { p.put("b", &big).await })
        })
        .collect();
    for put in puts {
        put.await.unwrap().unwrap();
    }
    assert_eq!(p.get("b").await.unwrap().unwrap(), big);
    super::drop_database(&url).await;
}

#[tokio::test]
async fn a_node_fetches_what_another_put() {
    let Some((url, p)) = shared().await else {
        return;
    };
    let p: Arc<dyn SharedPackages> = Arc::new(p);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = CodeStore::open(dir_a.path().to_path_buf())
        .unwrap()
        .with_shared(p.clone());
    let b = CodeStore::open(dir_b.path().to_path_buf())
        .unwrap()
        .with_shared(p.clone());
    let z = zip_of("index.py", b"print(1)");
    let stored = a.put_base64(&b64(&z)).await.unwrap();
    // The shared copy exists once put returns.
    assert_eq!(p.get(&stored.digest).await.unwrap().unwrap(), z);
    assert!(!b.zip_path(&stored.digest).exists());
    let tree = b.ensure_extracted(&stored.digest).await.unwrap();
    assert_eq!(std::fs::read(tree.join("index.py")).unwrap(), b"print(1)");
    assert_eq!(std::fs::read(b.zip_path(&stored.digest)).unwrap(), z);
    // The zip alone, too (GetFunctionCode on a third node).
    let dir_c = tempfile::tempdir().unwrap();
    let c = CodeStore::open(dir_c.path().to_path_buf())
        .unwrap()
        .with_shared(p.clone());
    assert_eq!(
        std::fs::read(c.ensure_zip(&stored.digest).await.unwrap()).unwrap(),
        z
    );
    // Bytes that do not hash to their name are refused, and nothing is stored.
    let other = zip_of("index.py", b"print(2)");
    let wrong = digest(&zip_of("x", b"y"));
    p.put(&wrong, &other).await.unwrap();
    assert!(matches!(
        c.ensure_extracted(&wrong).await,
        Err(CodeError::Corrupt(d)) if d == wrong
    ));
    assert!(!c.dir(&wrong).exists() && !c.zip_path(&wrong).exists());
    assert!(matches!(
        c.ensure_extracted(&digest(b"nowhere")).await,
        Err(CodeError::Missing(_))
    ));
    super::drop_database(&url).await;
}

#[tokio::test]
async fn collect_keeps_referenced_in_use_and_young_packages() {
    let dir = tempfile::tempdir().unwrap();
    let store = CodeStore::open(dir.path().to_path_buf()).unwrap();
    let mut digests = Vec::new();
    for body in [b"1", b"2", b"3"] {
        let stored = store.put_base64(&b64(&zip_of("f", body))).await.unwrap();
        digests.push(stored.digest);
    }
    let (kept, running, unused) = (&digests[0], &digests[1], &digests[2]);
    let hour = Duration::from_secs(3600);
    // Everything is younger than an hour: nothing goes.
    let report = store
        .collect(&set(&[kept]), &set(&[running]), hour)
        .await
        .unwrap();
    assert!(report.local.is_empty() && report.shared.is_empty());
    // Two hours later (as far as the files say), the unused package goes — unless it was put
    // again meanwhile: a put refreshes its age.
    let two_hours_ago = std::time::SystemTime::now() - 2 * hour;
    for d in [kept, running, unused] {
        std::fs::File::options()
            .write(true)
            .open(store.zip_path(d))
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    store.put_base64(&b64(&zip_of("f", b"3"))).await.unwrap();
    let report = store
        .collect(&set(&[kept]), &set(&[running]), hour)
        .await
        .unwrap();
    assert!(report.local.is_empty(), "{report:?}");
    std::fs::File::options()
        .write(true)
        .open(store.zip_path(unused))
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let report = store
        .collect(&set(&[kept]), &set(&[running]), hour)
        .await
        .unwrap();
    assert_eq!(report.local, vec![unused.clone()]);
    assert!(!store.dir(unused).exists() && !store.zip_path(unused).exists());
    for d in [kept, running] {
        assert!(store.dir(d).is_dir() && store.zip_path(d).is_file());
    }
    // An extracted tree whose zip is gone is collected too.
    std::fs::remove_file(store.zip_path(running)).unwrap();
    let report = store
        .collect(&set(&[kept]), &set(&[]), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.local, vec![running.clone()]);
    assert!(!store.dir(running).exists());
}

#[tokio::test]
async fn collect_removes_shared_copies_nothing_references() {
    let Some((url, pg)) = super::postgres().await else {
        return;
    };
    let p: Arc<dyn SharedPackages> = Arc::new(pg.packages());
    let dir = tempfile::tempdir().unwrap();
    let store = CodeStore::open(dir.path().to_path_buf())
        .unwrap()
        .with_shared(p.clone());
    let used = store.put_base64(&b64(&zip_of("f", b"used"))).await.unwrap();
    let old = store.put_base64(&b64(&zip_of("f", b"old"))).await.unwrap();
    // A function references one package; a published version keeps the other.
    pg.insert_service("acc", &svc("s")).await.unwrap();
    let mut f = func("f");
    f.code_digest = old.digest.clone();
    pg.insert_function("acc", "s", &f).await.unwrap();
    pg.publish_version("acc", "s", "", "t", None).await.unwrap();
    let mut updated = f.clone();
    updated.code_digest = used.digest.clone();
    updated.etag = "e2".into();
    pg.replace_function("acc", "s", &updated, "e1")
        .await
        .unwrap();
    let referenced = pg.referenced_code().await.unwrap();
    assert_eq!(referenced, set(&[&used.digest, &old.digest]));
    let report = store
        .collect(&referenced, &set(&[]), Duration::ZERO)
        .await
        .unwrap();
    assert!(
        report.local.is_empty() && report.shared.is_empty(),
        "{report:?}"
    );

    // Once the version is gone, the old package is not referenced any more.
    pg.delete_version("acc", "s", 1).await.unwrap();
    let referenced = pg.referenced_code().await.unwrap();
    assert_eq!(referenced, set(&[&used.digest]));
    // Within the grace period it stays (a create may be about to reference it).
    let report = store
        .collect(&referenced, &set(&[]), Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(report.shared.is_empty());
    let report = store
        .collect(&referenced, &set(&[]), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.local, vec![old.digest.clone()]);
    assert_eq!(report.shared, vec![old.digest.clone()]);
    assert!(p.get(&old.digest).await.unwrap().is_none());
    assert!(p.get(&used.digest).await.unwrap().is_some());
    super::drop_database(&url).await;
}
