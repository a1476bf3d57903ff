//! Code-package validation and extraction: arbitrary bytes as a zip, extracted into a fresh
//! temporary directory. Whatever is accepted stays inside its directory.
#![no_main]

use std::fs;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|zip: &[u8]| {
    let Ok(sandbox) = tempfile::tempdir() else {
        return;
    };
    let dest = sandbox.path().join("package");
    if fcd_store::code::extract(zip, &dest).is_ok() {
        let root = fs::canonicalize(&dest).expect("the package directory exists");
        check_inside(&dest, &root);
    }
    // Nothing may appear beside the package, whether it was accepted or not.
    let beside: Vec<_> = fs::read_dir(sandbox.path())
        .expect("the sandbox is readable")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "package")
        .collect();
    assert!(
        beside.is_empty(),
        "extraction wrote outside its directory: {beside:?}"
    );
    make_writable(sandbox.path());
});

/// Every entry, links included, resolves inside the package.
fn check_inside(dir: &Path, root: &Path) {
    for entry in fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).expect("entry exists");
        if meta.file_type().is_symlink() {
            if let Ok(real) = fs::canonicalize(&path) {
                assert!(
                    real.starts_with(root),
                    "{} escapes to {}",
                    path.display(),
                    real.display()
                );
            }
        } else if meta.is_dir() {
            check_inside(&path, root);
        }
    }
}

/// Extracted files and directories may be read-only; the sandbox must still be removable.
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
