//! Resource-name rules (fc-api.md section 6): letters, digits, `_` and `-`, not starting with a
//! digit or `-`.

use crate::FcError;

fn valid_name(name: &str, max: usize) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    bytes.len() <= max
        && bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

fn check(kind: &str, name: &str, max: usize) -> Result<(), FcError> {
    if valid_name(name, max) {
        Ok(())
    } else {
        Err(FcError::invalid(format!(
            "{kind} name '{name}' is invalid: it must be 1 to {max} characters of letters, digits, '_' and '-', and start with a letter or '_'"
        )))
    }
}

pub fn check_service_name(name: &str) -> Result<(), FcError> {
    check("service", name, 128)
}

pub fn check_function_name(name: &str) -> Result<(), FcError> {
    check("function", name, 64)
}

pub fn check_trigger_name(name: &str) -> Result<(), FcError> {
    check("trigger", name, 128)
}

/// Environment variable keys: a letter first, then letters, digits and `_`.
pub fn check_env_key(key: &str) -> Result<(), FcError> {
    let mut chars = key.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(FcError::invalid(format!(
            "environment variable name '{key}' is invalid: it must start with a letter and contain only letters, digits and '_'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        for ok in ["a", "_x", "demo-svc", "A_b-9", &"s".repeat(128)] {
            assert!(check_service_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "-a", "a.b", "a b", "ä", "a/b", &"s".repeat(129)] {
            assert!(check_service_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn function_names_are_shorter() {
        assert!(check_function_name(&"f".repeat(64)).is_ok());
        assert!(check_function_name(&"f".repeat(65)).is_err());
    }

    #[test]
    fn env_keys() {
        assert!(check_env_key("A_1").is_ok());
        assert!(check_env_key("_A").is_err());
        assert!(check_env_key("A-B").is_err());
        assert!(check_env_key("").is_err());
    }
}
