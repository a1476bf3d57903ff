//! Per-qualifier function configs, instances and the provisioning reconciler.
//!
//! - On-demand configs (`maximumInstanceCount`) are put under LATEST or an alias, as FC allows.
//!   They reach the invoke path through [`Control::resolve`], which reads the one put under the
//!   qualifier as invoked; every change drops the service's cached specs so it applies at once.
//! - Provision configs are put under an alias or a version (FC refuses LATEST). Only `target`
//!   is acted on: [`Control::reconcile_provisioning_forever`] keeps that many instances of the
//!   version the qualifier names (an alias: its main version) started ahead of traffic.
//!   `scheduledActions`, `targetTrackingPolicies` and `alwaysAllocateCPU` are validated, stored
//!   and returned unchanged, but have no effect.
//! - In a cluster every node runs the reconciler for its own share of each pool's target
//!   ([`fcd_cluster::Cluster::share`]: the same split on every node that sees the same live
//!   nodes, summing to the target), reconciles again as soon as the node list changes, and
//!   publishes how many provisioned instances it has up per pool; a config's `current` is the
//!   sum over the live nodes, so instances of a node whose heartbeat lapsed stop counting. While
//!   the nodes' views differ (up to a heartbeat or two after a change) the total may briefly be
//!   above or below the target.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fcd_core::FcError;
use fcd_core::configs::{
    OnDemandConfig, OnDemandConfigUpdate, ProvisionConfig, ProvisionConfigUpdate,
};
use fcd_core::limits::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use fcd_core::versions::parse_version_id;
use fcd_runtime::{FunctionSpec, InstanceInfo};
use fcd_store::{ProvisionQuery, StoreError, StoredOnDemandConfig};

use super::{Control, LATEST, Page, Paging, internal, new_id, page};

/// (account, service, qualifier, function): what a config is keyed by.
type ConfigKey = (String, String, String, String);
/// (account, service, function, version id): one pool of instances in the instance manager.
type PoolKey = (String, String, String, String);
/// The configs that share one pool, each with its own target.
type Members = Vec<(ConfigKey, u32)>;

/// How often the reconciler looks at every provision config, besides right after a put.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);
/// After a pool came up short (budget, start failures), the next attempt waits this long,
/// doubling up to [`RETRY_MAX`], unless its target changes meanwhile.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the reconciler last saw of one provision config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionStatus {
    /// Provisioned instances up.
    pub current: u32,
    /// Why fewer than `target` are up, if something went wrong.
    pub error: Option<String>,
}

/// A page of ListProvisionConfigs: each config with its status.
#[derive(Debug)]
pub struct ProvisionPage {
    pub configs: Vec<(ProvisionConfig, ProvisionStatus)>,
    pub next_token: Option<String>,
}

/// What was last asked of one pool.
#[derive(Debug, Clone)]
struct PoolTarget {
    spec: Arc<FunctionSpec>,
    qualifier: String,
    target: u32,
}

#[derive(Debug, Default)]
struct ProvisionState {
    /// Configs provisioning nothing (target 0) or failing to resolve, as they stand. The status
    /// of the others is computed from `members` and what is up ([`Control::provision_status`]).
    status: HashMap<ConfigKey, ProvisionStatus>,
    /// Pools the reconciler has provisioned on this node, and with what (its share).
    pools: HashMap<PoolKey, PoolTarget>,
    /// This node's share of each pool's summed target, as of the latest pass;
    /// [`Control::resolve`] adds it to the on-demand limit (the instance manager's limit is
    /// this node's).
    targets: HashMap<PoolKey, u32>,
    /// The configs sharing each pool with their targets, in the store's order (what is up is
    /// split among them in this order).
    members: HashMap<PoolKey, Members>,
    /// The pool of each config in `members`.
    config_pool: HashMap<ConfigKey, PoolKey>,
    /// Provisioned instances up on this node per pool, and why fewer than its share.
    up: HashMap<PoolKey, (u32, Option<String>)>,
    /// Pools with a `provision` call under way; they are skipped until it returns.
    busy: HashSet<PoolKey>,
    /// Pools that came up short: not retried before the instant unless their target changes.
    backoff: HashMap<PoolKey, Backoff>,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    target: u32,
    not_before: Instant,
    delay: Duration,
}

/// The reconciler's state, kept in memory: after a restart it is rebuilt within a pass.
#[derive(Debug, Default)]
pub(crate) struct Provisioning {
    kick: tokio::sync::Notify,
    state: Mutex<ProvisionState>,
}

impl Provisioning {
    /// The provisioned target of a pool, as of the latest pass.
    pub(crate) fn target(&self, pool: &PoolKey) -> u32 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.targets.get(pool).copied())
            .unwrap_or(0)
    }

    pub(crate) fn kick(&self) {
        self.kick.notify_one();
    }
}

/// A pool's key as the cluster knows it ([`fcd_cluster::route_key`]).
fn pool_route_key(k: &PoolKey) -> String {
    fcd_cluster::route_key(&k.0, &k.1, &k.2, &k.3)
}

/// One pool the latest pass wants provisioned, and the configs that share it.
struct Desired {
    spec: Arc<FunctionSpec>,
    qualifier: String,
    /// Summed over the configs: the whole cluster's target.
    target: u32,
    /// This node's share of it.
    share: u32,
    members: Members,
}

fn config_key(account: &str, service: &str, qualifier: &str, function: &str) -> ConfigKey {
    (
        account.to_owned(),
        service.to_owned(),
        qualifier.to_owned(),
        function.to_owned(),
    )
}

fn pool_key(spec: &FunctionSpec) -> PoolKey {
    (
        spec.account_id.clone(),
        spec.service_name.clone(),
        spec.function.function_name.clone(),
        spec.version_id.clone().unwrap_or_else(|| LATEST.to_owned()),
    )
}

/// FC's rule for on-demand configs: required, LATEST or an alias, never a version.
fn on_demand_qualifier(q: Option<&str>) -> Result<&str, FcError> {
    match q.filter(|q| !q.is_empty()) {
        None => Err(FcError::invalid(
            "qualifier is required: on-demand configs are put under LATEST or an alias",
        )),
        Some(q) if parse_version_id(q).is_some() => Err(FcError::invalid(format!(
            "qualifier '{q}' is a version: on-demand configs are put under LATEST or an alias"
        ))),
        Some(q) => Ok(q),
    }
}

/// FC's rule for provision configs: required, an alias or a version, never LATEST.
fn provision_qualifier(q: Option<&str>) -> Result<&str, FcError> {
    match q.filter(|q| !q.is_empty()) {
        None => Err(FcError::invalid(
            "qualifier is required: provisioned instances are kept for an alias or a version",
        )),
        Some(LATEST) => Err(FcError::invalid(
            "provisioned instances cannot be kept for LATEST: publish a version and provision it, or an alias of it",
        )),
        Some(q) => Ok(q),
    }
}

fn if_match(v: Option<&str>) -> Option<&str> {
    v.map(|m| m.trim_matches('"')).filter(|m| !m.is_empty())
}

/// A ListProvisionConfigs `nextToken`: the resource name of the first config of the page.
fn parse_provision_token(account: &str, token: &str) -> Result<(String, String, String), FcError> {
    let parts: Vec<&str> = token.split('#').collect();
    match parts.as_slice() {
        [a, s, q, f] if *a == account => Ok(((*s).to_owned(), (*q).to_owned(), (*f).to_owned())),
        _ => Err(FcError::invalid(format!("nextToken '{token}' is invalid"))),
    }
}

impl Control {
    // ---- on-demand configs ----

    fn on_demand_not_found(service: &str, qualifier: &str, function: &str) -> FcError {
        FcError::OnDemandConfigNotFound {
            service: service.to_owned(),
            qualifier: qualifier.to_owned(),
            function: function.to_owned(),
        }
    }

    /// After an on-demand config changed: the service's cached specs carry the old limit.
    fn forget_service_specs(&self, account: &str, service: &str) {
        self.forget_specs(|(a, s, ..)| a == account && s == service);
    }

    pub async fn put_on_demand_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        u: OnDemandConfigUpdate,
        if_match_etag: Option<&str>,
    ) -> Result<StoredOnDemandConfig, FcError> {
        let qualifier = on_demand_qualifier(qualifier)?;
        let maximum_instance_count = u.maximum_instance_count()?;
        // The function must exist where the config applies (an alias: in its main version).
        let q = (qualifier != LATEST).then_some(qualifier);
        self.function_at(account, service, function, q).await?;
        let stored = StoredOnDemandConfig {
            config: OnDemandConfig {
                service_name: service.to_owned(),
                qualifier: qualifier.to_owned(),
                function_name: function.to_owned(),
                maximum_instance_count,
            },
            etag: new_id(),
        };
        match self
            .store
            .put_on_demand_config(account, &stored, if_match(if_match_etag))
            .await
        {
            Ok(()) => {
                self.forget_service_specs(account, service);
                self.publish_invalidation(account, Some(service)).await;
                Ok(stored)
            }
            Err(StoreError::ParentNotFound) => Err(FcError::ServiceNotFound(service.to_owned())),
            Err(StoreError::Conflict) => Err(FcError::PreconditionFailed),
            Err(e) => Err(internal("put on-demand config", e)),
        }
    }

    pub async fn get_on_demand_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<StoredOnDemandConfig, FcError> {
        let qualifier = on_demand_qualifier(qualifier)?;
        match self
            .store
            .get_on_demand_config(account, service, qualifier, function)
            .await
        {
            Ok(Some(c)) => Ok(c),
            Ok(None) => {
                self.get_service(account, service).await?;
                Err(Self::on_demand_not_found(service, qualifier, function))
            }
            Err(e) => Err(internal("get on-demand config", e)),
        }
    }

    pub async fn delete_on_demand_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        if_match_etag: Option<&str>,
    ) -> Result<(), FcError> {
        let qualifier = on_demand_qualifier(qualifier)?;
        match self
            .store
            .delete_on_demand_config(
                account,
                service,
                qualifier,
                function,
                if_match(if_match_etag),
            )
            .await
        {
            Ok(()) => {
                self.forget_service_specs(account, service);
                self.publish_invalidation(account, Some(service)).await;
                Ok(())
            }
            Err(StoreError::NotFound) => {
                self.get_service(account, service).await?;
                Err(Self::on_demand_not_found(service, qualifier, function))
            }
            Err(StoreError::Conflict) => Err(FcError::PreconditionFailed),
            Err(e) => Err(internal("delete on-demand config", e)),
        }
    }

    /// ListOnDemandConfigs: `prefix`, `startKey` and `nextToken` apply to the resource name
    /// without its account, `{service}#{qualifier}#{function}` (a prefix selects services by
    /// name); the full resource name `{account}#…` is accepted for each too. Native FC 3.0
    /// functions' hidden services are not listed.
    pub async fn list_on_demand_configs(
        &self,
        account: &str,
        p: &Paging,
    ) -> Result<Page<StoredOnDemandConfig>, FcError> {
        let own = format!("{account}#");
        let strip = |v: &Option<String>| {
            v.as_deref()
                .map(|v| v.strip_prefix(own.as_str()).unwrap_or(v).to_owned())
        };
        let p = Paging {
            prefix: strip(&p.prefix),
            start_key: strip(&p.start_key),
            next_token: strip(&p.next_token),
            limit: p.limit,
        };
        let (q, limit) = p.query()?;
        let mut items = self
            .store
            .list_on_demand_configs(account, &q)
            .await
            .map_err(|e| internal("list on-demand configs", e))?;
        // Hidden services sort after every valid name, so dropping them never shortens a page
        // that has a next one.
        items.retain(|c| !fcd_core::fc3::is_hidden_service(&c.config.service_name));
        Ok(page(items, limit, |c| c.config.list_key()))
    }

    // ---- provision configs ----

    pub async fn put_provision_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        u: ProvisionConfigUpdate,
    ) -> Result<(ProvisionConfig, ProvisionStatus), FcError> {
        let qualifier = provision_qualifier(qualifier)?;
        let cfg = u.into_config(service, qualifier, function)?;
        // The alias or version, and the function in it, must exist.
        self.function_at(account, service, function, Some(qualifier))
            .await?;
        match self.store.put_provision_config(account, &cfg).await {
            Ok(()) => {}
            Err(StoreError::ParentNotFound) => {
                return Err(FcError::ServiceNotFound(service.to_owned()));
            }
            Err(e) => return Err(internal("put provision config", e)),
        }
        self.provisioning.kick();
        // The other nodes reconcile at once too (their share of the new target).
        self.publish_invalidation(account, Some(service)).await;
        let status = self.provision_status(&config_key(account, service, qualifier, function));
        Ok((cfg, status))
    }

    /// GetProvisionConfig. A function without one has target 0, as in FC.
    pub async fn get_provision_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(ProvisionConfig, ProvisionStatus), FcError> {
        let qualifier = provision_qualifier(qualifier)?;
        let stored = self
            .store
            .get_provision_config(account, service, qualifier, function)
            .await
            .map_err(|e| internal("get provision config", e))?;
        let cfg = match stored {
            Some(c) => c,
            None => {
                self.function_at(account, service, function, Some(qualifier))
                    .await?;
                ProvisionConfigUpdate {
                    target: Some(0),
                    ..Default::default()
                }
                .into_config(service, qualifier, function)?
            }
        };
        let status = self.provision_status(&config_key(account, service, qualifier, function));
        Ok((cfg, status))
    }

    /// ListProvisionConfigs of the account, optionally of one service (and qualifier).
    pub async fn list_provision_configs(
        &self,
        account: &str,
        service: Option<&str>,
        qualifier: Option<&str>,
        next_token: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ProvisionPage, FcError> {
        let service = service.filter(|s| !s.is_empty());
        let qualifier = qualifier.filter(|q| !q.is_empty());
        if qualifier.is_some() && service.is_none() {
            return Err(FcError::invalid(
                "serviceName is required when qualifier is given",
            ));
        }
        let limit = limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(FcError::invalid(format!(
                "limit {limit} is out of range: it must be between 1 and {LIST_LIMIT_MAX}"
            )));
        }
        let from = next_token
            .filter(|t| !t.is_empty())
            .map(|t| parse_provision_token(account, t))
            .transpose()?;
        let mut items = self
            .store
            .list_provision_configs(
                account,
                &ProvisionQuery {
                    service: service.map(str::to_owned),
                    qualifier: qualifier.map(str::to_owned),
                    from,
                    limit: limit + 1,
                },
            )
            .await
            .map_err(|e| internal("list provision configs", e))?;
        let next_token = if items.len() > limit as usize {
            items.truncate(limit as usize + 1);
            items.pop().map(|c| c.resource(account))
        } else {
            None
        };
        let configs = items
            .into_iter()
            .map(|c| {
                let status = self.provision_status(&config_key(
                    account,
                    &c.service_name,
                    &c.qualifier,
                    &c.function_name,
                ));
                (c, status)
            })
            .collect();
        Ok(ProvisionPage {
            configs,
            next_token,
        })
    }

    // ---- the provisioning reconciler ----

    /// A config's status: what is up of its pool on every live node (this one from memory, the
    /// others as their last heartbeat published), split among the pool's configs in order.
    fn provision_status(&self, key: &ConfigKey) -> ProvisionStatus {
        let Ok(st) = self.provisioning.state.lock() else {
            return ProvisionStatus::default();
        };
        let Some(pool) = st.config_pool.get(key).cloned() else {
            return st.status.get(key).cloned().unwrap_or_default();
        };
        let (local, error) = st.up.get(&pool).cloned().unwrap_or((0, None));
        let members = st.members.get(&pool).cloned().unwrap_or_default();
        drop(st);
        let mut total = local;
        if !self.cluster.is_single() {
            let rk = pool_route_key(&pool);
            for n in self.cluster.nodes() {
                if !n.is_self && n.live {
                    total =
                        total.saturating_add(n.state.provisioned.get(&rk).copied().unwrap_or(0));
                }
            }
        }
        let mut left = total;
        for (k, target) in members {
            let current = left.min(target);
            left -= current;
            if &k == key {
                let error = (current < target).then(|| error.clone()).flatten();
                return ProvisionStatus { current, error };
            }
        }
        ProvisionStatus::default()
    }

    /// Publishes what this node has provisioned, its instance count and its warm pools with
    /// the next heartbeat (nothing to do on a single node, where the state is read locally
    /// anyway).
    fn publish_provisioned(&self) {
        if self.cluster.is_single() {
            return;
        }
        let provisioned: BTreeMap<String, u32> = match self.provisioning.state.lock() {
            Ok(st) => st
                .up
                .iter()
                .filter(|(_, (n, _))| *n > 0)
                .map(|(k, (n, _))| (pool_route_key(k), *n))
                .collect(),
            Err(_) => return,
        };
        let instances = self.runtime.instance_count() as u64;
        // Where this node is warm, and with what: peers route calls here by it, and
        // ListInstances on any node lists these.
        let warm = self
            .runtime
            .warm_pools()
            .into_iter()
            .map(|p| {
                (
                    fcd_cluster::route_key(&p.account, &p.service, &p.function, &p.version),
                    fcd_cluster::WarmPool {
                        instances: p.instances,
                        free_slots: p.free_slots,
                        instance_ids: p.instance_ids,
                    },
                )
            })
            .collect();
        self.cluster.update_local_state(|s| {
            s.provisioned = provisioned;
            s.instances = instances;
            s.warm = warm;
        });
    }

    /// Keeps this node's share of every provision config's `target` instances running: once a
    /// second, right after a PutProvisionConfig (here or on another node), and whenever the
    /// cluster's live nodes change (shares move). Runs until the process ends; errors (a config
    /// whose alias or function went away, a full server budget) are recorded as the config's
    /// `currentError` and logged, never ending the loop.
    pub async fn reconcile_provisioning_forever(self: Arc<Control>) {
        let mut membership = self.cluster.membership();
        let mut watching = true;
        loop {
            self.clone().reconcile_once().await;
            tokio::select! {
                _ = tokio::time::sleep(RECONCILE_EVERY) => {}
                _ = self.provisioning.kick.notified() => {}
                changed = membership.changed(), if watching => watching = changed.is_ok(),
            }
        }
    }

    /// The spec provisioned instances of `cfg` run: its version's (an alias: the main one).
    async fn provision_spec(
        &self,
        account: &str,
        cfg: &ProvisionConfig,
    ) -> Result<Arc<FunctionSpec>, FcError> {
        let v = self
            .fixed_version(account, &cfg.service_name, &cfg.qualifier)
            .await?;
        let r = self
            .resolve_version(
                account,
                &cfg.service_name,
                &cfg.function_name,
                Some(v),
                &v.to_string(),
            )
            .await?;
        Ok(r.spec)
    }

    /// One pass: read every config, work out each pool's target, start `provision` calls for
    /// pools that are not already busy, and release pools nothing asks for any more.
    pub(crate) async fn reconcile_once(self: Arc<Control>) {
        let configs = match self.store.all_provision_configs().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "provisioning: cannot read the provision configs");
                return;
            }
        };
        let mut desired: HashMap<PoolKey, Desired> = HashMap::new();
        let mut idle: Vec<ConfigKey> = Vec::new();
        let mut failed: Vec<(ConfigKey, String)> = Vec::new();
        let mut present: HashSet<ConfigKey> = HashSet::new();
        for (account, cfg) in configs {
            let key = config_key(
                &account,
                &cfg.service_name,
                &cfg.qualifier,
                &cfg.function_name,
            );
            present.insert(key.clone());
            if cfg.target == 0 {
                idle.push(key);
                continue;
            }
            match self.provision_spec(&account, &cfg).await {
                Ok(spec) => {
                    let d = desired.entry(pool_key(&spec)).or_insert_with(|| Desired {
                        spec: spec.clone(),
                        qualifier: cfg.qualifier.clone(),
                        target: 0,
                        share: 0,
                        members: Vec::new(),
                    });
                    d.target = d.target.saturating_add(cfg.target);
                    d.members.push((key, cfg.target));
                }
                Err(e) => failed.push((key, e.to_string())),
            }
        }

        for (k, d) in desired.iter_mut() {
            d.share = self.cluster.share(&pool_route_key(k), d.target);
        }

        let mut start: Vec<(PoolKey, PoolTarget)> = Vec::new();
        let mut release: Vec<(PoolKey, PoolTarget)> = Vec::new();
        let mut changed_services: HashSet<(String, String)> = HashSet::new();
        {
            let Ok(mut st) = self.provisioning.state.lock() else {
                return;
            };
            st.status.retain(|k, _| present.contains(k));
            st.config_pool = desired
                .iter()
                .flat_map(|(p, d)| d.members.iter().map(move |(k, _)| (k.clone(), p.clone())))
                .collect();
            st.members = desired
                .iter()
                .map(|(p, d)| (p.clone(), d.members.clone()))
                .collect();
            let pooled: Vec<ConfigKey> = st.config_pool.keys().cloned().collect();
            for k in pooled {
                st.status.remove(&k);
            }
            for k in idle {
                st.status.insert(k, ProvisionStatus::default());
            }
            for (k, error) in failed {
                let previous = st.status.get(&k).and_then(|s| s.error.clone());
                if previous.as_deref() != Some(error.as_str()) {
                    tracing::warn!(service = %k.1, qualifier = %k.2, function = %k.3, error = %error, "provisioning: cannot provision");
                }
                st.status.insert(
                    k,
                    ProvisionStatus {
                        current: 0,
                        error: Some(error),
                    },
                );
            }
            let targets: HashMap<PoolKey, u32> = desired
                .iter()
                .filter(|(_, d)| d.share > 0)
                .map(|(k, d)| (k.clone(), d.share))
                .collect();
            for k in targets.keys().chain(st.targets.keys()) {
                if targets.get(k) != st.targets.get(k) {
                    changed_services.insert((k.0.clone(), k.1.clone()));
                }
            }
            st.targets = targets;
            // What this node keeps: pools of which it has a share.
            desired.retain(|_, d| d.share > 0);
            let stale: Vec<PoolKey> = st
                .pools
                .keys()
                .filter(|k| !desired.contains_key(*k) && !st.busy.contains(*k))
                .cloned()
                .collect();
            for k in stale {
                if let Some(p) = st.pools.get(&k).cloned() {
                    st.busy.insert(k.clone());
                    release.push((k, p));
                }
            }
            let now = Instant::now();
            st.backoff.retain(|k, _| desired.contains_key(k));
            let st = &mut *st;
            let pools = &st.pools;
            st.up
                .retain(|k, _| desired.contains_key(k) || pools.contains_key(k));
            for (k, d) in desired {
                if st.busy.contains(&k)
                    || st
                        .backoff
                        .get(&k)
                        .is_some_and(|b| b.target == d.share && now < b.not_before)
                {
                    continue;
                }
                st.busy.insert(k.clone());
                start.push((
                    k,
                    PoolTarget {
                        spec: d.spec,
                        qualifier: d.qualifier,
                        target: d.share,
                    },
                ));
            }
        }
        self.publish_provisioned();
        // Specs carry the provisioned target in their instance limit.
        for (a, s) in changed_services {
            self.forget_service_specs(&a, &s);
        }
        for (k, p) in release {
            let me = self.clone();
            tokio::spawn(async move {
                me.runtime.provision(p.spec.clone(), &p.qualifier, 0).await;
                if let Ok(mut st) = me.provisioning.state.lock() {
                    st.busy.remove(&k);
                    st.pools.remove(&k);
                    st.up.remove(&k);
                }
                me.publish_provisioned();
            });
        }
        for (k, p) in start {
            let me = self.clone();
            tokio::spawn(async move {
                let up = me
                    .runtime
                    .provision(p.spec.clone(), &p.qualifier, p.target)
                    .await;
                let error = (up < p.target).then(|| {
                    format!(
                        "{up} of {} provisioned instances are running: the server's instance or memory budget is used up, or the instances fail to start (see the server log)",
                        p.target
                    )
                });
                let Ok(mut st) = me.provisioning.state.lock() else {
                    return;
                };
                // Configs sharing a pool (an alias and its version) share what is up: split in
                // `provision_status`.
                st.up.insert(k.clone(), (up, error));
                if up < p.target {
                    let delay = st
                        .backoff
                        .get(&k)
                        .map_or(RETRY_FIRST, |b| (b.delay * 2).min(RETRY_MAX));
                    st.backoff.insert(
                        k.clone(),
                        Backoff {
                            target: p.target,
                            not_before: Instant::now() + delay,
                            delay,
                        },
                    );
                } else {
                    st.backoff.remove(&k);
                }
                st.busy.remove(&k);
                st.pools.insert(k, p);
                drop(st);
                me.publish_provisioned();
            });
        }
    }

    // ---- instances ----

    /// ListInstances: the live instances of a function, of every version, or of the version a
    /// qualifier names (an alias: every version it routes to), filtered by id when ids are
    /// given, ordered by version and id.
    pub async fn list_instances(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        instance_ids: &[String],
        limit: Option<u32>,
    ) -> Result<Vec<InstanceInfo>, FcError> {
        let qualifier = qualifier.filter(|q| !q.is_empty());
        if limit == Some(0) {
            return Err(FcError::invalid(
                "limit 0 is out of range: it must be at least 1",
            ));
        }
        self.function_at(account, service, function, qualifier)
            .await?;
        let versions: Option<Vec<String>> = match qualifier {
            None => None,
            Some(LATEST) => Some(vec![LATEST.to_owned()]),
            Some(q) if parse_version_id(q).is_some() => Some(vec![q.to_owned()]),
            Some(q) => {
                let alias = self.get_alias(account, service, q).await?;
                Some(alias.alias.versions().map(str::to_owned).collect())
            }
        };
        let mut out: Vec<InstanceInfo> = match &versions {
            None => self
                .runtime
                .list_instances(account, service, function, None),
            Some(vs) => vs
                .iter()
                .flat_map(|v| {
                    self.runtime
                        .list_instances(account, service, function, Some(v))
                })
                .collect(),
        };
        // In a cluster, the other live nodes' instances too, as their last heartbeat said.
        for node in self.cluster.nodes() {
            if node.is_self || !node.live {
                continue;
            }
            for (key, pool) in &node.state.warm {
                let mut parts = key.splitn(4, '/');
                let (Some(a), Some(s), Some(f), Some(v)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let wanted = versions.as_ref().is_none_or(|vs| vs.iter().any(|x| x == v));
                if a == account && s == service && f == function && wanted {
                    out.extend(pool.instance_ids.iter().map(|id| InstanceInfo {
                        instance_id: id.clone(),
                        version_id: v.to_owned(),
                    }));
                }
            }
        }
        if !instance_ids.is_empty() {
            out.retain(|i| instance_ids.contains(&i.instance_id));
        }
        out.sort_by(|a, b| (&a.version_id, &a.instance_id).cmp(&(&b.version_id, &b.instance_id)));
        if let Some(n) = limit {
            out.truncate(n as usize);
        }
        Ok(out)
    }

    // ---- observability ----

    /// What `GET /status` reports: no secrets, only what an operator needs at a glance.
    /// In a cluster it also lists the nodes (`nodes`), as this node last saw them.
    pub fn status(&self) -> serde_json::Value {
        let cfg = self.runtime.config();
        let mut status = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": self.started.elapsed().as_secs(),
            "region": self.region,
            "isolation": self.runtime.isolation(),
            "runtimes": self.runtime.config().runtimes.describe(),
            "limits": {
                "maxInstances": cfg.max_instances,
                "maxMemoryMB": cfg.max_memory_mb,
                "idleTimeoutSeconds": cfg.idle_timeout.as_secs(),
            },
            "instances": self.runtime.instance_count(),
        });
        if let (Some(images), Some(o)) = (&self.images, status.as_object_mut()) {
            o.insert(
                "images".into(),
                serde_json::json!({
                    "unpacked": images.images().len(),
                    "bytes": images.size(),
                }),
            );
        }
        if !self.cluster.is_single() {
            let nodes: Vec<serde_json::Value> = self
                .cluster
                .nodes()
                .into_iter()
                .map(|n| {
                    serde_json::json!({
                        "id": n.id,
                        "url": n.url,
                        "self": n.is_self,
                        "live": n.live,
                        "draining": n.draining,
                        "startedMs": n.started_ms,
                        "heartbeatAgeMs": n.heartbeat_age_ms,
                        "instances": n.state.instances,
                    })
                })
                .collect();
            status["cluster"] = serde_json::json!({
                "nodeId": self.cluster.node().id,
                "nodes": nodes,
            });
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifier_rules_follow_fc() {
        assert_eq!(on_demand_qualifier(Some("LATEST")), Ok("LATEST"));
        assert_eq!(on_demand_qualifier(Some("prod")), Ok("prod"));
        for bad in [None, Some(""), Some("3")] {
            assert!(
                matches!(on_demand_qualifier(bad), Err(FcError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        assert_eq!(provision_qualifier(Some("prod")), Ok("prod"));
        assert_eq!(provision_qualifier(Some("2")), Ok("2"));
        assert!(matches!(
            provision_qualifier(Some("LATEST")),
            Err(FcError::InvalidArgument(m)) if m.contains("LATEST")
        ));
        assert!(provision_qualifier(None).is_err());
    }

    #[test]
    fn provision_tokens_are_resource_names_of_the_account() {
        assert_eq!(
            parse_provision_token("123", "123#s#prod#f"),
            Ok(("s".into(), "prod".into(), "f".into()))
        );
        assert!(parse_provision_token("123", "999#s#prod#f").is_err());
        assert!(parse_provision_token("123", "garbage").is_err());
    }

    #[test]
    fn if_match_ignores_quotes_and_empty() {
        assert_eq!(if_match(Some("\"abc\"")), Some("abc"));
        assert_eq!(if_match(Some("")), None);
        assert_eq!(if_match(None), None);
    }
}
