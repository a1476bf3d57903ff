//! Pulls through `ImageStore` from a real registry: Debian's `docker-registry` (distribution
//! 2.8) on a loopback port, filled by the test itself with oci-client's push API.
//!
//! Needs `/usr/bin/docker-registry` and `htpasswd` (`apt-get install docker-registry
//! apache2-utils`; scripts/test installs them). Without them the tests fail, saying so.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use fcd_image::{Credentials, ImageError, ImageOptions, ImageStore, PullStatus};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciImageIndex, OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A registry process on a loopback port, its storage in a temp dir; killed on drop.
struct Registry {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a registry; with `user` = Some((name, password)), behind htpasswd Basic auth.
    fn start(user: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: these tests need a real registry; install it with \
             `apt-get install docker-registry apache2-utils` (scripts/test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        if let Some((name, password)) = user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", name, password])
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "htpasswd cannot run ({e}): install it with `apt-get install apache2-utils`"
                    )
                });
            assert!(out.status.success(), "htpasswd failed");
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: fcd-test\n    path: {}\n",
                path.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let registry = Registry { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start listening: {}",
                std::fs::read_to_string(registry.dir.path().join("registry.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Deletes blob `digest` from the registry's storage: a pull that still works did not
    /// need it.
    fn delete_blob(&self, digest: &str) {
        let path = self.blob_path(digest);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

fn pusher() -> Client {
    fcd_image::install_tls_provider();
    Client::try_from(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    })
    .unwrap()
}

/// A tar layer with `files` (path, mode, contents); `gzip` compresses it.
fn layer(files: &[(&str, u32, &[u8])], gzip: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    if !gzip {
        return tar;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// An image config; `name` makes configs of different images differ (blobs are shared by
/// digest within a registry).
fn config_blob(arch: &str, name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Labels": {"test.name": name},
            "Entrypoint": ["/bin/app"],
            "Cmd": ["--port", "9000"],
            "Env": ["PATH=/usr/bin:/bin", "GREETING=a=b"],
            "WorkingDir": "/srv",
            "ExposedPorts": {"9000/tcp": {}}
        },
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap()
}

struct Pushed {
    digest: String,
    size: usize,
    layers: Vec<String>,
    config: String,
}

/// Pushes an image (config + layers) as `reference` with OCI or Docker media types, and
/// returns its manifest digest.
async fn push(
    client: &Client,
    auth: &RegistryAuth,
    reference: &str,
    arch: &str,
    layers: Vec<(Vec<u8>, &str)>,
    docker: bool,
) -> Pushed {
    let r: Reference = reference.parse().unwrap();
    let layers: Vec<ImageLayer> = layers
        .into_iter()
        .map(|(data, media_type)| ImageLayer::new(data, media_type.to_owned(), None))
        .collect();
    let config = Config::new(
        config_blob(arch, reference),
        if docker {
            IMAGE_DOCKER_CONFIG_MEDIA_TYPE
        } else {
            "application/vnd.oci.image.config.v1+json"
        }
        .to_owned(),
        None,
    );
    let mut manifest = OciImageManifest::build(&layers, &config, None);
    manifest.media_type = Some(
        if docker {
            IMAGE_MANIFEST_MEDIA_TYPE
        } else {
            OCI_IMAGE_MEDIA_TYPE
        }
        .to_owned(),
    );
    let layer_digests = manifest.layers.iter().map(|l| l.digest.clone()).collect();
    let config_digest = manifest.config.digest.clone();
    client
        .push(&r, &layers, config, auth, Some(manifest))
        .await
        .unwrap();
    let media = if docker {
        IMAGE_MANIFEST_MEDIA_TYPE
    } else {
        OCI_IMAGE_MEDIA_TYPE
    };
    let (body, digest) = client.pull_manifest_raw(&r, auth, &[media]).await.unwrap();
    Pushed {
        digest,
        size: body.len(),
        layers: layer_digests,
        config: config_digest,
    }
}

/// Pushes an OCI index over `entries` (arch, pushed image) as `reference`.
async fn push_index(client: &Client, reference: &str, entries: &[(&str, &Pushed)]) {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(arch, p)| {
            serde_json::json!({
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "digest": p.digest,
                "size": p.size,
                "platform": {"architecture": arch, "os": "linux"}
            })
        })
        .collect();
    let index: OciImageIndex = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests
    }))
    .unwrap();
    let r: Reference = reference.parse().unwrap();
    client
        .push_manifest_list(&r, &RegistryAuth::Anonymous, index)
        .await
        .unwrap();
}

fn store_in(dir: &Path, insecure: &[&str], auth_file: Option<PathBuf>) -> ImageStore {
    ImageStore::open(ImageOptions {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 30,
        insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
        auth_file,
    })
    .unwrap()
}

fn app_layers() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (
            layer(
                &[
                    ("bin/app", 0o755, b"#!/bin/sh\necho hi\n"),
                    ("etc/old.conf", 0o644, b"old"),
                ],
                true,
            ),
            IMAGE_LAYER_GZIP_MEDIA_TYPE,
        ),
        (
            layer(
                &[
                    ("etc/.wh.old.conf", 0o644, b""),
                    ("srv/data.txt", 0o600, b"data"),
                ],
                false,
            ),
            IMAGE_LAYER_MEDIA_TYPE,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_oci_docker_and_index_images() {
    let registry = Registry::start(None);
    let addr = registry.addr.clone();
    let client = pusher();
    let anon = RegistryAuth::Anonymous;
    let app = push(
        &client,
        &anon,
        &format!("{addr}/team/app:v1"),
        "amd64",
        app_layers(),
        false,
    )
    .await;
    let docker = push(
        &client,
        &anon,
        &format!("{addr}/docker:v1"),
        "amd64",
        vec![(
            layer(&[("hello", 0o644, b"from docker")], true),
            IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
        )],
        true,
    )
    .await;
    let amd = push(
        &client,
        &anon,
        &format!("{addr}/multi:amd64"),
        "amd64",
        vec![(
            layer(&[("arch", 0o644, b"amd64")], true),
            IMAGE_LAYER_GZIP_MEDIA_TYPE,
        )],
        false,
    )
    .await;
    let arm = push(
        &client,
        &anon,
        &format!("{addr}/multi:arm64"),
        "arm64",
        vec![(
            layer(&[("arch", 0o644, b"arm64")], true),
            IMAGE_LAYER_GZIP_MEDIA_TYPE,
        )],
        false,
    )
    .await;
    push_index(
        &client,
        &format!("{addr}/multi:v1"),
        &[("arm64", &arm), ("amd64", &amd)],
    )
    .await;
    // An index names manifests of its own repository.
    let arm_only = push(
        &client,
        &anon,
        &format!("{addr}/armonly:arm64"),
        "arm64",
        vec![(
            layer(&[("arch", 0o644, b"arm64")], true),
            IMAGE_LAYER_GZIP_MEDIA_TYPE,
        )],
        false,
    )
    .await;
    push_index(
        &client,
        &format!("{addr}/armonly:v1"),
        &[("arm64", &arm_only)],
    )
    .await;

    let cache = tempfile::tempdir().unwrap();
    let store = Arc::new(store_in(cache.path(), &["127.0.0.1"], None));

    // A tag resolves to its manifest digest; the layers are applied in order.
    let reference = format!("{addr}/team/app:v1");
    let (a, b) = tokio::join!(store.pull(&reference, None), store.pull(&reference, None));
    let image = a.unwrap();
    assert!(
        Arc::ptr_eq(&image, &b.unwrap()),
        "concurrent pulls share one"
    );
    assert_eq!(image.digest, app.digest);
    assert_eq!(image.reference, reference);
    let root = &image.rootfs;
    assert_eq!(
        std::fs::read_to_string(root.join("bin/app")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("srv/data.txt")).unwrap(),
        "data"
    );
    assert!(
        !root.join("etc/old.conf").exists(),
        "whited out by the upper layer"
    );
    assert!(root.join("etc/resolv.conf").is_file());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("srv/data.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o604);
    assert_eq!(image.config.entrypoint, ["/bin/app"]);
    assert_eq!(image.config.cmd, ["--port", "9000"]);
    assert_eq!(image.config.working_dir, "/srv");
    assert_eq!(image.config.exposed_ports, [9000]);
    assert!(
        image
            .config
            .env
            .contains(&("GREETING".to_owned(), "a=b".to_owned()))
    );
    assert!(image.size > 0 && store.size() == image.size);
    assert!(
        matches!(store.status(&reference), Some(PullStatus::Ready(ref i)) if Arc::ptr_eq(i, &image))
    );
    let on_disk = cache
        .path()
        .join(image.digest.strip_prefix("sha256:").unwrap());
    assert!(on_disk.join("image.json").is_file());
    assert_eq!(image.rootfs, on_disk.join("rootfs"));

    // A second pull of the same digest downloads nothing: it works with the blobs gone.
    for blob in app.layers.iter().chain([&app.config]) {
        registry.delete_blob(blob);
    }
    let again = store.pull(&reference, None).await.unwrap();
    assert!(Arc::ptr_eq(&again, &image));
    let by_digest = format!("{addr}/team/app@{}", app.digest);
    assert!(Arc::ptr_eq(
        &store.pull(&by_digest, None).await.unwrap(),
        &image
    ));
    drop(again);

    // A restarted node finds the image on disk.
    let reopened = store_in(cache.path(), &["127.0.0.1"], None);
    let same = reopened.get(&image.digest).unwrap();
    assert_eq!(same.config, image.config);
    assert_eq!(same.size, image.size);

    // Docker v2 schema 2 media types. Two references to one digest, pulled at once, unpack
    // it once: both get the same image.
    let (tag_ref, digest_ref) = (
        format!("{addr}/docker:v1"),
        format!("{addr}/docker@{}", docker.digest),
    );
    let (d, by_digest) = tokio::join!(store.pull(&tag_ref, None), store.pull(&digest_ref, None));
    let d = d.unwrap();
    assert!(Arc::ptr_eq(&d, &by_digest.unwrap()));
    assert_eq!(d.digest, docker.digest);
    assert_eq!(
        std::fs::read_to_string(d.rootfs.join("hello")).unwrap(),
        "from docker"
    );

    // A caller that stops waiting does not stop the pull: status shows how it ends.
    let multi = format!("{addr}/multi:v1");
    let _ = tokio::time::timeout(Duration::from_micros(1), store.pull(&multi, None)).await;
    assert!(store.status(&multi).is_some());
    let deadline = Instant::now() + Duration::from_secs(20);
    while matches!(store.status(&multi), Some(PullStatus::Pulling)) {
        assert!(Instant::now() < deadline, "the pull never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        matches!(store.status(&multi), Some(PullStatus::Ready(ref i)) if i.digest == amd.digest)
    );

    // An index: its linux/amd64 manifest.
    let m = store.pull(&multi, None).await.unwrap();
    assert_eq!(m.digest, amd.digest);
    assert_eq!(
        std::fs::read_to_string(m.rootfs.join("arch")).unwrap(),
        "amd64"
    );

    // An index without linux/amd64 says what it has.
    let e = store
        .pull(&format!("{addr}/armonly:v1"), None)
        .await
        .unwrap_err();
    match &e {
        ImageError::WrongPlatform(m) => {
            assert!(m.contains("linux/arm64") && m.contains("armonly:v1"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.status(&format!("{addr}/armonly:v1")),
        Some(PullStatus::Failed(ImageError::WrongPlatform(_)))
    ));
    // An image (not an index) whose config is for arm64.
    let e = store
        .pull(&format!("{addr}/multi:arm64"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ImageError::WrongPlatform(ref m) if m.contains("built for linux/arm64")),
        "{e:?}"
    );

    // Unknown tag and unknown repository.
    let e = store
        .pull(&format!("{addr}/team/app:v9"), None)
        .await
        .unwrap_err();
    match &e {
        ImageError::NotFound(m) => assert_eq!(
            m,
            &format!(
                "image {addr}/team/app:v9 was not found: the registry has no tag v9 in repository team/app"
            )
        ),
        other => panic!("{other:?}"),
    }
    let e = store
        .pull(&format!("{addr}/nothing:v1"), None)
        .await
        .unwrap_err();
    // Distribution 2.8 answers MANIFEST_UNKNOWN (not NAME_UNKNOWN) for a repository it lacks.
    assert!(
        matches!(e, ImageError::NotFound(ref m) if m.contains("repository nothing")),
        "{e:?}"
    );

    // A layer whose bytes do not match its digest (tampered with in the registry's storage,
    // same length) is refused, and nothing of it is kept.
    let tampered = push(
        &client,
        &anon,
        &format!("{addr}/tampered:v1"),
        "amd64",
        vec![(
            layer(&[("x", 0o644, b"original")], false),
            IMAGE_LAYER_MEDIA_TYPE,
        )],
        false,
    )
    .await;
    let blob = registry.blob_path(&tampered.layers[0]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let at = bytes.windows(8).position(|w| w == b"original").unwrap();
    bytes[at..at + 8].copy_from_slice(b"modified");
    std::fs::write(&blob, bytes).unwrap();
    let e = store
        .pull(&format!("{addr}/tampered:v1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ImageError::Corrupt(ref m) if m.contains("tampered:v1")),
        "{e:?}"
    );
    assert!(store.get(&tampered.digest).is_none());
    let leftovers: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Collection: everything not kept and not held goes.
    drop((image, d, m, same));
    let keep: HashSet<String> = [amd.digest.clone()].into();
    let mut removed = store.collect(&keep);
    removed.sort();
    let mut expected = vec![app.digest.clone(), docker.digest.clone()];
    expected.sort();
    assert_eq!(removed, expected);
    assert!(!on_disk.exists());
    assert!(store.status(&reference).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_call_and_from_the_auth_file() {
    let registry = Registry::start(Some(("user", "pass")));
    let addr = registry.addr.clone();
    let client = pusher();
    let auth = RegistryAuth::Basic("user".into(), "pass".into());
    let pushed = push(
        &client,
        &auth,
        &format!("{addr}/private:v1"),
        "amd64",
        app_layers(),
        false,
    )
    .await;
    let reference = format!("{addr}/private:v1");

    let cache = tempfile::tempdir().unwrap();
    let store = store_in(cache.path(), &[&addr], None);
    let e = store.pull(&reference, None).await.unwrap_err();
    assert!(
        matches!(e, ImageError::Unauthorized(ref m) if m.contains("no credentials were given") && m.contains(&reference)),
        "{e:?}"
    );
    let wrong = Credentials {
        username: "user".into(),
        password: "nope".into(),
    };
    let e = store.pull(&reference, Some(&wrong)).await.unwrap_err();
    assert!(
        matches!(e, ImageError::Unauthorized(ref m) if m.contains("credentials of user user were refused")),
        "{e:?}"
    );
    let right = Credentials {
        username: "user".into(),
        password: "pass".into(),
    };
    let image = store.pull(&reference, Some(&right)).await.unwrap();
    assert_eq!(image.digest, pushed.digest);

    // The auth file's entry for the registry, in a store of its own.
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("config.json");
    let b64 = base64::engine::general_purpose::STANDARD.encode("user:pass");
    std::fs::write(
        &auth_file,
        format!(r#"{{"auths": {{"{addr}": {{"auth": "{b64}"}}}}}}"#),
    )
    .unwrap();
    let with_file = store_in(&dir.path().join("images"), &[&addr], Some(auth_file));
    let image = with_file.pull(&reference, None).await.unwrap();
    assert_eq!(image.digest, pushed.digest);
    assert!(image.rootfs.join("bin/app").is_file());
    // Given credentials win over the file's.
    let e = with_file.pull(&reference, Some(&wrong)).await;
    // The digest is resolved with the wrong credentials first: refused.
    assert!(matches!(e, Err(ImageError::Unauthorized(_))), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registries() {
    let cache = tempfile::tempdir().unwrap();
    let store = store_in(cache.path(), &["127.0.0.1"], None);
    let port = free_port();
    let reference = format!("127.0.0.1:{port}/app:v1");
    let e = store.pull(&reference, None).await.unwrap_err();
    match &e {
        ImageError::Unreachable(m) => {
            assert!(m.contains(&reference), "{m}");
            assert!(m.to_ascii_lowercase().contains("connection refused"), "{m}");
        }
        other => panic!("{other:?}"),
    }

    // HTTPS to a plain-HTTP registry: unreachable, with the flag that fixes it.
    let registry = Registry::start(None);
    let https_only = store_in(&cache.path().join("other"), &[], None);
    let reference = format!("{}/app:v1", registry.addr);
    let e = https_only.pull(&reference, None).await.unwrap_err();
    assert!(
        matches!(e, ImageError::Unreachable(ref m) if m.contains("--insecure-registry")),
        "{e:?}"
    );
}
