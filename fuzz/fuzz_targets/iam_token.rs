//! STS security tokens: verifying arbitrary tokens never panics; minted tokens round-trip and
//! any one-character change is refused.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use fcd_iam::{SessionClaims, TokenKey};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    presented_id: String,
    token: String,
    now: u32,
    account_id: String,
    role_name: String,
    session_name: String,
    session_policy: Option<String>,
    issued_at: u32,
    ttl: u16,
    tamper_at: usize,
    tamper_with: u8,
}

fuzz_target!(|input: Input| {
    let key = TokenKey::derive(b"fuzzing material");
    let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let _ = key.verify(&input.presented_id, &input.token, at(u64::from(input.now)));

    let issued = u64::from(input.issued_at);
    let expires = issued + u64::from(input.ttl) + 1;
    let (creds, claims) = key.mint(SessionClaims {
        access_key_id: String::new(),
        account_id: input.account_id,
        role_name: input.role_name,
        role_id: "1".into(),
        session_name: input.session_name,
        issued_at: issued,
        expires_at: expires,
        session_policy: input.session_policy,
    });
    assert_eq!(
        key.secret_for(&creds.access_key_id),
        creds.access_key_secret
    );
    assert_eq!(
        key.verify(&creds.access_key_id, &creds.security_token, at(issued)),
        Ok(claims)
    );
    assert!(
        key.verify(&creds.access_key_id, &creds.security_token, at(expires))
            .is_err()
    );

    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut tampered = creds.security_token.into_bytes();
    let i = input.tamper_at % tampered.len();
    let c = ALPHABET[usize::from(input.tamper_with) % ALPHABET.len()];
    if tampered[i] != c {
        tampered[i] = c;
        let tampered = String::from_utf8(tampered).expect("base64url is ASCII");
        assert!(
            key.verify(&creds.access_key_id, &tampered, at(issued))
                .is_err()
        );
    }
});
