//! The runtime registry: which FC runtime names this server can run, and how.
//!
//! Each runtime family is one module — [`custom`], [`python`], [`nodejs`] — that says how an
//! instance of it is launched: which program and arguments, which bootstrap, what its jail must
//! mount besides the system directories, and what it puts on `PATH`. The set of names FC
//! accepts lives in `fcd_core::model::KNOWN_RUNTIMES`; the set this server runs is whatever the
//! registry holds after probing the machine at start (a family whose interpreter is missing is
//! left out, and says why). The difference is an error that lists what can run.
//!
//! A family hands back a [`Launch`] naming the instance backend it needs: the interpreters and
//! custom runtimes run on the OS-process backend (`crate::process`), the `wasm` family on the
//! in-process wasmtime engine (`crate::wasm`, cargo feature `wasm`).

pub mod container;
pub(crate) mod custom;
pub(crate) mod nodejs;
pub(crate) mod python;
#[cfg(feature = "wasm")]
pub(crate) mod wasm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::FunctionSpec;
use crate::sandbox::Bind;

/// Where a runtime's bootstrap file appears inside a jail.
const BOOTSTRAP_DIR_IN_JAIL: &str = "/var/fcd";

/// Server-wide runtime settings, from `fcd serve`'s flags.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Interpreter for the `python3*` runtimes.
    pub python: String,
    /// Interpreter for the `nodejs*` runtimes.
    pub node: String,
    /// Where bootstraps are written (`<data-dir>/runtime`).
    pub dir: PathBuf,
    /// The `wasm` runtime's engine settings; `None` leaves the runtime out.
    pub wasm: Option<WasmOptions>,
}

/// Server-wide settings of the `wasm` runtime's engine.
#[derive(Debug, Clone)]
pub struct WasmOptions {
    /// Where compiled code is kept (`<data-dir>/wasm-cache` unless `--wasm-cache-dir`).
    pub cache_dir: PathBuf,
    /// The server's instance budget, which sizes the pooling allocator.
    pub max_instances: u32,
    /// Whether to use the pooling allocator (on unless `--wasm-pooling false`).
    pub pooling: bool,
}

/// Where an instance is being placed, as the runtime needs to know it.
#[derive(Debug)]
pub(crate) struct Placement<'a> {
    pub(crate) spec: &'a FunctionSpec,
    /// The code directory as the instance sees it (`/code` in a jail).
    pub(crate) code_root: &'a Path,
    pub(crate) jailed: bool,
}

/// How to start one instance: the backend it runs on and what that backend needs.
#[derive(Debug)]
pub(crate) enum Launch {
    /// An OS process speaking the custom-runtime HTTP contract on the instance's port.
    Process(ProcessLaunch),
    /// A WebAssembly guest run in process by the wasm engine ([`crate::wasm`]).
    #[cfg(feature = "wasm")]
    Wasm(wasm::WasmLaunch),
}

#[derive(Debug)]
pub(crate) struct ProcessLaunch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// Directories put before the system ones on the instance's `PATH` (its interpreter's).
    pub(crate) path_dirs: Vec<String>,
    /// What a jail must show read-only besides the system directories and the code.
    pub(crate) mounts: Vec<Bind>,
    /// The program waits for its function on `FCD_ASSIGNMENT_FD` (fcd's bootstraps), so it can
    /// be started ahead in a prewarmed jail; otherwise a prewarmed jail runs it on assignment.
    pub(crate) reads_assignment: bool,
    /// An image to run as the jail's root instead of the host's trees (`custom-container`).
    pub(crate) image: Option<container::ImageLaunch>,
}

/// One runtime family.
pub(crate) trait Runtime: Send + Sync + std::fmt::Debug {
    /// The FC runtime names this family runs.
    fn names(&self) -> &'static [&'static str];
    /// How to launch an instance of `placement.spec`.
    fn launch(&self, placement: &Placement<'_>) -> Result<Launch, crate::StartError>;
    /// What it runs on, for `GET /status` (interpreter and version).
    fn describe(&self) -> String;
    /// The engine of the in-process wasm family.
    #[cfg(feature = "wasm")]
    fn wasm_engine(&self) -> Option<Arc<crate::wasm::WasmEngine>> {
        None
    }
    /// The launch of a prewarmed jail for this family's functions of `memory_mb`, before any
    /// function is known (jailed only: outside a jail nothing is prewarmed); `None` for a
    /// family that runs no process.
    fn blank_launch(&self, memory_mb: u32) -> Option<ProcessLaunch>;
}

/// The runtimes this server can run, by FC runtime name.
#[derive(Debug, Clone)]
pub struct Registry {
    by_name: BTreeMap<&'static str, Arc<dyn Runtime>>,
    /// Families that could not be set up, and why.
    missing: Vec<(String, String)>,
}

impl Registry {
    /// Probes the machine for each family's interpreter and writes the bootstraps under
    /// `opts.dir`. Families that cannot run here are left out and recorded with the reason.
    pub fn detect(opts: &RuntimeOptions) -> Registry {
        let mut reg = Registry {
            by_name: BTreeMap::new(),
            missing: Vec::new(),
        };
        reg.add(Ok(Arc::new(custom::Custom)));
        reg.add(Ok(Arc::new(container::Container)));
        if let Some(w) = &opts.wasm {
            #[cfg(feature = "wasm")]
            reg.add(
                crate::wasm::WasmEngine::new(w)
                    .map(|engine| Arc::new(wasm::Wasm { engine }) as Arc<dyn Runtime>)
                    .map_err(|why| ("wasm".to_owned(), why)),
            );
            #[cfg(not(feature = "wasm"))]
            reg.add(Err((
                "wasm".to_owned(),
                format!(
                    "this fcd was built without its `wasm` feature (cache {} unused)",
                    w.cache_dir.display()
                ),
            )));
        }
        // Each probe starts an interpreter (tens of milliseconds): run them side by side.
        let (py, node) = std::thread::scope(|s| {
            let py = s.spawn(|| python::Python::detect(opts));
            let node = s.spawn(|| nodejs::NodeJs::detect(opts));
            (py.join(), node.join())
        });
        for (family, probed) in [
            (
                "python3",
                py.map(|r| r.map(|p| Arc::new(p) as Arc<dyn Runtime>)),
            ),
            (
                "nodejs",
                node.map(|r| r.map(|n| Arc::new(n) as Arc<dyn Runtime>)),
            ),
        ] {
            reg.add(
                probed
                    .unwrap_or_else(|_| Err((family.to_owned(), "its probe panicked".to_owned()))),
            );
        }
        reg
    }

    fn add(&mut self, family: Result<Arc<dyn Runtime>, (String, String)>) {
        match family {
            Ok(rt) => {
                for name in rt.names() {
                    self.by_name.insert(name, rt.clone());
                }
            }
            Err(missing) => self.missing.push(missing),
        }
    }

    pub(crate) fn get(&self, runtime: &str) -> Option<&Arc<dyn Runtime>> {
        self.by_name.get(runtime)
    }

    /// The wasm engine, when this server runs the `wasm` runtime.
    #[cfg(feature = "wasm")]
    pub fn wasm_engine(&self) -> Option<Arc<crate::wasm::WasmEngine>> {
        self.by_name.get("wasm").and_then(|rt| rt.wasm_engine())
    }

    /// Each family once.
    pub(crate) fn families(&self) -> Vec<Arc<dyn Runtime>> {
        let mut out: Vec<Arc<dyn Runtime>> = Vec::new();
        for rt in self.by_name.values() {
            if !out.iter().any(|o| Arc::ptr_eq(o, rt)) {
                out.push(rt.clone());
            }
        }
        out
    }

    /// Every FC runtime name this server can run.
    pub fn runnable(&self) -> Vec<&'static str> {
        self.by_name.keys().copied().collect()
    }

    /// For `GET /status`: what each runnable family runs on, and what is missing.
    pub fn describe(&self) -> serde_json::Value {
        let mut families = serde_json::Map::new();
        for rt in self.by_name.values() {
            let names = rt.names().join(",");
            families
                .entry(names)
                .or_insert_with(|| serde_json::Value::String(rt.describe()));
        }
        let missing: serde_json::Map<String, serde_json::Value> = self
            .missing
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        // Families whose default kind is kept prewarmed from start (the rest from first use —
        // an image's — or never: `wasm` runs in fcd's own process).
        let prewarmed: Vec<String> = self
            .families()
            .iter()
            .filter(|rt| rt.blank_launch(fcd_core::limits::MEMORY_DEFAULT).is_some())
            .map(|rt| rt.names().join(","))
            .collect();
        serde_json::json!({
            "runnable": self.runnable(),
            "families": families,
            "prewarmedAtStart": prewarmed,
            "missing": missing,
        })
    }

    /// Families that could not be set up, with the reason (for start-up warnings).
    pub fn missing(&self) -> &[(String, String)] {
        &self.missing
    }
}

/// An interpreter found on this machine: its real path, installation prefix, and the files it
/// had mapped once started (its shared libraries).
#[derive(Debug, Clone)]
pub(crate) struct Interpreter {
    pub(crate) exe: PathBuf,
    pub(crate) prefix: PathBuf,
    pub(crate) version: String,
    pub(crate) mapped: Vec<PathBuf>,
}

impl Interpreter {
    /// Runs `program args…`, which must print the real executable, the prefix and the version,
    /// one per line, then the paths of the files it has mapped (from `/proc/self/maps`), one
    /// per line.
    pub(crate) fn probe(program: &str, args: &[&str]) -> Result<Interpreter, String> {
        // Instances start with a clean environment; so does the probe (NODE_EXTRA_CA_CERTS in
        // fcd's environment alone makes `node` read a whole CA bundle first).
        let out = Command::new(program)
            .args(args)
            .env_remove("NODE_OPTIONS")
            .env_remove("NODE_EXTRA_CA_CERTS")
            .env_remove("PYTHONSTARTUP")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("`{program}` could not be run: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or_default();
            return Err(format!("`{program}` failed ({}): {last}", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        match (lines.next(), lines.next(), lines.next()) {
            (Some(exe), Some(prefix), Some(version)) => Ok(Interpreter {
                exe: exe.trim().into(),
                prefix: prefix.trim().into(),
                version: version.trim().to_owned(),
                mapped: lines.filter_map(mapped_file).collect(),
            }),
            _ => Err(format!("`{program}` printed no location")),
        }
    }

    /// The interpreter's directory, for `PATH`.
    pub(crate) fn bin_dir(&self) -> Vec<String> {
        self.exe
            .parent()
            .map(|d| vec![d.display().to_string()])
            .unwrap_or_default()
    }

    /// What a jail must mount for this interpreter besides the system trees: its prefix, the
    /// executable's directory, and the directories of the libraries it loaded, each unless a
    /// system tree (or another of these) holds it already. A pyenv or nvm interpreter under
    /// `/root` or `/home` gets exactly its own installation, not the home around it.
    pub(crate) fn mounts(&self) -> Vec<Bind> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut want = |dir: &Path| {
            if !dir.is_absolute()
                || dir.parent().is_none()
                || crate::sandbox::view::is_system(dir)
                || dirs.iter().any(|d| dir.starts_with(d))
            {
                return;
            }
            dirs.retain(|d| !d.starts_with(dir));
            dirs.push(dir.to_path_buf());
        };
        want(&self.prefix);
        if let Some(d) = self.exe.parent() {
            want(d);
        }
        for lib in &self.mapped {
            if let Some(d) = lib.parent() {
                want(d);
            }
        }
        dirs.into_iter()
            .map(|d| Bind {
                host: d.clone(),
                inside: d,
                writable: false,
            })
            .collect()
    }
}

/// A line of a probe's list of mapped files, if it names a regular file outside the kernel's
/// pseudo file systems (`/dev/zero (deleted)`, `/memfd:...` are not).
fn mapped_file(line: &str) -> Option<PathBuf> {
    let path = Path::new(line.trim().trim_end_matches(" (deleted)"));
    if !path.is_absolute()
        || ["/dev", "/proc", "/sys"]
            .iter()
            .any(|p| path.starts_with(p))
    {
        return None;
    }
    path.is_file().then(|| path.to_path_buf())
}

/// A bootstrap written under the runtime dir, and where an instance finds it.
#[derive(Debug, Clone)]
pub(crate) struct Bootstrap {
    host: PathBuf,
    file_name: &'static str,
}

impl Bootstrap {
    pub(crate) fn write(dir: &Path, file_name: &'static str, text: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let host = dir.join(file_name);
        std::fs::write(&host, text).map_err(|e| format!("writing {}: {e}", host.display()))?;
        Ok(Bootstrap { host, file_name })
    }

    /// The path the instance runs, and the mount that makes it visible in a jail.
    pub(crate) fn place(&self, jailed: bool) -> (String, Option<Bind>) {
        if !jailed {
            return (self.host.display().to_string(), None);
        }
        let inside = Path::new(BOOTSTRAP_DIR_IN_JAIL).join(self.file_name);
        let bind = Bind {
            host: self.host.clone(),
            inside: inside.clone(),
            writable: false,
        };
        (inside.display().to_string(), Some(bind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interpreter(exe: &str, prefix: &str, mapped: &[&str]) -> Interpreter {
        Interpreter {
            exe: exe.into(),
            prefix: prefix.into(),
            version: "3.11.7".into(),
            mapped: mapped.iter().map(PathBuf::from).collect(),
        }
    }

    fn hosts(b: &[Bind]) -> Vec<&Path> {
        b.iter().map(|b| b.host.as_path()).collect()
    }

    #[test]
    fn a_system_interpreter_needs_no_mounts() {
        let node = interpreter(
            "/usr/bin/node",
            "/usr",
            &["/usr/bin/node", "/usr/lib/x86_64-linux-gnu/libc.so.6"],
        );
        assert!(node.mounts().is_empty());
    }

    #[test]
    fn an_interpreter_elsewhere_gets_its_installation_and_libraries_only() {
        let py = interpreter(
            "/root/.pyenv/versions/3.11.7/bin/python3.11",
            "/root/.pyenv/versions/3.11.7",
            &[
                "/root/.pyenv/versions/3.11.7/bin/python3.11",
                "/root/.pyenv/versions/3.11.7/lib/python3.11/lib-dynload/_ssl.so",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "/opt/openssl/lib/libcrypto.so.3",
                "/opt/openssl/lib/libssl.so.3",
            ],
        );
        assert_eq!(
            hosts(&py.mounts()),
            [
                Path::new("/root/.pyenv/versions/3.11.7"),
                Path::new("/opt/openssl/lib")
            ]
        );
        // Never the whole root, whatever a probe prints.
        let odd = interpreter("/python", "/", &["/libfoo.so"]);
        assert!(odd.mounts().is_empty(), "{:?}", odd.mounts());
    }

    #[test]
    fn mapped_lines_name_real_files_only() {
        assert_eq!(mapped_file("/dev/zero (deleted)"), None);
        assert_eq!(mapped_file("/memfd:doublemapper (deleted)"), None);
        assert_eq!(mapped_file("[vdso]"), None);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(mapped_file(&exe.display().to_string()), Some(exe));
    }
}
