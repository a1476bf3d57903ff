//! The FC operation table: any method, path and query.
//!
//! Input: UTF-8 text split at NUL into method, path and query string.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut parts = text.split('\0');
    let method = parts.next().unwrap_or("GET");
    let path = parts.next().unwrap_or("");
    let query = parts.next();
    let qualifier = fcd_iam::fc::query_qualifier(query);
    if let Some(op) = fcd_iam::fc::operation(method, path, qualifier.as_deref()) {
        assert!(op.action.starts_with("fc:"));
        let _ = fcd_iam::fc::arn("cn-hangzhou", "123", &op.resource);
    }
});
