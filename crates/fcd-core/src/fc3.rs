//! Where FC 3.0's view (`/2023-03-30`) meets the one store of 2.0 resources.
//!
//! FC 3.0 has no services: functions are top-level, and versions, aliases and the
//! role/log/VPC settings belong to the function. fcd keeps one store and gives it two views:
//!
//! - a **native 3.0 function** `F` is stored as a hidden 2.0 service `~F` holding exactly one
//!   function `F`. Service versions and aliases of `~F` are then exactly `F`'s versions and
//!   aliases, and the service-level settings are `F`'s function-level ones. `~` is outside the
//!   2.0 service-name grammar, so no 2.0 client can create, name or collide with a hidden
//!   service, and it sorts after every valid name in byte order (the store's collation), so
//!   listings can drop hidden services from the end of a page;
//! - a **2.0 function** `fn` of service `svc` appears in 3.0 as `svc$fn`. Neither 2.0 nor 3.0
//!   names may contain `$`, so the split at the first `$` is unambiguous.
//!
//! Native 3.0 functions are invisible to the 2.0 API; 2.0 functions are visible to 3.0.

use std::borrow::Cow;

use crate::FcError;

/// The first character of every hidden service's name.
pub const HIDDEN_SERVICE_PREFIX: char = '~';

/// The separator of a 2.0 function's 3.0 name, `svc$fn`.
pub const V2_SEPARATOR: char = '$';

/// The hidden 2.0 service that holds native 3.0 function `function`.
pub fn hidden_service(function: &str) -> String {
    format!("{HIDDEN_SERVICE_PREFIX}{function}")
}

/// Whether a stored service is the hidden home of a native 3.0 function (and so must not be
/// shown to the 2.0 API).
pub fn is_hidden_service(service: &str) -> bool {
    service.starts_with(HIDDEN_SERVICE_PREFIX)
}

/// Whether `name` is a valid native FC 3.0 function name: `^[_a-zA-Z][-_a-zA-Z0-9]*$`, 1–64.
pub fn valid_function_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    bytes.len() <= 64
        && bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// FC 3.0's refusal of a function name it cannot create (the wording real FC 3.0 uses).
pub fn check_function_name(name: &str) -> Result<(), FcError> {
    if valid_function_name(name) {
        Ok(())
    } else {
        Err(FcError::invalid(format!(
            "FunctionName doesn't match expected format (allowed: ^[_a-zA-Z][-_a-zA-Z0-9]*$, actual: '{name}')"
        )))
    }
}

/// A function as the 3.0 API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fc3Function {
    /// Created through the 3.0 API: stored as function `name` of service `~name`.
    Native(String),
    /// A 2.0 function, named `service$function` in 3.0.
    V2 { service: String, function: String },
}

impl Fc3Function {
    /// The function a 3.0 path segment names (already percent-decoded): `F` or `svc$fn`.
    /// A name that can be neither is `InvalidArgument` with FC 3.0's message.
    pub fn parse(name: &str) -> Result<Fc3Function, FcError> {
        match name.split_once(V2_SEPARATOR) {
            Some((service, function)) => {
                if crate::names::check_service_name(service).is_err()
                    || crate::names::check_function_name(function).is_err()
                {
                    return Err(FcError::invalid(format!(
                        "FunctionName doesn't match expected format (allowed: ^[_a-zA-Z][-_a-zA-Z0-9]*$ or <service>$<function>, actual: '{name}')"
                    )));
                }
                Ok(Fc3Function::V2 {
                    service: service.to_owned(),
                    function: function.to_owned(),
                })
            }
            None => {
                check_function_name(name)?;
                Ok(Fc3Function::Native(name.to_owned()))
            }
        }
    }

    /// The 3.0 view of a stored (service, function) pair.
    pub fn from_stored(service: &str, function: &str) -> Fc3Function {
        if is_hidden_service(service) {
            Fc3Function::Native(function.to_owned())
        } else {
            Fc3Function::V2 {
                service: service.to_owned(),
                function: function.to_owned(),
            }
        }
    }

    /// The 2.0 service the function is stored in.
    pub fn service(&self) -> Cow<'_, str> {
        match self {
            Fc3Function::Native(f) => Cow::Owned(hidden_service(f)),
            Fc3Function::V2 { service, .. } => Cow::Borrowed(service),
        }
    }

    /// The 2.0 function name inside [`Self::service`].
    pub fn function(&self) -> &str {
        match self {
            Fc3Function::Native(f) => f,
            Fc3Function::V2 { function, .. } => function,
        }
    }

    /// The name the 3.0 API shows: `F` or `svc$fn`.
    pub fn name(&self) -> String {
        match self {
            Fc3Function::Native(f) => f.clone(),
            Fc3Function::V2 { service, function } => {
                format!("{service}{V2_SEPARATOR}{function}")
            }
        }
    }

    /// Created through the 3.0 API (`fcVersion` `v3`), rather than a 2.0 function (`v2`).
    pub fn is_native(&self) -> bool {
        matches!(self, Fc3Function::Native(_))
    }

    /// `acs:fc:{region}:{account}:functions/{name}`.
    pub fn arn(&self, region: &str, account: &str) -> String {
        function_arn(region, account, &self.name())
    }
}

/// A 3.0 function's ARN, `acs:fc:{region}:{account}:functions/{name}` (`functionArn`,
/// `targetArn`, tag `ResourceId`).
pub fn function_arn(region: &str, account: &str, name: &str) -> String {
    format!("acs:fc:{region}:{account}:functions/{name}")
}

/// Rewrites an error of the 2.0 layer underneath so it speaks of 3.0 functions: a missing
/// hidden service or its function is `FunctionNotFound` "function 'F' does not exist", and
/// service-worded messages about native functions name the function instead.
pub fn rephrase(e: FcError, f: &Fc3Function) -> FcError {
    let name = f.name();
    match e {
        FcError::ServiceNotFound(_) | FcError::FunctionNotFound { .. } => {
            FcError::Fc3FunctionNotFound(name)
        }
        FcError::FunctionAlreadyExists { .. } | FcError::ServiceAlreadyExists(_) => {
            FcError::Fc3FunctionAlreadyExists(name)
        }
        FcError::VersionNotFound { version, .. } if f.is_native() => FcError::Fc3Message {
            code: "VersionNotFound",
            status: 404,
            message: format!("version '{version}' of function '{name}' does not exist"),
        },
        FcError::AliasNotFound { alias, .. } if f.is_native() => FcError::Fc3Message {
            code: "AliasNotFound",
            status: 404,
            message: format!("alias '{alias}' of function '{name}' does not exist"),
        },
        FcError::AliasAlreadyExists { alias, .. } if f.is_native() => FcError::Fc3Message {
            code: "AliasAlreadyExists",
            status: 409,
            message: format!("alias '{alias}' of function '{name}' already exists"),
        },
        FcError::VersionNotChanged { version, .. } if f.is_native() => FcError::Fc3Message {
            code: "InvalidArgument",
            status: 400,
            message: format!(
                "cannot publish a version of function '{name}': nothing changed since version {version}"
            ),
        },
        FcError::VersionInUse { version, alias, .. } if f.is_native() => FcError::Fc3Message {
            code: "InvalidArgument",
            status: 400,
            message: format!("version {version} of function '{name}' is in use by alias '{alias}'"),
        },
        FcError::TriggerNotFound { trigger, .. } => FcError::Fc3Message {
            code: "TriggerNotFound",
            status: 404,
            message: format!("trigger '{trigger}' of function '{name}' does not exist"),
        },
        FcError::TriggerAlreadyExists { trigger, .. } => FcError::Fc3Message {
            code: "TriggerAlreadyExists",
            status: 409,
            message: format!("trigger '{trigger}' of function '{name}' already exists"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_and_v2_names() {
        let f = Fc3Function::parse("hello").unwrap();
        assert_eq!(f, Fc3Function::Native("hello".into()));
        assert_eq!(f.service(), "~hello");
        assert_eq!(f.function(), "hello");
        assert!(f.is_native());
        let g = Fc3Function::parse("svc$fn").unwrap();
        assert_eq!(g.service(), "svc");
        assert_eq!(g.function(), "fn");
        assert_eq!(g.name(), "svc$fn");
        assert_eq!(
            g.arn("cn-hangzhou", "123"),
            "acs:fc:cn-hangzhou:123:functions/svc$fn"
        );
        assert_eq!(Fc3Function::from_stored("~hello", "hello"), f);
        assert_eq!(Fc3Function::from_stored("svc", "fn"), g);
    }

    #[test]
    fn bad_names_are_refused_with_fc3_wording() {
        for bad in [
            "",
            "1a",
            "-a",
            "a.b",
            "a$",
            "$a",
            "a$b$c",
            "~a",
            &"a".repeat(65),
        ] {
            let e = Fc3Function::parse(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidArgument", "{bad}");
            assert!(
                e.to_string().contains("FunctionName doesn't match"),
                "{bad}"
            );
        }
        assert!(Fc3Function::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn hidden_services_fail_the_2_0_grammar_and_sort_last() {
        let h = hidden_service("zzz");
        assert!(is_hidden_service(&h));
        assert!(crate::names::check_service_name(&h).is_err());
        // Byte order: every valid 2.0 name sorts before every hidden one.
        assert!("zzzz".as_bytes() < h.as_bytes());
        assert!("_".as_bytes() < h.as_bytes());
    }

    #[test]
    fn missing_things_speak_of_functions() {
        let f = Fc3Function::parse("f1").unwrap();
        let e = rephrase(FcError::ServiceNotFound("~f1".into()), &f);
        assert_eq!(e.code(), "FunctionNotFound");
        assert_eq!(e.http_status(), 404);
        assert_eq!(e.to_string(), "function 'f1' does not exist");
        let e = rephrase(
            FcError::AliasNotFound {
                service: "~f1".into(),
                alias: "prod".into(),
            },
            &f,
        );
        assert!(!e.to_string().contains("service"));
        assert_eq!(e.http_status(), 404);
    }
}
