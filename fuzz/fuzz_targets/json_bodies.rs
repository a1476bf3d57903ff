//! The JSON request bodies the API parses (as `fcd-api`'s `json_body` does: blank means
//! default), then the model's validation of each.
//!
//! Input: one selector byte, then the body: `S` CreateService/UpdateService, `F`
//! CreateFunction/UpdateFunction, `A` CreateAlias/UpdateAlias, `O` PutFunctionOnDemandConfig,
//! `P` PutProvisionConfig.
#![no_main]

use fcd_core::configs::{OnDemandConfigUpdate, ProvisionConfigUpdate};
use fcd_core::model::{CodeRef, Function, FunctionUpdate, Service, ServiceUpdate};
use fcd_core::versions::{Alias, AliasUpdate};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Option<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Some(T::default());
    }
    serde_json::from_slice(bytes).ok()
}

const NOW: &str = "2026-01-01T00:00:00Z";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector {
        b'S' => {
            let Some(u) = body::<ServiceUpdate>(rest) else {
                return;
            };
            let name = u.service_name.clone().unwrap_or_else(|| "svc".into());
            if let Ok(mut s) = Service::create("id".into(), name, u.clone(), NOW.into()) {
                let _ = s.apply(u, NOW.into());
                let _ = serde_json::to_vec(&s);
            }
        }
        b'F' => {
            let Some(u) = body::<FunctionUpdate>(rest) else {
                return;
            };
            let name = u.function_name.clone().unwrap_or_else(|| "f".into());
            let code = CodeRef {
                checksum: "1".into(),
                size: 1,
            };
            if let Ok(mut f) = Function::create("id".into(), name, u.clone(), code, NOW.into()) {
                let _ = f.apply(u, None, NOW.into());
                let _ = serde_json::to_vec(&f);
            }
        }
        b'A' => {
            let Some(u) = body::<AliasUpdate>(rest) else {
                return;
            };
            let name = u.alias_name.clone().unwrap_or_else(|| "prod".into());
            if let Ok(mut a) = Alias::create(name, u.clone(), NOW.into()) {
                let _ = a.apply(u, NOW.into());
                let _ = a.versions().count();
                for r in [0.0, 0.25, 0.5, 0.999_999, 1.0] {
                    let _ = a.route(r);
                }
                let _ = serde_json::to_vec(&a);
            }
        }
        b'O' => {
            let Some(u) = body::<OnDemandConfigUpdate>(rest) else {
                return;
            };
            let _ = u.maximum_instance_count();
        }
        b'P' => {
            let Some(u) = body::<ProvisionConfigUpdate>(rest) else {
                return;
            };
            if let Ok(c) = u.into_config("svc", "prod", "f") {
                let _ = c.resource("123");
                let _ = c.is_empty();
            }
        }
        _ => {}
    }
});
