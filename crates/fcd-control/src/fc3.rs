//! FC 3.0's view of functions (`/2023-03-30`) over the one store of 2.0 resources.
//!
//! `fcd_core::fc3` names things: a native 3.0 function `F` is the hidden service `~F` holding
//! one function `F`; a 2.0 function is `svc$fn`. This module owns the rest of the view:
//!
//! - **translation** of a 3.0 function body into the 2.0 service fields of `~F` (role, log,
//!   VPC, NAS, OSS mounts, tracing, internet access) and the 2.0 function fields
//!   ([`split_input`]), and back into 3.0's `Function` JSON ([`render_function`]). Every 3.0
//!   field fcd does not map (`disableOndemand`, `idleTimeout`, fields of newer SDKs, …) is kept
//!   verbatim in [`Function::fc3`] and echoed;
//! - the **operations** of the view (`fc3_*` methods of [`Control`]): create (service then
//!   function, undone together), get at a qualifier, update split between service and
//!   function, delete (aliases, versions, provisioned instances and the hidden service go
//!   with the function), the merged listing of native and `svc$fn` functions, and invocation
//!   restriction (Disable/EnableFunctionInvocation).
//!
//! A 2.0 function seen as `svc$fn` is read-mostly: writes that would change its 2.0 service
//! (service-level fields, versions, aliases) are refused, since they would silently change
//! every other function of that service.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use fcd_core::FcError;
use fcd_core::configs::ProvisionConfigUpdate;
use fcd_core::fc3::{Fc3Function, hidden_service, rephrase};
use fcd_core::model::{Function, FunctionUpdate, JsonObject, Service, ServiceUpdate};
use fcd_store::{ListQuery, StoreError, StoredFunction, StoredService};

use super::{Control, LATEST, internal, new_id};
use fcd_core::limits::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};

/// The 3.0 fields stored on the hidden service (2.0 service-level settings).
pub const SERVICE_FIELDS: &[&str] = &[
    "role",
    "logConfig",
    "vpcConfig",
    "nasConfig",
    "ossMountConfig",
    "tracingConfig",
    "internetAccess",
];

/// 3.0 fields that map one-to-one onto 2.0 function fields of the same name.
const SAME_NAME_FUNCTION_FIELDS: &[&str] = &[
    "description",
    "runtime",
    "handler",
    "timeout",
    "memorySize",
    "instanceConcurrency",
    "environmentVariables",
    "cpu",
    "diskSize",
    "customDNS",
    "code",
    "layers",
];

/// Fields only the server sets: a client echoing a Get back into an Update does not get them
/// stored as attributes.
const OUTPUT_ONLY_FIELDS: &[&str] = &[
    "functionArn",
    "functionId",
    "codeChecksum",
    "codeSize",
    "createdTime",
    "lastModifiedTime",
    "state",
    "stateReason",
    "stateReasonCode",
    "lastUpdateStatus",
    "lastUpdateStatusReason",
    "lastUpdateStatusReasonCode",
    "invocationRestriction",
    "lockInfo",
];

/// Attributes GetFunction shows but ListFunctions leaves out (fc3-api.md §3.1).
const STATE_FIELDS: &[&str] = &[
    "state",
    "stateReason",
    "stateReasonCode",
    "lastUpdateStatus",
    "lastUpdateStatusReason",
    "lastUpdateStatusReasonCode",
];

/// The key of [`Function::fc3`] that holds the state Disable/EnableFunctionInvocation set.
pub const INVOCATION_RESTRICTION: &str = "invocationRestriction";

/// The key under which a rendered function shows its tags. Tags live in the tag store
/// (`/tags-v2`; [`Control::apply_creation_tags`]), never in [`Function::fc3`]: a `tags` field
/// of an UpdateFunction is not an attribute.
pub const TAGS: &str = "tags";

/// A 3.0 CreateFunctionInput / UpdateFunctionInput, split into what the 2.0 layer stores.
#[derive(Debug, Default)]
pub struct Fc3Input {
    /// The hidden service's part (role, logConfig, vpcConfig, …).
    pub service: ServiceUpdate,
    /// Which [`SERVICE_FIELDS`] the body set (a `svc$fn` update refuses any).
    pub service_fields: Vec<&'static str>,
    /// The function's part; its `fc3` holds the unmapped 3.0 fields, verbatim.
    pub function: FunctionUpdate,
    /// `tags` of CreateFunctionInput (Python always sends `[]`: none).
    pub tags: Vec<Value>,
    /// `code.checksum`: the CRC-64 the package must have.
    pub code_checksum: Option<String>,
}

fn bad(field: &str, what: &str) -> FcError {
    FcError::invalid(format!("{field} is invalid: {what}"))
}

/// A 3.0 array of strings as 2.0 stores it in a container config: a JSON-encoded string.
fn array_to_json_string(field: &str, v: Value) -> Result<Value, FcError> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::Array(items) => {
            if items.iter().any(|i| !i.is_string()) {
                return Err(bad(field, "expected an array of strings"));
            }
            Ok(Value::String(Value::Array(items).to_string()))
        }
        _ => Err(bad(field, "expected an array of strings")),
    }
}

/// The reverse of [`array_to_json_string`]; a 2.0 value that is not a JSON array (written by
/// a 2.0 client) is shown as a one-element array.
fn json_string_to_array(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(a @ Value::Array(_)) => Some(a),
            _ => Some(json!([s])),
        },
        Value::Array(_) => Some(v.clone()),
        _ => None,
    }
}

fn take_object(field: &str, v: Value) -> Result<Option<JsonObject>, FcError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) => Ok(Some(o)),
        _ => Err(bad(field, "expected an object")),
    }
}

/// Splits a 3.0 function body (fc3-api.md §6.2 table). `creating`: CreateFunctionInput (takes
/// `functionName` and `tags`); else UpdateFunctionInput (the name comes from the path).
pub fn split_input(body: JsonObject, creating: bool) -> Result<Fc3Input, FcError> {
    let mut service = JsonObject::new();
    let mut function = JsonObject::new();
    let mut extra = JsonObject::new();
    let mut input = Fc3Input::default();
    for (key, value) in body {
        let k = key.as_str();
        if let Some(f) = SERVICE_FIELDS.iter().find(|f| **f == k) {
            if !value.is_null() {
                input.service_fields.push(f);
                service.insert(key, value);
            }
        } else if SAME_NAME_FUNCTION_FIELDS.contains(&k) {
            if k == "description" {
                // The hidden service carries the description too (its only 2.0 reader is
                // fcd's own tooling); the function's is the one 3.0 shows.
                service.insert(key.clone(), value.clone());
            }
            if k == "code"
                && let Some(sum) = value.get("checksum").and_then(Value::as_str)
            {
                input.code_checksum = Some(sum.to_owned()).filter(|c| !c.is_empty());
            }
            function.insert(key, value);
        } else if k == "functionName" {
            if creating {
                function.insert(key, value);
            }
        } else if k == "tags" {
            if creating {
                match value {
                    Value::Null => {}
                    Value::Array(tags) => input.tags = tags,
                    _ => return Err(bad("tags", "expected an array of {Key, Value}")),
                }
            }
        } else if k == "customRuntimeConfig" {
            let Some(mut o) = take_object(k, value)? else {
                continue;
            };
            if let Some(port) = o.remove("port").filter(|p| !p.is_null()) {
                function.insert("caPort".into(), port);
            }
            if let Some(hc) = o.remove("healthCheckConfig").filter(|h| !h.is_null()) {
                function.insert("customHealthCheckConfig".into(), hc);
            }
            // `{port}` alone changes the port, not the command.
            if !o.is_empty() {
                function.insert(k.into(), Value::Object(o));
            }
        } else if k == "customContainerConfig" {
            let Some(mut o) = take_object(k, value)? else {
                continue;
            };
            let mut c = JsonObject::new();
            if let Some(port) = o.remove("port").filter(|p| !p.is_null()) {
                function.insert("caPort".into(), port);
            }
            if let Some(hc) = o.remove("healthCheckConfig").filter(|h| !h.is_null()) {
                function.insert("customHealthCheckConfig".into(), hc);
            }
            if let Some(e) = o.remove("entrypoint") {
                c.insert(
                    "command".into(),
                    array_to_json_string("customContainerConfig.entrypoint", e)?,
                );
            }
            if let Some(cmd) = o.remove("command") {
                c.insert(
                    "args".into(),
                    array_to_json_string("customContainerConfig.command", cmd)?,
                );
            }
            if let Some(id) = o.remove("acrInstanceId") {
                c.insert("instanceID".into(), id);
            }
            // image, accelerationType, registryConfig, … are the same in both versions.
            c.extend(o);
            c.retain(|_, v| !v.is_null());
            if !c.is_empty() {
                function.insert(k.into(), Value::Object(c));
            }
        } else if k == "instanceLifecycleConfig" {
            let Some(mut o) = take_object(k, value)? else {
                continue;
            };
            // A hook that runs a command instead of a handler is 3.0-only; fcd's runtimes
            // call handlers, so such a hook would silently never run.
            for hook in ["initializer", "preStop"] {
                if o.get(hook)
                    .and_then(|h| h.get("command"))
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty())
                {
                    return Err(FcError::NotSupported(format!(
                        "instanceLifecycleConfig.{hook}.command (a lifecycle hook running a command; give a handler)"
                    )));
                }
            }
            if let Some(init) = o.remove("initializer") {
                let init = take_object("instanceLifecycleConfig.initializer", init)?;
                let init = init.unwrap_or_default();
                function.insert(
                    "initializer".into(),
                    init.get("handler").cloned().unwrap_or_else(|| json!("")),
                );
                if let Some(t) = init.get("timeout").filter(|t| !t.is_null()) {
                    function.insert("initializationTimeout".into(), t.clone());
                }
            }
            // preStop is the same in both versions; 3.0 has no preFreeze.
            o.remove("preFreeze");
            if !o.is_empty() {
                function.insert(k.into(), Value::Object(o));
            }
        } else if k == "gpuConfig" {
            let Some(o) = take_object(k, value)? else {
                continue;
            };
            if let Some(t) = o.get("gpuType").filter(|t| !t.is_null()) {
                function.insert("instanceType".into(), t.clone());
            }
            if let Some(m) = o.get("gpuMemorySize").filter(|m| !m.is_null()) {
                function.insert("gpuMemorySize".into(), m.clone());
            }
        } else if OUTPUT_ONLY_FIELDS.contains(&k) {
            // Set by the server; ignored as real FC ignores read-only input.
        } else {
            // disableOndemand, idleTimeout, sessionAffinity, resourceGroupId, … and fields of
            // SDKs newer than fcd: kept verbatim, echoed by Get.
            extra.insert(key, value);
        }
    }
    input.service = serde_json::from_value(Value::Object(service))
        .map_err(|e| FcError::invalid(format!("the request body is not valid: {e}")))?;
    input.function = serde_json::from_value(Value::Object(function))
        .map_err(|e| FcError::invalid(format!("the request body is not valid: {e}")))?;
    if !extra.is_empty() {
        input.function.fc3 = Some(extra);
    }
    Ok(input)
}

use crate::http_event::is_builtin_runtime;

/// FC 3.0 lets built-in runtimes of functions it creates serve one request per instance.
fn check_concurrency(runtime: &str, concurrency: u32) -> Result<(), FcError> {
    if concurrency > 1 && is_builtin_runtime(runtime) {
        return Err(FcError::invalid(format!(
            "instanceConcurrency {concurrency} is invalid for runtime '{runtime}': functions of built-in runtimes serve one request per instance; use a custom runtime or container for more"
        )));
    }
    Ok(())
}

/// Tags as CreateFunctionInput carries them: `{"Key": non-empty, "Value": string}`.
fn check_tags(tags: &[Value]) -> Result<(), FcError> {
    fcd_core::tags::check_tags(&tag_pairs(tags)?)
}

/// `[{Key, Value}]` as `(key, value)` pairs; anything else is refused.
fn tag_pairs(tags: &[Value]) -> Result<Vec<(String, String)>, FcError> {
    tags.iter()
        .map(|t| {
            let key = t
                .get("Key")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty());
            let value = match t.get("Value") {
                None | Some(Value::Null) => Some(""),
                Some(v) => v.as_str(),
            };
            match (key, value) {
                (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
                _ => Err(FcError::invalid(format!(
                    "tag {t} is invalid: expected {{\"Key\": \"...\", \"Value\": \"...\"}}"
                ))),
            }
        })
        .collect()
}

/// `layers` as 3.0 returns them. The sizes come from the caller (the layer store); a layer it
/// does not know is size 0.
pub fn render_layers(layers: &[String], sizes: &BTreeMap<String, u64>) -> Value {
    Value::Array(
        layers
            .iter()
            .map(|arn| json!({ "arn": arn, "size": sizes.get(arn).copied().unwrap_or(0) }))
            .collect(),
    )
}

/// A stored function as 3.0's `Function` JSON (fc3-api.md §4.1): the service's settings moved
/// onto the function, 2.0 field names translated, then the stored 3.0-only attributes.
/// `list`: ListFunctions' subset (no state fields).
pub fn render_function(
    name: &Fc3Function,
    svc: &Service,
    f: &Function,
    region: &str,
    account: &str,
    layer_sizes: &BTreeMap<String, u64>,
    list: bool,
) -> JsonObject {
    let mut o = JsonObject::new();
    o.insert("functionName".into(), name.name().into());
    o.insert("functionId".into(), f.function_id.clone().into());
    o.insert("functionArn".into(), name.arn(region, account).into());
    o.insert("description".into(), f.description.clone().into());
    o.insert("runtime".into(), f.runtime.clone().into());
    o.insert("handler".into(), f.handler.clone().into());
    o.insert("timeout".into(), f.timeout.into());
    o.insert("memorySize".into(), f.memory_size.into());
    o.insert("instanceConcurrency".into(), f.instance_concurrency.into());
    o.insert(
        "environmentVariables".into(),
        json!(f.environment_variables),
    );
    if let Some(cpu) = f.cpu {
        o.insert("cpu".into(), cpu.into());
    }
    if let Some(d) = f.disk_size {
        o.insert("diskSize".into(), d.into());
    }
    if let Some(dns) = &f.custom_dns {
        o.insert("customDNS".into(), Value::Object(dns.clone()));
    }
    o.insert("codeChecksum".into(), f.code_checksum.clone().into());
    o.insert("codeSize".into(), f.code_size.into());
    o.insert("createdTime".into(), f.created_time.clone().into());
    // Changing a service-level field is a change of the 3.0 function too.
    let modified = f
        .last_modified_time
        .clone()
        .max(svc.last_modified_time.clone());
    o.insert("lastModifiedTime".into(), modified.into());
    o.insert("layers".into(), render_layers(&f.layers, layer_sizes));
    // The service's settings are the function's in 3.0.
    o.insert("role".into(), svc.role.clone().into());
    o.insert("internetAccess".into(), svc.internet_access.into());
    for (key, v) in [
        ("logConfig", &svc.log_config),
        ("vpcConfig", &svc.vpc_config),
        ("nasConfig", &svc.nas_config),
        ("ossMountConfig", &svc.oss_mount_config),
        ("tracingConfig", &svc.tracing_config),
    ] {
        if let Some(v) = v {
            o.insert(key.into(), Value::Object(v.clone()));
        }
    }
    let health = f.custom_health_check_config.clone().map(Value::Object);
    if f.runtime == "custom-container" || f.custom_container_config.is_some() {
        let mut c = JsonObject::new();
        for (k, v) in f.custom_container_config.clone().unwrap_or_default() {
            match k.as_str() {
                "command" => {
                    if let Some(a) = json_string_to_array(&v) {
                        c.insert("entrypoint".into(), a);
                    }
                }
                "args" => {
                    if let Some(a) = json_string_to_array(&v) {
                        c.insert("command".into(), a);
                    }
                }
                "instanceID" => {
                    c.insert("acrInstanceId".into(), v);
                }
                // A 2.0-only setting 3.0 dropped.
                "webServerMode" => {}
                _ => {
                    c.insert(k, v);
                }
            }
        }
        c.insert("port".into(), f.ca_port.into());
        if let Some(h) = &health {
            c.insert("healthCheckConfig".into(), h.clone());
        }
        o.insert("customContainerConfig".into(), Value::Object(c));
    } else if f.runtime.starts_with("custom") || f.custom_runtime_config.is_some() {
        let crc = f.custom_runtime_config.clone().unwrap_or_default();
        let mut c = JsonObject::new();
        c.insert("command".into(), json!(crc.command));
        c.insert("args".into(), json!(crc.args));
        c.insert("port".into(), f.ca_port.into());
        if let Some(h) = &health {
            c.insert("healthCheckConfig".into(), h.clone());
        }
        o.insert("customRuntimeConfig".into(), Value::Object(c));
    }
    let mut lifecycle = JsonObject::new();
    if !f.initializer.is_empty() {
        lifecycle.insert(
            "initializer".into(),
            json!({ "handler": f.initializer, "timeout": f.initialization_timeout }),
        );
    }
    if let Some(ps) = f
        .instance_lifecycle_config
        .as_ref()
        .and_then(|c| c.pre_stop.as_ref())
        .filter(|h| !h.handler.is_empty())
    {
        lifecycle.insert(
            "preStop".into(),
            json!({ "handler": ps.handler, "timeout": ps.timeout }),
        );
    }
    if !lifecycle.is_empty() {
        o.insert("instanceLifecycleConfig".into(), Value::Object(lifecycle));
    }
    if f.instance_type.starts_with("fc.gpu") {
        let mut g = JsonObject::new();
        g.insert("gpuType".into(), f.instance_type.clone().into());
        if let Some(m) = f.gpu_memory_size {
            g.insert("gpuMemorySize".into(), m.into());
        }
        o.insert("gpuConfig".into(), Value::Object(g));
    }
    if !list {
        o.insert("state".into(), "Active".into());
        o.insert("lastUpdateStatus".into(), "Successful".into());
    }
    // 3.0-only attributes and unknown fields, as the client sent them. What fcd computes
    // wins over a stored copy of the same name.
    for (k, v) in &f.fc3 {
        if list && STATE_FIELDS.contains(&k.as_str()) {
            continue;
        }
        o.entry(k.clone()).or_insert_with(|| v.clone());
    }
    o
}

/// The filters of ListFunctions (fc3-api.md §3.1).
#[derive(Debug, Default, Clone)]
pub struct Fc3ListFilter {
    pub prefix: Option<String>,
    /// Part of the 3.0 name (the SDK documents it only as "the function name").
    pub function_name: Option<String>,
    /// Part of the description.
    pub description: Option<String>,
    pub runtime: Option<String>,
    pub gpu_type: Option<String>,
    pub resource_group_id: Option<String>,
    /// `{Key, Value}` pairs every listed function must carry.
    pub tags: Vec<(String, String)>,
    /// `v3`: native functions only; `v2`: 2.0 functions only; absent: both.
    pub fc_version: Option<String>,
    pub next_token: Option<String>,
    pub limit: Option<u32>,
}

/// The tags a function carries as [`TAGS`] keeps them: `(Key, Value)` pairs.
pub fn function_tags(f: &Function) -> Vec<(String, String)> {
    f.fc3
        .get(TAGS)
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| {
                    let k = t.get("Key").or_else(|| t.get("key"))?.as_str()?;
                    let v = t
                        .get("Value")
                        .or_else(|| t.get("value"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    Some((k.to_owned(), v.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Fc3ListFilter {
    fn check(&self) -> Result<usize, FcError> {
        match self.fc_version.as_deref() {
            None | Some("") | Some("v2") | Some("v3") => {}
            Some(v) => {
                return Err(FcError::invalid(format!(
                    "fcVersion '{v}' is invalid: use v2 or v3"
                )));
            }
        }
        let limit = self.limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if limit == 0 || limit > 100 {
            return Err(FcError::invalid(format!(
                "limit {limit} is out of range: it must be between 1 and 100"
            )));
        }
        Ok(limit as usize)
    }

    fn wants_name(&self, name: &str) -> bool {
        let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
        nonempty(&self.prefix).is_none_or(|p| name.starts_with(&p))
            && nonempty(&self.function_name).is_none_or(|n| name.contains(&n))
            && nonempty(&self.next_token).is_none_or(|t| name >= t.as_str())
    }

    fn wants(&self, f: &Function) -> bool {
        let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
        nonempty(&self.description).is_none_or(|d| f.description.contains(&d))
            && nonempty(&self.runtime).is_none_or(|r| f.runtime == r)
            && nonempty(&self.gpu_type).is_none_or(|g| f.instance_type == g)
            && nonempty(&self.resource_group_id)
                .is_none_or(|g| f.fc3.get("resourceGroupId").and_then(Value::as_str) == Some(&g))
    }
}

/// A function as the 3.0 view holds it: its 3.0 name, its (hidden or 2.0) service and itself.
#[derive(Debug, Clone)]
pub struct Fc3View {
    pub name: Fc3Function,
    pub service: Service,
    pub function: Function,
}

impl Fc3View {
    /// 3.0's `Function` JSON; see [`render_function`].
    pub fn render(
        &self,
        region: &str,
        account: &str,
        layer_sizes: &BTreeMap<String, u64>,
        list: bool,
    ) -> JsonObject {
        render_function(
            &self.name,
            &self.service,
            &self.function,
            region,
            account,
            layer_sizes,
            list,
        )
    }
}

/// A page of ListFunctions.
#[derive(Debug)]
pub struct Fc3Page {
    pub functions: Vec<Fc3View>,
    pub next_token: Option<String>,
}

/// Services read per store call while building the merged listing.
const SCAN_BATCH: u32 = 500;

impl Control {
    /// `acs:fc:{region}:{account}:functions/{name}` of a 3.0 function on this server.
    pub fn fc3_function_arn(&self, account: &str, f: &Fc3Function) -> String {
        f.arn(&self.region, account)
    }

    /// The (service, function) pair a 3.0 function is stored as, once it is known to exist:
    /// 404 `FunctionNotFound` (3.0 wording) otherwise.
    pub async fn fc3_resolve(
        &self,
        account: &str,
        f: &Fc3Function,
    ) -> Result<(String, String), FcError> {
        let service = f.service();
        self.get_function(account, &service, f.function())
            .await
            .map_err(|e| rephrase(e, f))?;
        Ok((service.into_owned(), f.function().to_owned()))
    }

    /// The sizes of the layers `layers` names, for `layers: [{arn, size}]` (0 for one the
    /// layer store does not know).
    pub async fn fc3_layer_sizes(&self, account: &str, layers: &[String]) -> BTreeMap<String, u64> {
        self.layer_sizes(account, layers)
            .await
            .into_iter()
            .collect()
    }

    /// CreateFunction: the hidden service `~F` with the service-level fields, then function
    /// `F` in it. If the function cannot be created, the service made for it goes too; a
    /// hidden service left without its function (a crash between the two writes) is reused.
    pub async fn fc3_create_function(
        &self,
        account: &str,
        input: Fc3Input,
    ) -> Result<Fc3View, FcError> {
        let Fc3Input {
            service: su,
            function: fu,
            tags,
            code_checksum,
            ..
        } = input;
        let name = fu
            .function_name
            .clone()
            .ok_or_else(|| FcError::invalid("functionName is required"))?;
        fcd_core::fc3::check_function_name(&name)?;
        let f = Fc3Function::Native(name.clone());
        let svc_name = hidden_service(&name);
        if fu.handler.is_none() {
            // Required by 3.0 even for custom runtimes; fc3-api.md §3.1.
            return Err(FcError::invalid("handler is required"));
        }
        let runtime = fu.runtime.clone().unwrap_or_default();
        check_concurrency(&runtime, fu.instance_concurrency.unwrap_or(1))?;
        check_tags(&tags)?;
        // Validate both halves before writing either (the code package is checked when it is
        // stored; a failure then takes the new service away again).
        let now = fcd_core::time::now();
        let service = Service::create(new_id(), svc_name.clone(), su.clone(), now.clone())?;
        let mut dry_run = fu.clone();
        dry_run.code = None;
        Function::create(
            new_id(),
            name.clone(),
            dry_run,
            fcd_core::model::CodeRef {
                checksum: String::new(),
                size: 0,
            },
            now.clone(),
        )?;
        if fu.code.is_none() && fu.custom_container_config.is_none() {
            return Err(FcError::invalid(
                "code is required (or customContainerConfig for a container function)",
            ));
        }
        let (stored_service, created) = match self.store.get_service(account, &svc_name).await {
            Ok(Some(existing)) => {
                if self
                    .store
                    .get_function(account, &svc_name, &name)
                    .await
                    .map_err(|e| internal("get function", e))?
                    .is_some()
                {
                    return Err(FcError::Fc3FunctionAlreadyExists(name));
                }
                // Left behind by an interrupted create: take it over with this request's
                // settings.
                let mut svc = existing.service.clone();
                svc.apply(su, now)?;
                let stored = StoredService {
                    service: svc,
                    etag: new_id(),
                };
                self.store
                    .replace_service(account, &stored, &existing.etag)
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict | StoreError::NotFound => FcError::ConcurrentUpdate(
                            format!("function '{name}' is being created by another request"),
                        ),
                        e => internal("replace service", e),
                    })?;
                self.forget_service(account, &svc_name);
                (stored, false)
            }
            Ok(None) => {
                let stored = StoredService {
                    service,
                    etag: new_id(),
                };
                match self.store.insert_service(account, &stored).await {
                    Ok(()) => {}
                    Err(StoreError::AlreadyExists) => {
                        return Err(FcError::Fc3FunctionAlreadyExists(name));
                    }
                    Err(e) => return Err(internal("insert service", e)),
                }
                (stored, true)
            }
            Err(e) => return Err(internal("get service", e)),
        };
        let function = match self
            .create_function(account, &svc_name, fu, code_checksum.as_deref())
            .await
        {
            Ok(sf) => sf,
            Err(e) => {
                if created {
                    // Only an empty service can go, so a concurrent create that did get its
                    // function in keeps it.
                    if let Err(de) = self.store.delete_service(account, &svc_name).await {
                        tracing::warn!(error = %de, service = %svc_name, "removing the hidden service of a failed CreateFunction failed; the next CreateFunction reuses it");
                    }
                }
                return Err(rephrase(e, &f));
            }
        };
        self.forget_service(account, &svc_name);
        self.publish_invalidation(account, Some(&svc_name)).await;
        let view = Fc3View {
            name: f.clone(),
            service: stored_service.service,
            function: function.function,
        };
        if !tags.is_empty() {
            self.apply_creation_tags(account, &f, tags).await?;
        }
        self.with_tags(account, view).await
    }

    /// Tags a newly created function with the `tags` of its CreateFunction, in the tag store
    /// `/tags-v2` reads (resource `functionArn`).
    pub async fn apply_creation_tags(
        &self,
        account: &str,
        f: &Fc3Function,
        tags: Vec<Value>,
    ) -> Result<(), FcError> {
        let pairs = tag_pairs(&tags)?;
        self.tag_resources(account, &[f.arn(&self.region, account)], &pairs)
            .await
            .map_err(|e| rephrase(e, f))
    }

    /// The tags of a function, from the tag store (shown by GetFunction, filtered on by
    /// ListFunctions).
    pub async fn fc3_function_tags(
        &self,
        account: &str,
        f: &Fc3Function,
    ) -> Result<Vec<(String, String)>, FcError> {
        self.resource_tags(account, &f.arn(&self.region, account))
            .await
            .map_err(|e| rephrase(e, f))
    }

    /// The 3.0 view of a function as just read or written, with its tags.
    async fn view(
        &self,
        account: &str,
        f: &Fc3Function,
        service: Service,
        function: Function,
    ) -> Result<Fc3View, FcError> {
        let view = Fc3View {
            name: f.clone(),
            service,
            function,
        };
        self.with_tags(account, view).await
    }

    /// Puts the function's tags where [`render_function`] shows them (never stored there).
    async fn with_tags(&self, account: &str, mut view: Fc3View) -> Result<Fc3View, FcError> {
        let tags = self.fc3_function_tags(account, &view.name).await?;
        view.function.fc3.insert(
            TAGS.into(),
            Value::Array(
                tags.into_iter()
                    .map(|(k, v)| json!({ "Key": k, "Value": v }))
                    .collect(),
            ),
        );
        Ok(view)
    }

    /// GetFunction: the function as `qualifier` (a version or alias; absent: LATEST) has it.
    pub async fn fc3_get_function(
        &self,
        account: &str,
        f: &Fc3Function,
        qualifier: Option<&str>,
    ) -> Result<Fc3View, FcError> {
        let qualifier = qualifier.filter(|q| !q.is_empty());
        let service = f.service();
        let (function, _, _) = self
            .function_at(account, &service, f.function(), qualifier)
            .await
            .map_err(|e| rephrase(e, f))?;
        let (service, _) = self
            .service_at(account, &service, qualifier)
            .await
            .map_err(|e| rephrase(e, f))?;
        self.view(account, f, service, function).await
    }

    /// UpdateFunction: service-level fields go to the hidden service, the rest to the
    /// function; both halves are validated before either is written. A `svc$fn` may not change
    /// its 2.0 service.
    pub async fn fc3_update_function(
        &self,
        account: &str,
        f: &Fc3Function,
        input: Fc3Input,
    ) -> Result<Fc3View, FcError> {
        let Fc3Input {
            service: mut su,
            service_fields,
            function: mut fu,
            code_checksum,
            ..
        } = input;
        if !f.is_native() {
            // A 2.0 service's description is its own, not its function's.
            su.description = None;
        }
        if !f.is_native() && !service_fields.is_empty() {
            return Err(FcError::invalid(format!(
                "function '{}' is an FC 2.0 function: {} belong(s) to its service '{}', which UpdateFunction through FC 3.0 does not change; use UpdateService of the 2.0 API",
                f.name(),
                service_fields.join(", "),
                f.service()
            )));
        }
        let service_name = f.service();
        let current = self
            .get_function(account, &service_name, f.function())
            .await
            .map_err(|e| rephrase(e, f))?;
        if f.is_native() {
            let runtime = fu
                .runtime
                .clone()
                .unwrap_or_else(|| current.function.runtime.clone());
            let concurrency = fu
                .instance_concurrency
                .unwrap_or(current.function.instance_concurrency);
            if fu.runtime.is_some() || fu.instance_concurrency.is_some() {
                check_concurrency(&runtime, concurrency)?;
            }
        }
        // 3.0 has no preFreeze: a 2.0 function's hook survives a 3.0 change of preStop.
        if let Some(lc) = fu.instance_lifecycle_config.as_mut()
            && lc.pre_freeze.is_none()
        {
            lc.pre_freeze = current
                .function
                .instance_lifecycle_config
                .as_ref()
                .and_then(|c| c.pre_freeze.clone());
        }
        let svc_current = self
            .get_service(account, &service_name)
            .await
            .map_err(|e| rephrase(e, f))?;
        // Dry runs: a refused field leaves nothing half-written.
        svc_current
            .service
            .clone()
            .apply(su.clone(), String::new())?;
        let mut scratch = current.function.clone();
        let mut fu_check = fu.clone();
        fu_check.code = None;
        scratch.apply(fu_check, None, String::new())?;
        let service = if service_fields.is_empty() && su.description.is_none() {
            svc_current.service
        } else {
            self.update_service(account, &service_name, su, None)
                .await
                .map_err(|e| rephrase(e, f))?
                .service
        };
        let function = self
            .update_function(
                account,
                &service_name,
                f.function(),
                fu,
                None,
                code_checksum.as_deref(),
            )
            .await
            .map_err(|e| rephrase(e, f))?
            .function;
        self.view(account, f, service, function).await
    }

    /// DeleteFunction. A native function with triggers is refused (`FunctionNotEmpty`);
    /// otherwise its provisioned instances, aliases, versions, the function and its hidden
    /// service go. A `svc$fn` deletes only the 2.0 function. The caller removes the async
    /// invoke configs (the async engine's).
    pub async fn fc3_delete_function(&self, account: &str, f: &Fc3Function) -> Result<(), FcError> {
        let service = f.service().into_owned();
        let name = f.function();
        if !f.is_native() {
            return self
                .delete_function(account, &service, name, None)
                .await
                .map_err(|e| rephrase(e, f));
        }
        self.get_function(account, &service, name)
            .await
            .map_err(|e| rephrase(e, f))?;
        let triggers = self
            .store
            .list_triggers(
                account,
                &service,
                name,
                &ListQuery {
                    prefix: None,
                    from: None,
                    limit: 1,
                },
            )
            .await
            .map_err(|e| internal("list triggers", e))?;
        if !triggers.is_empty() {
            return Err(FcError::FunctionNotEmpty(f.name()));
        }
        let aliases = self
            .store
            .list_aliases(
                account,
                &service,
                &ListQuery {
                    prefix: None,
                    from: None,
                    limit: u32::MAX / 2,
                },
            )
            .await
            .map_err(|e| internal("list aliases", e))?;
        // Provisioned instances hold versions and aliases in place: released first.
        for a in &aliases {
            let q = a.alias.alias_name.as_str();
            let held = self
                .store
                .get_provision_config(account, &service, q, name)
                .await
                .map_err(|e| internal("get provision config", e))?;
            if held.is_some() {
                self.put_provision_config(
                    account,
                    &service,
                    name,
                    Some(q),
                    ProvisionConfigUpdate {
                        target: Some(0),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| rephrase(e, f))?;
            }
        }
        for a in &aliases {
            self.delete_alias(account, &service, &a.alias.alias_name, None)
                .await
                .map_err(|e| rephrase(e, f))?;
        }
        loop {
            let versions = self
                .store
                .list_versions(account, &service, None, LIST_LIMIT_MAX, true)
                .await
                .map_err(|e| internal("list versions", e))?;
            if versions.is_empty() {
                break;
            }
            for v in versions {
                self.delete_version(account, &service, &v.version_id)
                    .await
                    .map_err(|e| rephrase(e, f))?;
            }
        }
        self.delete_function(account, &service, name, None)
            .await
            .map_err(|e| rephrase(e, f))?;
        match self.store.delete_service(account, &service).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(internal("delete hidden service", e)),
        }
        self.forget_service(account, &service);
        self.publish_invalidation(account, Some(&service)).await;
        Ok(())
    }

    /// Every service of the account whose name starts with `prefix`, in name order.
    async fn all_services(
        &self,
        account: &str,
        prefix: &str,
    ) -> Result<Vec<StoredService>, FcError> {
        let mut out = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let q = ListQuery {
                prefix: Some(prefix.to_owned()).filter(|p| !p.is_empty()),
                from: from.clone(),
                limit: SCAN_BATCH + 1,
            };
            let mut batch = self
                .store
                .list_services(account, &q)
                .await
                .map_err(|e| internal("list services", e))?;
            let more = batch.len() > SCAN_BATCH as usize;
            if more {
                from = batch.pop().map(|s| s.service.service_name);
            }
            out.extend(batch);
            if !more {
                return Ok(out);
            }
        }
    }

    /// Every function of `service`, in name order.
    async fn all_functions(
        &self,
        account: &str,
        service: &str,
    ) -> Result<Vec<StoredFunction>, FcError> {
        let mut out = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let q = ListQuery {
                prefix: None,
                from: from.clone(),
                limit: SCAN_BATCH + 1,
            };
            let mut batch = self
                .store
                .list_functions(account, service, &q)
                .await
                .map_err(|e| internal("list functions", e))?;
            let more = batch.len() > SCAN_BATCH as usize;
            if more {
                from = batch.pop().map(|f| f.function.function_name);
            }
            out.extend(batch);
            if !more {
                return Ok(out);
            }
        }
    }

    /// ListFunctions: native functions and (unless `fcVersion=v3`) every 2.0 function as
    /// `svc$fn`, filtered, in 3.0-name order. `nextToken` is the name the next page starts at.
    pub async fn fc3_list_functions(
        &self,
        account: &str,
        filter: &Fc3ListFilter,
    ) -> Result<Fc3Page, FcError> {
        let limit = filter.check()?;
        let version = filter.fc_version.as_deref().unwrap_or("");
        let mut found: Vec<Fc3View> = Vec::new();
        if version != "v2" {
            let prefix = filter.prefix.clone().unwrap_or_default();
            let hidden = hidden_service(&prefix);
            for s in self.all_services(account, &hidden).await? {
                let Some(native) = s
                    .service
                    .service_name
                    .strip_prefix(fcd_core::fc3::HIDDEN_SERVICE_PREFIX)
                else {
                    continue;
                };
                let name = Fc3Function::Native(native.to_owned());
                if !filter.wants_name(&name.name()) {
                    continue;
                }
                let stored = self
                    .store
                    .get_function(account, &s.service.service_name, native)
                    .await
                    .map_err(|e| internal("get function", e))?;
                // A hidden service without its function is an interrupted create: no function.
                if let Some(sf) = stored.filter(|sf| filter.wants(&sf.function)) {
                    found.push(Fc3View {
                        name,
                        service: s.service,
                        function: sf.function,
                    });
                }
            }
        }
        if version != "v3" {
            // A 2.0 name `svc$fn` starts with the prefix when the service does (and more).
            let prefix = filter.prefix.clone().unwrap_or_default();
            let service_prefix = prefix
                .split_once(fcd_core::fc3::V2_SEPARATOR)
                .map(|(s, _)| s.to_owned())
                .unwrap_or(prefix);
            for s in self.all_services(account, &service_prefix).await? {
                if fcd_core::fc3::is_hidden_service(&s.service.service_name) {
                    continue;
                }
                for sf in self.all_functions(account, &s.service.service_name).await? {
                    let name = Fc3Function::from_stored(
                        &s.service.service_name,
                        &sf.function.function_name,
                    );
                    if filter.wants_name(&name.name()) && filter.wants(&sf.function) {
                        found.push(Fc3View {
                            name,
                            service: s.service.clone(),
                            function: sf.function,
                        });
                    }
                }
            }
        }
        found.sort_by_key(|v| v.name.name());
        let mut tagged = Vec::with_capacity(found.len().min(limit + 1));
        for view in found {
            if tagged.len() > limit {
                break;
            }
            let view = self.with_tags(account, view).await?;
            if filter
                .tags
                .iter()
                .all(|t| function_tags(&view.function).contains(t))
            {
                tagged.push(view);
            }
        }
        let mut found = tagged;
        let next_token = if found.len() > limit {
            found.truncate(limit + 1);
            found.pop().map(|v| v.name.name())
        } else {
            None
        };
        Ok(Fc3Page {
            functions: found,
            next_token,
        })
    }

    /// Disable/EnableFunctionInvocation: the function's `invocationRestriction`, kept in its
    /// 3.0 attributes, which [`Control::fc3_check_invocable`] reads on every 3.0 invocation.
    pub async fn fc3_set_invocation_restriction(
        &self,
        account: &str,
        f: &Fc3Function,
        disable: bool,
        reason: Option<String>,
    ) -> Result<(), FcError> {
        let mut attrs = JsonObject::new();
        attrs.insert(
            INVOCATION_RESTRICTION.into(),
            json!({
                "disable": disable,
                "reason": reason.unwrap_or_default(),
                "lastModifiedTime": fcd_core::time::now(),
            }),
        );
        let u = FunctionUpdate {
            fc3: Some(attrs),
            ..Default::default()
        };
        self.update_function(account, &f.service(), f.function(), u, None, None)
            .await
            .map_err(|e| rephrase(e, f))?;
        Ok(())
    }

    /// Refuses an invocation of a function whose invocation is disabled (every qualifier:
    /// the restriction is the function's, read from its cached LATEST spec).
    pub async fn fc3_check_invocable(&self, account: &str, f: &Fc3Function) -> Result<(), FcError> {
        let spec = self
            .resolve_unchecked(account, &f.service(), f.function(), Some(LATEST))
            .await
            .map_err(|e| rephrase(e, f))?;
        if let Some(r) = spec.function.fc3.get(INVOCATION_RESTRICTION)
            && r.get("disable").and_then(Value::as_bool) == Some(true)
        {
            let reason = r.get("reason").and_then(Value::as_str).unwrap_or("");
            return Err(FcError::Fc3Message {
                code: "FunctionInvocationDisabled",
                status: 403,
                message: if reason.is_empty() {
                    format!("invocation of function '{}' is disabled", f.name())
                } else {
                    format!(
                        "invocation of function '{}' is disabled: {reason}",
                        f.name()
                    )
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> JsonObject {
        match v {
            Value::Object(o) => o,
            _ => panic!("not an object"),
        }
    }

    fn service() -> Service {
        Service::create(
            "sid".into(),
            "~f1".into(),
            ServiceUpdate::default(),
            "t0".into(),
        )
        .unwrap()
    }

    fn function(u: FunctionUpdate) -> Function {
        Function::create(
            "fid".into(),
            "f1".into(),
            u,
            fcd_core::model::CodeRef {
                checksum: "1".into(),
                size: 2,
            },
            "2024-01-01T00:00:00Z".into(),
        )
        .unwrap()
    }

    #[test]
    fn create_input_splits_into_service_and_function_fields() {
        let input = split_input(
            obj(json!({
                "functionName": "f1",
                "handler": "index.handler",
                "runtime": "python3.10",
                "description": "d",
                "role": "acs:ram::1:role/r",
                "internetAccess": false,
                "logConfig": {"project": "p", "logstore": "s"},
                "instanceLifecycleConfig": {
                    "initializer": {"handler": "index.init", "timeout": 7},
                    "preStop": {"handler": "index.stop", "timeout": 2}
                },
                "gpuConfig": {"gpuType": "fc.gpu.tesla.1", "gpuMemorySize": 2048},
                "disableOndemand": true,
                "someFutureField": {"x": 1},
                "functionArn": "ignored",
                "tags": [{"Key": "k", "Value": "v"}]
            })),
            true,
        )
        .unwrap();
        assert_eq!(input.service.role.as_deref(), Some("acs:ram::1:role/r"));
        assert_eq!(input.service.internet_access, Some(false));
        assert_eq!(input.service.description.as_deref(), Some("d"));
        assert!(input.service_fields.contains(&"role"));
        assert!(input.service_fields.contains(&"logConfig"));
        let f = &input.function;
        assert_eq!(f.function_name.as_deref(), Some("f1"));
        assert_eq!(f.initializer.as_deref(), Some("index.init"));
        assert_eq!(f.initialization_timeout, Some(7));
        let ps = f
            .instance_lifecycle_config
            .as_ref()
            .unwrap()
            .pre_stop
            .as_ref();
        assert_eq!(ps.unwrap().handler, "index.stop");
        assert_eq!(f.instance_type.as_deref(), Some("fc.gpu.tesla.1"));
        assert_eq!(f.gpu_memory_size, Some(2048));
        let extra = f.fc3.as_ref().unwrap();
        assert_eq!(extra["disableOndemand"], json!(true));
        assert_eq!(extra["someFutureField"], json!({"x": 1}));
        assert!(!extra.contains_key("functionArn"));
        assert!(!extra.contains_key("tags"));
        assert_eq!(input.tags.len(), 1);
    }

    #[test]
    fn partial_nested_updates_leave_the_rest_alone() {
        let input = split_input(
            obj(json!({
                "customRuntimeConfig": {"port": 9100},
                "customContainerConfig": {"port": 9100},
                "instanceLifecycleConfig": {"initializer": {"handler": "i", "timeout": 2}},
                "code": {"zipFile": "UEs=", "checksum": "123"}
            })),
            false,
        )
        .unwrap();
        let f = &input.function;
        assert_eq!(f.ca_port, Some(9100));
        assert!(f.custom_runtime_config.is_none());
        assert!(f.custom_container_config.is_none());
        assert!(f.instance_lifecycle_config.is_none());
        assert_eq!(f.initializer.as_deref(), Some("i"));
        assert_eq!(input.code_checksum.as_deref(), Some("123"));
    }

    #[test]
    fn update_input_ignores_the_name_and_tags() {
        let input = split_input(
            obj(json!({"functionName": "other", "tags": [{"Key": "k"}], "timeout": 9})),
            false,
        )
        .unwrap();
        assert_eq!(input.function.function_name, None);
        assert!(input.tags.is_empty());
        assert_eq!(input.function.timeout, Some(9));
        assert!(input.service_fields.is_empty());
    }

    #[test]
    fn custom_runtime_and_container_fields_translate_both_ways() {
        let input = split_input(
            obj(json!({
                "runtime": "custom-container",
                "handler": "h",
                "customContainerConfig": {
                    "image": "registry/x:1",
                    "entrypoint": ["/bin/sh"],
                    "command": ["-c", "run"],
                    "port": 8080,
                    "acrInstanceId": "cri-1",
                    "healthCheckConfig": {"httpGetUrl": "/ready"}
                }
            })),
            true,
        )
        .unwrap();
        let f = &input.function;
        assert_eq!(f.ca_port, Some(8080));
        let c = f.custom_container_config.as_ref().unwrap();
        assert_eq!(c["command"], json!("[\"/bin/sh\"]"));
        assert_eq!(c["args"], json!("[\"-c\",\"run\"]"));
        assert_eq!(c["instanceID"], json!("cri-1"));
        assert_eq!(c["image"], json!("registry/x:1"));
        assert_eq!(
            f.custom_health_check_config.as_ref().unwrap()["httpGetUrl"],
            json!("/ready")
        );
        let func = function(input.function);
        let out = render_function(
            &Fc3Function::Native("f1".into()),
            &service(),
            &func,
            "cn-hangzhou",
            "123",
            &BTreeMap::new(),
            false,
        );
        let c = &out["customContainerConfig"];
        assert_eq!(c["entrypoint"], json!(["/bin/sh"]));
        assert_eq!(c["command"], json!(["-c", "run"]));
        assert_eq!(c["port"], json!(8080));
        assert_eq!(c["acrInstanceId"], json!("cri-1"));
        assert_eq!(c["healthCheckConfig"]["httpGetUrl"], json!("/ready"));
        assert!(out.get("customRuntimeConfig").is_none());

        let input = split_input(
            obj(json!({
                "runtime": "custom.debian10",
                "handler": "h",
                "customRuntimeConfig": {"command": ["./boot"], "port": 9001}
            })),
            true,
        )
        .unwrap();
        assert_eq!(input.function.ca_port, Some(9001));
        let func = function(input.function);
        let out = render_function(
            &Fc3Function::Native("f1".into()),
            &service(),
            &func,
            "r",
            "1",
            &BTreeMap::new(),
            false,
        );
        assert_eq!(out["customRuntimeConfig"]["command"], json!(["./boot"]));
        assert_eq!(out["customRuntimeConfig"]["port"], json!(9001));
    }

    #[test]
    fn rendering_moves_service_fields_onto_the_function_and_echoes_attributes() {
        let mut svc = service();
        svc.role = "acs:ram::1:role/r".into();
        svc.internet_access = false;
        svc.vpc_config = Some(obj(json!({"vpcId": "v"})));
        let mut u = split_input(
            obj(json!({
                "runtime": "python3.10",
                "handler": "index.handler",
                "instanceLifecycleConfig": {"initializer": {"handler": "index.init", "timeout": 4}},
                "layers": ["acs:fc:r:1:layers/l/versions/1"],
                "idleTimeout": 60
            })),
            true,
        )
        .unwrap()
        .function;
        u.fc3
            .get_or_insert_default()
            .insert("state".into(), json!("Stale"));
        let f = function(u);
        let name = Fc3Function::V2 {
            service: "svc".into(),
            function: "f1".into(),
        };
        let sizes: BTreeMap<String, u64> =
            [("acs:fc:r:1:layers/l/versions/1".to_string(), 42)].into();
        let out = render_function(&name, &svc, &f, "cn-hangzhou", "123", &sizes, false);
        assert_eq!(out["functionName"], json!("svc$f1"));
        assert_eq!(
            out["functionArn"],
            json!("acs:fc:cn-hangzhou:123:functions/svc$f1")
        );
        assert_eq!(out["role"], json!("acs:ram::1:role/r"));
        assert_eq!(out["internetAccess"], json!(false));
        assert_eq!(out["vpcConfig"]["vpcId"], json!("v"));
        assert_eq!(
            out["instanceLifecycleConfig"]["initializer"],
            json!({"handler": "index.init", "timeout": 4})
        );
        assert_eq!(
            out["layers"],
            json!([{"arn": "acs:fc:r:1:layers/l/versions/1", "size": 42}])
        );
        assert_eq!(out["idleTimeout"], json!(60));
        // Computed state wins over a stored attribute of the same name.
        assert_eq!(out["state"], json!("Active"));
        assert_eq!(out["lastUpdateStatus"], json!("Successful"));
        assert!(out.get("customRuntimeConfig").is_none());
        assert!(out.get("gpuConfig").is_none());
        let listed = render_function(&name, &svc, &f, "cn-hangzhou", "123", &sizes, true);
        assert!(listed.get("state").is_none());
        assert!(listed.get("lastUpdateStatus").is_none());
    }

    #[test]
    fn command_hooks_are_refused_not_dropped() {
        let e = split_input(
            obj(json!({"instanceLifecycleConfig": {"preStop": {"command": ["/bin/stop"]}}})),
            false,
        )
        .unwrap_err();
        assert_eq!(e.code(), "NotSupported");
        assert!(e.to_string().contains("preStop.command"));
    }

    #[test]
    fn concurrency_above_one_is_for_custom_runtimes_only() {
        assert!(check_concurrency("python3.10", 1).is_ok());
        assert!(check_concurrency("python3.10", 2).is_err());
        assert!(check_concurrency("custom", 10).is_ok());
        assert!(check_concurrency("custom-container", 10).is_ok());
        assert!(check_concurrency("custom.debian10", 10).is_ok());
    }

    #[test]
    fn bad_shapes_are_invalid_arguments() {
        for body in [
            json!({"customContainerConfig": {"entrypoint": "sh"}}),
            json!({"gpuConfig": 3}),
            json!({"timeout": "long"}),
            json!({"tags": "k=v"}),
        ] {
            let e = split_input(obj(body.clone()), true).unwrap_err();
            assert_eq!(e.code(), "InvalidArgument", "{body}");
        }
    }

    #[test]
    fn list_filter_matches_names_and_attributes() {
        let u = FunctionUpdate {
            runtime: Some("python3.10".into()),
            handler: Some("h".into()),
            description: Some("hello world".into()),
            ..Default::default()
        };
        let f = function(u);
        let filter = Fc3ListFilter {
            prefix: Some("svc".into()),
            description: Some("world".into()),
            ..Default::default()
        };
        assert!(filter.wants_name("svc$f1"));
        assert!(!filter.wants_name("other"));
        assert!(filter.wants(&f));
        let wrong_description = Fc3ListFilter {
            description: Some("moon".into()),
            ..Default::default()
        };
        assert!(!wrong_description.wants(&f));
        let bad_version = Fc3ListFilter {
            fc_version: Some("v4".into()),
            ..Default::default()
        };
        assert!(bad_version.check().is_err());
        let too_many = Fc3ListFilter {
            limit: Some(101),
            ..Default::default()
        };
        assert!(too_many.check().is_err());
        assert_eq!(Fc3ListFilter::default().check().unwrap(), 20);
    }
}

#[cfg(test)]
mod control_tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use fcd_core::triggers::TriggerInput;
    use fcd_core::versions::AliasUpdate;
    use fcd_store::{MetadataStore, SqliteStore};

    const ACC: &str = "1234";
    /// An empty zip archive (fc3-api.md §1.3 vector V2).
    const EMPTY_ZIP: &str = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==";

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn MetadataStore>,
        control: Control,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let control = crate::testkit::control(dir.path(), store.clone(), "t");
        Fixture {
            _dir: dir,
            store,
            control,
        }
    }

    fn input(name: &str, extra: Value) -> Fc3Input {
        let mut body = obj(json!({
            "functionName": name,
            "runtime": "custom",
            "handler": "h",
            "code": {"zipFile": EMPTY_ZIP},
            "tags": [],
        }));
        if let Value::Object(e) = extra {
            body.extend(e);
        }
        split_input(body, true).unwrap()
    }

    fn obj(v: Value) -> JsonObject {
        match v {
            Value::Object(o) => o,
            _ => panic!("not an object"),
        }
    }

    #[tokio::test]
    async fn create_makes_service_and_function_and_refuses_duplicates() {
        let f = fixture().await;
        let c = &f.control;
        let view = c
            .fc3_create_function(
                ACC,
                input("f1", json!({"role": "acs:ram::1:role/r", "idleTimeout": 5})),
            )
            .await
            .unwrap();
        assert_eq!(view.service.role, "acs:ram::1:role/r");
        assert_eq!(view.function.fc3["idleTimeout"], json!(5));
        let svc = f.store.get_service(ACC, "~f1").await.unwrap().unwrap();
        assert_eq!(svc.service.role, "acs:ram::1:role/r");
        let e = c
            .fc3_create_function(ACC, input("f1", json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "FunctionAlreadyExists");
        assert_eq!(e.http_status(), 409);
        // The 2.0 listing never shows it.
        let page = c
            .list_services(ACC, &crate::Paging::default())
            .await
            .unwrap();
        assert!(page.items.is_empty());
    }

    #[tokio::test]
    async fn a_failed_create_leaves_no_service_and_an_orphan_is_reused() {
        let f = fixture().await;
        let c = &f.control;
        let e = c
            .fc3_create_function(
                ACC,
                input("f2", json!({"code": {"zipFile": "bm90IGEgemlw"}})),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidArgument");
        assert!(f.store.get_service(ACC, "~f2").await.unwrap().is_none());

        // A hidden service a crash left without its function.
        let orphan = Service::create(
            "old".into(),
            "~f3".into(),
            ServiceUpdate::default(),
            "t".into(),
        )
        .unwrap();
        f.store
            .insert_service(
                ACC,
                &StoredService {
                    service: orphan,
                    etag: "e".into(),
                },
            )
            .await
            .unwrap();
        let view = c
            .fc3_create_function(ACC, input("f3", json!({"internetAccess": false})))
            .await
            .unwrap();
        assert_eq!(view.service.service_id, "old");
        assert!(!view.service.internet_access);
        assert!(
            c.fc3_resolve(ACC, &Fc3Function::Native("f3".into()))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn delete_takes_versions_and_aliases_but_not_while_triggers_exist() {
        let f = fixture().await;
        let c = &f.control;
        let name = Fc3Function::Native("f4".into());
        c.fc3_create_function(ACC, input("f4", json!({})))
            .await
            .unwrap();
        c.publish_version(ACC, "~f4", "v1", None).await.unwrap();
        c.create_alias(
            ACC,
            "~f4",
            AliasUpdate {
                alias_name: Some("prod".into()),
                version_id: Some("1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        c.create_trigger(
            ACC,
            "~f4",
            "f4",
            TriggerInput {
                trigger_name: Some("t".into()),
                trigger_type: Some("timer".into()),
                trigger_config: Some(json!({"cronExpression": "@every 1m"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let e = c.fc3_delete_function(ACC, &name).await.unwrap_err();
        assert_eq!(e.code(), "FunctionNotEmpty");
        assert_eq!(e.http_status(), 412);
        assert!(c.get_alias(ACC, "~f4", "prod").await.is_ok());

        c.delete_trigger(ACC, "~f4", "f4", "t", None).await.unwrap();
        c.fc3_delete_function(ACC, &name).await.unwrap();
        assert!(f.store.get_service(ACC, "~f4").await.unwrap().is_none());
        assert!(f.store.get_version(ACC, "~f4", 1).await.unwrap().is_none());
        let e = c.fc3_get_function(ACC, &name, None).await.unwrap_err();
        assert_eq!(e.code(), "FunctionNotFound");
        assert_eq!(e.to_string(), "function 'f4' does not exist");
        // The name is free again, with no history.
        c.fc3_create_function(ACC, input("f4", json!({})))
            .await
            .unwrap();
        let versions = c
            .list_versions(ACC, "~f4", None, None, None, None)
            .await
            .unwrap();
        assert!(versions.versions.is_empty());
    }

    #[tokio::test]
    async fn list_merges_native_and_2_0_functions_by_name() {
        let f = fixture().await;
        let c = &f.control;
        for n in ["b", "d"] {
            c.fc3_create_function(ACC, input(n, json!({})))
                .await
                .unwrap();
        }
        c.create_service(
            ACC,
            ServiceUpdate {
                service_name: Some("c".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut u = input("x", json!({})).function;
        u.function_name = Some("fn".into());
        u.fc3 = None;
        u.instance_lifecycle_config = Some(fcd_core::model::InstanceLifecycleConfig {
            pre_freeze: Some(fcd_core::model::LifecycleHook {
                handler: "freeze".into(),
                timeout: 3,
            }),
            pre_stop: None,
        });
        c.create_function(ACC, "c", u, None).await.unwrap();
        let names = |p: &Fc3Page| {
            p.functions
                .iter()
                .map(|v| v.name.name())
                .collect::<Vec<_>>()
        };
        let all = c
            .fc3_list_functions(ACC, &Fc3ListFilter::default())
            .await
            .unwrap();
        assert_eq!(names(&all), ["b", "c$fn", "d"]);
        let first = c
            .fc3_list_functions(
                ACC,
                &Fc3ListFilter {
                    limit: Some(2),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(names(&first), ["b", "c$fn"]);
        let rest = c
            .fc3_list_functions(
                ACC,
                &Fc3ListFilter {
                    limit: Some(2),
                    next_token: first.next_token.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(names(&rest), ["d"]);
        assert!(rest.next_token.is_none());
        for (version, want) in [("v2", vec!["c$fn"]), ("v3", vec!["b", "d"])] {
            let p = c
                .fc3_list_functions(
                    ACC,
                    &Fc3ListFilter {
                        fc_version: Some(version.into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(names(&p), want);
        }
        let prefixed = c
            .fc3_list_functions(
                ACC,
                &Fc3ListFilter {
                    prefix: Some("c$".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(names(&prefixed), ["c$fn"]);

        // Through svc$fn the 2.0 service's settings are out of reach; the function's are not.
        let v2 = Fc3Function::parse("c$fn").unwrap();
        let e = c
            .fc3_update_function(
                ACC,
                &v2,
                split_input(obj(json!({"role": "acs:ram::1:role/r"})), false).unwrap(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidArgument");
        let up = c
            .fc3_update_function(
                ACC,
                &v2,
                split_input(obj(json!({"timeout": 7, "description": "x"})), false).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(up.function.timeout, 7);
        // 3.0 cannot see preFreeze, so setting preStop keeps it.
        let up = c
            .fc3_update_function(
                ACC,
                &v2,
                split_input(
                    obj(json!({"instanceLifecycleConfig": {"preStop": {"handler": "stop", "timeout": 2}}})),
                    false,
                )
                .unwrap(),
            )
            .await
            .unwrap();
        let lc = up.function.instance_lifecycle_config.unwrap();
        assert_eq!(lc.pre_freeze.unwrap().handler, "freeze");
        assert_eq!(lc.pre_stop.unwrap().handler, "stop");
        assert_eq!(
            c.get_service(ACC, "c").await.unwrap().service.description,
            ""
        );
    }

    #[tokio::test]
    async fn invocation_restriction_is_kept_and_checked() {
        let f = fixture().await;
        let c = &f.control;
        let name = Fc3Function::Native("g".into());
        c.fc3_create_function(ACC, input("g", json!({})))
            .await
            .unwrap();
        c.fc3_check_invocable(ACC, &name).await.unwrap();
        c.fc3_set_invocation_restriction(ACC, &name, true, Some("why".into()))
            .await
            .unwrap();
        let e = c.fc3_check_invocable(ACC, &name).await.unwrap_err();
        assert_eq!(e.http_status(), 403);
        assert!(e.to_string().contains("why"));
        c.fc3_set_invocation_restriction(ACC, &name, false, None)
            .await
            .unwrap();
        c.fc3_check_invocable(ACC, &name).await.unwrap();
    }
}
