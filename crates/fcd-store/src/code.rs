//! Code packages: validated once, kept content-addressed, extracted once, read-only afterwards.
//!
//! A package is addressed by the SHA-256 of its zip (its CRC-64, FC's `codeChecksum`, is too weak
//! to address by). Layout under the root: `<digest>.zip` (the original bytes, served back by
//! GetFunctionCode) and `<digest>/` (the extracted tree). Both are written under a temporary
//! name and renamed into place, so a crash never leaves a half-written package behind a real
//! name.
//!
//! Extracted trees are read-only on disk before they get their real name: files 0444 (0555 if
//! executable), directories 0555, owned by fcd's user — no write bit for anyone, so no function
//! can change code it may share with others (jailed functions run under other uids and see
//! `/code` through a read-only mount as well; unjailed ones run as fcd's own user, who could
//! `chmod` the tree back — `--isolation none` is explicitly reduced isolation). Trees an older
//! fcd left writable are made read-only when the store is opened.
//!
//! In a cluster the local directory is a cache of [`SharedPackages`] (every node's packages in
//! one place, [`crate::PgPackages`]): a put stores the shared copy before it returns, and a
//! package missing locally is fetched from there, checked against its digest, and stored as if
//! it had been put here.
//!
//! Layers are packages like any other; a function with several gets one merged, read-only tree
//! per distinct list of layers under `.layers/` ([`CodeStore::ensure_layers`]), removed when
//! one of its layers is collected. [`CodeStore::collect`] removes what no function or version
//! references any more — the store only grew before.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::StoreError;
use fcd_core::limits::{CODE_ENTRIES_MAX, CODE_UNCOMPRESSED_MAX, CODE_ZIP_MAX};

/// CRC-64/XZ (ECMA-182, reflected) — the variant OSS and FC use for `codeChecksum`.
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("code.zipFile is not valid base64")]
    InvalidBase64,
    #[error("the code package is {size} bytes, more than the {limit} bytes allowed")]
    TooLarge { size: usize, limit: usize },
    #[error("the code package is not a valid zip file: {0}")]
    NotAZip(String),
    #[error(
        "the code package contains an unsafe entry '{0}' (absolute path, '..' or a link out of the package)"
    )]
    UnsafeEntry(String),
    #[error("the code package has more than {0} entries")]
    TooManyEntries(usize),
    #[error("the code package expands to more than {0} bytes")]
    UncompressedTooLarge(u64),
    #[error("code package {0} is missing from the code store")]
    Missing(String),
    /// The shared copy's bytes do not hash to the digest that names them.
    #[error("the shared copy of code package {0} is corrupt")]
    Corrupt(String),
    #[error("code store io: {0}")]
    Io(#[from] io::Error),
    /// The shared package store failed ([`StoreError::Unavailable`] when it cannot be reached).
    #[error("shared code store: {0}")]
    Shared(#[from] StoreError),
}

/// A package in the shared store, with when it was put there (last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPackage {
    pub digest: String,
    pub created: SystemTime,
}

/// Code packages every node can read, addressed by digest (hex SHA-256 of the zip). A put of a
/// digest already there keeps the bytes and refreshes its creation time.
#[async_trait]
pub trait SharedPackages: std::fmt::Debug + Send + Sync + 'static {
    async fn put(&self, digest: &str, zip: &[u8]) -> Result<(), StoreError>;
    async fn get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether there was such a package.
    async fn delete(&self, digest: &str) -> Result<bool, StoreError>;
    /// Every package, ordered by digest.
    async fn list(&self) -> Result<Vec<SharedPackage>, StoreError>;
}

/// What [`CodeStore::collect`] removed, by digest (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectReport {
    /// Packages removed from this node's directory (zip, extracted tree, or both).
    pub local: Vec<String>,
    /// Packages removed from the shared store.
    pub shared: Vec<String>,
}

/// What the store knows about an accepted package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    /// CRC-64 of the zip as a decimal string.
    pub checksum: String,
    pub size: u64,
    /// Hex SHA-256 of the zip: the package's address.
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct CodeStore {
    root: PathBuf,
    shared: Option<Arc<dyn SharedPackages>>,
}

impl CodeStore {
    pub fn open(root: PathBuf) -> io::Result<CodeStore> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(&root)?;
        for entry in fs::read_dir(&root)?.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if let Ok(meta) = fs::symlink_metadata(&path)
                && meta.is_dir()
                && !hidden
                && meta.permissions().mode() & 0o222 != 0
            {
                make_read_only(&path)?;
            }
        }
        Ok(CodeStore { root, shared: None })
    }

    /// This store as a cache of `shared`: see the module docs.
    pub fn with_shared(mut self, shared: Arc<dyn SharedPackages>) -> CodeStore {
        self.shared = Some(shared);
        self
    }

    /// Decodes, validates, stores and extracts a base64 zip (CreateFunction's `code.zipFile`).
    pub async fn put_base64(&self, b64: &str) -> Result<StoredCode, CodeError> {
        // base64 inflates by 4/3; reject before decoding anything huge.
        if b64.len() / 4 * 3 > CODE_ZIP_MAX + 3 {
            return Err(CodeError::TooLarge {
                size: b64.len() / 4 * 3,
                limit: CODE_ZIP_MAX,
            });
        }
        let b64 = b64.to_owned();
        let this = self.clone();
        let (stored, zip) = tokio::task::spawn_blocking(move || {
            let zip = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| CodeError::InvalidBase64)?;
            let stored = this.put_zip_blocking(&zip)?;
            Ok::<_, CodeError>((stored, zip))
        })
        .await
        .map_err(|e| CodeError::Io(io::Error::other(e)))??;
        // Before the caller commits metadata that names this digest, every node must be able
        // to get the package.
        if let Some(shared) = &self.shared {
            shared.put(&stored.digest, &zip).await?;
        }
        Ok(stored)
    }

    fn put_zip_blocking(&self, zip: &[u8]) -> Result<StoredCode, CodeError> {
        if zip.len() > CODE_ZIP_MAX {
            return Err(CodeError::TooLarge {
                size: zip.len(),
                limit: CODE_ZIP_MAX,
            });
        }
        let digest = hex::encode(Sha256::digest(zip));
        let stored = StoredCode {
            checksum: CRC64.checksum(zip).to_string(),
            size: zip.len() as u64,
            digest: digest.clone(),
        };
        let dir = self.dir(&digest);
        if !dir.is_dir() {
            let tmp = self.temp_path(&digest);
            let result = extract(zip, &tmp);
            if let Err(e) = result {
                remove_tree(&tmp);
                return Err(e);
            }
            if fs::rename(&tmp, &dir).is_err() {
                // Another request extracted the same package first; theirs is as good as ours.
                remove_tree(&tmp);
                if !dir.is_dir() {
                    return Err(CodeError::Io(io::Error::other(
                        "could not move extracted code into place",
                    )));
                }
            }
        }
        let zip_path = self.zip_path(&digest);
        if zip_path.is_file() {
            // Put again: the package is as young as its newest put, for the collector's grace.
            fs::File::options()
                .write(true)
                .open(&zip_path)?
                .set_modified(SystemTime::now())?;
        } else {
            let tmp = self.temp_path(&digest);
            let mut f = fs::File::create(&tmp)?;
            f.write_all(zip)?;
            f.sync_all()?;
            fs::rename(&tmp, &zip_path)?;
        }
        Ok(stored)
    }

    /// The original zip of a package.
    pub fn zip_path(&self, digest: &str) -> PathBuf {
        self.root.join(format!("{digest}.zip"))
    }

    /// The extracted tree of a package.
    pub fn dir(&self, digest: &str) -> PathBuf {
        self.root.join(digest)
    }

    /// The extracted tree, re-extracting from the zip if the tree was removed, and fetching
    /// the zip from the shared store if this node has none.
    pub async fn ensure_extracted(&self, digest: &str) -> Result<PathBuf, CodeError> {
        let dir = self.dir(digest);
        if dir.is_dir() {
            return Ok(dir);
        }
        let zip_path = self.zip_path(digest);
        let zip = match tokio::fs::read(&zip_path).await {
            Ok(zip) => zip,
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.fetch_shared(digest).await?,
            Err(e) => return Err(e.into()),
        };
        self.store_fetched(digest, zip).await?;
        Ok(dir)
    }

    /// The tree an instance sees at `/opt` for layers `digests` (a function's `layers` in
    /// order; `None` without layers): one layer's extracted tree as it is, several merged once
    /// per distinct list into `.layers/<id>/` — from the last to the first, so a lower index
    /// overwrites same-named files, as FC merges them. The merged tree is read-only like
    /// every extracted tree, its files hard links into the layers' trees where possible, and
    /// a sidecar `.layers/<id>.digests` names its layers for [`CodeStore::collect`].
    pub async fn ensure_layers(&self, digests: &[String]) -> Result<Option<PathBuf>, CodeError> {
        let mut trees = Vec::with_capacity(digests.len());
        for d in digests {
            trees.push(self.ensure_extracted(d).await?);
        }
        if trees.len() <= 1 {
            return Ok(trees.pop());
        }
        let id = hex::encode(Sha256::digest(digests.join("\n").as_bytes()));
        let dir = self.layers_root().join(&id);
        if dir.is_dir() {
            return Ok(Some(dir));
        }
        let this = self.clone();
        let listed = digests.join("\n");
        tokio::task::spawn_blocking(move || this.merge_blocking(&id, &trees, &listed))
            .await
            .map_err(|e| CodeError::Io(io::Error::other(e)))??;
        Ok(Some(dir))
    }

    fn layers_root(&self) -> PathBuf {
        self.root.join(".layers")
    }

    fn merge_blocking(&self, id: &str, trees: &[PathBuf], listed: &str) -> Result<(), CodeError> {
        let root = self.layers_root();
        fs::create_dir_all(&root)?;
        let dir = root.join(id);
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = root.join(format!(".tmp-{id}-{}-{n}", std::process::id()));
        let built = (|| {
            fs::create_dir(&tmp)?;
            for tree in trees.iter().rev() {
                merge_into(tree, &tmp)?;
            }
            links_stay_inside(&tmp)?;
            make_read_only(&tmp)?;
            // The sidecar first: a tree under its real name always has one.
            fs::write(root.join(format!("{id}.digests")), listed)?;
            Ok::<_, CodeError>(())
        })();
        if let Err(e) = built {
            remove_tree(&tmp);
            return Err(e);
        }
        if fs::rename(&tmp, &dir).is_err() {
            // Another start merged the same layers first; theirs is as good as ours.
            remove_tree(&tmp);
            if !dir.is_dir() {
                return Err(CodeError::Io(io::Error::other(
                    "could not move merged layers into place",
                )));
            }
        }
        Ok(())
    }

    /// The original zip (GetFunctionCode), fetched from the shared store if this node has none.
    pub async fn ensure_zip(&self, digest: &str) -> Result<PathBuf, CodeError> {
        let zip_path = self.zip_path(digest);
        if !zip_path.is_file() {
            let zip = self.fetch_shared(digest).await?;
            self.store_fetched(digest, zip).await?;
        }
        Ok(zip_path)
    }

    async fn fetch_shared(&self, digest: &str) -> Result<Vec<u8>, CodeError> {
        let Some(shared) = &self.shared else {
            return Err(CodeError::Missing(digest.to_owned()));
        };
        let zip = shared
            .get(digest)
            .await?
            .ok_or_else(|| CodeError::Missing(digest.to_owned()))?;
        if hex::encode(Sha256::digest(&zip)) != digest {
            return Err(CodeError::Corrupt(digest.to_owned()));
        }
        Ok(zip)
    }

    /// Stores (and extracts) bytes read for `digest`, as a put would.
    async fn store_fetched(&self, digest: &str, zip: Vec<u8>) -> Result<(), CodeError> {
        let this = self.clone();
        let stored = tokio::task::spawn_blocking(move || this.put_zip_blocking(&zip))
            .await
            .map_err(|e| CodeError::Io(io::Error::other(e)))??;
        if stored.digest != digest {
            return Err(CodeError::Corrupt(digest.to_owned()));
        }
        Ok(())
    }

    /// Removes the packages neither `referenced` (by any function or version:
    /// [`crate::MetadataStore::referenced_code`]) nor `in_use` (by a running instance), and
    /// older than `grace` — a package a create or update has put but not yet committed
    /// metadata for is referenced by nothing yet. Removes this node's zip and extracted tree,
    /// and with a shared store the shared copy (the shared copy's age is its last put there),
    /// and temporary files a crash left behind once they are older than `grace`.
    pub async fn collect(
        &self,
        referenced: &HashSet<String>,
        in_use: &HashSet<String>,
        grace: Duration,
    ) -> Result<CollectReport, CodeError> {
        let keep: Arc<HashSet<String>> = Arc::new(referenced.union(in_use).cloned().collect());
        let now = SystemTime::now();
        let this = self.clone();
        let kept = keep.clone();
        let local = tokio::task::spawn_blocking(move || this.collect_local(&kept, grace, now))
            .await
            .map_err(|e| CodeError::Io(io::Error::other(e)))??;
        let mut shared_removed = Vec::new();
        if let Some(shared) = &self.shared {
            // The shared copies' times are the database's clock; the grace period is meant to
            // be minutes, far longer than the clocks of fcd's nodes drift apart.
            for p in shared.list().await? {
                if !keep.contains(&p.digest)
                    && older_than(p.created, grace, now)
                    && shared.delete(&p.digest).await?
                {
                    shared_removed.push(p.digest);
                }
            }
        }
        Ok(CollectReport {
            local,
            shared: shared_removed,
        })
    }

    fn collect_local(
        &self,
        keep: &HashSet<String>,
        grace: Duration,
        now: SystemTime,
    ) -> io::Result<Vec<String>> {
        let old = |p: &Path| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| older_than(t, grace, now))
        };
        let mut digests = HashSet::new();
        for entry in fs::read_dir(&self.root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                if old(&entry.path()) {
                    remove_tree(&entry.path());
                }
                continue;
            }
            let digest = name.strip_suffix(".zip").unwrap_or(&name);
            if digest.len() == 64 && digest.bytes().all(|c| c.is_ascii_hexdigit()) {
                digests.insert(digest.to_owned());
            }
        }
        let mut removed: Vec<String> = Vec::new();
        for digest in digests {
            if keep.contains(&digest) {
                continue;
            }
            let (zip, dir) = (self.zip_path(&digest), self.dir(&digest));
            // The zip's time is the package's (a put refreshes it); a tree alone has its own.
            let aged = if zip.exists() { old(&zip) } else { old(&dir) };
            if !aged {
                continue;
            }
            remove_tree(&dir);
            remove_tree(&zip);
            removed.push(digest);
        }
        removed.sort();
        self.collect_merged(keep, &old)?;
        Ok(removed)
    }

    /// Removes merged layer trees (see [`CodeStore::ensure_layers`]) one of whose layers is
    /// no longer kept, once older than the grace period, and temporary merges a crash left.
    fn collect_merged(
        &self,
        keep: &HashSet<String>,
        old: &dyn Fn(&Path) -> bool,
    ) -> io::Result<()> {
        let root = self.layers_root();
        let Ok(entries) = fs::read_dir(&root) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                if old(&entry.path()) {
                    remove_tree(&entry.path());
                }
                continue;
            }
            let Some(id) = name.strip_suffix(".digests") else {
                continue;
            };
            let listed = fs::read_to_string(entry.path())?;
            let dir = root.join(id);
            if listed.lines().any(|d| !keep.contains(d)) && (!dir.exists() || old(&dir)) {
                remove_tree(&dir);
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn temp_path(&self, digest: &str) -> PathBuf {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root
            .join(format!(".tmp-{digest}-{}-{n}", std::process::id()))
    }
}

/// Whether `t` is at least `grace` before `now` (a time in the future is young).
fn older_than(t: SystemTime, grace: Duration, now: SystemTime) -> bool {
    now.duration_since(t).is_ok_and(|age| age >= grace)
}

fn remove_tree(path: &Path) {
    if path.is_dir() {
        make_writable(path);
        let _ = fs::remove_dir_all(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::symlink_metadata(path)
        && meta.is_dir()
    {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o755));
        if let Ok(rd) = fs::read_dir(path) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Takes every write bit off a tree: files keep their read and execute bits, directories become
/// 0555 (children first, so an unprivileged fcd can still walk into them while it works).
fn make_read_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        for e in fs::read_dir(path)? {
            make_read_only(&e?.path())?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o555))
    } else {
        let mode = meta.permissions().mode() & 0o555;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
}

/// Copies the tree `src` over `dst` (an existing directory being built): an entry of `src`
/// replaces whatever `dst` has under its name, except that two directories merge. Files are
/// hard links where the filesystem allows. Nothing is ever written through a link of `dst`:
/// a link in the way is replaced, not followed.
fn merge_into(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        let existing = fs::symlink_metadata(&to).ok();
        if kind.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&to)?;
                    fs::create_dir(&to)?;
                }
                None => fs::create_dir(&to)?,
            }
            merge_into(&from, &to)?;
            continue;
        }
        match existing {
            Some(m) if m.is_dir() => remove_tree(&to),
            Some(_) => fs::remove_file(&to)?,
            None => {}
        }
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Each package's links were checked alone; merged, a chain across layers is checked again.
fn links_stay_inside(root: &Path) -> Result<(), CodeError> {
    let real_root = fs::canonicalize(root)?;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_symlink()
                && let Ok(real) = fs::canonicalize(entry.path())
                && !real.starts_with(&real_root)
            {
                let path = entry.path();
                return Err(CodeError::UnsafeEntry(
                    path.strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// Lexically normalises `path` relative to the package root; `None` if it climbs out.
fn normalise_inside(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Extracts `zip` into the new directory `dest`, enforcing every safety rule (entry count,
/// expanded size, no absolute or `..` names, no link out of `dest`). Public for the fuzzer
/// and for tools; the store itself only extracts through [`CodeStore`].
pub fn extract(zip: &[u8], dest: &Path) -> Result<(), CodeError> {
    use std::os::unix::fs::PermissionsExt;

    let mut archive = zip::ZipArchive::new(io::Cursor::new(zip))
        .map_err(|e| CodeError::NotAZip(e.to_string()))?;
    if archive.len() > CODE_ENTRIES_MAX {
        return Err(CodeError::TooManyEntries(CODE_ENTRIES_MAX));
    }
    fs::create_dir_all(dest)?;
    let mut budget = CODE_UNCOMPRESSED_MAX;
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| CodeError::NotAZip(e.to_string()))?;
        let raw_name = entry
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("entry #{i}"));
        // The zip crate quietly strips a leading '/', but a package that names absolute paths
        // is broken or hostile either way: refuse it rather than guess.
        if raw_name.starts_with('/') || raw_name.starts_with('\\') {
            return Err(CodeError::UnsafeEntry(raw_name));
        }
        let rel = entry
            .enclosed_name()
            .and_then(|p| normalise_inside(&p))
            .ok_or_else(|| CodeError::UnsafeEntry(raw_name.clone()))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        if entry.is_dir() {
            fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if entry.is_symlink() {
            let mut link = String::new();
            entry
                .read_to_string(&mut link)
                .map_err(|_| CodeError::UnsafeEntry(raw_name.clone()))?;
            let link = PathBuf::from(link);
            let resolved = rel
                .parent()
                .map(|p| p.join(&link))
                .unwrap_or_else(|| link.clone());
            if link.is_absolute() || normalise_inside(&resolved).is_none() {
                return Err(CodeError::UnsafeEntry(raw_name));
            }
            // Links are created after every file so that no file is ever written through one.
            links.push((target, link));
            continue;
        }
        let mut out = fs::File::create(&target)?;
        let copied = io::copy(&mut (&mut entry).take(budget + 1), &mut out)
            .map_err(|e| CodeError::NotAZip(e.to_string()))?;
        if copied > budget {
            return Err(CodeError::UncompressedTooLarge(CODE_UNCOMPRESSED_MAX));
        }
        budget -= copied;
        let exec = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        files.push((target, if exec { 0o555 } else { 0o444 }));
    }
    for (path, mode) in files {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    for (path, link) in &links {
        if fs::symlink_metadata(path).is_ok() {
            return Err(CodeError::UnsafeEntry(path.display().to_string()));
        }
        std::os::unix::fs::symlink(link, path)?;
    }
    // A chain of links can still climb out where each looks fine alone: check where each
    // really ends up.
    let root = fs::canonicalize(dest)?;
    for (path, _) in &links {
        if let Ok(real) = fs::canonicalize(path)
            && !real.starts_with(&root)
        {
            return Err(CodeError::UnsafeEntry(
                path.strip_prefix(dest)
                    .unwrap_or(path)
                    .display()
                    .to_string(),
            ));
        }
    }
    make_read_only(dest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, body, mode) in entries {
            w.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
                .unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn b64(z: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(z)
    }

    #[tokio::test]
    async fn stores_and_extracts_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path().to_path_buf()).unwrap();
        let z = zip_of(&[
            ("index.py", b"print(1)", 0o644),
            ("bin/bootstrap", b"#!/bin/sh", 0o755),
        ]);
        let c = store.put_base64(&b64(&z)).await.unwrap();
        assert_eq!(c.size, z.len() as u64);
        assert_eq!(c.checksum, CRC64.checksum(&z).to_string());
        let root = store.dir(&c.digest);
        assert_eq!(fs::read(root.join("index.py")).unwrap(), b"print(1)");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(root.join("bin/bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o555);
        // No write bit anywhere in the tree, directories included.
        for p in [root.clone(), root.join("bin"), root.join("index.py")] {
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o222, 0, "{} is {mode:o}", p.display());
        }
        assert_eq!(fs::read(store.zip_path(&c.digest)).unwrap(), z);
        // Same bytes, same address, no second copy.
        assert_eq!(store.put_base64(&b64(&z)).await.unwrap(), c);
        // A removed tree comes back from the zip.
        remove_tree(&root);
        assert!(
            store
                .ensure_extracted(&c.digest)
                .await
                .unwrap()
                .join("index.py")
                .is_file()
        );
    }

    #[tokio::test]
    async fn layers_merge_with_the_first_winning_and_go_when_a_layer_goes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path().to_path_buf()).unwrap();
        let first = zip_of(&[
            ("python/a.py", b"A = 1", 0o644),
            ("shared.txt", b"from first", 0o644),
            ("replaced", b"a file now", 0o644),
        ]);
        let second = zip_of(&[
            ("python/b.py", b"B = 2", 0o644),
            ("shared.txt", b"from second", 0o644),
            ("bin/tool", b"#!/bin/sh", 0o755),
            ("replaced/inner", b"was a directory", 0o644),
        ]);
        let a = store.put_base64(&b64(&first)).await.unwrap().digest;
        let b = store.put_base64(&b64(&second)).await.unwrap().digest;
        assert_eq!(store.ensure_layers(&[]).await.unwrap(), None);
        // One layer is its own tree.
        assert_eq!(
            store.ensure_layers(std::slice::from_ref(&a)).await.unwrap(),
            Some(store.dir(&a))
        );
        let both = [a.clone(), b.clone()];
        let merged = store.ensure_layers(&both).await.unwrap().unwrap();
        assert!(merged.starts_with(dir.path().join(".layers")));
        assert_eq!(fs::read(merged.join("shared.txt")).unwrap(), b"from first");
        assert_eq!(fs::read(merged.join("replaced")).unwrap(), b"a file now");
        assert_eq!(fs::read(merged.join("python/a.py")).unwrap(), b"A = 1");
        assert_eq!(fs::read(merged.join("python/b.py")).unwrap(), b"B = 2");
        for (p, want) in [
            (merged.clone(), 0o555),
            (merged.join("python"), 0o555),
            (merged.join("bin/tool"), 0o555),
            (merged.join("shared.txt"), 0o444),
        ] {
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{}", p.display());
        }
        // The other order is another tree.
        let reversed = store
            .ensure_layers(&[b.clone(), a.clone()])
            .await
            .unwrap()
            .unwrap();
        assert_ne!(reversed, merged);
        assert_eq!(
            fs::read(reversed.join("shared.txt")).unwrap(),
            b"from second"
        );
        assert_eq!(store.ensure_layers(&both).await.unwrap().unwrap(), merged);

        // While both layers are kept, so are the merged trees; once one goes, they go too.
        let keep: HashSet<String> = both.iter().cloned().collect();
        store
            .collect(&keep, &HashSet::new(), Duration::ZERO)
            .await
            .unwrap();
        assert!(merged.is_dir() && reversed.is_dir());
        let keep: HashSet<String> = [a.clone()].into_iter().collect();
        let report = store
            .collect(&keep, &HashSet::new(), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(report.local, std::slice::from_ref(&b));
        assert!(!merged.exists() && !reversed.exists());
        assert!(store.dir(&a).is_dir());
    }

    #[tokio::test]
    async fn merged_layers_refuse_a_link_chain_out_of_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path().to_path_buf()).unwrap();
        // Alone each is harmless (`x` leads nowhere in its own package); merged, `x` climbs
        // through the other layer's `a/b/up` out of the tree.
        let link = SimpleFileOptions::default().unix_permissions(0o777);
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        w.add_directory("a/b/", SimpleFileOptions::default())
            .unwrap();
        w.add_symlink("a/b/up", "../..", link).unwrap();
        let first = w.finish().unwrap().into_inner();
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        w.add_symlink("x", "a/b/up/../..", link).unwrap();
        let second = w.finish().unwrap().into_inner();
        let a = store.put_base64(&b64(&first)).await.unwrap().digest;
        let b = store.put_base64(&b64(&second)).await.unwrap().digest;
        let merged = store.ensure_layers(&[a, b]).await;
        assert!(
            matches!(merged, Err(CodeError::UnsafeEntry(_))),
            "{merged:?}"
        );
    }

    #[test]
    fn trees_left_writable_are_made_read_only_on_open() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("abc");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("sub/f"), b"x").unwrap();
        fs::set_permissions(tree.join("sub/f"), fs::Permissions::from_mode(0o664)).unwrap();
        CodeStore::open(dir.path().to_path_buf()).unwrap();
        for (p, want) in [
            (&tree, 0o555),
            (&tree.join("sub"), 0o555),
            (&tree.join("sub/f"), 0o444),
        ] {
            let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{}", p.display());
        }
        remove_tree(&tree);
        assert!(!tree.exists());
    }

    #[test]
    fn crc64_is_the_xz_variant() {
        // The standard check value of CRC-64/XZ.
        assert_eq!(CRC64.checksum(b"123456789"), 0x995dc9bbdf1939fa);
    }

    #[tokio::test]
    async fn rejects_bad_packages() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path().to_path_buf()).unwrap();
        assert!(matches!(
            store.put_base64("@@@").await,
            Err(CodeError::InvalidBase64)
        ));
        assert!(matches!(
            store.put_base64(&b64(b"not a zip")).await,
            Err(CodeError::NotAZip(_))
        ));
        for name in ["../evil.py", "/etc/evil", "a/../../evil"] {
            let z = zip_of(&[(name, b"x", 0o644)]);
            assert!(
                matches!(
                    store.put_base64(&b64(&z)).await,
                    Err(CodeError::UnsafeEntry(_))
                ),
                "{name}"
            );
        }
        // Nothing is left behind by rejected packages.
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn rejects_links_out_of_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path().to_path_buf()).unwrap();
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        w.add_symlink("up", "../..", SimpleFileOptions::default())
            .unwrap();
        let z = w.finish().unwrap().into_inner();
        assert!(matches!(
            store.put_base64(&b64(&z)).await,
            Err(CodeError::UnsafeEntry(_))
        ));
        // A link that stays inside is fine.
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        w.start_file("pkg/real.txt", SimpleFileOptions::default())
            .unwrap();
        w.write_all(b"r").unwrap();
        w.add_symlink("bin/link", "../pkg/real.txt", SimpleFileOptions::default())
            .unwrap();
        let z = w.finish().unwrap().into_inner();
        let c = store.put_base64(&b64(&z)).await.unwrap();
        assert_eq!(
            fs::read(store.dir(&c.digest).join("bin/link")).unwrap(),
            b"r"
        );
    }

    #[tokio::test]
    async fn rejects_zip_bombs() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path().to_path_buf()).unwrap();
        // 600 MB of zeros deflates to well under a megabyte.
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        w.start_file(
            "zeros",
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..600 {
            w.write_all(&chunk).unwrap();
        }
        let z = w.finish().unwrap().into_inner();
        assert!(z.len() < 2 << 20);
        assert!(matches!(
            store.put_base64(&b64(&z)).await,
            Err(CodeError::UncompressedTooLarge(_))
        ));
    }

    // ---- properties: whatever the archive, extraction never panics and never writes or
    // links outside its directory (the `zip_extract` fuzz target explores the same ground).

    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Entry {
        File(String, Vec<u8>, u32),
        Dir(String),
        Link(String, String),
    }

    fn entry_name() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            3 => "[a-c]{1,2}",
            1 => Just("..".to_owned()),
            1 => Just(".".to_owned()),
            1 => Just(String::new()),
        ];
        (
            prop::collection::vec(segment, 1..4),
            prop_oneof![4 => Just(""), 1 => Just("/"), 1 => Just("\\")],
        )
            .prop_map(|(segs, lead)| format!("{lead}{}", segs.join("/")))
    }

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        let entry = prop_oneof![
            4 => (entry_name(), prop::collection::vec(any::<u8>(), 0..32), prop_oneof![Just(0o644u32), Just(0o755u32)])
                .prop_map(|(n, b, m)| Entry::File(n, b, m)),
            1 => entry_name().prop_map(Entry::Dir),
            2 => (entry_name(), entry_name()).prop_map(|(n, t)| Entry::Link(n, t)),
        ];
        prop::collection::vec(entry, 0..8)
    }

    /// The path an entry name denotes, as far as `.` and empty segments go.
    fn normalised(name: &str) -> Vec<&str> {
        name.split(['/', '\\'])
            .filter(|s| !s.is_empty() && *s != ".")
            .collect()
    }

    /// Found by `generated_packages_stay_inside`: `a/./a` is the same file as `a/a`, so the
    /// later entry's body is what reads back; the property must not call `a/a` unique.
    #[test]
    fn aliased_names_are_one_file() {
        let entries = vec![
            Entry::File("a/a".into(), vec![], 0o644),
            Entry::File("a/./a".into(), vec![0], 0o644),
        ];
        let sandbox = extract_contained(&build(&entries)).unwrap();
        let got = fs::read(sandbox.path().join("package/a/a")).unwrap();
        assert_eq!(got, vec![0u8]);
    }

    fn build(entries: &[Entry]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let mut seen = std::collections::HashSet::new();
        for e in entries {
            let name = match e {
                Entry::File(n, ..) | Entry::Dir(n) | Entry::Link(n, _) => n,
            };
            // The writer refuses duplicate names (and a refused entry leaves it unusable).
            if !seen.insert(name.trim_end_matches('/').to_owned()) {
                continue;
            }
            let opts = SimpleFileOptions::default();
            let ok = match e {
                Entry::File(n, body, mode) => w
                    .start_file(n.as_str(), opts.unix_permissions(*mode))
                    .and_then(|()| w.write_all(body).map_err(Into::into))
                    .is_ok(),
                Entry::Dir(n) => w.add_directory(n.as_str(), opts).is_ok(),
                Entry::Link(n, t) => w.add_symlink(n.as_str(), t.as_str(), opts).is_ok(),
            };
            if !ok {
                break;
            }
        }
        w.finish().map(|c| c.into_inner()).unwrap_or_default()
    }

    /// Extracts into `sandbox/package` and checks nothing escaped; the result of `extract`.
    fn extract_contained(zip: &[u8]) -> Result<tempfile::TempDir, CodeError> {
        let sandbox = tempfile::tempdir().unwrap();
        let dest = sandbox.path().join("package");
        let result = extract(zip, &dest);
        let beside: Vec<_> = fs::read_dir(sandbox.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "package")
            .collect();
        assert!(beside.is_empty(), "written outside the package: {beside:?}");
        if result.is_ok() {
            let root = fs::canonicalize(&dest).unwrap();
            let mut stack = vec![dest.clone()];
            while let Some(dir) = stack.pop() {
                for e in fs::read_dir(&dir).unwrap().flatten() {
                    let meta = fs::symlink_metadata(e.path()).unwrap();
                    if meta.file_type().is_symlink() {
                        if let Ok(real) = fs::canonicalize(e.path()) {
                            assert!(
                                real.starts_with(&root),
                                "{:?} escapes to {real:?}",
                                e.path()
                            );
                        }
                    } else if meta.is_dir() {
                        stack.push(e.path());
                    }
                }
            }
        }
        make_writable(sandbox.path());
        result.map(|()| sandbox)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn generated_packages_stay_inside(entries in entries()) {
            let zip = build(&entries);
            if let Ok(sandbox) = extract_contained(&zip) {
                // Plain names with a single entry each read back as written.
                for e in &entries {
                    let Entry::File(name, body, _) = e else { continue };
                    let plain = name.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
                    // Unique as a path, not just as a string: `a/./a` and `a//a` name the same
                    // file as `a/a`, and a `..` elsewhere may too.
                    let unique = entries.iter().filter(|o| match o {
                        Entry::File(n, ..) | Entry::Dir(n) | Entry::Link(n, _) => {
                            n.contains("..") || normalised(n) == normalised(name)
                        }
                    }).count() == 1;
                    if plain && unique {
                        let got = fs::read(sandbox.path().join("package").join(name)).unwrap();
                        prop_assert_eq!(&got, body, "{}", name);
                    }
                }
            }
        }

        #[test]
        fn damaged_packages_never_panic(
            entries in entries(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut zip = build(&entries);
            if !zip.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(zip.len());
                    zip[i] = byte;
                }
            }
            let _ = extract_contained(&zip);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = extract_contained(&bytes);
        }
    }
}
