//! Tags, VPC bindings and account settings: the parts of FC's surface that fcd records and
//! reports but does not act on.
//!
//! - **Tags** name their resource by ARN ([`fcd_core::tags::Tagged`]): FC 2.0 tags services,
//!   FC 3.0 tags functions (native `F` or `svc$fn`). A tagged resource must exist and be the
//!   caller's; its tags are deleted with it (in the store's delete transaction). fcd keeps and
//!   lists tags; no authorization condition reads them yet.
//! - **VPC bindings** are (service, VPC id) pairs. fcd has no VPCs, so a binding is recorded
//!   and listed, nothing more; it is deleted with its service.
//! - **Account settings** are what fcd actually offers the account ([`AccountSettings`]).
//!
//! The API the FC 3.0 function handlers build on (CreateFunction's `tags`, GetFunction showing
//! them): [`Control::tag_resources`], [`Control::resource_tags`], [`Control::untag_all`], each
//! taking the function's ARN (`fcd_core::fc3::function_arn(control.region(), account, name)`).

use fcd_core::FcError;
use fcd_core::limits::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use fcd_core::tags::{TAGS_PER_RESOURCE_MAX, Tagged, check_key, check_tags};
use fcd_store::StoreError;
use fcd_store::tags::{TagKind, TagOwner, TaggedResource};

use super::{Control, Page, internal};

/// What GetAccountSettings reports, as fcd knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    /// `availableAZs`: where the account's functions can run. fcd has no availability zones:
    /// everything runs on this server (or its cluster) in one region, so the list is that
    /// region's id alone.
    pub available_azs: Vec<String>,
    /// `defaultRole`: FC's console suggests a role named `AliyunFCDefaultRole` for services;
    /// fcd has no default role (a service without `role` runs without credentials), so this
    /// is always `None` and the field is left out of the answer.
    pub default_role: Option<String>,
}

/// Longest VPC id a binding accepts.
const VPC_ID_MAX: usize = 64;

/// A VPC id as fcd accepts it: 1–64 of `[A-Za-z0-9_-]` (Alibaba Cloud's ids are `vpc-…`); it
/// is a path segment of DeleteVpcBinding, so nothing that would need escaping.
fn check_vpc_id(vpc_id: &str) -> Result<(), FcError> {
    let ok = !vpc_id.is_empty()
        && vpc_id.len() <= VPC_ID_MAX
        && vpc_id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(FcError::invalid(format!(
            "vpcId '{vpc_id}' is not valid: 1 to {VPC_ID_MAX} letters, digits, '-' or '_'"
        )))
    }
}

impl Control {
    fn tagged(&self, account: &str, arn: &str) -> Result<Tagged, FcError> {
        Tagged::parse_arn(arn, &self.region, account)
    }

    /// The resource must exist: `ServiceNotFound` / `FunctionNotFound` (2.0 wording; the 3.0
    /// handlers rephrase) otherwise.
    async fn check_tagged_exists(&self, account: &str, t: &Tagged) -> Result<(), FcError> {
        match t.function() {
            None => self.get_service(account, &t.service()).await.map(|_| ()),
            Some(f) => self
                .get_function(account, &t.service(), f)
                .await
                .map(|_| ()),
        }
    }

    /// TagResource (2.0, one ARN) and TagResources (3.0): sets `tags` on every resource,
    /// keeping its other tags (a key it has takes the new value). Every ARN and tag is
    /// validated before anything is written; each resource is then tagged in a transaction of
    /// its own, all or none of its tags, refused with `InvalidArgument` if it would carry more
    /// than 20. No tags at all is no change (3.0's CreateFunction always sends `tags: []`);
    /// the tag operations refuse an empty request themselves.
    pub async fn tag_resources(
        &self,
        account: &str,
        arns: &[String],
        tags: &[(String, String)],
    ) -> Result<(), FcError> {
        if arns.is_empty() {
            return Err(FcError::invalid("resourceArn is required"));
        }
        check_tags(tags)?;
        let targets = arns
            .iter()
            .map(|a| self.tagged(account, a))
            .collect::<Result<Vec<_>, _>>()?;
        if tags.is_empty() {
            return Ok(());
        }
        for t in &targets {
            let owner = TagOwner {
                service: t.service().into_owned(),
                function: t.function().map(str::to_owned),
            };
            let arn = t.arn(&self.region, account);
            match self
                .store
                .tag_resource(account, &arn, &owner, tags, TAGS_PER_RESOURCE_MAX)
                .await
            {
                Ok(()) => {}
                Err(StoreError::ParentNotFound) => {
                    // Say which is missing, the service or the function.
                    self.check_tagged_exists(account, t).await?;
                    return Err(FcError::ServiceNotFound(owner.service));
                }
                Err(StoreError::LimitExceeded(_)) => {
                    return Err(FcError::invalid(format!(
                        "too many tags: '{arn}' would carry more than {TAGS_PER_RESOURCE_MAX}"
                    )));
                }
                Err(e) => return Err(internal("tag resource", e)),
            }
        }
        Ok(())
    }

    /// UntagResource (2.0) and UntagResources (3.0): removes `keys` from every resource (keys
    /// it does not have are ignored), or every tag with `None` (FC's `all`). The resources
    /// must exist.
    pub async fn untag_resources(
        &self,
        account: &str,
        arns: &[String],
        keys: Option<&[String]>,
    ) -> Result<(), FcError> {
        if arns.is_empty() {
            return Err(FcError::invalid("resourceArn is required"));
        }
        if let Some(keys) = keys {
            if keys.is_empty() {
                return Err(FcError::invalid(
                    "give the tag keys to remove, or all=true to remove every tag",
                ));
            }
            for k in keys {
                check_key(k)?;
            }
        }
        let targets = arns
            .iter()
            .map(|a| self.tagged(account, a))
            .collect::<Result<Vec<_>, _>>()?;
        for t in &targets {
            self.check_tagged_exists(account, t).await?;
        }
        for t in &targets {
            self.store
                .untag_resource(account, &t.arn(&self.region, account), keys)
                .await
                .map_err(|e| internal("untag resource", e))?;
        }
        Ok(())
    }

    /// Removes every tag of one resource (for a 3.0 UpdateFunction that replaces them, say).
    /// Deleting a service or function needs no call: its tags go with it.
    pub async fn untag_all(&self, account: &str, arn: &str) -> Result<(), FcError> {
        self.untag_resources(account, std::slice::from_ref(&arn.to_owned()), None)
            .await
    }

    /// GetResourceTags (2.0), and the tags 3.0's GetFunction shows: the resource's tags,
    /// ordered by key (empty when it has none). The resource must exist.
    pub async fn resource_tags(
        &self,
        account: &str,
        arn: &str,
    ) -> Result<Vec<(String, String)>, FcError> {
        let t = self.tagged(account, arn)?;
        self.check_tagged_exists(account, &t).await?;
        self.store
            .resource_tags(account, &t.arn(&self.region, account))
            .await
            .map_err(|e| internal("get resource tags", e))
    }

    /// ListTaggedResources (2.0, [`TagKind::Services`]) and ListTagResources (3.0,
    /// [`TagKind::Functions`]): the account's tagged resources by ARN, `limit` (default 20,
    /// at most 100) per page, `next_token` the ARN where the page starts. Hidden services
    /// (native 3.0 functions' homes) never appear as services.
    pub async fn list_tagged_resources(
        &self,
        account: &str,
        kind: TagKind,
        next_token: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<TaggedResource>, FcError> {
        let limit = limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(FcError::invalid(format!(
                "limit {limit} is out of range: it must be between 1 and {LIST_LIMIT_MAX}"
            )));
        }
        let from = next_token.filter(|t| !t.is_empty());
        let mut items = self
            .store
            .list_tagged_resources(account, kind, from, limit + 1)
            .await
            .map_err(|e| internal("list tagged resources", e))?;
        if kind == TagKind::Services {
            // A 2.0 tag request cannot name a hidden service; this keeps it so whatever wrote
            // the row. Their ARNs sort after every valid service's, so a page never shortens.
            items.retain(|r| {
                !matches!(
                    self.tagged(account, &r.arn),
                    Err(_) | Ok(Tagged::Function(_))
                )
            });
        }
        Ok(super::page(items, limit as usize, |r| r.arn.clone()))
    }

    // ---- VPC bindings ----

    /// CreateVpcBinding: records that the service is bound to the VPC (binding it again is no
    /// change). fcd has no VPCs: nothing else reads the binding.
    pub async fn create_vpc_binding(
        &self,
        account: &str,
        service: &str,
        vpc_id: &str,
    ) -> Result<(), FcError> {
        check_vpc_id(vpc_id)?;
        match self.store.put_vpc_binding(account, service, vpc_id).await {
            Ok(()) => Ok(()),
            Err(StoreError::ParentNotFound) => Err(FcError::ServiceNotFound(service.to_owned())),
            Err(e) => Err(internal("create vpc binding", e)),
        }
    }

    /// DeleteVpcBinding: `VpcBindingNotFound` when the service is not bound to the VPC.
    pub async fn delete_vpc_binding(
        &self,
        account: &str,
        service: &str,
        vpc_id: &str,
    ) -> Result<(), FcError> {
        match self
            .store
            .delete_vpc_binding(account, service, vpc_id)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => {
                self.get_service(account, service).await?;
                Err(FcError::VpcBindingNotFound {
                    service: service.to_owned(),
                    vpc_id: vpc_id.to_owned(),
                })
            }
            Err(e) => Err(internal("delete vpc binding", e)),
        }
    }

    /// ListVpcBindings: the VPC ids the service is bound to (FC does not page them).
    pub async fn list_vpc_bindings(
        &self,
        account: &str,
        service: &str,
    ) -> Result<Vec<String>, FcError> {
        self.get_service(account, service).await?;
        self.store
            .list_vpc_bindings(account, service)
            .await
            .map_err(|e| internal("list vpc bindings", e))
    }

    // ---- account ----

    /// GetAccountSettings, as fcd knows the account (see [`AccountSettings`]).
    pub fn account_settings(&self, _account: &str) -> AccountSettings {
        AccountSettings {
            available_azs: vec![self.region.clone()],
            default_role: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fcd_core::configs::OnDemandConfig;
    use fcd_core::model::{CodeRef, Function, FunctionUpdate, Service, ServiceUpdate};
    use fcd_store::{
        MetadataStore, SqliteStore, StoredFunction, StoredOnDemandConfig, StoredService,
    };

    use super::*;
    use crate::Paging;

    const ACC: &str = "acc";

    /// A service with one function, stored directly (as the 3.0 CreateFunction stores a
    /// native function `F`: service `~F` holding `F`), with an on-demand config under LATEST.
    async fn add(store: &dyn MetadataStore, service: &str, function: &str) {
        let svc = StoredService {
            service: Service::create(
                "id".into(),
                service.into(),
                ServiceUpdate::default(),
                "t".into(),
            )
            .unwrap(),
            etag: "e".into(),
        };
        store.insert_service(ACC, &svc).await.unwrap();
        let u = FunctionUpdate {
            runtime: Some("custom".into()),
            ..Default::default()
        };
        let code = CodeRef {
            checksum: "1".into(),
            size: 1,
        };
        let f = StoredFunction {
            function: Function::create("fid".into(), function.into(), u, code, "t".into()).unwrap(),
            code_digest: "d".into(),
            etag: "fe".into(),
        };
        store.insert_function(ACC, service, &f).await.unwrap();
        let od = StoredOnDemandConfig {
            config: OnDemandConfig {
                service_name: service.into(),
                qualifier: "LATEST".into(),
                function_name: function.into(),
                maximum_instance_count: 1,
            },
            etag: "od".into(),
        };
        store.put_on_demand_config(ACC, &od, None).await.unwrap();
    }

    #[tokio::test]
    async fn native_functions_are_tagged_as_functions_and_hidden_from_2_0_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let c = crate::testkit::control(dir.path(), store.clone(), "t");
        add(store.as_ref(), "svc", "fn").await;
        add(store.as_ref(), "~native", "native").await;

        let native = fcd_core::fc3::function_arn(c.region(), ACC, "native");
        let service = format!("acs:fc:{}:{ACC}:services/svc", c.region());
        let tags = vec![("env".to_owned(), "prod".to_owned())];
        c.tag_resources(ACC, &[native.clone(), service.clone()], &tags)
            .await
            .unwrap();
        assert_eq!(c.resource_tags(ACC, &native).await.unwrap(), tags);
        // No tags is no change (3.0's CreateFunction always sends `tags: []`).
        c.tag_resources(ACC, std::slice::from_ref(&native), &[])
            .await
            .unwrap();
        assert_eq!(c.resource_tags(ACC, &native).await.unwrap(), tags);
        let listed = |kind| {
            let c = &c;
            async move {
                c.list_tagged_resources(ACC, kind, None, None)
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .map(|r| r.arn)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            listed(TagKind::Functions).await,
            std::slice::from_ref(&native)
        );
        assert_eq!(listed(TagKind::Services).await, [service]);
        // A hidden service is no 2.0 resource, even by ARN.
        let hidden = format!("acs:fc:{}:{ACC}:services/~native", c.region());
        assert!(matches!(
            c.resource_tags(ACC, &hidden).await,
            Err(FcError::InvalidArgument(_))
        ));

        // ListOnDemandConfigs (2.0) does not show the native function's config, on any page.
        let page = c
            .list_on_demand_configs(
                ACC,
                &Paging {
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].config.service_name, "svc");
        assert_eq!(page.next_token, None);

        // Deleting the function (as 3.0 DeleteFunction does: the function, then its service)
        // deletes its tags.
        store
            .delete_function(ACC, "~native", "native")
            .await
            .unwrap();
        store.delete_service(ACC, "~native").await.unwrap();
        assert!(listed(TagKind::Functions).await.is_empty());
        assert!(matches!(
            c.resource_tags(ACC, &native).await,
            Err(FcError::ServiceNotFound(_))
        ));
    }

    #[test]
    fn vpc_ids() {
        assert!(check_vpc_id("vpc-bp1abc_2").is_ok());
        assert!(check_vpc_id(&"v".repeat(64)).is_ok());
        for bad in ["", "vpc/1", "vpc 1", "vpc%2F", &"v".repeat(65)] {
            assert!(check_vpc_id(bad).is_err(), "{bad}");
        }
    }
}
