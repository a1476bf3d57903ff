//! Unpacking an image's layers into one root file system (blocking IO; run it off the async
//! threads).
//!
//! Layers are applied in order onto a directory that nothing else sees until it is complete
//! (the store renames it into place). The rules, and why:
//!
//! - paths lose a leading `/` or `./`; a `..` component refuses the whole image, as the code
//!   store refuses a zip with a path escape — a layer that tries is broken or hostile;
//! - no symlink is ever followed while extracting: an entry (or a whiteout) whose parent
//!   component is a symlink in the tree refuses the image, since writing through it could
//!   land outside the root; parents are checked with `lstat` one component at a time;
//! - `.wh.<name>` removes `<name>` of lower layers; `.wh..wh..opq` empties its directory of
//!   what lower layers put there, keeping what this layer wrote (before or after it);
//! - a hard link must name an entry already in the tree (not a directory);
//! - files and directories belong to whoever runs fcd (never the image's uids); their mode is
//!   the entry's without setuid/setgid, and "others" get the owner's read and execute bits,
//!   because the function runs under a uid of its own and must read what the image's user
//!   could. Directory modes are applied at the end, so a read-only directory never stops a
//!   later layer from writing into it;
//! - devices and fifos are skipped: the jail mounts its own `/dev`;
//! - at the end the root is 0755, and `tmp`, `dev`, `proc`, `etc` and empty `etc/hosts`,
//!   `etc/resolv.conf`, `etc/passwd`, `etc/group` exist for the jail to mount on.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::ImageError;

/// Entries per image, beyond which an image is refused (an inode bomb is as bad as a byte one).
pub(crate) const MAX_ENTRIES: u64 = 2_000_000;

/// OCI and Docker layer media types fcd unpacks.
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// Whether fcd can unpack a layer of `media_type`; the error names it and why not.
pub(crate) fn check_layer_type(reference: &str, media_type: &str) -> Result<(), ImageError> {
    if LAYER_TYPES.contains(&media_type) {
        return Ok(());
    }
    let why = if media_type.contains("zstd") {
        "zstd-compressed layers are not supported; build the image with gzip compression"
    } else if media_type.contains("foreign") || media_type.contains("nondistributable") {
        "foreign (non-distributable) layers are not supported"
    } else {
        "it is not a tar layer fcd can unpack"
    };
    Err(ImageError::Unsupported(format!(
        "image {reference} cannot be used: a layer has media type {media_type}: {why}"
    )))
}

/// The mode fcd gives a file or directory whose entry says `mode`.
pub(crate) fn normalise_mode(mode: u32) -> u32 {
    let mode = mode & 0o1777; // no setuid, no setgid; the sticky bit stays
    mode | ((mode >> 6) & 0o5)
}

/// A root file system being built, layer by layer.
pub(crate) struct Unpacker {
    root: PathBuf,
    reference: String,
    /// Modes of directories the layers declared, applied by [`Unpacker::finish`].
    dir_modes: HashMap<PathBuf, u32>,
    max_bytes: u64,
    written_bytes: u64,
    entries: u64,
}

/// What one layer wrote so far (and every ancestor of it): what its own whiteouts spare.
type Written = HashSet<PathBuf>;

impl Unpacker {
    /// Starts an empty root at `root` (created; must not exist).
    pub(crate) fn new(root: PathBuf, reference: &str, max_bytes: u64) -> Result<Self, ImageError> {
        fs::create_dir(&root)
            .map_err(|e| ImageError::io(reference, "creating the image root", &e))?;
        Ok(Unpacker {
            root,
            reference: reference.to_owned(),
            dir_modes: HashMap::new(),
            max_bytes,
            written_bytes: 0,
            entries: 0,
        })
    }

    fn corrupt(&self, layer: &str, why: impl std::fmt::Display) -> ImageError {
        ImageError::Corrupt(format!(
            "image {} cannot be used: layer {layer} {why}",
            self.reference
        ))
    }

    fn io(&self, what: &str, e: &io::Error) -> ImageError {
        ImageError::io(&self.reference, what, e)
    }

    /// Applies one layer (tar, gzip detected by its magic) from `reader`. `layer` names it in
    /// errors (its digest).
    pub(crate) fn apply_layer(&mut self, reader: impl Read, layer: &str) -> Result<(), ImageError> {
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        let head = reader
            .fill_buf()
            .map_err(|e| self.io("reading a downloaded layer", &e))?;
        if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(ImageError::Unsupported(format!(
                "image {} cannot be used: layer {layer} is zstd-compressed; build the image with gzip compression",
                self.reference
            )));
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            self.apply_tar(flate2::read::MultiGzDecoder::new(reader), layer)
        } else {
            self.apply_tar(reader, layer)
        }
    }

    fn apply_tar(&mut self, reader: impl Read, layer: &str) -> Result<(), ImageError> {
        let mut archive = tar::Archive::new(reader);
        let mut written = Written::new();
        let entries = archive
            .entries()
            .map_err(|e| self.corrupt(layer, format_args!("is not a valid tar archive: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                self.corrupt(layer, format_args!("is not a valid tar archive: {e}"))
            })?;
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(ImageError::TooLarge(format!(
                    "image {} has more than {MAX_ENTRIES} files",
                    self.reference
                )));
            }
            self.apply_entry(entry, layer, &mut written)?;
        }
        Ok(())
    }

    fn apply_entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        layer: &str,
        written: &mut Written,
    ) -> Result<(), ImageError> {
        let raw = entry
            .path()
            .map_err(|e| self.corrupt(layer, format_args!("has an unreadable entry name: {e}")))?
            .into_owned();
        let rel = clean(&raw).ok_or_else(|| {
            self.corrupt(
                layer,
                format_args!(
                    "has an entry '{}' that climbs out of the image with '..'",
                    raw.display()
                ),
            )
        })?;
        let kind = entry.header().entry_type();
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            // The root itself ("./"): its mode is fcd's (0755).
            return Ok(());
        };
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();

        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                self.ensure_parents(&rel, layer)?;
                self.make_dir(&parent)?;
                self.purge(&parent, written)?;
                mark(written, &parent);
            } else if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(self.corrupt(
                    layer,
                    format_args!("has a whiteout '{}' that names no entry", rel.display()),
                ));
            } else if !hidden.starts_with(".wh.") {
                // Whiteouts apply to lower layers only: what this layer wrote stays.
                let target = parent.join(hidden);
                if !written.contains(&target) && self.parents_exist(&target, layer)? {
                    self.clear(&target)?;
                }
            }
            // Other `.wh..wh.*` names are aufs bookkeeping: nothing to apply.
            return Ok(());
        }

        let mode = normalise_mode(entry.header().mode().unwrap_or(0o644));
        match kind {
            tar::EntryType::Directory => {
                self.ensure_parents(&rel, layer)?;
                self.make_dir(&rel)?;
                self.dir_modes.insert(rel.clone(), mode);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.ensure_parents(&rel, layer)?;
                self.remove_existing(&rel)?;
                let path = self.root.join(&rel);
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| self.io("creating a file", &e))?;
                let mut buf = vec![0u8; 128 * 1024];
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(self.corrupt(
                                layer,
                                format_args!("could not be read at '{}': {e}", rel.display()),
                            ));
                        }
                    };
                    self.written_bytes += n as u64;
                    if self.written_bytes > self.max_bytes {
                        return Err(ImageError::TooLarge(format!(
                            "image {} unpacks to more than {} MB, the image cache's size bound (--image-cache-max-mb)",
                            self.reference,
                            self.max_bytes / (1024 * 1024)
                        )));
                    }
                    file.write_all(buf.get(..n).unwrap_or_default())
                        .map_err(|e| self.io("writing a file", &e))?;
                }
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|e| self.io("setting a file's mode", &e))?;
                // Keeping modification times keeps e.g. Python's .pyc files valid.
                if let Ok(mtime) = entry.header().mtime() {
                    let _ = file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime));
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.corrupt(layer, format_args!("has an unreadable link: {e}")))?
                    .ok_or_else(|| {
                        self.corrupt(
                            layer,
                            format_args!("has a symlink '{}' without a target", rel.display()),
                        )
                    })?
                    .into_owned();
                self.ensure_parents(&rel, layer)?;
                self.remove_existing(&rel)?;
                // Created as it is: absolute targets resolve inside the jail's root.
                std::os::unix::fs::symlink(&target, self.root.join(&rel))
                    .map_err(|e| self.io("creating a symlink", &e))?;
            }
            tar::EntryType::Link => {
                let raw_target = entry
                    .link_name()
                    .map_err(|e| self.corrupt(layer, format_args!("has an unreadable link: {e}")))?
                    .ok_or_else(|| {
                        self.corrupt(
                            layer,
                            format_args!("has a hard link '{}' without a target", rel.display()),
                        )
                    })?
                    .into_owned();
                let escape = || {
                    self.corrupt(
                        layer,
                        format_args!(
                            "has a hard link '{}' to '{}', outside the image or not extracted before it",
                            rel.display(),
                            raw_target.display()
                        ),
                    )
                };
                let target = clean(&raw_target).ok_or_else(escape)?;
                if target.as_os_str().is_empty() || !self.parents_exist(&target, layer)? {
                    return Err(escape());
                }
                match fs::symlink_metadata(self.root.join(&target)) {
                    Ok(m) if !m.is_dir() => {}
                    _ => return Err(escape()),
                }
                if target == rel {
                    return Ok(());
                }
                self.ensure_parents(&rel, layer)?;
                self.remove_existing(&rel)?;
                fs::hard_link(self.root.join(&target), self.root.join(&rel))
                    .map_err(|e| self.io("creating a hard link", &e))?;
            }
            // Devices and fifos: the jail has its own /dev. PAX and GNU headers the tar
            // reader did not fold into an entry carry nothing to create.
            _ => return Ok(()),
        }
        mark(written, &rel);
        Ok(())
    }

    /// Makes every parent of `rel` a real directory: refuses a symlink among them, replaces a
    /// file, creates what is missing.
    fn ensure_parents(&self, rel: &Path, layer: &str) -> Result<(), ImageError> {
        let mut cur = self.root.clone();
        let mut shown = PathBuf::new();
        let parents: Vec<Component<'_>> = rel.components().collect();
        for c in parents.iter().take(parents.len().saturating_sub(1)) {
            cur.push(c);
            shown.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.corrupt(
                        layer,
                        format_args!(
                            "has an entry '{}' under the symbolic link '{}'",
                            rel.display(),
                            shown.display()
                        ),
                    ));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&cur)
                        .map_err(|e| self.io("replacing a file by a directory", &e))?;
                    fs::create_dir(&cur).map_err(|e| self.io("creating a directory", &e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&cur).map_err(|e| self.io("creating a directory", &e))?;
                }
                Err(e) => return Err(self.io("inspecting a directory", &e)),
            }
        }
        Ok(())
    }

    /// Whether every parent of `rel` is a real directory (false if one is missing or not a
    /// directory); a symlink among them refuses the image.
    fn parents_exist(&self, rel: &Path, layer: &str) -> Result<bool, ImageError> {
        let mut cur = self.root.clone();
        let parents: Vec<Component<'_>> = rel.components().collect();
        for c in parents.iter().take(parents.len().saturating_sub(1)) {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.corrupt(
                        layer,
                        format_args!("names '{}' through a symbolic link", rel.display()),
                    ));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(self.io("inspecting a directory", &e)),
            }
        }
        Ok(true)
    }

    /// `rel` (parents checked) as a directory: kept if it is one, else replaced.
    fn make_dir(&self, rel: &Path) -> Result<(), ImageError> {
        let path = self.root.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => fs::remove_file(&path).map_err(|e| self.io("replacing a file", &e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("inspecting a directory", &e)),
        }
        fs::create_dir(&path).map_err(|e| self.io("creating a directory", &e))
    }

    /// Removes whatever is at `rel` (parents checked), a directory with all it holds.
    fn clear(&self, rel: &Path) -> Result<(), ImageError> {
        let path = self.root.join(rel);
        match fs::symlink_metadata(&path) {
            // remove_dir_all never follows the symlinks it meets.
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|e| self.io("removing a whited-out entry", &e))
    }

    /// Removes what is at `rel` before a non-directory entry takes its place.
    fn remove_existing(&self, rel: &Path) -> Result<(), ImageError> {
        self.clear(rel)
    }

    /// An opaque directory: removes what lower layers put under `rel`, keeping what this
    /// layer wrote (and, under a directory this layer wrote, still only what it wrote).
    fn purge(&self, rel: &Path, written: &Written) -> Result<(), ImageError> {
        let dir = self.root.join(rel);
        let children = fs::read_dir(&dir).map_err(|e| self.io("reading a directory", &e))?;
        for child in children {
            let child = child.map_err(|e| self.io("reading a directory", &e))?;
            let child_rel = rel.join(child.file_name());
            if written.contains(&child_rel) {
                let is_dir = child.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if is_dir {
                    self.purge(&child_rel, written)?;
                }
            } else {
                self.clear(&child_rel)?;
            }
        }
        Ok(())
    }

    /// Makes the mount points, applies directory modes and returns the bytes on disk
    /// (regular files, each inode once).
    pub(crate) fn finish(self) -> Result<u64, ImageError> {
        for dir in ["tmp", "dev", "proc", "etc"] {
            self.make_dir(Path::new(dir))?;
        }
        for file in ["etc/hosts", "etc/resolv.conf", "etc/passwd", "etc/group"] {
            let path = self.root.join(file);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => continue,
                Ok(_) => self.clear(Path::new(file))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("inspecting a mount point", &e)),
            }
            let f = fs::File::create(&path).map_err(|e| self.io("creating a mount point", &e))?;
            f.set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(|e| self.io("setting a file's mode", &e))?;
        }
        // Walk without following symlinks; chmod once the walk is done, so a directory made
        // unreadable by its mode is never one still to be read.
        let mut dirs = Vec::new();
        let mut inodes = HashSet::new();
        let mut size = 0u64;
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let read = fs::read_dir(self.root.join(&rel))
                .map_err(|e| self.io("reading a directory", &e))?;
            for child in read {
                let child = child.map_err(|e| self.io("reading a directory", &e))?;
                let meta = child
                    .metadata()
                    .map_err(|e| self.io("inspecting a file", &e))?;
                let child_rel = rel.join(child.file_name());
                if meta.is_dir() {
                    stack.push(child_rel);
                } else if meta.is_file() && inodes.insert(meta.ino()) {
                    size += meta.len();
                }
            }
            dirs.push(rel);
        }
        for rel in dirs {
            let mode = if rel.as_os_str().is_empty() {
                0o755
            } else {
                self.dir_modes.get(&rel).copied().unwrap_or(0o755)
            };
            fs::set_permissions(self.root.join(&rel), fs::Permissions::from_mode(mode))
                .map_err(|e| self.io("setting a directory's mode", &e))?;
        }
        Ok(size)
    }
}

/// `rel` and its ancestors as written by the current layer.
fn mark(written: &mut Written, rel: &Path) {
    let mut p = rel;
    loop {
        if p.as_os_str().is_empty() || !written.insert(p.to_path_buf()) {
            // An ancestor already there has its own ancestors there too.
            break;
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
}

/// An entry's path relative to the root: leading `/` and `.` components dropped; `None` if a
/// component is `..`.
fn clean(raw: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Removes a tree fcd wrote, whatever modes it left on it (an unprivileged fcd cannot delete
/// from a 0555 directory until it makes it writable again).
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            let mut stack = vec![path.to_path_buf()];
            while let Some(dir) = stack.pop() {
                if fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
                    if let Ok(read) = fs::read_dir(&dir) {
                        for child in read.flatten() {
                            if child.file_type().is_ok_and(|t| t.is_dir()) {
                                stack.push(child.path());
                            }
                        }
                    }
                }
            }
            fs::remove_dir_all(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer built in memory.
    struct Layer(tar::Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Layer {
            Layer(tar::Builder::new(Vec::new()))
        }

        fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_uid(1234);
            h.set_gid(1234);
            h.set_mtime(1_600_000_000);
            h
        }

        /// Writes the name into the raw header so that `..` and absolute names get through
        /// (the builder's own path setters refuse them).
        fn raw(
            mut h: tar::Header,
            name: &str,
            link: Option<&str>,
            data: &[u8],
        ) -> (tar::Header, Vec<u8>) {
            {
                let gnu = h.as_gnu_mut().unwrap();
                gnu.name = [0; 100];
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                if let Some(link) = link {
                    gnu.linkname = [0; 100];
                    gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
                }
            }
            h.set_cksum();
            (h, data.to_vec())
        }

        fn push(mut self, h: tar::Header, name: &str, link: Option<&str>, data: &[u8]) -> Layer {
            let (h, data) = Layer::raw(h, name, link, data);
            self.0.append(&h, &data[..]).unwrap();
            self
        }

        fn file(self, name: &str, mode: u32, data: &[u8]) -> Layer {
            let h = Layer::header(tar::EntryType::Regular, mode, data.len() as u64);
            self.push(h, name, None, data)
        }

        fn dir(self, name: &str, mode: u32) -> Layer {
            let h = Layer::header(tar::EntryType::Directory, mode, 0);
            self.push(h, name, None, b"")
        }

        fn symlink(self, name: &str, target: &str) -> Layer {
            let h = Layer::header(tar::EntryType::Symlink, 0o777, 0);
            self.push(h, name, Some(target), b"")
        }

        fn hardlink(self, name: &str, target: &str) -> Layer {
            let h = Layer::header(tar::EntryType::Link, 0o644, 0);
            self.push(h, name, Some(target), b"")
        }

        fn special(self, name: &str, kind: tar::EntryType) -> Layer {
            let h = Layer::header(kind, 0o644, 0);
            self.push(h, name, None, b"")
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }

        fn gzip(self) -> Vec<u8> {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&self.bytes()).unwrap();
            gz.finish().unwrap()
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        unpacker: Option<Unpacker>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture::with_max(u64::MAX)
        }

        fn with_max(max: u64) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("rootfs");
            let unpacker = Unpacker::new(root.clone(), "test.example/img:1", max).unwrap();
            Fixture {
                _dir: dir,
                root,
                unpacker: Some(unpacker),
            }
        }

        fn apply(&mut self, layer: &[u8]) -> Result<(), ImageError> {
            self.unpacker
                .as_mut()
                .unwrap()
                .apply_layer(layer, "sha256:test")
        }

        fn finish(&mut self) -> u64 {
            self.unpacker.take().unwrap().finish().unwrap()
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.root.join(rel)
        }

        fn exists(&self, rel: &str) -> bool {
            fs::symlink_metadata(self.path(rel)).is_ok()
        }

        fn read(&self, rel: &str) -> String {
            fs::read_to_string(self.path(rel)).unwrap()
        }

        fn mode(&self, rel: &str) -> u32 {
            fs::symlink_metadata(self.path(rel))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        }
    }

    #[test]
    fn files_dirs_and_symlinks() {
        let mut f = Fixture::new();
        let layer = Layer::new()
            .dir("./usr/", 0o755)
            .dir("./usr/bin/", 0o755)
            .file("./usr/bin/app", 0o755, b"#!/bin/sh\n")
            .file("/etc/app.conf", 0o600, b"x=1")
            .symlink("bin", "usr/bin")
            .symlink("usr/bin/abs", "/usr/bin/app")
            .bytes();
        f.apply(&layer).unwrap();
        let size = f.finish();
        assert_eq!(f.read("usr/bin/app"), "#!/bin/sh\n");
        assert_eq!(f.read("etc/app.conf"), "x=1");
        assert_eq!(fs::read_link(f.path("bin")).unwrap(), Path::new("usr/bin"));
        assert_eq!(
            fs::read_link(f.path("usr/bin/abs")).unwrap(),
            Path::new("/usr/bin/app")
        );
        assert_eq!(size, 13);
        let mtime = fs::metadata(f.path("usr/bin/app"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            mtime,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
        );
    }

    #[test]
    fn modes_are_normalised_and_ownership_is_ours() {
        let mut f = Fixture::new();
        let layer = Layer::new()
            .file("suid", 0o4755, b"a")
            .file("sgid", 0o2750, b"a")
            .file("private", 0o600, b"a")
            .file("secret", 0o700, b"a")
            .dir("locked", 0o700)
            .dir("sticky", 0o1777)
            .file("locked/inside", 0o644, b"a")
            .bytes();
        f.apply(&layer).unwrap();
        f.finish();
        assert_eq!(f.mode("suid"), 0o755);
        assert_eq!(f.mode("sgid"), 0o755);
        assert_eq!(f.mode("private"), 0o604);
        assert_eq!(f.mode("secret"), 0o705);
        assert_eq!(f.mode("locked"), 0o705);
        assert_eq!(f.mode("sticky"), 0o1777);
        assert_eq!(f.mode(""), 0o755);
        let me = fs::metadata(&f.root).unwrap().uid();
        assert_eq!(fs::metadata(f.path("suid")).unwrap().uid(), me);
        assert_ne!(me, 1234);
    }

    #[test]
    fn mount_points_and_etc_files_are_made() {
        let mut f = Fixture::new();
        let layer = Layer::new()
            .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
            .symlink("etc/resolv.conf", "/run/resolv.conf")
            .file("tmp", 0o644, b"not a dir")
            .bytes();
        f.apply(&layer).unwrap();
        f.finish();
        for d in ["tmp", "dev", "proc", "etc"] {
            assert!(fs::symlink_metadata(f.path(d)).unwrap().is_dir(), "{d}");
        }
        // An existing file is kept; a symlink is replaced by an empty file.
        assert_eq!(f.read("etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
        assert!(
            fs::symlink_metadata(f.path("etc/resolv.conf"))
                .unwrap()
                .is_file()
        );
        assert_eq!(f.read("etc/resolv.conf"), "");
        assert_eq!(f.read("etc/hosts"), "");
        assert_eq!(f.read("etc/group"), "");
    }

    #[test]
    fn whiteouts_remove_lower_entries() {
        let mut f = Fixture::new();
        f.apply(
            &Layer::new()
                .file("a/keep", 0o644, b"1")
                .file("a/gone", 0o644, b"1")
                .file("a/dir/x", 0o644, b"1")
                .bytes(),
        )
        .unwrap();
        f.apply(
            &Layer::new()
                .file("a/.wh.gone", 0o644, b"")
                .file("a/.wh.dir", 0o644, b"")
                .file("a/.wh.never-existed", 0o644, b"")
                .file("nowhere/.wh.x", 0o644, b"")
                .bytes(),
        )
        .unwrap();
        f.finish();
        assert!(f.exists("a/keep"));
        assert!(!f.exists("a/gone"));
        assert!(!f.exists("a/dir"));
        assert!(!f.exists("a/.wh.gone"));
        // A whiteout in a directory that does not exist creates nothing.
        assert!(!f.exists("nowhere"));
    }

    #[test]
    fn whiteout_spares_what_its_own_layer_wrote() {
        let mut f = Fixture::new();
        f.apply(&Layer::new().file("a/x", 0o644, b"lower").bytes())
            .unwrap();
        f.apply(
            &Layer::new()
                .file("a/x", 0o644, b"upper")
                .file("a/.wh.x", 0o644, b"")
                .bytes(),
        )
        .unwrap();
        f.finish();
        assert_eq!(f.read("a/x"), "upper");
    }

    #[test]
    fn opaque_whiteout_empties_lower_but_keeps_same_layer() {
        let mut f = Fixture::new();
        f.apply(
            &Layer::new()
                .file("d/lower1", 0o644, b"1")
                .file("d/sub/lower2", 0o644, b"1")
                .file("other/kept", 0o644, b"1")
                .bytes(),
        )
        .unwrap();
        f.apply(
            &Layer::new()
                .file("d/before", 0o644, b"2")
                .file("d/sub/new", 0o644, b"2")
                .file("d/.wh..wh..opq", 0o644, b"")
                .file("d/after", 0o644, b"2")
                .bytes(),
        )
        .unwrap();
        f.finish();
        assert!(!f.exists("d/lower1"));
        assert!(!f.exists("d/sub/lower2"));
        assert!(f.exists("d/before"));
        assert!(f.exists("d/sub/new"));
        assert!(f.exists("d/after"));
        assert!(f.exists("other/kept"));
        assert!(!f.exists("d/.wh..wh..opq"));
    }

    #[test]
    fn hard_links() {
        let mut f = Fixture::new();
        f.apply(
            &Layer::new()
                .file("bin/busybox", 0o755, b"bb")
                .hardlink("bin/sh", "bin/busybox")
                .hardlink("/bin/ls", "./bin/busybox")
                .bytes(),
        )
        .unwrap();
        let size = f.finish();
        assert_eq!(f.read("bin/sh"), "bb");
        let a = fs::metadata(f.path("bin/busybox")).unwrap().ino();
        assert_eq!(fs::metadata(f.path("bin/sh")).unwrap().ino(), a);
        assert_eq!(fs::metadata(f.path("bin/ls")).unwrap().ino(), a);
        // One inode counted once.
        assert_eq!(size, 2);
    }

    #[test]
    fn hard_link_escapes_and_missing_targets_are_refused() {
        for target in ["../../etc/passwd", "missing", "dir", "link/x"] {
            let mut f = Fixture::new();
            let layer = Layer::new()
                .dir("dir", 0o755)
                .symlink("link", "/etc")
                .hardlink("evil", target)
                .bytes();
            let e = f.apply(&layer).unwrap_err();
            assert!(matches!(e, ImageError::Corrupt(_)), "{target}: {e:?}");
            assert!(e.message().contains("test.example/img:1"), "{e}");
        }
    }

    #[test]
    fn dot_dot_is_refused() {
        for name in ["../escape", "a/../../escape", "./a/../b"] {
            let mut f = Fixture::new();
            let e = f
                .apply(&Layer::new().file(name, 0o644, b"x").bytes())
                .unwrap_err();
            assert!(
                matches!(e, ImageError::Corrupt(ref m) if m.contains("'..'")),
                "{name}: {e:?}"
            );
        }
        for name in ["a/.wh...", "../.wh.x", "a/.wh."] {
            let mut f = Fixture::new();
            f.apply(&Layer::new().file("a/x", 0o644, b"x").bytes())
                .unwrap();
            let e = f.apply(&Layer::new().file(name, 0o644, b"").bytes());
            assert!(matches!(e, Err(ImageError::Corrupt(_))), "{name}: {e:?}");
            assert!(f.exists("a/x"));
        }
    }

    #[test]
    fn entry_under_a_symlinked_parent_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().to_owned();
        let mut f = Fixture::new();
        let e = f
            .apply(
                &Layer::new()
                    .symlink("out", &target)
                    .file("out/pwned", 0o644, b"x")
                    .bytes(),
            )
            .unwrap_err();
        assert!(
            matches!(e, ImageError::Corrupt(ref m) if m.contains("symbolic link 'out'")),
            "{e:?}"
        );
        assert!(!outside.path().join("pwned").exists());

        // Across layers too, and for whiteouts and directories.
        let mut f = Fixture::new();
        f.apply(&Layer::new().symlink("out", &target).bytes())
            .unwrap();
        fs::write(outside.path().join("victim"), b"v").unwrap();
        for layer in [
            Layer::new().file("out/.wh.victim", 0o644, b"").bytes(),
            Layer::new().dir("out/sub", 0o755).bytes(),
            Layer::new().file("out/.wh..wh..opq", 0o644, b"").bytes(),
        ] {
            assert!(matches!(f.apply(&layer), Err(ImageError::Corrupt(_))));
        }
        assert!(outside.path().join("victim").exists());
    }

    #[test]
    fn a_symlink_replaced_by_a_directory_is_fine() {
        let mut f = Fixture::new();
        f.apply(&Layer::new().symlink("d", "/tmp").bytes()).unwrap();
        f.apply(
            &Layer::new()
                .dir("d", 0o755)
                .file("d/x", 0o644, b"x")
                .bytes(),
        )
        .unwrap();
        f.finish();
        assert!(fs::symlink_metadata(f.path("d")).unwrap().is_dir());
        assert_eq!(f.read("d/x"), "x");
    }

    #[test]
    fn devices_and_fifos_are_skipped() {
        let mut f = Fixture::new();
        f.apply(
            &Layer::new()
                .special("dev/null", tar::EntryType::Char)
                .special("dev/sda", tar::EntryType::Block)
                .special("fifo", tar::EntryType::Fifo)
                .file("ok", 0o644, b"x")
                .bytes(),
        )
        .unwrap();
        f.finish();
        assert!(!f.exists("dev/null"));
        assert!(!f.exists("fifo"));
        assert!(f.exists("ok"));
    }

    #[test]
    fn gzip_layers_are_detected_by_magic() {
        let mut f = Fixture::new();
        f.apply(&Layer::new().file("z", 0o644, b"zipped").gzip())
            .unwrap();
        f.finish();
        assert_eq!(f.read("z"), "zipped");
    }

    #[test]
    fn garbage_and_zstd_are_refused() {
        let mut f = Fixture::new();
        let e = f.apply(&[0x1f, 0x8b, 0, 1, 2, 3, 4, 5, 6, 7]).unwrap_err();
        assert!(matches!(e, ImageError::Corrupt(_)), "{e:?}");
        let mut f = Fixture::new();
        let e = f.apply(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]).unwrap_err();
        assert!(matches!(e, ImageError::Unsupported(_)), "{e:?}");
        let mut f = Fixture::new();
        let e = f.apply(&[7u8; 1024]).unwrap_err();
        assert!(matches!(e, ImageError::Corrupt(_)), "{e:?}");
    }

    #[test]
    fn size_bound_is_enforced_while_unpacking() {
        let mut f = Fixture::with_max(10);
        let e = f
            .apply(&Layer::new().file("big", 0o644, &[0u8; 11]).bytes())
            .unwrap_err();
        assert!(matches!(e, ImageError::TooLarge(_)), "{e:?}");
    }

    #[test]
    fn later_layers_overwrite_and_replace_kinds() {
        let mut f = Fixture::new();
        f.apply(
            &Layer::new()
                .file("x", 0o644, b"old")
                .dir("d", 0o755)
                .file("d/inner", 0o644, b"1")
                .dir("ro", 0o555)
                .bytes(),
        )
        .unwrap();
        f.apply(
            &Layer::new()
                .file("x", 0o644, b"new")
                .file("d", 0o644, b"now a file")
                .file("ro/inside", 0o644, b"written into a read-only dir")
                .bytes(),
        )
        .unwrap();
        f.finish();
        assert_eq!(f.read("x"), "new");
        assert_eq!(f.read("d"), "now a file");
        assert_eq!(f.mode("ro"), 0o555);
        assert!(f.exists("ro/inside"));
    }

    #[test]
    fn layer_media_types() {
        for ok in LAYER_TYPES {
            check_layer_type("r", ok).unwrap();
        }
        for (bad, word) in [
            ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                "foreign",
            ),
            (
                "application/vnd.wasm.content.layer.v1+wasm",
                "application/vnd.wasm",
            ),
        ] {
            let e = check_layer_type("reg.example/x:1", bad).unwrap_err();
            assert!(
                matches!(e, ImageError::Unsupported(ref m) if m.contains(word) && m.contains("reg.example/x:1")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn mode_rule() {
        assert_eq!(normalise_mode(0o4755), 0o755);
        assert_eq!(normalise_mode(0o640), 0o644);
        assert_eq!(normalise_mode(0o300), 0o301);
        assert_eq!(normalise_mode(0o1777), 0o1777);
    }
}
