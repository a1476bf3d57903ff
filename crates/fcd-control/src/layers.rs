//! Layers: publishing, reading, listing and deleting layer versions, their ACL, and what
//! functions do with them — which layers a function may name (checked when its `layers` are
//! written) and the tree its instances see at `/opt` (built when it is resolved).
//!
//! Deleting a layer version does what FC does: the version can no longer be read, listed or
//! newly attached, but functions and published versions that already name it keep working —
//! the store keeps the version as a tombstone, resolution still finds its package, and the code
//! collector keeps that package while anything names it. Writing a function's `layers` again
//! checks every entry afresh, so a deleted version cannot be re-attached.

use fcd_core::FcError;
use fcd_core::layers::{
    LAYERS_PER_FUNCTION_MAX, LayerRef, LayerVersion, check_layer_name, layer_version_arn,
    parse_layer_arn,
};
use fcd_core::limits::{DESCRIPTION_MAX, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use fcd_core::model::KNOWN_RUNTIMES;
use fcd_runtime::LayerTree;
use fcd_store::StoreError;

use crate::{Control, Page, Paging, code_error, internal, page};

/// CreateLayerVersion's input, as both API versions send it.
#[derive(Debug, Default, Clone)]
pub struct LayerInput {
    /// The base64 zip (`code.zipFile`).
    pub zip_file: Option<String>,
    /// Whether the code was given as an OSS object instead (fcd has no OSS).
    pub oss: bool,
    pub compatible_runtime: Vec<String>,
    pub description: String,
    pub license: String,
}

/// A page of ListLayerVersions.
#[derive(Debug)]
pub struct LayerVersionPage {
    pub layers: Vec<LayerVersion>,
    /// The first version of the next page.
    pub next_version: Option<u64>,
}

/// ListLayers' filters beyond paging.
#[derive(Debug, Default, Clone)]
pub struct LayerFilter {
    /// Only public layers.
    pub public: bool,
    /// Only FC's official layers: fcd has none.
    pub official: bool,
}

fn not_found(name: &str, version: u64) -> FcError {
    FcError::LayerNotFound(format!("layer '{name}' version {version}"))
}

fn store_failure(context: &str, e: StoreError) -> FcError {
    internal(context, e)
}

impl Control {
    /// A layer version's ARN (2.0 `arn`/`arnV2`, 3.0 `layerVersionArn`).
    pub fn layer_arn(&self, account: &str, v: &LayerVersion) -> String {
        layer_version_arn(&self.region, account, &v.layer_name, v.version)
    }

    /// A pre-signed, time-limited path (with query) from which the version's zip downloads
    /// (the layer's `code.location`, on the host the caller reached).
    pub fn layer_code_path(&self, v: &LayerVersion) -> String {
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + crate::CODE_URL_TTL_SECS;
        let sig = self.code_signature(&v.code_digest, expires);
        format!(
            "/code-packages/{}?expires={expires}&signature={sig}",
            v.code_digest
        )
    }

    /// CreateLayerVersion: stores the package, then the layer's next version.
    pub async fn publish_layer_version(
        &self,
        account: &str,
        name: &str,
        input: LayerInput,
    ) -> Result<LayerVersion, FcError> {
        check_layer_name(name)?;
        if input.description.chars().count() > DESCRIPTION_MAX {
            return Err(FcError::invalid(format!(
                "description is longer than {DESCRIPTION_MAX} characters"
            )));
        }
        for rt in &input.compatible_runtime {
            if !KNOWN_RUNTIMES.contains(&rt.as_str()) {
                return Err(FcError::invalid(format!(
                    "compatibleRuntime '{rt}' is not a runtime FC knows (one of {})",
                    KNOWN_RUNTIMES.join(", ")
                )));
            }
        }
        let zip = match input.zip_file.filter(|z| !z.is_empty()) {
            Some(z) => z,
            None if input.oss => {
                return Err(FcError::invalid(
                    "code from OSS is not supported by fcd: send the zip as code.zipFile",
                ));
            }
            None => return Err(FcError::invalid("code.zipFile is required")),
        };
        let code = self.code.put_base64(&zip).await.map_err(code_error)?;
        let v = LayerVersion {
            layer_name: name.to_owned(),
            version: 0,
            description: input.description,
            compatible_runtime: input.compatible_runtime,
            license: input.license,
            acl: 0,
            code_checksum: code.checksum,
            code_size: code.size,
            code_digest: code.digest,
            create_time: fcd_core::time::now(),
        };
        self.store
            .publish_layer_version(account, &v)
            .await
            .map_err(|e| store_failure("publish layer version", e))
    }

    /// GetLayerVersion.
    pub async fn get_layer_version(
        &self,
        account: &str,
        name: &str,
        version: u64,
    ) -> Result<LayerVersion, FcError> {
        self.store
            .get_layer_version(account, name, version, false)
            .await
            .map_err(|e| store_failure("get layer version", e))?
            .ok_or_else(|| not_found(name, version))
    }

    /// GetLayerVersionByArn (3.0): the caller's own layer, or another account's public one.
    pub async fn get_layer_version_by_arn(
        &self,
        account: &str,
        arn: &str,
    ) -> Result<LayerVersion, FcError> {
        let r = self.named_layer(account, arn)?;
        self.attachable(account, &r)
            .await?
            .ok_or_else(|| not_found(&r.name, r.version))
    }

    /// ListLayerVersions: from `start` (default 1), at most `limit`.
    pub async fn list_layer_versions(
        &self,
        account: &str,
        name: &str,
        start: Option<u64>,
        limit: Option<u32>,
    ) -> Result<LayerVersionPage, FcError> {
        let limit = limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(FcError::invalid(format!(
                "limit {limit} is out of range: it must be between 1 and {LIST_LIMIT_MAX}"
            )));
        }
        let mut layers = self
            .store
            .list_layer_versions(account, name, start.unwrap_or(1).max(1), limit + 1)
            .await
            .map_err(|e| store_failure("list layer versions", e))?;
        let next_version = if layers.len() > limit as usize {
            layers.pop().map(|v| v.version)
        } else {
            None
        };
        Ok(LayerVersionPage {
            layers,
            next_version,
        })
    }

    /// ListLayers: the newest version of each of the account's layers, by name.
    pub async fn list_layers(
        &self,
        account: &str,
        p: &Paging,
        filter: &LayerFilter,
    ) -> Result<Page<LayerVersion>, FcError> {
        let (q, limit) = p.query()?;
        if filter.official {
            return Ok(Page {
                items: Vec::new(),
                next_token: None,
            });
        }
        let items = self
            .store
            .list_layers(account, &q, filter.public)
            .await
            .map_err(|e| store_failure("list layers", e))?;
        Ok(page(items, limit, |v| v.layer_name.clone()))
    }

    /// DeleteLayerVersion (see the module docs for what happens to functions using it).
    pub async fn delete_layer_version(
        &self,
        account: &str,
        name: &str,
        version: u64,
    ) -> Result<(), FcError> {
        match self
            .store
            .delete_layer_version(account, name, version)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(not_found(name, version)),
            Err(e) => Err(store_failure("delete layer version", e)),
        }
    }

    /// PutLayerACL: public (another account's functions may use it) or private.
    pub async fn put_layer_acl(
        &self,
        account: &str,
        name: &str,
        public: bool,
    ) -> Result<(), FcError> {
        match self
            .store
            .set_layer_acl(account, name, u8::from(public))
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(FcError::LayerNotFound(format!("layer '{name}'"))),
            Err(e) => Err(store_failure("put layer acl", e)),
        }
    }

    /// Each ARN with its package's size, for views that show a function's layers as
    /// `{arn, size}` (3.0); a version that cannot be found (deleted and gone) has size 0.
    pub async fn layer_sizes(&self, account: &str, arns: &[String]) -> Vec<(String, u64)> {
        let mut out = Vec::with_capacity(arns.len());
        for arn in arns {
            let size = match parse_layer_arn(arn) {
                Ok((_, r)) => {
                    let owner = r.account.as_deref().unwrap_or(account);
                    self.store
                        .get_layer_version(owner, &r.name, r.version, true)
                        .await
                        .ok()
                        .flatten()
                        .map(|v| v.code_size)
                        .unwrap_or(0)
                }
                Err(_) => 0,
            };
            out.push((arn.clone(), size));
        }
        out
    }

    /// A layer ARN of a request, read as `account` names it; one of another region is not
    /// this server's.
    fn named_layer(&self, account: &str, arn: &str) -> Result<LayerRef, FcError> {
        let (region, mut r) = parse_layer_arn(arn)?;
        if let Some(region) = region.filter(|r| *r != self.region) {
            return Err(FcError::invalid(format!(
                "layer '{arn}' is in region '{region}'; this server is region '{}'",
                self.region
            )));
        }
        r.account.get_or_insert_with(|| account.to_owned());
        Ok(r)
    }

    /// The live version `r` names, if `account` may use it: its own, or a public one.
    async fn attachable(
        &self,
        account: &str,
        r: &LayerRef,
    ) -> Result<Option<LayerVersion>, FcError> {
        let owner = r.account.as_deref().unwrap_or(account);
        let v = self
            .store
            .get_layer_version(owner, &r.name, r.version, false)
            .await
            .map_err(|e| store_failure("get layer version", e))?;
        Ok(v.filter(|v| owner == account || v.acl != 0))
    }

    /// Checks a function's `layers` as written by CreateFunction or UpdateFunction: at most
    /// five, no repeats, each a live version the account may use. Returns their `arnV2`s.
    pub(crate) async fn check_function_layers(
        &self,
        account: &str,
        layers: &[String],
    ) -> Result<Vec<String>, FcError> {
        if layers.len() > LAYERS_PER_FUNCTION_MAX {
            return Err(FcError::invalid(format!(
                "a function may use at most {LAYERS_PER_FUNCTION_MAX} layers; {} were given",
                layers.len()
            )));
        }
        let mut arns: Vec<String> = Vec::with_capacity(layers.len());
        for entry in layers {
            let r = self.named_layer(account, entry)?;
            let owner = r.account.clone().unwrap_or_else(|| account.to_owned());
            if self.attachable(account, &r).await?.is_none() {
                return Err(not_found(&r.name, r.version));
            }
            let arn = layer_version_arn(&self.region, &owner, &r.name, r.version);
            if arns.contains(&arn) {
                return Err(FcError::invalid(format!(
                    "layer '{entry}' is named twice in layers"
                )));
            }
            arns.push(arn);
        }
        Ok(arns)
    }

    /// The tree a function's instances see at `/opt` (see [`LayerTree`]), from its `layers`.
    /// A deleted version still counts (functions that use it keep working); one that is not
    /// known at all (written before layers were checked) is refused, loudly, at every start.
    pub(crate) async fn layer_tree(
        &self,
        account: &str,
        layers: &[String],
    ) -> Result<Option<LayerTree>, FcError> {
        if layers.is_empty() {
            return Ok(None);
        }
        let mut digests = Vec::with_capacity(layers.len());
        for entry in layers {
            let (_, r) = parse_layer_arn(entry)?;
            let owner = r.account.as_deref().unwrap_or(account);
            let v = self
                .store
                .get_layer_version(owner, &r.name, r.version, true)
                .await
                .map_err(|e| store_failure("get layer version", e))?
                .ok_or_else(|| not_found(&r.name, r.version))?;
            digests.push(v.code_digest);
        }
        let dir = self
            .code
            .ensure_layers(&digests)
            .await
            .map_err(code_error)?
            .ok_or_else(|| internal("layers", "no tree for a function with layers"))?;
        Ok(Some(LayerTree { digests, dir }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use base64::Engine;
    use fcd_core::model::{CodeInput, FunctionUpdate, ServiceUpdate};
    use fcd_store::{MetadataStore, SqliteStore};

    use super::*;

    const ACC: &str = "acc";

    fn zip_b64(files: &[(&str, &str)]) -> String {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        base64::engine::general_purpose::STANDARD.encode(w.finish().unwrap().into_inner())
    }

    async fn fixture() -> (tempfile::TempDir, Control) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let control = crate::testkit::control(dir.path(), store, "t");
        control
            .create_service(
                ACC,
                ServiceUpdate {
                    service_name: Some("s".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (dir, control)
    }

    async fn publish(c: &Control, account: &str, name: &str, files: &[(&str, &str)]) -> String {
        let v = c
            .publish_layer_version(
                account,
                name,
                LayerInput {
                    zip_file: Some(zip_b64(files)),
                    compatible_runtime: vec!["python3.10".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        c.layer_arn(account, &v)
    }

    fn function(name: &str, layers: Option<Vec<String>>) -> FunctionUpdate {
        FunctionUpdate {
            function_name: Some(name.into()),
            runtime: Some("custom".into()),
            handler: Some("index.handler".into()),
            code: Some(CodeInput {
                zip_file: Some(zip_b64(&[("bootstrap", "#!/bin/sh")])),
                ..Default::default()
            }),
            layers,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn functions_name_only_layers_that_exist_and_see_them_merged() {
        let (_dir, c) = fixture().await;
        let lib = publish(
            &c,
            ACC,
            "lib",
            &[("python/mylib.py", "V = 1"), ("a.txt", "lib")],
        )
        .await;
        let bin = publish(
            &c,
            ACC,
            "bin",
            &[("bin/tool", "#!/bin/sh"), ("a.txt", "bin")],
        )
        .await;
        assert_eq!(lib, "acs:fc:cn-test:acc:layers/lib/versions/1");

        // An unknown version, another region, a malformed ARN, too many: nothing is stored.
        for (layers, code) in [
            (
                vec![
                    lib.clone(),
                    "acs:fc:cn-test:acc:layers/lib/versions/2".into(),
                ],
                "LayerNotFound",
            ),
            (
                vec!["acs:fc:elsewhere:acc:layers/lib/versions/1".into()],
                "InvalidArgument",
            ),
            (vec!["lib".into()], "InvalidArgument"),
            (vec![lib.clone(), lib.clone()], "InvalidArgument"),
            (vec![lib.clone(); 6], "InvalidArgument"),
        ] {
            let e = c
                .create_function(ACC, "s", function("f", Some(layers.clone())), None)
                .await
                .unwrap_err();
            assert_eq!(e.code(), code, "{layers:?}: {e}");
            assert_eq!(
                c.get_function(ACC, "s", "f").await.unwrap_err().code(),
                "FunctionNotFound"
            );
        }

        // The legacy form is read as the caller's layer; arnV2 is always the ARN.
        let f = c
            .create_function(
                ACC,
                "s",
                function("f", Some(vec!["x#lib#1".into(), bin.clone()])),
                None,
            )
            .await
            .unwrap();
        assert_eq!(f.function.layers, ["x#lib#1", bin.as_str()]);
        assert_eq!(f.function.layers_arn_v2, [lib.as_str(), bin.as_str()]);
        let spec = c.resolve(ACC, "s", "f", None).await.unwrap();
        let tree = spec.layers.clone().unwrap();
        assert_eq!(tree.digests.len(), 2);
        // The first layer wins a name both have.
        assert_eq!(
            std::fs::read_to_string(tree.dir.join("a.txt")).unwrap(),
            "lib"
        );
        assert!(tree.dir.join("python/mylib.py").is_file());
        assert!(tree.dir.join("bin/tool").is_file());

        // UpdateFunction checks what it is given, and changes nothing when it refuses.
        let refused = FunctionUpdate {
            layers: Some(vec!["acs:fc:cn-test:acc:layers/nope/versions/1".into()]),
            ..Default::default()
        };
        let e = c
            .update_function(ACC, "s", "f", refused, None, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "LayerNotFound");
        assert_eq!(
            c.get_function(ACC, "s", "f")
                .await
                .unwrap()
                .function
                .layers_arn_v2
                .len(),
            2
        );
        let only_lib = FunctionUpdate {
            layers: Some(vec![lib.clone()]),
            ..Default::default()
        };
        let f = c
            .update_function(ACC, "s", "f", only_lib, None, None)
            .await
            .unwrap();
        assert_eq!(f.function.layers_arn_v2, [lib.as_str()]);
        let spec = c.resolve(ACC, "s", "f", None).await.unwrap();
        assert!(
            spec.layers
                .as_ref()
                .unwrap()
                .dir
                .join("python/mylib.py")
                .is_file()
        );

        // A deleted version: not readable or attachable, but the function keeps running on it.
        c.delete_layer_version(ACC, "lib", 1).await.unwrap();
        assert_eq!(
            c.get_layer_version(ACC, "lib", 1).await.unwrap_err().code(),
            "LayerNotFound"
        );
        let e = c
            .create_function(ACC, "s", function("g", Some(vec![lib.clone()])), None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "LayerNotFound");
        let touch = FunctionUpdate {
            description: Some("changed".into()),
            ..Default::default()
        };
        c.update_function(ACC, "s", "f", touch, None, None)
            .await
            .unwrap();
        let spec = c.resolve(ACC, "s", "f", None).await.unwrap();
        assert!(
            spec.layers
                .as_ref()
                .unwrap()
                .dir
                .join("python/mylib.py")
                .is_file()
        );
        // And its package is not collected.
        let referenced = c.store.referenced_code().await.unwrap();
        assert!(referenced.contains(&spec.layers.as_ref().unwrap().digests[0]));
    }

    #[tokio::test]
    async fn other_accounts_layers_only_when_public() {
        let (_dir, c) = fixture().await;
        let theirs = publish(&c, "other", "shared", &[("python/x.py", "")]).await;
        let e = c
            .create_function(ACC, "s", function("f", Some(vec![theirs.clone()])), None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "LayerNotFound");
        assert_eq!(
            c.get_layer_version_by_arn(ACC, &theirs)
                .await
                .unwrap_err()
                .code(),
            "LayerNotFound"
        );
        c.put_layer_acl("other", "shared", true).await.unwrap();
        assert_eq!(
            c.get_layer_version_by_arn(ACC, &theirs).await.unwrap().acl,
            1
        );
        let f = c
            .create_function(ACC, "s", function("f", Some(vec![theirs.clone()])), None)
            .await
            .unwrap();
        assert_eq!(f.function.layers_arn_v2, [theirs.as_str()]);
        assert_eq!(
            c.layer_sizes(ACC, &[theirs.clone(), "junk".into()]).await[1].1,
            0
        );
        assert!(c.layer_sizes(ACC, &[theirs]).await[0].1 > 0);
        assert_eq!(
            c.put_layer_acl(ACC, "nope", true).await.unwrap_err().code(),
            "LayerNotFound"
        );
    }

    #[tokio::test]
    async fn listings_page_by_name_and_by_version() {
        let (_dir, c) = fixture().await;
        for name in ["a", "b", "c"] {
            for _ in 0..3 {
                publish(&c, ACC, name, &[("f", name)]).await;
            }
        }
        let p = Paging {
            limit: Some(2),
            ..Default::default()
        };
        let first = c
            .list_layers(ACC, &p, &LayerFilter::default())
            .await
            .unwrap();
        let names: Vec<_> = first
            .items
            .iter()
            .map(|v| (v.layer_name.as_str(), v.version))
            .collect();
        assert_eq!(names, [("a", 3), ("b", 3)]);
        assert_eq!(first.next_token.as_deref(), Some("c"));
        let official = LayerFilter {
            official: true,
            ..Default::default()
        };
        assert!(
            c.list_layers(ACC, &p, &official)
                .await
                .unwrap()
                .items
                .is_empty()
        );

        let page = c
            .list_layer_versions(ACC, "b", None, Some(2))
            .await
            .unwrap();
        let versions: Vec<_> = page.layers.iter().map(|v| v.version).collect();
        assert_eq!((versions, page.next_version), (vec![1, 2], Some(3)));
        let page = c
            .list_layer_versions(ACC, "b", Some(3), Some(2))
            .await
            .unwrap();
        assert_eq!((page.layers.len(), page.next_version), (1, None));
        assert!(
            c.list_layer_versions(ACC, "b", None, Some(0))
                .await
                .is_err()
        );
        // Bad input is refused before anything is stored.
        let e = c
            .publish_layer_version(ACC, "1bad", LayerInput::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidArgument");
        let e = c
            .publish_layer_version(ACC, "ok", LayerInput::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidArgument");
    }
}
