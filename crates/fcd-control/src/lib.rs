//! Control-plane operations: the rules that span the metadata store, the code store and the
//! instance manager, independent of HTTP.
//!
//! Updates are compare-and-swap on the record's etag, so two concurrent writers never lose each
//! other's change silently (the loser gets `ConcurrentUpdateError`). Invocations resolve
//! functions through an in-memory cache that every write through this process invalidates, so
//! the invoke path never touches the database.
//!
//! In a cluster ([`Control::with_cluster`]) every such write also publishes the matching
//! [`ClusterEvent`], and [`Control::apply_cluster_events_forever`] applies other nodes' events
//! to the same invalidation functions, so a write on any node reaches every node's caches
//! within the event bus's delay (one `NOTIFY`); a [`ClusterEvent::Resync`] drops every cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use fcd_cluster::{Cluster, ClusterEvent, NodeInfo};
use fcd_core::FcError;
use fcd_core::limits::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use fcd_core::model::{CodeRef, Function, FunctionUpdate, Service, ServiceUpdate};
use fcd_core::names::{check_function_name, check_service_name};
use fcd_runtime::{FunctionSpec, InstanceLimit, InstanceManager};
use fcd_store::code::{CodeError, CodeStore};
use fcd_store::{ListQuery, MetadataStore, StoreError, StoredFunction, StoredService};

pub mod asynchronous;
mod concurrency;
mod configs;
mod events;
pub mod fc3;
pub mod http_event;
pub mod iam;
pub mod images;
mod invoke;
mod layers;
mod role_credentials;
mod tags;
#[cfg(test)]
mod testkit;
pub mod timers;
mod triggers;
mod versions;
pub use concurrency::{ConcurrencyPage, RESERVED_CONCURRENCY_MAX, ReservedPermit};
pub use configs::{ProvisionPage, ProvisionStatus};
pub use invoke::{Invoked, Placement, invoke_error};
pub use layers::{LayerFilter, LayerInput, LayerVersionPage};
pub use tags::AccountSettings;
pub use triggers::{HttpTriggerRoute, TimerTrigger};
pub use versions::VersionPage;

/// (account, service, function, `LATEST` or a version id, the qualifier as invoked). The
/// qualifier is part of the key because the on-demand config that limits the function's
/// instances is chosen by it: an alias and the version it routes to may have different ones.
type FnKey = (String, String, String, String, String);

/// A resolved function as the invoke path caches it. A spec whose limit is
/// [`InstanceLimit::Blocked`] (`maximumInstanceCount` 0, nothing provisioned) is refused here,
/// before the instance manager.
#[derive(Debug, Clone)]
struct Resolved {
    spec: Arc<FunctionSpec>,
}

const LATEST: &str = "LATEST";

/// How long a GetFunctionCode URL stays valid.
const CODE_URL_TTL_SECS: u64 = 3600;

/// How long Create/UpdateFunction wait for a `wasm` guest's compilation before answering (a
/// small guest's errors then reach the caller; a big one goes on compiling, and its first
/// call waits for it).
const PREPARE_WAIT: Duration = Duration::from_secs(2);

/// A zip with no entries: the code package of a `custom-container` function, whose code is
/// its image.
const EMPTY_ZIP_BASE64: &str = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==";

pub struct Control {
    store: Arc<dyn MetadataStore>,
    code: CodeStore,
    runtime: Arc<InstanceManager>,
    region: String,
    url_secret: Vec<u8>,
    cache: RwLock<HashMap<FnKey, Resolved>>,
    /// Bumped (under the cache's write lock) by every invalidation, so a resolution that read
    /// the store before an invalidation never caches what it read.
    cache_gen: AtomicU64,
    aliases: RwLock<HashMap<(String, String, String), Arc<versions::AliasRoute>>>,
    /// Bumped (under the alias cache's write lock) by every alias invalidation, as `cache_gen`.
    alias_gen: AtomicU64,
    provisioning: configs::Provisioning,
    /// Each function's `reservedConcurrency` cap and in-flight count on this node.
    reserved: concurrency::ReservedCaps,
    /// What the HTTP data path looks up per request (HTTP triggers, custom domains).
    triggers: triggers::TriggerCaches,
    /// Where functions of a service with a `role` get that role's credentials.
    roles: role_credentials::RoleSources,
    /// This node's membership of the cluster ([`Cluster::single`] unless
    /// [`Control::with_cluster`] gave another).
    cluster: Arc<Cluster>,
    /// Where `custom-container` functions' images are pulled to and kept ([`images`]);
    /// `None` refuses them.
    images: Option<Arc<fcd_image::ImageStore>>,
    started: Instant,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Refuses a spec that may not run on-demand instances and has no provisioned ones.
pub(crate) fn runnable(spec: &FunctionSpec, qualifier: Option<&str>) -> Result<(), FcError> {
    if spec.limit == InstanceLimit::Blocked {
        let label = qualifier.filter(|q| !q.is_empty()).unwrap_or(LATEST);
        return Err(FcError::ResourceExhausted(format!(
            "function '{}' of service '{}' may not run on-demand instances (maximumInstanceCount is 0 for qualifier '{label}') and has no provisioned instances",
            spec.function.function_name, spec.service_name
        )));
    }
    Ok(())
}

pub(crate) fn internal(context: &str, e: impl std::fmt::Display + 'static) -> FcError {
    tracing::error!(error = %e, "{context}");
    // The storage engine down (PostgreSQL unreachable, no pooled connection in time) is FC's
    // 503: nothing was written, and the same request may succeed later.
    if let Some(StoreError::Unavailable(_)) = (&e as &dyn std::any::Any).downcast_ref() {
        return FcError::ServiceUnavailable;
    }
    FcError::Internal
}

pub(crate) fn code_error(e: CodeError) -> FcError {
    match e {
        CodeError::Io(e) => internal("code store", e),
        CodeError::Shared(e) => internal("shared code store", e),
        CodeError::Corrupt(d) => internal("code store", format!("package {d} is corrupt")),
        CodeError::Missing(d) => internal("code store", format!("package {d} is missing")),
        other => FcError::invalid(other.to_string()),
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A page of a listing plus where the next page starts.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// FC's paging parameters, as sent by the SDKs.
#[derive(Debug, Default, Clone)]
pub struct Paging {
    pub prefix: Option<String>,
    pub start_key: Option<String>,
    pub next_token: Option<String>,
    pub limit: Option<u32>,
}

impl Paging {
    pub(crate) fn query(&self) -> Result<(ListQuery, usize), FcError> {
        let limit = self.limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(FcError::invalid(format!(
                "limit {limit} is out of range: it must be between 1 and {LIST_LIMIT_MAX}"
            )));
        }
        // Both startKey and nextToken are lower bounds on the name; the larger one wins.
        let from = match (&self.start_key, &self.next_token) {
            (Some(a), Some(b)) => Some(a.max(b).clone()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let q = ListQuery {
            prefix: self.prefix.clone().filter(|p| !p.is_empty()),
            from,
            // One extra row tells whether there is a next page, and where it starts.
            limit: limit + 1,
        };
        Ok((q, limit as usize))
    }
}

pub(crate) fn page<T>(mut items: Vec<T>, limit: usize, name: impl Fn(&T) -> String) -> Page<T> {
    let next_token = if items.len() > limit {
        items.truncate(limit + 1);
        items.pop().map(|x| name(&x))
    } else {
        None
    };
    Page { items, next_token }
}

pub(crate) fn check_if_match(if_match: Option<&str>, etag: &str) -> Result<(), FcError> {
    match if_match {
        Some(m) if !m.is_empty() && m.trim_matches('"') != etag => Err(FcError::PreconditionFailed),
        _ => Ok(()),
    }
}

impl Control {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        code: CodeStore,
        runtime: Arc<InstanceManager>,
        region: String,
        url_secret: Vec<u8>,
        iam: Arc<iam::Iam>,
    ) -> Control {
        Control {
            store,
            code,
            runtime,
            region,
            url_secret,
            cache: RwLock::new(HashMap::new()),
            cache_gen: AtomicU64::new(0),
            aliases: RwLock::new(HashMap::new()),
            alias_gen: AtomicU64::new(0),
            provisioning: configs::Provisioning::default(),
            reserved: concurrency::ReservedCaps::default(),
            triggers: triggers::TriggerCaches::default(),
            roles: role_credentials::RoleSources::new(iam),
            cluster: Arc::new(Cluster::single(NodeInfo::new("local", ""))),
            images: None,
            started: Instant::now(),
        }
    }

    /// Runs this control plane as one node of `cluster`: writes publish their invalidations,
    /// provisioning keeps only this node's share of each target, timers fire only while this
    /// node holds the `timers` lease. Spawn [`Control::apply_cluster_events_forever`] too.
    pub fn with_cluster(mut self, cluster: Arc<Cluster>) -> Control {
        self.cluster = cluster;
        self
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn runtime(&self) -> &Arc<InstanceManager> {
        &self.runtime
    }

    // ---- services ----

    pub async fn create_service(
        &self,
        account: &str,
        u: ServiceUpdate,
    ) -> Result<StoredService, FcError> {
        let name = u
            .service_name
            .clone()
            .ok_or_else(|| FcError::invalid("serviceName is required"))?;
        check_service_name(&name)?;
        let service = Service::create(new_id(), name.clone(), u, fcd_core::time::now())?;
        let stored = StoredService {
            service,
            etag: new_id(),
        };
        match self.store.insert_service(account, &stored).await {
            Ok(()) => {
                // Requests for its (future) functions may have been answered "no service".
                self.forget_http_triggers(account, &name, None);
                self.publish_invalidation(account, Some(&name)).await;
                Ok(stored)
            }
            Err(StoreError::AlreadyExists) => Err(FcError::ServiceAlreadyExists(name)),
            Err(e) => Err(internal("insert service", e)),
        }
    }

    pub async fn get_service(&self, account: &str, name: &str) -> Result<StoredService, FcError> {
        match self.store.get_service(account, name).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(FcError::ServiceNotFound(name.to_owned())),
            Err(e) => Err(internal("get service", e)),
        }
    }

    pub async fn update_service(
        &self,
        account: &str,
        name: &str,
        u: ServiceUpdate,
        if_match: Option<&str>,
    ) -> Result<StoredService, FcError> {
        let current = self.get_service(account, name).await?;
        check_if_match(if_match, &current.etag)?;
        let mut service = current.service.clone();
        service.apply(u, fcd_core::time::now())?;
        let stored = StoredService {
            service,
            etag: new_id(),
        };
        match self
            .store
            .replace_service(account, &stored, &current.etag)
            .await
        {
            Ok(()) => {
                self.forget_service(account, name);
                self.publish_invalidation(account, Some(name)).await;
                Ok(stored)
            }
            Err(StoreError::NotFound) => Err(FcError::ServiceNotFound(name.to_owned())),
            Err(StoreError::Conflict) => Err(FcError::ConcurrentUpdate(format!(
                "service '{name}' was modified by another request; read it again and retry"
            ))),
            Err(e) => Err(internal("update service", e)),
        }
    }

    pub async fn delete_service(
        &self,
        account: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<(), FcError> {
        let current = self.get_service(account, name).await?;
        check_if_match(if_match, &current.etag)?;
        match self.store.delete_service(account, name).await {
            Ok(()) => {
                self.forget_service(account, name);
                self.publish_invalidation(account, Some(name)).await;
                Ok(())
            }
            Err(StoreError::NotFound) => Err(FcError::ServiceNotFound(name.to_owned())),
            Err(StoreError::NotEmpty) => Err(FcError::ServiceNotEmpty(name.to_owned())),
            Err(e) => Err(internal("delete service", e)),
        }
    }

    pub async fn list_services(
        &self,
        account: &str,
        p: &Paging,
    ) -> Result<Page<StoredService>, FcError> {
        let (q, limit) = p.query()?;
        let mut items = self
            .store
            .list_services(account, &q)
            .await
            .map_err(|e| internal("list services", e))?;
        // Native FC 3.0 functions' hidden services are not 2.0 services. They sort after
        // every valid name (byte order), so dropping them never shortens a page that has a
        // next one.
        items.retain(|s| !fcd_core::fc3::is_hidden_service(&s.service.service_name));
        Ok(page(items, limit, |s| s.service.service_name.clone()))
    }

    // ---- functions ----

    async fn store_code(
        &self,
        zip_b64: &str,
        expected_checksum: Option<&str>,
    ) -> Result<fcd_store::code::StoredCode, FcError> {
        let stored = self.code.put_base64(zip_b64).await.map_err(code_error)?;
        if let Some(want) = expected_checksum.filter(|c| !c.is_empty())
            && want != stored.checksum
        {
            return Err(FcError::invalid(format!(
                "X-Fc-Code-Checksum {want} does not match the code package's CRC-64 {}",
                stored.checksum
            )));
        }
        Ok(stored)
    }

    pub async fn create_function(
        &self,
        account: &str,
        service: &str,
        mut u: FunctionUpdate,
        code_checksum: Option<&str>,
    ) -> Result<StoredFunction, FcError> {
        let name = u
            .function_name
            .clone()
            .ok_or_else(|| FcError::invalid("functionName is required"))?;
        check_function_name(&name)?;
        // Fail on a missing service before spending time on the code package.
        self.get_service(account, service).await?;
        let zip = u
            .code
            .take()
            .and_then(|c| {
                if c.oss_bucket_name.is_some() || c.oss_object_name.is_some() {
                    u.code = Some(c);
                    None
                } else {
                    c.zip_file
                }
            })
            .filter(|z| !z.is_empty());
        let zip = match zip {
            Some(z) => z,
            None if u.code.is_some() => {
                // Let validation explain why OSS code is refused.
                Function::create(
                    new_id(),
                    name.clone(),
                    u,
                    CodeRef {
                        checksum: String::new(),
                        size: 0,
                    },
                    String::new(),
                )?;
                return Err(FcError::invalid("code.zipFile is required"));
            }
            // An image function's code is its image: it stores an empty package, so versions,
            // collection and cluster sharing treat it like any other function.
            None if u.runtime.as_deref() == Some(images::CONTAINER_RUNTIME) => {
                EMPTY_ZIP_BASE64.to_owned()
            }
            None => return Err(FcError::invalid("code.zipFile is required")),
        };
        // Validate the config before storing code, so bad requests leave nothing behind.
        let checked = Function::create(
            new_id(),
            name.clone(),
            u.clone(),
            CodeRef {
                checksum: String::new(),
                size: 0,
            },
            String::new(),
        )?;
        // An image function's image is pulled now, not at its first call.
        self.prepare_image(&checked).await?;
        // Layers must exist before anything is stored.
        let layer_arns = match &u.layers {
            Some(l) => self.check_function_layers(account, l).await?,
            None => Vec::new(),
        };
        let code = self.store_code(&zip, code_checksum).await?;
        let mut function = Function::create(
            new_id(),
            name.clone(),
            u,
            CodeRef {
                checksum: code.checksum.clone(),
                size: code.size,
            },
            fcd_core::time::now(),
        )?;
        function.layers_arn_v2 = layer_arns;
        self.prepare_code(&function, &code.digest).await?;
        let stored = StoredFunction {
            function,
            code_digest: code.digest,
            etag: new_id(),
        };
        match self.store.insert_function(account, service, &stored).await {
            Ok(()) => {
                self.forget_http_triggers(account, service, Some(&name));
                self.publish_invalidation(account, Some(service)).await;
                Ok(stored)
            }
            Err(StoreError::AlreadyExists) => Err(FcError::FunctionAlreadyExists {
                service: service.to_owned(),
                function: name,
            }),
            Err(StoreError::ParentNotFound) => Err(FcError::ServiceNotFound(service.to_owned())),
            Err(StoreError::LimitExceeded(m)) => Err(FcError::LimitExceeded(m)),
            Err(e) => Err(internal("insert function", e)),
        }
    }

    /// Starts getting `function`'s code ready where its runtime compiles ahead of calls
    /// (`wasm`), so code that cannot run is refused here rather than at its first call.
    async fn prepare_code(&self, function: &Function, digest: &str) -> Result<(), FcError> {
        if function.runtime != "wasm" {
            return Ok(());
        }
        let code_dir = self
            .code
            .ensure_extracted(digest)
            .await
            .map_err(code_error)?;
        self.runtime
            .prepare_code(function, &code_dir, PREPARE_WAIT)
            .await
            .map_err(|why| FcError::invalid(format!("the function's code cannot run: {why}")))
    }

    pub async fn get_function(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<StoredFunction, FcError> {
        match self.store.get_function(account, service, name).await {
            Ok(Some(f)) => Ok(f),
            Ok(None) => {
                // FC names the missing service when that is what is missing.
                self.get_service(account, service).await?;
                Err(FcError::FunctionNotFound {
                    service: service.to_owned(),
                    function: name.to_owned(),
                })
            }
            Err(e) => Err(internal("get function", e)),
        }
    }

    pub async fn update_function(
        &self,
        account: &str,
        service: &str,
        name: &str,
        mut u: FunctionUpdate,
        if_match: Option<&str>,
        code_checksum: Option<&str>,
    ) -> Result<StoredFunction, FcError> {
        let current = self.get_function(account, service, name).await?;
        check_if_match(if_match, &current.etag)?;
        let mut function = current.function.clone();
        // Validate everything on a scratch copy before storing any code.
        let zip = u
            .code
            .as_ref()
            .and_then(|c| c.zip_file.clone())
            .filter(|z| !z.is_empty());
        function.clone().apply(u.clone(), None, String::new())?;
        let image_given = u.custom_container_config.is_some();
        let layer_arns = match &u.layers {
            Some(l) => Some(self.check_function_layers(account, l).await?),
            None => None,
        };
        u.code = None;
        let (code_ref, digest) = match zip {
            Some(z) => {
                let c = self.store_code(&z, code_checksum).await?;
                (
                    Some(CodeRef {
                        checksum: c.checksum,
                        size: c.size,
                    }),
                    c.digest,
                )
            }
            None => (None, current.code_digest.clone()),
        };
        let code_changed = code_ref.is_some();
        function.apply(u, code_ref, fcd_core::time::now())?;
        if let Some(arns) = layer_arns {
            function.layers_arn_v2 = arns;
        }
        if code_changed
            || function.runtime != current.function.runtime
            || function.handler != current.function.handler
        {
            self.prepare_code(&function, &digest).await?;
        }
        // A new image, or the same tag again (it may have been pushed anew): pulled now.
        if image_given || function.runtime != current.function.runtime {
            self.prepare_image(&function).await?;
        }
        let stored = StoredFunction {
            function,
            code_digest: digest,
            etag: new_id(),
        };
        match self
            .store
            .replace_function(account, service, &stored, &current.etag)
            .await
        {
            Ok(()) => {
                self.forget_function(account, service, name).await;
                Ok(stored)
            }
            Err(StoreError::NotFound) => Err(FcError::FunctionNotFound {
                service: service.to_owned(),
                function: name.to_owned(),
            }),
            Err(StoreError::Conflict) => Err(FcError::ConcurrentUpdate(format!(
                "function '{name}' was modified by another request; read it again and retry"
            ))),
            Err(e) => Err(internal("update function", e)),
        }
    }

    pub async fn delete_function(
        &self,
        account: &str,
        service: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<(), FcError> {
        let current = self.get_function(account, service, name).await?;
        check_if_match(if_match, &current.etag)?;
        match self.store.delete_function(account, service, name).await {
            Ok(()) => {
                // A function created later under the name starts without this one's numbers
                // (here; other nodes drop theirs once an hour has passed without calls).
                self.runtime.forget_history(account, service, Some(name));
                self.forget_function(account, service, name).await;
                Ok(())
            }
            Err(StoreError::NotFound) => Err(FcError::FunctionNotFound {
                service: service.to_owned(),
                function: name.to_owned(),
            }),
            Err(StoreError::NotEmpty) => Err(FcError::FunctionNotEmpty(name.to_owned())),
            Err(e) => Err(internal("delete function", e)),
        }
    }

    pub async fn list_functions(
        &self,
        account: &str,
        service: &str,
        p: &Paging,
    ) -> Result<Page<StoredFunction>, FcError> {
        self.get_service(account, service).await?;
        let (q, limit) = p.query()?;
        let items = self
            .store
            .list_functions(account, service, &q)
            .await
            .map_err(|e| internal("list functions", e))?;
        Ok(page(items, limit, |f| f.function.function_name.clone()))
    }

    // ---- code downloads ----

    /// The MAC of a code URL, ready to sign or to verify with.
    fn code_mac(&self, digest: &str, expires: u64) -> Option<hmac::Hmac<Sha256>> {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.url_secret).ok()?;
        mac.update(format!("{digest}\n{expires}").as_bytes());
        Some(mac)
    }

    fn code_signature(&self, digest: &str, expires: u64) -> String {
        self.code_mac(digest, expires)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// A pre-signed, time-limited path (with query) from which the function's zip downloads,
    /// and the zip's checksum.
    pub async fn code_url_path(
        &self,
        account: &str,
        service: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, String), FcError> {
        let (f, digest, _) = self.function_at(account, service, name, qualifier).await?;
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + CODE_URL_TTL_SECS;
        let sig = self.code_signature(&digest, expires);
        Ok((
            format!("/code-packages/{digest}?expires={expires}&signature={sig}"),
            f.code_checksum,
        ))
    }

    /// The zip behind a pre-signed code URL, if the URL is genuine and unexpired.
    pub async fn code_download(
        &self,
        digest: &str,
        expires: u64,
        signature: &str,
    ) -> Result<Vec<u8>, FcError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Compared in constant time (`verify_slice`), so response timing says nothing about
        // how much of a guessed signature was right.
        let genuine = match (hex::decode(signature), self.code_mac(digest, expires)) {
            (Ok(sig), Some(mac)) => mac.verify_slice(&sig).is_ok(),
            _ => false,
        };
        if !genuine || expires < now || !digest.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(FcError::AccessDenied(
                "the code URL is invalid or has expired".into(),
            ));
        }
        // In a cluster the package may have been uploaded through another node: fetched from
        // the shared store first.
        let zip = self.code.ensure_zip(digest).await.map_err(code_error)?;
        tokio::fs::read(zip)
            .await
            .map_err(|e| internal("read code package", e))
    }

    // ---- code packages ----

    /// Removes the code packages no function or version references any more (on this node,
    /// and from the shared store in a cluster), keeping those this node's instances run and
    /// those younger than `grace` (uploaded by a create or update not yet committed).
    pub async fn collect_code_once(
        &self,
        grace: std::time::Duration,
    ) -> Result<fcd_store::code::CollectReport, FcError> {
        // In use first: a package an instance starts on after this read is referenced (it was
        // resolved from the store) or younger than `grace`.
        let in_use = self
            .runtime
            .code_in_use()
            .ok_or_else(|| internal("collect code", "the instance pools cannot be read"))?;
        let referenced = self
            .store
            .referenced_code()
            .await
            .map_err(|e| internal("collect code", e))?;
        self.code
            .collect(&referenced, &in_use, grace)
            .await
            .map_err(code_error)
    }

    /// [`Control::collect_code_once`] every `every`, until the process ends.
    pub async fn collect_code_forever(
        self: Arc<Control>,
        every: std::time::Duration,
        grace: std::time::Duration,
    ) {
        loop {
            tokio::time::sleep(every).await;
            match self.collect_code_once(grace).await {
                Ok(r) if r.local.is_empty() && r.shared.is_empty() => {}
                Ok(r) => tracing::info!(
                    local = r.local.len(),
                    shared = r.shared.len(),
                    "collected code packages no function or version references"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "collecting code packages failed; retrying later")
                }
            }
        }
    }

    // ---- invocation ----

    /// The function to run for an invocation of `qualifier` (absent: LATEST), from the cache
    /// when possible. An alias picks one of its versions by weight. The spec's `max_instances`
    /// comes from the on-demand config put under the qualifier as invoked (LATEST when absent;
    /// a version id has none of its own).
    pub async fn resolve(
        &self,
        account: &str,
        service: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Arc<FunctionSpec>, FcError> {
        let spec = self
            .resolve_unchecked(account, service, name, qualifier)
            .await?;
        runnable(&spec, qualifier)?;
        Ok(spec)
    }

    /// [`Control::resolve`] without refusing a function that may not run instances here
    /// (placement may still find them on another node).
    pub(crate) async fn resolve_unchecked(
        &self,
        account: &str,
        service: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Arc<FunctionSpec>, FcError> {
        let (version, label) = match qualifier {
            None | Some("") | Some(LATEST) => (None, LATEST),
            Some(q) => (Some(self.route(account, service, q).await?), q),
        };
        let r = self
            .resolve_version(account, service, name, version, label)
            .await?;
        Ok(r.spec)
    }

    /// The cached spec of `version` (`None`: LATEST) as invoked by `label`.
    async fn resolve_version(
        &self,
        account: &str,
        service: &str,
        name: &str,
        version: Option<u64>,
        label: &str,
    ) -> Result<Resolved, FcError> {
        let version_key = version
            .map(|v| v.to_string())
            .unwrap_or_else(|| LATEST.to_owned());
        let key = (
            account.to_owned(),
            service.to_owned(),
            name.to_owned(),
            version_key.clone(),
            label.to_owned(),
        );
        if let Some(hit) = self.cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let generation = self.cache_gen.load(Ordering::Acquire);
        let (svc, function, code_digest, revision) = match version {
            None => {
                let svc = self.get_service(account, service).await?;
                let f = self.get_function(account, service, name).await?;
                let revision = format!("{}/{}", svc.etag, f.etag);
                (svc.service, f.function, f.code_digest, revision)
            }
            Some(v) => {
                let snap = self.version_snapshot(account, service, v).await?;
                let f = snap
                    .functions
                    .into_iter()
                    .find(|f| f.function.function_name == name)
                    .ok_or_else(|| FcError::FunctionNotFound {
                        service: service.to_owned(),
                        function: name.to_owned(),
                    })?;
                // A version never changes, so its number is its revision.
                (snap.service, f.function, f.code_digest, format!("v{v}"))
            }
        };
        // FC 3.0 has no PreFreeze hook: a native 3.0 function's instances are never sent
        // `/pre-freeze`, whatever its stored lifecycle config says (fc3-api.md section 5.3).
        let mut function = function;
        if fcd_core::fc3::is_hidden_service(service)
            && let Some(lc) = function.instance_lifecycle_config.as_mut()
        {
            lc.pre_freeze = None;
        }
        let on_demand = self
            .store
            .get_on_demand_config(account, service, label, name)
            .await
            .map_err(|e| internal("get on-demand config", e))?
            .map(|c| c.config.maximum_instance_count);
        let code_dir = self
            .code
            .ensure_extracted(&code_digest)
            .await
            .map_err(code_error)?;
        let layers = self.layer_tree(account, &function.layers).await?;
        let image = self.image_for_spec(&function).await?;
        let log = |key: &str| {
            svc.log_config
                .as_ref()
                .and_then(|c| c.get(key))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        // The instance manager limits all of a version's instances together, provisioned ones
        // included, so the on-demand limit is added to what is provisioned for that version.
        let provisioned = self.provisioning.target(&(
            account.to_owned(),
            service.to_owned(),
            name.to_owned(),
            version_key,
        ));
        let resolved = Resolved {
            spec: Arc::new(FunctionSpec {
                account_id: account.to_owned(),
                service_name: service.to_owned(),
                log_project: log("project"),
                log_store: log("logstore"),
                internet_access: svc.internet_access,
                function,
                code_dir,
                image,
                layers,
                version_id: version.map(|v| v.to_string()),
                limit: InstanceLimit::from_config(on_demand, provisioned),
                revision,
                generation,
                // The service's `role` gives its instances temporary credentials (one cached
                // source per role; `None` without a role: nothing is asked per call).
                credentials: self.roles.for_role(account, &svc.role),
            }),
        };
        if let Ok(mut c) = self.cache.write()
            && self.cache_gen.load(Ordering::Acquire) == generation
        {
            c.insert(key, resolved.clone());
        }
        Ok(resolved)
    }

    /// Drops the cached specs `drop` selects; resolutions under way will not cache theirs.
    fn forget_specs(&self, drop: impl Fn(&FnKey) -> bool) {
        if let Ok(mut c) = self.cache.write() {
            self.cache_gen.fetch_add(1, Ordering::AcqRel);
            c.retain(|k, _| !drop(k));
        }
    }

    fn forget_service(&self, account: &str, service: &str) {
        self.forget_specs(|(a, s, ..)| a == account && s == service);
        self.reserved.forget(Some(account), Some(service), None);
        self.forget_http_triggers(account, service, None);
        if let Ok(mut c) = self.aliases.write() {
            self.alias_gen.fetch_add(1, Ordering::AcqRel);
            c.retain(|(a, s, _), _| !(a == account && s == service));
        }
    }

    /// After a LATEST function changed or went away: drop its cached spec and stop its
    /// LATEST instances. Versions are snapshots and keep running.
    /// In a cluster, every node does the same.
    async fn forget_function(&self, account: &str, service: &str, name: &str) {
        self.forget_specs(|(a, s, f, v, _)| {
            a == account && s == service && f == name && v == LATEST
        });
        self.forget_http_triggers(account, service, Some(name));
        self.runtime
            .retire(account, service, Some(name), None)
            .await;
        self.publish_invalidation(account, Some(service)).await;
        self.publish(ClusterEvent::Retire {
            account: account.to_owned(),
            service: service.to_owned(),
            function: Some(name.to_owned()),
            version: None,
        })
        .await;
    }
}

#[cfg(test)]
mod store_error_tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_503_and_other_failures_500() {
        let e = internal("t", StoreError::Unavailable("connection refused".into()));
        assert!(matches!(e, FcError::ServiceUnavailable));
        assert!(matches!(
            internal("t", StoreError::Backend("x".into())),
            FcError::Internal
        ));
        let e = code_error(CodeError::Shared(StoreError::Unavailable("reset".into())));
        assert!(matches!(e, FcError::ServiceUnavailable));
    }
}
