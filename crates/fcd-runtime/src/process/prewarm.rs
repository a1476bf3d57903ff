//! Prewarmed jails: instances made ahead of the function they will run.
//!
//! A cold start pays for the jail (namespaces, a root built from bind mounts, a cgroup) and for
//! the runtime's own start (an interpreter and its bootstrap's imports) before the function's
//! code is even read. None of that depends on the function, so the process backend keeps a few
//! of these ready per kind — a *blank*: jailed, set up, the interpreter started and waiting —
//! and a cold start claims one: fcd hands the jail's init the function's code directory (bound
//! read-only at `/code`, after which the init detaches its view of the code store) and the
//! function's environment, and the runtime goes on from where it waited. For `custom`
//! runtimes the blank is the jail alone, and the function's own command is executed on
//! assignment. A `custom-container` function's blank is a jail on its image's root (one
//! kind per image), likewise executing the function's process on assignment.
//!
//! A blank is only used where it is indistinguishable from a fresh start: jailed, the same
//! launch (interpreter, arguments, mounts), the same memory limit, and no variable of the
//! function's that only takes effect when a process starts (`LD_*`, `PYTHON*`, `NODE_*`...).
//! Blanks are kept per key once a key has been used (and for each runtime's default at start),
//! refilled in the background after each claim. They hold no share of the server's budget: the
//! claiming request brings its own reservation.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{SpawnPlan, Spawned, instance_port, spawn};
use crate::runtimes::ProcessLaunch;
use crate::{FunctionSpec, RuntimeConfig, sandbox};

/// How long the jail's init may take to mount the code and hand over the assignment.
const ASSIGN_LIMIT: Duration = Duration::from_secs(5);

/// Variables a process reads only when it starts: a function that sets one gets a fresh start.
fn start_time_variable(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "LD_", "PYTHON", "NODE_", "UV_", "MALLOC_", "GLIBC_", "GCONV_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || name == "FCD_ASSIGNMENT_FD"
}

/// What makes two blanks interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The interpreter and its arguments; empty for an exec-on-assignment blank.
    program: PathBuf,
    args: Vec<String>,
    path_dirs: Vec<String>,
    mounts: Vec<(PathBuf, PathBuf)>,
    memory_mb: u32,
    /// Outbound network: a namespace is fixed when the jail is built.
    internet: bool,
    /// An image's root (`custom-container`): a jail of one image is no jail of another.
    image: Option<PathBuf>,
    /// The uid and gid an image's jail maps (fixed when the jail is built).
    image_user: Option<(u32, u32)>,
}

impl Key {
    fn of(launch: &ProcessLaunch, memory_mb: u32, internet: bool) -> Key {
        let (program, args) = if launch.reads_assignment {
            (launch.program.clone(), launch.args.clone())
        } else {
            (PathBuf::new(), Vec::new())
        };
        Key {
            program,
            args,
            path_dirs: launch.path_dirs.clone(),
            mounts: launch
                .mounts
                .iter()
                .map(|b| (b.host.clone(), b.inside.clone()))
                .collect(),
            memory_mb,
            internet,
            image: launch.image.as_ref().map(|i| i.rootfs.clone()),
            image_user: launch.image.as_ref().and_then(|i| i.user),
        }
    }
}

pub(crate) struct Prewarm {
    cfg: Arc<RuntimeConfig>,
    /// The code store's directory, shown (root-only) in every blank until assignment.
    store: Option<PathBuf>,
    /// How many blanks to keep ready per key; 0 turns prewarming off.
    per_key: usize,
    ready: Mutex<HashMap<Key, Vec<Spawned>>>,
    /// Keys whose refill is under way, and every key ever used (kept ready from then on).
    refilling: Mutex<HashSet<Key>>,
    launches: Mutex<HashMap<Key, ProcessLaunch>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Prewarm {
    pub(crate) fn new(cfg: Arc<RuntimeConfig>) -> Arc<Prewarm> {
        let on = cfg.jail.is_some() && cfg.prewarm > 0 && cfg.code_store.is_some();
        Arc::new(Prewarm {
            store: cfg.code_store.clone(),
            per_key: if on { cfg.prewarm as usize } else { 0 },
            cfg,
            ready: Mutex::new(HashMap::new()),
            refilling: Mutex::new(HashSet::new()),
            launches: Mutex::new(HashMap::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.per_key > 0
    }

    /// Blanks ready right now (for `/status` and tests).
    pub(crate) fn ready_count(&self) -> usize {
        self.ready
            .lock()
            .map(|m| m.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// Keeps blanks of this launch ready from now on.
    pub(crate) fn keep_ready(self: &Arc<Self>, launch: ProcessLaunch, memory_mb: u32) {
        if !self.enabled() {
            return;
        }
        // FC's default is internetAccess true.
        let key = Key::of(&launch, memory_mb, super::internet(&self.cfg, true));
        if let Ok(mut l) = self.launches.lock() {
            l.entry(key.clone()).or_insert(launch);
        }
        self.refill(key);
    }

    /// A blank for `spec`, assigned to it and about to listen; `None` when none fits (the
    /// caller starts a process from scratch).
    pub(crate) async fn claim(
        self: &Arc<Self>,
        spec: &FunctionSpec,
        launch: &ProcessLaunch,
        env: &[(String, String)],
        port: u16,
    ) -> Option<Spawned> {
        if !self.enabled() {
            return None;
        }
        let f = &spec.function;
        let store = self.store.as_ref()?;
        // An image's jail needs no code: its files are the root it was built on.
        let code_name = match &launch.image {
            Some(_) => String::new(),
            None => spec
                .code_dir
                .strip_prefix(store)
                .ok()
                .and_then(|p| p.to_str())
                .filter(|p| !p.is_empty() && !p.contains('/'))?
                .to_owned(),
        };
        if f.environment_variables
            .keys()
            .any(|k| start_time_variable(k))
        {
            return None;
        }
        // A blank jail's mounts are made before its function is known, and `/opt` is not
        // among them: a function with layers starts afresh.
        if spec.layers.is_some() {
            return None;
        }
        let key = Key::of(
            launch,
            f.memory_size,
            super::internet(&self.cfg, spec.internet_access),
        );
        if let Ok(mut l) = self.launches.lock() {
            l.entry(key.clone())
                .or_insert_with(|| launch_without_function(launch));
        }
        let blank = self
            .ready
            .lock()
            .ok()
            .and_then(|mut m| m.get_mut(&key).and_then(Vec::pop));
        self.refill(key);
        let mut blank = blank?;
        let control = blank.control.take()?;
        blank.port = port;
        let env_map: serde_json::Map<String, serde_json::Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let cwd = match &launch.image {
            Some(image) => image.cwd.display().to_string(),
            None => "/code".to_owned(),
        };
        let payload = serde_json::json!({
            "program": launch.program.display().to_string(),
            "args": launch.args,
            "env": env_map,
            "cwd": cwd,
        });
        match sandbox::assign(control, &code_name, payload.to_string(), ASSIGN_LIMIT).await {
            Ok(()) => Some(blank),
            Err(e) => {
                tracing::warn!(error = %e, "a prewarmed instance could not be assigned; starting afresh");
                None
            }
        }
    }

    /// Starts blanks for `key` in the background until `per_key` are ready.
    fn refill(self: &Arc<Self>, key: Key) {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let started = self
            .refilling
            .lock()
            .map(|mut r| r.insert(key.clone()))
            .unwrap_or(false);
        if !started {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let have = this
                    .ready
                    .lock()
                    .map(|m| m.get(&key).map_or(0, Vec::len))
                    .unwrap_or(usize::MAX);
                if have >= this.per_key || this.closed.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                let launch = match this
                    .launches
                    .lock()
                    .ok()
                    .and_then(|l| l.get(&key).map(launch_without_function))
                {
                    Some(l) => l,
                    None => break,
                };
                match this.make(launch, key.memory_mb, key.internet).await {
                    Ok(blank) => {
                        // Kept only while its kind is: an image's kind is dropped (and its
                        // tree unpinned) when no function names the image any more, and a
                        // blank made meanwhile must not outlive that.
                        let launches = this.launches.lock();
                        if let (Ok(launches), Ok(mut m)) = (launches, this.ready.lock())
                            && launches.contains_key(&key)
                        {
                            m.entry(key.clone()).or_default().push(blank);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not prewarm an instance");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        break;
                    }
                }
            }
            if let Ok(mut r) = this.refilling.lock() {
                r.remove(&key);
            }
        });
    }

    async fn make(
        &self,
        launch: ProcessLaunch,
        memory_mb: u32,
        internet: bool,
    ) -> Result<Spawned, crate::StartError> {
        let id = format!("p-{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
        let port = instance_port(&self.cfg, 9000)?;
        let env = crate::contract::blank_env(&launch.path_dirs);
        let exec = !launch.reads_assignment;
        let image = launch.image.is_some();
        spawn(
            &self.cfg,
            SpawnPlan {
                id,
                port,
                memory_mb,
                launch,
                code_dir: None,
                layers_dir: None,
                env,
                blank: self
                    .store
                    .clone()
                    .map(|store| sandbox::BlankSetup { store, exec, image }),
                internet,
            },
        )
        .await
    }

    /// Drops the kinds (and ready blanks) of images whose digest is not in `keep`, so their
    /// trees can be collected.
    pub(crate) fn keep_images(&self, keep: &HashSet<String>) {
        let dropped: Vec<Spawned> = {
            let (Ok(mut launches), Ok(mut ready)) = (self.launches.lock(), self.ready.lock())
            else {
                return;
            };
            let gone: Vec<Key> = launches
                .iter()
                .filter(|(_, l)| l.image.as_ref().is_some_and(|i| !keep.contains(&i.digest)))
                .map(|(k, _)| k.clone())
                .collect();
            gone.iter()
                .flat_map(|k| {
                    launches.remove(k);
                    ready.remove(k).unwrap_or_default()
                })
                .collect()
        };
        drop(dropped);
    }

    /// Drops every blank (their processes are torn down) and stops refilling.
    pub(crate) fn shutdown(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        let all: Vec<Spawned> = self
            .ready
            .lock()
            .map(|mut m| m.drain().flat_map(|(_, v)| v).collect())
            .unwrap_or_default();
        drop(all);
    }
}

/// A launch as a blank needs it: the same, minus nothing function-specific (a copy).
fn launch_without_function(l: &ProcessLaunch) -> ProcessLaunch {
    ProcessLaunch {
        program: l.program.clone(),
        args: l.args.clone(),
        path_dirs: l.path_dirs.clone(),
        mounts: l.mounts.clone(),
        reads_assignment: l.reads_assignment,
        // The image (and its pin) is the jail's root, not the function's.
        image: l.image.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_variables_force_a_fresh_start() {
        for v in [
            "LD_PRELOAD",
            "PYTHONPATH",
            "NODE_OPTIONS",
            "UV_THREADPOOL_SIZE",
        ] {
            assert!(start_time_variable(v), "{v}");
        }
        for v in ["DB_URL", "FC_CUSTOM", "LOGLEVEL"] {
            assert!(!start_time_variable(v), "{v}");
        }
    }
}
