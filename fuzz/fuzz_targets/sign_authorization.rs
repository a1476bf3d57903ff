//! `Authorization` header parsing, both schemes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &str| {
    if let Ok(auth) = fcd_sign::Authorization::parse(header) {
        assert!(!auth.access_key_id().is_empty());
    }
});
