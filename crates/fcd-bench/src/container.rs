//! The `container-cold` scenario: the cold start of a `custom-container` function whose image
//! fcd has already pulled, next to the same image with a `USER` (what its user namespace costs)
//! and the custom runtime's cold start on the same server, and the image's own server started
//! by hand (under `chroot`) as the floor.
//!
//! This module owns finding the test images (the registry storage `scripts/container-fixtures`
//! writes, built by that script when missing), serving them for the run with Debian's
//! `docker-registry` on loopback (read-only, over plain HTTP: fcd is started with
//! `FCD_INSECURE_REGISTRIES=127.0.0.1`, see server.rs), the measurement and its report section.
//! Where the images or the registry cannot be had, the scenario is skipped and says why.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::Method;
use serde::Serialize;

use crate::http::{FcdInvoke, Reply, ms, send, wait_first_response};
use crate::load::median;
use crate::scenarios::{Bench, floor_env};
use crate::server::{self, SERVICE};
use crate::sys::{self, Guard};
use crate::wasm::percentile;

/// The fixture image measured (`tests/container/`: busybox `nc -ll` forking a shell handler).
const IMAGE: &str = "echo:v1";
/// The same image with `USER app:staff`: its instances run in a user namespace mapping that
/// user onto the instance's uid, the one step the jail adds for it.
const USER_IMAGE: &str = "user:v1";
const USER_PRIME_FUNCTION: &str = "container-cold-user-prime";
/// The body every InvokeFunction carries; the image's handler answers it inside its JSON.
const BODY: &[u8] = b"fcd-bench container 0123456789";
/// FC's default memory size, as the cold scenario's functions have.
const MEMORY_MB: u32 = 128;
/// The gauge of instances holding a share of fcd's budget.
const INSTANCES_USED: &str = "fcd_budget_instances_used";
const PRIME_FUNCTION: &str = "container-cold-prime";

/// One kind of function's cold starts.
#[derive(Debug, Serialize)]
pub(crate) struct ContainerColdSeries {
    pub(crate) runtime: String,
    /// InvokeFunction sent as soon as CreateFunction answered → its answer.
    pub(crate) invoke_ms: Vec<f64>,
    pub(crate) invoke_median_ms: f64,
    pub(crate) invoke_p90_ms: f64,
    /// The CreateFunction calls themselves.
    pub(crate) create_ms: Vec<f64>,
    pub(crate) create_median_ms: f64,
    /// Samples whose instance was a prewarmed jail (seen from outside, as in `cold`).
    pub(crate) prewarmed_jail_claimed: usize,
}

/// The `container-cold` result.
#[derive(Debug, Serialize)]
pub(crate) struct ContainerCold {
    /// The image reference the functions run.
    pub(crate) image: String,
    pub(crate) samples: usize,
    /// CreateFunction → first answer of the run's first function of the image: fcd pulling it
    /// from the loopback registry, unpacking it and starting it (its cache starts empty).
    pub(crate) first_deploy_ms: f64,
    /// `custom-container`, the same image with a `USER` (when the fixtures have it), then
    /// `custom` (the bench fixture), sampled in rotation.
    pub(crate) series: Vec<ContainerColdSeries>,
    /// The image's server started by hand under `chroot` in fcd's unpacked root: spawn →
    /// first `/invoke` answered.
    pub(crate) standalone_ms: Vec<f64>,
    pub(crate) standalone_median_ms: Option<f64>,
    /// Why there is no standalone floor, when there is none.
    pub(crate) standalone_note: Option<String>,
}

/// Where `scripts/container-fixtures` writes the images.
pub(crate) fn fixtures_dir() -> PathBuf {
    std::env::var_os("FCD_CONTAINER_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/fcd-container-fixtures"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/fcd-container-fixtures"))
}

/// The repository this harness was built from (where `scripts/container-fixtures` lives).
fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The registry storage and `images.json` of the fixtures, running the script that builds them
/// when they are missing. `Err` says why there are none (the scenario is then skipped).
fn fixtures() -> std::result::Result<(PathBuf, serde_json::Value), String> {
    let dir = fixtures_dir();
    let ready = |d: &Path| d.join("registry").is_dir() && d.join("images.json").is_file();
    if !ready(&dir) {
        let script = repo_root().join("scripts/container-fixtures");
        if !script.is_file() {
            return Err(format!(
                "the container test images are missing at {} and there is no {} to build them",
                dir.display(),
                script.display()
            ));
        }
        println!(
            "container-cold: {} is missing; running {}…",
            dir.display(),
            script.display()
        );
        let st = Command::new(&script)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !st.success() || !ready(&dir) {
            return Err(format!(
                "{} did not build the container test images ({st}; FCD_CONTAINER_FIXTURES decides where it writes)",
                script.display()
            ));
        }
    }
    let text = std::fs::read_to_string(dir.join("images.json"))
        .map_err(|e| format!("reading {}: {e}", dir.join("images.json").display()))?;
    let images: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: {e}", dir.join("images.json").display()))?;
    Ok((dir.join("registry"), images))
}

/// A `docker-registry serve` on loopback over the fixtures' storage, read-only.
struct Registry {
    _child: Guard,
    addr: SocketAddr,
}

/// `GET /v2/` answered 200 (the registry is up).
fn registry_up(addr: SocketAddr) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    resp.starts_with(b"HTTP/1.1 200")
}

/// Starts the registry, or says why it cannot run.
fn start_registry(dir: &Path, storage: &Path) -> std::result::Result<Registry, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let port = sys::free_port().map_err(|e| format!("a free port: {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Read-only: the run only pulls, and the storage is the fixtures' own.
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    readonly:\n      enabled: true\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n",
        storage.display()
    );
    let path = dir.join("registry.yml");
    std::fs::write(&path, config).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let log = std::fs::File::create(dir.join("registry.log"))
        .map_err(|e| format!("creating the registry's log: {e}"))?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| {
            format!("docker-registry (Debian's docker-registry package) does not run: {e}")
        })?;
    let mut child = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !registry_up(addr) {
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!(
                "docker-registry exited during start-up ({status}); see {}",
                dir.join("registry.log").display()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "docker-registry did not answer on {addr} within 20 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Registry {
        _child: child,
        addr,
    })
}

/// coreutils' `chroot`: on PATH, else where Debian puts it (`/usr/sbin`, often not on a
/// non-login shell's PATH).
fn chroot_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("chroot"))
            .find(|c| c.is_file())
    });
    on_path
        .or_else(|| {
            ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"]
                .into_iter()
                .map(PathBuf::from)
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("chroot"))
}

/// Fails unless `reply` is a 200 without a function error whose body carries [`BODY`].
fn check_answer(what: &str, reply: &Reply) -> Result<()> {
    crate::http::check_echo(what, reply, BODY)
}

/// What one sample deploys.
enum Deploy {
    Container,
    /// The image with a `USER` ([`USER_IMAGE`]).
    ContainerUser,
    Custom,
}

/// One cold start through fcd.
struct Sample {
    create_ms: f64,
    invoke_ms: f64,
    claimed: bool,
}

impl Bench {
    /// `container-cold`: see the module docs. Skipped (and listed) where the images or the
    /// registry cannot be had.
    pub(crate) async fn container_cold(&mut self) -> Result<()> {
        let (storage, images) = match fixtures() {
            Ok(f) => f,
            Err(why) => return self.container_skip(&why),
        };
        let digest = images[IMAGE]["digest"].as_str().map(str::to_owned);
        let registry = match start_registry(&self.dir.path().join("registry"), &storage) {
            Ok(r) => r,
            Err(why) => return self.container_skip(&why),
        };
        let image = format!("{}/{IMAGE}", registry.addr);
        self.api()?.create_service().await?;

        // The image pulled once: CreateFunction → first answer of the first function.
        let t = Instant::now();
        self.create_container(PRIME_FUNCTION, &image).await?;
        let first = self.container_invoke(PRIME_FUNCTION).await;
        let first_deploy_ms = ms(t.elapsed());
        let deleted = self.api()?.delete_function(PRIME_FUNCTION).await;
        first.with_context(|| {
            format!("the first invocation of {image} (pulled from the loopback registry)")
        })?;
        deleted?;
        // The USER image, pulled once too (fixtures built before it existed have none).
        let user_image = match images.get(USER_IMAGE) {
            Some(_) => {
                let user_image = format!("{}/{USER_IMAGE}", registry.addr);
                self.create_container(USER_PRIME_FUNCTION, &user_image)
                    .await?;
                let first = self.container_invoke(USER_PRIME_FUNCTION).await;
                self.api()?.delete_function(USER_PRIME_FUNCTION).await?;
                first.with_context(|| format!("the first invocation of {user_image}"))?;
                Some(user_image)
            }
            None => None,
        };

        let (warmups, n) = if self.plan.quick { (0, 2) } else { (1, 20) };
        let mut container = Vec::new();
        let mut container_user = Vec::new();
        let mut custom = Vec::new();
        let mut standalone = Vec::new();
        let mut standalone_note = None;
        let rootfs = self.unpacked_rootfs(digest.as_deref());
        for i in 0..warmups + n {
            let record = i >= warmups;
            // Rotate which goes first, so none always follows another.
            let mut order = vec![Deploy::Container, Deploy::Custom];
            if user_image.is_some() {
                order.insert(1, Deploy::ContainerUser);
            }
            let turn = i % order.len();
            order.rotate_left(turn);
            for which in order {
                let image = match which {
                    Deploy::ContainerUser => user_image.as_deref().unwrap_or(&image),
                    _ => &image,
                };
                let s = self.container_sample(&which, image, i).await?;
                if record {
                    match which {
                        Deploy::Container => container.push(s),
                        Deploy::ContainerUser => container_user.push(s),
                        Deploy::Custom => custom.push(s),
                    }
                }
            }
            match &rootfs {
                Ok(root) => match self.container_standalone(root, i) {
                    Ok(m) if record => standalone.push(m),
                    Ok(_) => {}
                    Err(e) => {
                        standalone_note.get_or_insert(format!("the chroot floor failed: {e:#}"));
                    }
                },
                Err(why) => {
                    standalone_note.get_or_insert(why.clone());
                }
            }
        }
        let series = |runtime: &str, samples: Vec<Sample>| {
            let invoke: Vec<f64> = samples.iter().map(|s| s.invoke_ms).collect();
            let create: Vec<f64> = samples.iter().map(|s| s.create_ms).collect();
            ContainerColdSeries {
                runtime: runtime.into(),
                invoke_median_ms: median(&invoke),
                invoke_p90_ms: percentile(&invoke, 90.0),
                create_median_ms: median(&create),
                prewarmed_jail_claimed: samples.iter().filter(|s| s.claimed).count(),
                invoke_ms: invoke,
                create_ms: create,
            }
        };
        let standalone_median_ms = (!standalone.is_empty()).then(|| median(&standalone));
        self.report.container_cold = Some(ContainerCold {
            image,
            samples: n,
            first_deploy_ms,
            series: [
                Some(series("custom-container", container)),
                user_image
                    .is_some()
                    .then(|| series("custom-container, USER app:staff", container_user)),
                Some(series("custom", custom)),
            ]
            .into_iter()
            .flatten()
            .collect(),
            standalone_ms: standalone,
            standalone_median_ms,
            standalone_note,
        });
        Ok(())
    }

    fn container_skip(&mut self, why: &str) -> Result<()> {
        println!("container-cold: skipped: {why}");
        self.report.skipped.push(format!("container-cold: {why}"));
        Ok(())
    }

    async fn create_container(&mut self, name: &str, image: &str) -> Result<()> {
        let body = serde_json::json!({
            "functionName": name,
            "runtime": "custom-container",
            "handler": "not-used",
            "timeout": 60,
            "memorySize": MEMORY_MB,
            "instanceConcurrency": 1,
            "caPort": 9000,
            "customContainerConfig": { "image": image },
        });
        self.api()?
            .call(
                Method::POST,
                &format!("/2021-04-06/services/{SERVICE}/functions"),
                &body.to_string(),
            )
            .await
            .with_context(|| format!("creating the custom-container function {name} ({image})"))?;
        Ok(())
    }

    /// One InvokeFunction of `name` with [`BODY`] on the API connection, checked.
    async fn container_invoke(&mut self, name: &str) -> Result<()> {
        let target = FcdInvoke::new(self.server()?.addr, &server::creds(), SERVICE, name);
        let req = target.request(&Bytes::from_static(BODY))?;
        let reply = send(self.api()?.sender().await?, req).await?;
        check_answer(&format!("InvokeFunction of {name}"), &reply)
    }

    /// Creates a fresh function, times InvokeFunction right after CreateFunction answered,
    /// deletes it and waits until the server is back where it was (no more instances and
    /// processes than before, and quiet), as the `cold` scenario does.
    async fn container_sample(&mut self, which: &Deploy, image: &str, i: usize) -> Result<Sample> {
        let pid = self.server()?.pid;
        let before = sys::children(pid);
        let instances_before = self.api()?.metric(INSTANCES_USED).await?;
        let (name, runtime) = match which {
            Deploy::Container => (format!("container-cold-{i}"), "custom-container"),
            Deploy::ContainerUser => (format!("container-cold-user-{i}"), "custom-container"),
            Deploy::Custom => (format!("container-cold-custom-{i}"), "custom"),
        };
        let t0 = Instant::now();
        match which {
            Deploy::Container | Deploy::ContainerUser => {
                self.create_container(&name, image).await?
            }
            Deploy::Custom => {
                let mut def = self.custom_def(&name, 1);
                def.memory_mb = MEMORY_MB;
                self.api()?.create_function(&def).await?;
            }
        }
        let t1 = Instant::now();
        let answered = self.container_invoke(&name).await;
        let t2 = Instant::now();
        let api = self.api()?;
        api.delete_function(&name).await?;
        answered.with_context(|| format!("cold invoke of a {runtime} function"))?;
        api.wait_instances_at_most(instances_before, Duration::from_secs(20))
            .await?;
        sys::wait_children_count(pid, before.len(), Duration::from_secs(20))?;
        sys::wait_quiet(pid, Duration::from_secs(5));
        let after = sys::children(pid);
        Ok(Sample {
            create_ms: ms(t1 - t0),
            invoke_ms: ms(t2 - t1),
            claimed: before.iter().any(|p| !after.contains(p)),
        })
    }

    /// fcd's unpacked root of the image (`<data-dir>/images/<hex digest>/rootfs`), for the
    /// chroot floor; `Err` says why there is no floor.
    fn unpacked_rootfs(&self, digest: Option<&str>) -> std::result::Result<PathBuf, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("not root: no chroot floor".into());
        }
        let digest = digest.ok_or_else(|| format!("images.json has no digest of {IMAGE}"))?;
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let data = self
            .server()
            .ok()
            .and_then(|s| s.log.parent().map(|d| d.join("data")))
            .ok_or_else(|| "fcd's data dir is unknown".to_owned())?;
        let root = data.join("images").join(hex).join("rootfs");
        if root.join("serve").is_file() {
            Ok(root)
        } else {
            Err(format!(
                "fcd's unpacked image is not at {} (another layout?): no chroot floor",
                root.display()
            ))
        }
    }

    /// The image's server (`/serve`, its ENTRYPOINT) started by hand: `chroot --userspec` into
    /// fcd's unpacked root as an unprivileged uid, spawn → first `/invoke` answered, in ms.
    fn container_standalone(&self, root: &Path, i: usize) -> Result<f64> {
        let port = sys::free_port()?;
        let log_dir = self.dir.path().join(format!("floor-container-{i}"));
        std::fs::create_dir_all(&log_dir)?;
        let stderr = std::fs::File::create(log_dir.join("stderr.log"))?;
        let mut cmd = Command::new(chroot_binary());
        cmd.arg("--userspec=65534:65534")
            .arg(root)
            .arg("/serve")
            .env_clear()
            .envs(floor_env())
            .env("PATH", "/bin")
            .env("SERVE_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let (child, started) = self.pin.spawn(&mut cmd)?;
        let mut child = Guard(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let answered = wait_first_response(addr, "not-used", &mut child.0, Duration::from_secs(20))
            .context("the image's server under chroot")?;
        Ok(ms(answered - started))
    }
}

/// The report section.
pub(crate) fn markdown(c: &ContainerCold, o: &mut String) {
    let _ = writeln!(
        o,
        "\n## custom-container: cold start of an already-pulled image\n\n\
         `{}` (tests/container: busybox `nc -ll` forking a shell handler per connection), served by \
         `docker-registry` on loopback. The run's first function of the image took {:.1} ms from \
         CreateFunction to its first answer (pull, unpack, start). Then each sample creates a fresh \
         function of the image — and, in rotation, of the image with `USER app:staff` (`{USER_IMAGE}`: \
         its instances get a user namespace mapping that user onto the instance's uid) and of the \
         custom runtime's bench fixture, all at {MEMORY_MB} MB — invokes it as soon as \
         CreateFunction answered, and deletes it.\n\n\
         | runtime | InvokeFunction → answer, median | p90 | CreateFunction, median | prewarmed jails claimed | samples (ms) |\n\
         |---|--:|--:|--:|--:|---|",
        c.image, c.first_deploy_ms
    );
    for s in &c.series {
        let _ = writeln!(
            o,
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {} of {} | {} |",
            s.runtime,
            s.invoke_median_ms,
            s.invoke_p90_ms,
            s.create_median_ms,
            s.prewarmed_jail_claimed,
            s.invoke_ms.len(),
            crate::report::ms_list(&s.invoke_ms)
        );
    }
    match c.standalone_median_ms {
        Some(m) => {
            let _ = writeln!(
                o,
                "| the image's `/serve` by hand (`chroot --userspec` into fcd's unpacked root): spawn → first answer | {m:.1} ms | {:.1} ms | | | {} |",
                percentile(&c.standalone_ms, 90.0),
                crate::report::ms_list(&c.standalone_ms)
            );
        }
        None => {
            let _ = writeln!(
                o,
                "\nNo floor: {}",
                c.standalone_note.as_deref().unwrap_or("not measured")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(runtime: &str) -> ContainerColdSeries {
        ContainerColdSeries {
            runtime: runtime.into(),
            invoke_ms: vec![10.0, 12.0],
            invoke_median_ms: 11.0,
            invoke_p90_ms: 12.0,
            create_ms: vec![3.0, 4.0],
            create_median_ms: 3.5,
            prewarmed_jail_claimed: 0,
        }
    }

    /// Every row has as many cells as the header, with and without the floor.
    #[test]
    fn the_table_is_rectangular() {
        for floor in [true, false] {
            let c = ContainerCold {
                image: "127.0.0.1:5000/echo:v1".into(),
                samples: 2,
                first_deploy_ms: 250.0,
                series: vec![series("custom-container"), series("custom")],
                standalone_ms: if floor { vec![2.0, 3.0] } else { Vec::new() },
                standalone_median_ms: floor.then_some(2.5),
                standalone_note: (!floor).then(|| "not root".into()),
            };
            let mut o = String::new();
            markdown(&c, &mut o);
            let rows: Vec<&str> = o.lines().filter(|l| l.starts_with('|')).collect();
            assert_eq!(rows.len(), if floor { 5 } else { 4 }, "{o}");
            let width = rows[0].matches('|').count();
            for r in &rows {
                assert_eq!(r.matches('|').count(), width, "{r}\n{o}");
            }
            assert_eq!(o.contains("No floor: not root"), !floor, "{o}");
        }
    }
}
