//! Services and functions as FC describes them, plus the partial updates the API applies to them.
//!
//! `Service` and `Function` serialise to exactly the JSON FC returns (camelCase names,
//! fc-api.md section 8). `ServiceUpdate` / `FunctionUpdate` are the optional-field shapes of the
//! create and update requests; `apply` validates every value before anything changes, so a
//! rejected request never leaves a half-updated record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FcError;
use crate::limits::*;
use crate::names::check_env_key;

/// A JSON object kept verbatim (configuration fcd stores and returns but does not act on).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub service_id: String,
    pub service_name: String,
    pub description: String,
    pub role: String,
    pub internet_access: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_config: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nas_config: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oss_mount_config: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing_config: Option<JsonObject>,
    #[serde(rename = "useSLRAuthentication", default)]
    pub use_slr_authentication: bool,
    pub created_time: String,
    pub last_modified_time: String,
}

/// The body of CreateService / UpdateService.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceUpdate {
    pub service_name: Option<String>,
    pub description: Option<String>,
    pub role: Option<String>,
    pub internet_access: Option<bool>,
    pub log_config: Option<JsonObject>,
    pub vpc_config: Option<JsonObject>,
    pub nas_config: Option<JsonObject>,
    pub oss_mount_config: Option<JsonObject>,
    pub tracing_config: Option<JsonObject>,
}

impl Service {
    /// A new service named `name` with FC's defaults, then `update` applied.
    pub fn create(
        id: String,
        name: String,
        update: ServiceUpdate,
        now: String,
    ) -> Result<Service, FcError> {
        let mut svc = Service {
            service_id: id,
            service_name: name,
            description: String::new(),
            role: String::new(),
            internet_access: true,
            log_config: None,
            vpc_config: None,
            nas_config: None,
            oss_mount_config: None,
            tracing_config: None,
            use_slr_authentication: false,
            created_time: now.clone(),
            last_modified_time: now.clone(),
        };
        svc.apply(update, now)?;
        Ok(svc)
    }

    /// Applies an update; fields absent from the request keep their values.
    pub fn apply(&mut self, u: ServiceUpdate, now: String) -> Result<(), FcError> {
        if let Some(d) = &u.description {
            check_description(d)?;
        }
        if let Some(v) = u.description {
            self.description = v;
        }
        if let Some(r) = &u.role {
            check_role(r)?;
        }
        if let Some(v) = u.role {
            self.role = v;
        }
        if let Some(v) = u.internet_access {
            self.internet_access = v;
        }
        merge_object(&mut self.log_config, u.log_config);
        merge_object(&mut self.vpc_config, u.vpc_config);
        merge_object(&mut self.nas_config, u.nas_config);
        merge_object(&mut self.oss_mount_config, u.oss_mount_config);
        merge_object(&mut self.tracing_config, u.tracing_config);
        self.last_modified_time = now;
        Ok(())
    }
}

/// A service's `role` is empty or a RAM role ARN, `acs:ram::<account>:role/<name>`; what it
/// grants is decided when its functions run (the role may be created later).
fn check_role(role: &str) -> Result<(), FcError> {
    if role.is_empty() {
        return Ok(());
    }
    let bad = || {
        FcError::invalid(format!(
            "role '{role}' is not a RAM role ARN: expected acs:ram::<accountId>:role/<roleName>"
        ))
    };
    let rest = role.strip_prefix("acs:ram::").ok_or_else(bad)?;
    let (account, name) = rest.split_once(":role/").ok_or_else(bad)?;
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) || !name_ok {
        return Err(bad());
    }
    Ok(())
}

fn merge_object(slot: &mut Option<JsonObject>, value: Option<JsonObject>) {
    if let Some(v) = value {
        *slot = Some(v);
    }
}

fn check_description(d: &str) -> Result<(), FcError> {
    if d.chars().count() > DESCRIPTION_MAX {
        return Err(FcError::invalid(format!(
            "description is longer than {DESCRIPTION_MAX} characters"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomRuntimeConfig {
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHook {
    #[serde(default)]
    pub handler: String,
    #[serde(default)]
    pub timeout: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceLifecycleConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_freeze: Option<LifecycleHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHook>,
}

/// Every runtime name FC 2.0 accepts (CreateFunctionRequest.runtime docstring).
pub const KNOWN_RUNTIMES: &[&str] = &[
    "nodejs20",
    "nodejs18",
    "nodejs16",
    "nodejs14",
    "nodejs12",
    "nodejs10",
    "nodejs8",
    "nodejs6",
    "nodejs4.4",
    "python3.10",
    "python3.9",
    "python3",
    "python2.7",
    "java11",
    "java8",
    "go1",
    "php7.2",
    "dotnetcore3.1",
    "dotnetcore2.1",
    "custom.debian10",
    "custom",
    "custom-container",
    // fcd's own: a WebAssembly component or WASI command module, run in process on wasmtime.
    "wasm",
];

/// Runtimes whose functions bring their own server, so FC requires no `handler` for them.
/// Which runtimes this server can actually run is the instance manager's registry, not this
/// crate's concern.
pub fn is_custom_runtime(runtime: &str) -> bool {
    matches!(runtime, "custom" | "custom.debian10")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    pub function_id: String,
    pub function_name: String,
    pub description: String,
    pub runtime: String,
    pub handler: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub instance_concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_soft_concurrency: Option<u32>,
    pub environment_variables: BTreeMap<String, String>,
    pub initializer: String,
    pub initialization_timeout: u32,
    pub ca_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_runtime_config: Option<CustomRuntimeConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_lifecycle_config: Option<InstanceLifecycleConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_container_config: Option<JsonObject>,
    #[serde(rename = "customDNS", default, skip_serializing_if = "Option::is_none")]
    pub custom_dns: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_health_check_config: Option<JsonObject>,
    pub instance_type: String,
    pub layers: Vec<String>,
    #[serde(rename = "layersArnV2")]
    pub layers_arn_v2: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_size: Option<u32>,
    pub code_checksum: String,
    pub code_size: u64,
    pub created_time: String,
    pub last_modified_time: String,
    /// What only the FC 3.0 view knows of this function (`fcd_core::fc3`): 3.0-only
    /// attributes (`disableOndemand`, `idleTimeout`, `gpuConfig`, …) and fields of 3.0
    /// requests fcd does not know, kept verbatim so newer SDKs' fields round-trip. Empty for
    /// functions only ever written through 2.0.
    #[serde(
        rename = "fcdFc3Attributes",
        default,
        skip_serializing_if = "JsonObject::is_empty"
    )]
    pub fc3: JsonObject,
}

/// The inline code object of CreateFunction / UpdateFunction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeInput {
    pub zip_file: Option<String>,
    pub oss_bucket_name: Option<String>,
    pub oss_object_name: Option<String>,
}

/// The body of CreateFunction / UpdateFunction. UpdateFunction's SDK spells one field
/// `InstanceConcurrency`; both spellings are accepted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUpdate {
    pub function_name: Option<String>,
    pub description: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    #[serde(alias = "InstanceConcurrency")]
    pub instance_concurrency: Option<u32>,
    pub instance_soft_concurrency: Option<u32>,
    pub environment_variables: Option<BTreeMap<String, String>>,
    pub initializer: Option<String>,
    pub initialization_timeout: Option<u32>,
    pub ca_port: Option<u16>,
    pub custom_runtime_config: Option<CustomRuntimeConfig>,
    pub instance_lifecycle_config: Option<InstanceLifecycleConfig>,
    pub custom_container_config: Option<JsonObject>,
    #[serde(rename = "customDNS")]
    pub custom_dns: Option<JsonObject>,
    pub custom_health_check_config: Option<JsonObject>,
    pub instance_type: Option<String>,
    pub layers: Option<Vec<String>>,
    pub cpu: Option<f64>,
    pub disk_size: Option<u32>,
    pub gpu_memory_size: Option<u32>,
    pub code: Option<CodeInput>,
    /// Set only by the FC 3.0 view, never read from a request body: attributes merged into
    /// [`Function::fc3`] (a `null` value removes one).
    #[serde(skip)]
    pub fc3: Option<JsonObject>,
}

/// Where a function's code lives once the code store has accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRef {
    /// CRC-64 of the zip, decimal (FC's `codeChecksum`).
    pub checksum: String,
    pub size: u64,
}

impl Function {
    /// A new function with FC's defaults, then `update` applied. `code` is required.
    pub fn create(
        id: String,
        name: String,
        update: FunctionUpdate,
        code: CodeRef,
        now: String,
    ) -> Result<Function, FcError> {
        let runtime = update
            .runtime
            .clone()
            .ok_or_else(|| FcError::invalid("runtime is required"))?;
        let mut f = Function {
            function_id: id,
            function_name: name,
            description: String::new(),
            runtime,
            handler: String::new(),
            timeout: TIMEOUT_DEFAULT,
            memory_size: MEMORY_DEFAULT,
            instance_concurrency: 1,
            instance_soft_concurrency: None,
            environment_variables: BTreeMap::new(),
            initializer: String::new(),
            initialization_timeout: INIT_TIMEOUT_DEFAULT,
            ca_port: CA_PORT_DEFAULT,
            custom_runtime_config: None,
            instance_lifecycle_config: None,
            custom_container_config: None,
            custom_dns: None,
            custom_health_check_config: None,
            instance_type: "e1".to_owned(),
            layers: Vec::new(),
            layers_arn_v2: Vec::new(),
            cpu: None,
            disk_size: None,
            gpu_memory_size: None,
            code_checksum: code.checksum.clone(),
            code_size: code.size,
            created_time: now.clone(),
            last_modified_time: now.clone(),
            fc3: JsonObject::new(),
        };
        f.apply(update, Some(code), now)?;
        if f.handler.is_empty() && !is_custom_runtime(&f.runtime) {
            return Err(FcError::invalid("handler is required"));
        }
        Ok(f)
    }

    /// Validates `u` as a whole, then applies it. Fields absent from the request keep their
    /// values; `code`, when given, replaces the function's code.
    pub fn apply(
        &mut self,
        u: FunctionUpdate,
        code: Option<CodeRef>,
        now: String,
    ) -> Result<(), FcError> {
        validate_update(&u)?;
        let FunctionUpdate {
            function_name: _,
            description,
            runtime,
            handler,
            timeout,
            memory_size,
            instance_concurrency,
            instance_soft_concurrency,
            environment_variables,
            initializer,
            initialization_timeout,
            ca_port,
            custom_runtime_config,
            instance_lifecycle_config,
            custom_container_config,
            custom_dns,
            custom_health_check_config,
            instance_type,
            layers,
            cpu,
            disk_size,
            gpu_memory_size,
            code: _,
            fc3,
        } = u;
        set(&mut self.description, description);
        set(&mut self.runtime, runtime);
        set(&mut self.handler, handler);
        set(&mut self.timeout, timeout);
        set(&mut self.memory_size, memory_size);
        set(&mut self.instance_concurrency, instance_concurrency);
        set_opt(
            &mut self.instance_soft_concurrency,
            instance_soft_concurrency,
        );
        set(&mut self.environment_variables, environment_variables);
        set(&mut self.initializer, initializer);
        set(&mut self.initialization_timeout, initialization_timeout);
        set(&mut self.ca_port, ca_port);
        set_opt(&mut self.custom_runtime_config, custom_runtime_config);
        set_opt(
            &mut self.instance_lifecycle_config,
            instance_lifecycle_config,
        );
        set_opt(&mut self.custom_container_config, custom_container_config);
        set_opt(&mut self.custom_dns, custom_dns);
        set_opt(
            &mut self.custom_health_check_config,
            custom_health_check_config,
        );
        set(&mut self.instance_type, instance_type);
        set(&mut self.layers, layers);
        set_opt(&mut self.cpu, cpu);
        set_opt(&mut self.disk_size, disk_size);
        set_opt(&mut self.gpu_memory_size, gpu_memory_size);
        for (k, v) in fc3.unwrap_or_default() {
            if v.is_null() {
                self.fc3.remove(&k);
            } else {
                self.fc3.insert(k, v);
            }
        }
        if let Some(code) = code {
            self.code_checksum = code.checksum;
            self.code_size = code.size;
        }
        self.last_modified_time = now;
        Ok(())
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn set_opt<T>(slot: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *slot = v;
    }
}

fn in_range(name: &str, v: Option<u32>, min: u32, max: u32) -> Result<(), FcError> {
    match v {
        Some(v) if v < min || v > max => Err(FcError::invalid(format!(
            "{name} {v} is out of range: it must be between {min} and {max}"
        ))),
        _ => Ok(()),
    }
}

fn validate_update(u: &FunctionUpdate) -> Result<(), FcError> {
    if let Some(rt) = &u.runtime
        && !KNOWN_RUNTIMES.contains(&rt.as_str())
    {
        return Err(FcError::invalid(format!(
            "runtime '{rt}' is not supported; valid runtimes are {}",
            KNOWN_RUNTIMES.join(", ")
        )));
    }
    if let Some(d) = &u.description {
        check_description(d)?;
    }
    in_range("timeout", u.timeout, TIMEOUT_MIN, TIMEOUT_MAX)?;
    in_range(
        "initializationTimeout",
        u.initialization_timeout,
        1,
        INIT_TIMEOUT_MAX,
    )?;
    in_range(
        "instanceConcurrency",
        u.instance_concurrency,
        1,
        INSTANCE_CONCURRENCY_MAX,
    )?;
    if let Some(m) = u.memory_size
        && (!(MEMORY_MIN..=MEMORY_MAX).contains(&m) || m % 64 != 0)
    {
        return Err(FcError::invalid(format!(
            "memorySize {m} is invalid: it must be a multiple of 64 between {MEMORY_MIN} and {MEMORY_MAX} MB"
        )));
    }
    if u.ca_port == Some(0) {
        return Err(FcError::invalid("caPort must be between 1 and 65535"));
    }
    if let Some(env) = &u.environment_variables {
        let mut total = 0;
        for (k, v) in env {
            check_env_key(k)?;
            total += k.len() + v.len();
        }
        if total > ENV_TOTAL_MAX {
            return Err(FcError::invalid(format!(
                "environmentVariables total {total} bytes, more than the {ENV_TOTAL_MAX} bytes allowed"
            )));
        }
    }
    if let Some(lc) = &u.instance_lifecycle_config {
        for (name, hook) in [("preFreeze", &lc.pre_freeze), ("preStop", &lc.pre_stop)] {
            if let Some(h) = hook
                && !h.handler.is_empty()
            {
                in_range(
                    &format!("{name}.timeout"),
                    Some(h.timeout),
                    1,
                    LIFECYCLE_HOOK_TIMEOUT_MAX,
                )?;
            }
        }
    }
    if let Some(code) = &u.code
        && (code.oss_bucket_name.is_some() || code.oss_object_name.is_some())
    {
        return Err(FcError::invalid(
            "code from OSS (ossBucketName/ossObjectName) is not available on fcd: send the package inline as code.zipFile",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> CodeRef {
        CodeRef {
            checksum: "1".into(),
            size: 10,
        }
    }

    fn create(u: FunctionUpdate) -> Result<Function, FcError> {
        Function::create("id".into(), "f".into(), u, code(), "t0".into())
    }

    #[test]
    fn a_service_role_is_empty_or_a_role_arn() {
        for ok in [
            "",
            "acs:ram::1234567890123456:role/fc-invoker",
            "acs:ram::1:role/a.b-C",
        ] {
            assert_eq!(check_role(ok), Ok(()), "{ok}");
        }
        for bad in [
            "role/x",
            "acs:ram::123:user/x",
            "acs:ram::12a:role/x",
            "acs:ram:::role/x",
            "acs:ram::1:role/",
            "acs:ram::1:role/a_b",
            "acs:ram::1:role/a/b",
        ] {
            assert!(check_role(bad).is_err(), "{bad}");
        }
    }

    fn py() -> FunctionUpdate {
        FunctionUpdate {
            runtime: Some("python3.10".into()),
            handler: Some("index.handler".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_fc() {
        let f = create(py()).unwrap();
        assert_eq!((f.timeout, f.memory_size, f.ca_port), (3, 128, 9000));
        assert_eq!(f.instance_concurrency, 1);
        assert_eq!(f.initialization_timeout, 3);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["functionName"], "f");
        assert_eq!(json["codeChecksum"], "1");
        assert!(json.get("customRuntimeConfig").is_none());
    }

    #[test]
    fn rejects_bad_values_without_changing_anything() {
        let mut f = create(py()).unwrap();
        let before = f.clone();
        for bad in [
            FunctionUpdate {
                memory_size: Some(100),
                ..Default::default()
            },
            FunctionUpdate {
                memory_size: Some(65536),
                ..Default::default()
            },
            FunctionUpdate {
                timeout: Some(0),
                description: Some("changed".into()),
                ..Default::default()
            },
            FunctionUpdate {
                runtime: Some("cobol".into()),
                ..Default::default()
            },
            FunctionUpdate {
                environment_variables: Some([("K".to_string(), "v".repeat(5000))].into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(
                f.apply(bad, None, "t1".into()),
                Err(FcError::InvalidArgument(_))
            ));
            assert_eq!(f, before);
        }
    }

    #[test]
    fn update_accepts_sdk_capitalised_instance_concurrency() {
        let u: FunctionUpdate = serde_json::from_str(r#"{"InstanceConcurrency":5}"#).unwrap();
        assert_eq!(u.instance_concurrency, Some(5));
    }

    #[test]
    fn custom_runtime_needs_no_handler_but_python_does() {
        let custom = FunctionUpdate {
            runtime: Some("custom".into()),
            ..Default::default()
        };
        assert!(create(custom).is_ok());
        let py_no_handler = FunctionUpdate {
            runtime: Some("python3".into()),
            ..Default::default()
        };
        assert!(create(py_no_handler).is_err());
    }

    #[test]
    fn service_round_trips_through_json() {
        let s = Service::create(
            "id".into(),
            "s".into(),
            ServiceUpdate {
                description: Some("d".into()),
                ..Default::default()
            },
            "t".into(),
        )
        .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"useSLRAuthentication\":false"));
        let back: Service = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
