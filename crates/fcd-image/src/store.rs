//! `ImageStore`: the node's unpacked images on disk, single-flight pulls, the last outcome per
//! reference, and collection under a size bound.
//!
//! Layout under the cache directory: `<hex digest>/rootfs/` (the unpacked root) and
//! `<hex digest>/image.json` (references, digest, config, size, last use) per image manifest
//! digest. An image is built in `.tmp-…` and renamed to its digest only when complete, and a
//! collected one is renamed to `.tmp-…` before it is deleted, so a crash never leaves a
//! half-written tree under a real name; `open` deletes every `.tmp-…` it finds.
//!
//! Pulls run as tasks of their own: a caller that stops waiting (a 5 s deadline) does not
//! stop the pull, and every caller of the same (reference, credentials) shares one. Two pulls
//! resolving to the same digest unpack it once (a lock per digest).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::auth::AuthFile;
use crate::registry::{Pull, Registries, Resolved};
use crate::unpack::{Unpacker, check_layer_type, remove_tree};
use crate::{Credentials, Image, ImageConfig, ImageError, ImageOptions, PullStatus, reference};

type Flight = Shared<BoxFuture<'static, Result<Arc<Image>, ImageError>>>;

/// Unpacked images on this node, and pulls; cheap to share behind an `Arc`.
pub struct ImageStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    auth_file: AuthFile,
    registries: Registries,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By digest (`sha256:<hex>`).
    images: HashMap<String, Entry>,
    status: HashMap<String, PullStatus>,
    flights: HashMap<(String, Option<Credentials>), Flight>,
    unpacks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

struct Entry {
    image: Arc<Image>,
    references: Vec<String>,
    last_used: u64,
}

/// `image.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    references: Vec<String>,
    digest: String,
    config: ImageConfig,
    size: u64,
    last_used: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn is_hex_digest(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh `.tmp-` name under `dir`.
fn temp_name(dir: &Path, what: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(".tmp-{what}-{}-{n}-{nanos}", std::process::id()))
}

/// A directory being built; deleted unless it was moved into place.
struct WorkDir {
    path: PathBuf,
    armed: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = remove_tree(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove an unfinished image");
        }
    }
}

impl ImageStore {
    /// Opens (creates) the cache directory, loads what earlier runs unpacked, removes
    /// half-written leftovers, and reads the auth file (an error if unreadable or invalid).
    /// Installs the TLS provider if the process has none yet.
    pub fn open(opts: ImageOptions) -> Result<ImageStore, ImageError> {
        crate::install_tls_provider();
        let dir = opts.dir;
        let cache_err = |what: &str, e: io::Error| {
            ImageError::Io(format!(
                "the image cache directory {} {what}: {e}",
                dir.display()
            ))
        };
        fs::create_dir_all(&dir).map_err(|e| cache_err("cannot be created", e))?;
        let auth_file = match &opts.auth_file {
            Some(path) => AuthFile::read(path)?,
            None => AuthFile::default(),
        };
        let mut state = State::default();
        for entry in fs::read_dir(&dir).map_err(|e| cache_err("cannot be read", e))? {
            let entry = entry.map_err(|e| cache_err("cannot be read", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(".tmp-") {
                if let Err(e) = remove_tree(&path).or_else(|_| fs::remove_file(&path)) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove a leftover");
                }
                continue;
            }
            if !is_hex_digest(&name) || !path.is_dir() {
                continue;
            }
            match load(&path, &name) {
                Some(entry) => {
                    state.images.insert(entry.image.digest.clone(), entry);
                }
                None => {
                    tracing::warn!(path = %path.display(), "removing an unpacked image without a valid image.json");
                    if let Err(e) = remove_tree(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "could not remove it");
                    }
                }
            }
        }
        // What each reference last resolved to here is ready again after a restart: a cold
        // start of a function pulled before never waits for its registry. (A pull — an
        // UpdateFunction, another node's write — still asks the registry where a tag points.)
        let mut latest: HashMap<String, (u64, Arc<Image>)> = HashMap::new();
        for entry in state.images.values() {
            for r in &entry.references {
                if latest
                    .get(r)
                    .is_none_or(|(used, _)| *used < entry.last_used)
                {
                    latest.insert(r.clone(), (entry.last_used, entry.image.clone()));
                }
            }
        }
        state.status = latest
            .into_iter()
            .map(|(r, (_, image))| (r, PullStatus::Ready(image)))
            .collect();
        tracing::info!(
            dir = %dir.display(),
            images = state.images.len(),
            "image cache opened"
        );
        Ok(ImageStore {
            inner: Arc::new(Inner {
                dir,
                max_bytes: opts.max_bytes,
                auth_file,
                registries: Registries::new(&opts.insecure_registries),
                state: Mutex::new(state),
            }),
        })
    }

    /// Checks a reference's syntax only (no IO); see [`crate::reference`].
    pub fn parse(reference: &str) -> Result<crate::ImageRef, ImageError> {
        reference::parse(reference)
    }

    /// Resolves `reference` (a tag to its manifest digest; from an index the linux/amd64
    /// manifest), downloads and verifies what is missing, unpacks it once per digest, and
    /// returns the image. Concurrent pulls of the same (reference, credentials) share one
    /// pull, which goes on even if every caller stops waiting. Credentials: `creds`, else the
    /// auth file's entry for the registry, else anonymous.
    pub async fn pull(
        &self,
        reference: &str,
        creds: Option<&Credentials>,
    ) -> Result<Arc<Image>, ImageError> {
        let key = (reference.to_owned(), creds.cloned());
        let flight = {
            let mut st = self.inner.lock();
            match st.flights.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    st.status.insert(reference.to_owned(), PullStatus::Pulling);
                    let inner = self.inner.clone();
                    let task_key = key.clone();
                    let handle = tokio::spawn(async move {
                        let (reference, creds) = &task_key;
                        let result = inner.pull_now(reference, creds.as_ref()).await;
                        let mut st = inner.lock();
                        st.flights.remove(&task_key);
                        let status = match &result {
                            Ok(image) => PullStatus::Ready(image.clone()),
                            Err(e) => PullStatus::Failed(e.clone()),
                        };
                        st.status.insert(reference.clone(), status);
                        drop(st);
                        match &result {
                            Ok(image) => {
                                tracing::info!(reference, digest = %image.digest, "image ready")
                            }
                            Err(e) => tracing::warn!(reference, error = %e, "image pull failed"),
                        }
                        result
                    });
                    let shown = reference.to_owned();
                    let flight = async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(ImageError::Io(format!(
                                "image {shown} could not be pulled: the pull stopped: {e}"
                            )))
                        })
                    }
                    .boxed()
                    .shared();
                    st.flights.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    /// The last outcome of pulling `reference` on this node, without IO: `None` if it was
    /// never pulled here since start (or its image was collected since).
    pub fn status(&self, reference: &str) -> Option<PullStatus> {
        self.inner.lock().status.get(reference).cloned()
    }

    /// The unpacked image with manifest digest `digest` (`sha256:<hex>`), if this node has it.
    pub fn get(&self, digest: &str) -> Option<Arc<Image>> {
        let st = self.inner.lock();
        st.images
            .get(&normalise_digest(digest))
            .map(|e| e.image.clone())
    }

    /// The digests of the unpacked images on this node that were pulled as `reference`.
    pub fn digests_of(&self, reference: &str) -> Vec<String> {
        let st = self.inner.lock();
        st.images
            .iter()
            .filter(|(_, e)| e.references.iter().any(|r| r == reference))
            .map(|(digest, _)| digest.clone())
            .collect()
    }

    /// Every unpacked image on this node.
    pub fn images(&self) -> Vec<Arc<Image>> {
        let st = self.inner.lock();
        st.images.values().map(|e| e.image.clone()).collect()
    }

    /// Removes unpacked images whose digest is not in `keep` (`sha256:<hex>` or `<hex>`) and
    /// that no `Arc<Image>` outside the store holds; then, while the total is above the size
    /// bound, the least recently pulled images no `Arc` outside the store holds. Returns the
    /// digests removed. Blocking IO.
    pub fn collect(&self, keep: &HashSet<String>) -> Vec<String> {
        let keep: HashSet<String> = keep.iter().map(|d| normalise_digest(d)).collect();
        let victims: Vec<Arc<Image>> = {
            let mut st = self.inner.lock();
            let mut victims: Vec<String> = st
                .images
                .keys()
                .filter(|d| !keep.contains(*d) && !st.pinned(d))
                .cloned()
                .collect();
            let mut total: u64 = st
                .images
                .iter()
                .filter(|(d, _)| !victims.contains(d))
                .map(|(_, e)| e.image.size)
                .sum();
            if total > self.inner.max_bytes {
                let mut lru: Vec<(u64, String)> = st
                    .images
                    .iter()
                    .filter(|(d, _)| !victims.contains(d) && !st.pinned(d))
                    .map(|(d, e)| (e.last_used, d.clone()))
                    .collect();
                lru.sort();
                for (_, d) in lru {
                    if total <= self.inner.max_bytes {
                        break;
                    }
                    total = total.saturating_sub(st.images.get(&d).map_or(0, |e| e.image.size));
                    victims.push(d);
                }
            }
            victims.iter().filter_map(|d| st.forget(d)).collect()
        };
        let mut removed = Vec::with_capacity(victims.len());
        for image in victims {
            let Some(dir) = image.rootfs.parent().map(Path::to_path_buf) else {
                continue;
            };
            // Out of its real name first: a crash mid-delete leaves only a `.tmp-` leftover.
            let gone = temp_name(&self.inner.dir, "gone");
            let result = fs::rename(&dir, &gone).and_then(|()| remove_tree(&gone));
            match result {
                Ok(()) => {
                    tracing::info!(digest = %image.digest, size = image.size, "image collected")
                }
                Err(e) => {
                    tracing::warn!(digest = %image.digest, error = %e, "could not remove a collected image")
                }
            }
            removed.push(image.digest.clone());
        }
        removed.sort();
        removed
    }

    /// Total bytes of unpacked images on disk.
    pub fn size(&self) -> u64 {
        let st = self.inner.lock();
        st.images.values().map(|e| e.image.size).sum()
    }
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("dir", &self.inner.dir)
            .field("max_bytes", &self.inner.max_bytes)
            .finish_non_exhaustive()
    }
}

fn normalise_digest(d: &str) -> String {
    if d.starts_with("sha256:") {
        d.to_owned()
    } else {
        format!("sha256:{d}")
    }
}

/// An image directory from an earlier run, if its `image.json` is valid.
fn load(path: &Path, hex: &str) -> Option<Entry> {
    let meta: Meta = serde_json::from_slice(&fs::read(path.join("image.json")).ok()?).ok()?;
    let rootfs = path.join("rootfs");
    if meta.digest != format!("sha256:{hex}") || !rootfs.is_dir() {
        return None;
    }
    Some(Entry {
        image: Arc::new(Image {
            reference: meta.references.first().cloned().unwrap_or_default(),
            digest: meta.digest,
            rootfs,
            config: meta.config,
            size: meta.size,
        }),
        references: meta.references,
        last_used: meta.last_used,
    })
}

impl State {
    /// Whether an `Arc<Image>` outside the store holds `digest`'s image: the store's own are
    /// its entry and the `Ready` statuses naming it.
    fn pinned(&self, digest: &str) -> bool {
        let Some(entry) = self.images.get(digest) else {
            return false;
        };
        let own = 1 + self
            .status
            .values()
            .filter(|s| matches!(s, PullStatus::Ready(i) if Arc::ptr_eq(i, &entry.image)))
            .count();
        Arc::strong_count(&entry.image) > own
    }

    /// Drops `digest` and the statuses naming its image.
    fn forget(&mut self, digest: &str) -> Option<Arc<Image>> {
        let entry = self.images.remove(digest)?;
        self.status
            .retain(|_, s| !matches!(s, PullStatus::Ready(i) if Arc::ptr_eq(i, &entry.image)));
        Some(entry.image)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The unpacked image `digest`, if there is one, marked as used by `reference`.
    async fn hit(&self, digest: &str, reference: &str) -> Option<Arc<Image>> {
        let (image, meta) = {
            let mut st = self.lock();
            let entry = st.images.get_mut(digest)?;
            let now = now();
            let new_ref = !entry.references.iter().any(|r| r == reference);
            if new_ref {
                entry.references.push(reference.to_owned());
            }
            // Persisted when it says something new (a reference, or a use an hour later),
            // so the LRU order survives a restart without a write per pull.
            let stale = now.saturating_sub(entry.last_used) > 3600;
            entry.last_used = now;
            let meta = (new_ref || stale).then(|| Meta {
                references: entry.references.clone(),
                digest: entry.image.digest.clone(),
                config: entry.image.config.clone(),
                size: entry.image.size,
                last_used: now,
            });
            (entry.image.clone(), meta)
        };
        if let (Some(meta), Some(dir)) = (meta, image.rootfs.parent())
            && let Err(e) = write_meta(dir, &meta).await
        {
            tracing::warn!(digest = %image.digest, error = %e, "could not update image.json");
        }
        Some(image)
    }

    async fn pull_now(
        self: &Arc<Self>,
        reference: &str,
        creds: Option<&Credentials>,
    ) -> Result<Arc<Image>, ImageError> {
        let image_ref = reference::parse(reference)?;
        // An image manifest digest already here needs no registry at all.
        if let Some(digest) = &image_ref.digest
            && let Some(image) = self.hit(digest, reference).await
        {
            return Ok(image);
        }
        let creds = creds
            .cloned()
            .or_else(|| self.auth_file.get(&image_ref.registry).cloned());
        let pull = self
            .registries
            .pull(reference, &image_ref, creds.as_ref())?;
        let resolved = pull.resolve().await?;
        if let Some(image) = self.hit(&resolved.digest, reference).await {
            return Ok(image);
        }
        let lock = {
            let mut st = self.lock();
            st.unpacks
                .entry(resolved.digest.clone())
                .or_default()
                .clone()
        };
        let guard = lock.lock().await;
        let result = match self.hit(&resolved.digest, reference).await {
            Some(image) => Ok(image),
            None => self.fetch_and_unpack(&pull, &resolved).await,
        };
        // The last one out removes the lock; anyone still waiting for it finds the image (or,
        // after a failure, tries again under the same lock).
        {
            let mut st = self.lock();
            if Arc::strong_count(&lock) <= 2 {
                st.unpacks.remove(&resolved.digest);
            }
        }
        drop(guard);
        result
    }

    async fn fetch_and_unpack(
        self: &Arc<Self>,
        pull: &Pull<'_>,
        resolved: &Resolved,
    ) -> Result<Arc<Image>, ImageError> {
        let reference = pull.shown;
        let config = pull.config(&resolved.manifest).await?;
        let layers = &resolved.manifest.layers;
        for layer in layers {
            check_layer_type(reference, &layer.media_type)?;
        }
        let compressed: u64 = layers
            .iter()
            .map(|l| u64::try_from(l.size).unwrap_or(0))
            .sum();
        if compressed > self.max_bytes {
            return Err(ImageError::TooLarge(format!(
                "image {reference} has {} MB of layers, more than the image cache's size bound of {} MB (--image-cache-max-mb)",
                compressed / (1024 * 1024),
                self.max_bytes / (1024 * 1024)
            )));
        }
        let hex = resolved
            .digest
            .strip_prefix("sha256:")
            .filter(|h| is_hex_digest(h))
            .ok_or_else(|| {
                ImageError::Unsupported(format!(
                    "image {reference} cannot be used: its manifest digest {} is not sha256",
                    resolved.digest
                ))
            })?
            .to_owned();
        let io = |what: &str, e: io::Error| ImageError::io(reference, what, &e);

        let mut work = WorkDir {
            path: temp_name(&self.dir, &hex),
            armed: true,
        };
        tokio::fs::create_dir(&work.path)
            .await
            .map_err(|e| io("creating a work directory", e))?;
        let mut unpacker = Unpacker::new(work.path.join("rootfs"), reference, self.max_bytes)?;
        // Layer i is unpacked while layer i + 1 downloads: the network and the disk overlap.
        let blob = |i: usize| work.path.join(format!("layer-{i}"));
        let download = |i: usize| {
            let path = blob(i);
            async move {
                let Some(layer) = layers.get(i) else {
                    return Ok(());
                };
                let mut file = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| io("creating a layer file", e))?;
                pull.download(layer, &mut file).await
            }
        };
        download(0).await?;
        for (i, layer) in layers.iter().enumerate() {
            let path = blob(i);
            let digest = layer.digest.clone();
            let shown = reference.to_owned();
            let unpack = tokio::task::spawn_blocking(move || {
                let file = fs::File::open(&path)
                    .map_err(|e| ImageError::io(&shown, "opening a downloaded layer", &e))?;
                unpacker.apply_layer(file, &digest)?;
                fs::remove_file(&path)
                    .map_err(|e| ImageError::io(&shown, "removing a downloaded layer", &e))?;
                Ok::<_, ImageError>(unpacker)
            });
            let (unpacked, next) = tokio::join!(unpack, download(i + 1));
            unpacker = unpacked.map_err(|e| {
                ImageError::Io(format!("image {reference} could not be unpacked: {e}"))
            })??;
            next?;
            tracing::debug!(reference, layer = %layer.digest, "layer unpacked");
        }
        let size = tokio::task::spawn_blocking(move || unpacker.finish())
            .await
            .map_err(|e| {
                ImageError::Io(format!("image {reference} could not be unpacked: {e}"))
            })??;

        let last_used = now();
        let meta = Meta {
            references: vec![reference.to_owned()],
            digest: resolved.digest.clone(),
            config: config.clone(),
            size,
            last_used,
        };
        write_meta(&work.path, &meta)
            .await
            .map_err(|e| io("writing image.json", e))?;
        let dest = self.dir.join(&hex);
        tokio::fs::rename(&work.path, &dest)
            .await
            .map_err(|e| io("moving the unpacked image into place", e))?;
        work.armed = false;
        let image = Arc::new(Image {
            reference: reference.to_owned(),
            digest: resolved.digest.clone(),
            rootfs: dest.join("rootfs"),
            config,
            size,
        });
        self.lock().images.insert(
            image.digest.clone(),
            Entry {
                image: image.clone(),
                references: vec![reference.to_owned()],
                last_used,
            },
        );
        Ok(image)
    }
}

/// Writes `image.json` in `dir` (temp file, then rename).
async fn write_meta(dir: &Path, meta: &Meta) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    let tmp = dir.join(".image.json.tmp");
    tokio::fs::write(&tmp, json).await?;
    tokio::fs::rename(&tmp, dir.join("image.json")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with `images` (hex digit, size) already unpacked, as an earlier run left them.
    fn store_with(images: &[(char, u64, u64)], max_bytes: u64) -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        for &(c, size, last_used) in images {
            let hex: String = std::iter::repeat_n(c, 64).collect();
            let d = dir.path().join(&hex);
            fs::create_dir_all(d.join("rootfs/etc")).unwrap();
            let meta = Meta {
                references: vec![format!("reg.example/img:{c}")],
                digest: format!("sha256:{hex}"),
                config: ImageConfig::default(),
                size,
                last_used,
            };
            fs::write(d.join("image.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
        }
        let store = ImageStore::open(ImageOptions {
            dir: dir.path().to_path_buf(),
            max_bytes,
            insecure_registries: vec![],
            auth_file: None,
        })
        .unwrap();
        (dir, store)
    }

    fn digest(c: char) -> String {
        format!("sha256:{}", std::iter::repeat_n(c, 64).collect::<String>())
    }

    #[test]
    fn open_loads_images_and_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(".tmp-abc-1/rootfs/x")).unwrap();
        fs::write(dir.path().join(".tmp-file"), b"x").unwrap();
        let broken: String = std::iter::repeat_n('b', 64).collect();
        fs::create_dir_all(dir.path().join(&broken).join("rootfs")).unwrap();
        fs::write(dir.path().join("unrelated"), b"x").unwrap();
        let hex: String = std::iter::repeat_n('a', 64).collect();
        fs::create_dir_all(dir.path().join(&hex).join("rootfs")).unwrap();
        let meta = Meta {
            references: vec!["reg.example/a:1".into()],
            digest: format!("sha256:{hex}"),
            config: ImageConfig {
                cmd: vec!["/app".into()],
                ..ImageConfig::default()
            },
            size: 42,
            last_used: 1,
        };
        fs::write(
            dir.path().join(&hex).join("image.json"),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        let store = ImageStore::open(ImageOptions {
            dir: dir.path().to_path_buf(),
            max_bytes: 1 << 30,
            insecure_registries: vec![],
            auth_file: None,
        })
        .unwrap();
        assert!(!dir.path().join(".tmp-abc-1").exists());
        assert!(!dir.path().join(".tmp-file").exists());
        assert!(!dir.path().join(&broken).exists());
        assert!(dir.path().join("unrelated").exists());
        let image = store.get(&hex).unwrap();
        assert_eq!(image.reference, "reg.example/a:1");
        assert_eq!(image.config.cmd, ["/app"]);
        assert_eq!(image.rootfs, dir.path().join(&hex).join("rootfs"));
        assert_eq!(store.size(), 42);
        // Ready again after the restart, under the reference it was pulled as.
        assert!(
            matches!(store.status("reg.example/a:1"), Some(PullStatus::Ready(i)) if i.digest == format!("sha256:{hex}"))
        );
        assert!(store.status("reg.example/a:2").is_none());
        assert_eq!(
            store.digests_of("reg.example/a:1"),
            [format!("sha256:{hex}")]
        );
        assert!(store.digests_of("reg.example/a:2").is_empty());
    }

    #[test]
    fn open_refuses_a_bad_auth_file() {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth.json");
        fs::write(&auth, b"{not json").unwrap();
        let e = ImageStore::open(ImageOptions {
            dir: dir.path().join("images"),
            max_bytes: 1,
            insecure_registries: vec![],
            auth_file: Some(auth),
        })
        .unwrap_err();
        assert!(
            matches!(e, ImageError::Io(ref m) if m.contains("auth.json")),
            "{e:?}"
        );
    }

    #[test]
    fn collect_keeps_pinned_and_kept_images() {
        let (dir, store) = store_with(&[('a', 10, 1), ('b', 10, 2), ('c', 10, 3)], 1000);
        let pinned = store.get(&digest('b')).unwrap();
        let keep: HashSet<String> = [digest('c')].into();
        let removed = store.collect(&keep);
        assert_eq!(removed, [digest('a')]);
        assert!(!dir.path().join(&digest('a')[7..]).exists());
        assert!(dir.path().join(&digest('b')[7..]).exists());
        assert!(store.get(&digest('c')).is_some());
        assert_eq!(store.size(), 20);
        // Unpinned now: b goes.
        drop(pinned);
        assert_eq!(store.collect(&keep), [digest('b')]);
        // A kept digest may be given without its algorithm.
        let keep_hex: HashSet<String> = [digest('c')[7..].to_owned()].into();
        assert!(store.collect(&keep_hex).is_empty());
        // Nothing half-deleted is left under a .tmp- name.
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn collect_evicts_least_recently_used_above_the_bound() {
        let (_dir, store) = store_with(
            &[('a', 40, 5), ('b', 40, 1), ('c', 40, 3), ('d', 40, 9)],
            100,
        );
        let keep: HashSet<String> = ['a', 'b', 'c', 'd'].iter().map(|&c| digest(c)).collect();
        let pinned_b = store.get(&digest('b')).unwrap();
        // 160 > 100: b is the oldest but pinned, so c (3) then a (5) go; d (9) stays.
        let removed = store.collect(&keep);
        assert_eq!(removed, [digest('a'), digest('c')]);
        assert_eq!(store.size(), 80);
        drop(pinned_b);
        assert!(store.collect(&keep).is_empty());
    }

    #[test]
    fn statuses_do_not_pin_and_are_dropped_with_their_image() {
        let (_dir, store) = store_with(&[('a', 10, 1)], 1000);
        let image = store.get(&digest('a')).unwrap();
        store
            .inner
            .lock()
            .status
            .insert("reg.example/img:a".into(), PullStatus::Ready(image.clone()));
        drop(image);
        assert!(matches!(
            store.status("reg.example/img:a"),
            Some(PullStatus::Ready(_))
        ));
        assert_eq!(store.collect(&HashSet::new()), [digest('a')]);
        assert!(store.status("reg.example/img:a").is_none());
    }

    #[test]
    fn the_store_and_its_pulls_can_move_between_threads() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let (_dir, store) = store_with(&[], 1);
        send_sync(&store);
        let pull = store.pull("reg.example/a:1", None);
        send(&pull);
    }

    #[tokio::test]
    async fn a_digest_reference_already_here_needs_no_registry() {
        let (_dir, store) = store_with(&[('a', 10, 1)], 1000);
        // Nothing listens on this port: the pull must not need it.
        let reference = format!("127.0.0.1:9/img@{}", digest('a'));
        let image = store.pull(&reference, None).await.unwrap();
        assert_eq!(image.digest, digest('a'));
        assert!(matches!(
            store.status(&reference),
            Some(PullStatus::Ready(_))
        ));
        let e = store.pull("no-registry/img:1", None).await.unwrap_err();
        assert!(matches!(e, ImageError::InvalidReference(_)));
        assert!(matches!(
            store.status("no-registry/img:1"),
            Some(PullStatus::Failed(ImageError::InvalidReference(_)))
        ));
    }
}
