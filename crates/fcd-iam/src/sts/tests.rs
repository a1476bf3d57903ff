use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn claims(policy: Option<String>) -> SessionClaims {
    SessionClaims {
        access_key_id: "ignored".into(),
        account_id: "1234567890".into(),
        role_name: "fc-role".into(),
        role_id: "300000000000000001".into(),
        session_name: "session-1".into(),
        issued_at: 1_000,
        expires_at: 4_600,
        session_policy: policy,
    }
}

fn key() -> TokenKey {
    TokenKey::derive(b"root secret")
}

#[test]
fn mint_and_verify() {
    let k = key();
    let (creds, minted) = k.mint(claims(None));
    assert!(TokenKey::is_temporary(&creds.access_key_id));
    assert_eq!(creds.access_key_id, minted.access_key_id);
    assert_eq!(creds.access_key_id.len(), 4 + 24);
    assert!(
        creds.access_key_id[4..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
    );
    assert_eq!(creds.expires_at, 4_600);
    assert_eq!(creds.access_key_secret, k.secret_for(&creds.access_key_id));
    assert_eq!(creds.access_key_secret.len(), 40);
    let got = k.verify(&creds.access_key_id, &creds.security_token, at(2_000));
    assert_eq!(got, Ok(minted.clone()));
    // Another node with the same material agrees, without any shared state.
    let other_node = TokenKey::derive(b"root secret");
    assert_eq!(
        other_node.verify(&creds.access_key_id, &creds.security_token, at(2_000)),
        Ok(minted)
    );
    assert_eq!(
        other_node.secret_for(&creds.access_key_id),
        creds.access_key_secret
    );
}

#[test]
fn fresh_ids_and_secrets() {
    let k = key();
    let (a, _) = k.mint(claims(None));
    let (b, _) = k.mint(claims(None));
    assert_ne!(a.access_key_id, b.access_key_id);
    assert_ne!(a.access_key_secret, b.access_key_secret);
    assert_ne!(a.security_token, b.security_token);
    assert_ne!(
        key().secret_for("STS.a"),
        TokenKey::derive(b"other").secret_for("STS.a")
    );
}

#[test]
fn refusals() {
    let k = key();
    let (creds, _) = k.mint(claims(None));
    let id = &creds.access_key_id;
    let token = &creds.security_token;
    assert_eq!(k.verify(id, token, at(4_600)), Err(TokenError::Expired));
    assert_eq!(
        k.verify(id, token, at(u64::MAX / 2)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        k.verify("STS.other", token, at(2_000)),
        Err(TokenError::MismatchWithAccessKey("STS.other".into()))
    );
    assert_eq!(
        TokenKey::derive(b"another secret").verify(id, token, at(2_000)),
        Err(TokenError::Malformed)
    );
    for bad in [
        "",
        "x",
        "====",
        "!!!!",
        "AQ",
        &format!("{token}="),
        &format!(" {token}"),
    ] {
        assert_eq!(
            k.verify(id, bad, at(2_000)),
            Err(TokenError::Malformed),
            "{bad:?}"
        );
    }
    // Before the epoch counts as the epoch: still valid.
    assert!(
        k.verify(id, token, SystemTime::UNIX_EPOCH - Duration::from_secs(5))
            .is_ok()
    );
}

#[test]
fn every_one_character_change_is_refused() {
    let k = key();
    let (creds, _) = k.mint(claims(Some(r#"{"Version":"1","Statement":[]}"#.into())));
    let token = creds.security_token.as_bytes();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..token.len() {
        for &c in alphabet {
            if c == token[i] {
                continue;
            }
            let mut t = token.to_vec();
            t[i] = c;
            let t = String::from_utf8(t).unwrap();
            assert!(
                k.verify(&creds.access_key_id, &t, at(2_000)).is_err(),
                "position {i} changed to {}",
                c as char
            );
        }
    }
    // Truncated and extended.
    let t = &creds.security_token;
    assert!(
        k.verify(&creds.access_key_id, &t[..t.len() - 1], at(2_000))
            .is_err()
    );
    assert!(
        k.verify(&creds.access_key_id, &format!("{t}A"), at(2_000))
            .is_err()
    );
}

#[test]
fn forged_claims_with_a_valid_shape_are_refused() {
    let k = key();
    let (creds, mut minted) = k.mint(claims(None));
    // Re-encode edited claims with the original MAC.
    let bytes = URL_SAFE_NO_PAD.decode(&creds.security_token).unwrap();
    let tag = &bytes[bytes.len() - MAC_LEN..];
    minted.expires_at = u64::MAX;
    let mut forged = vec![TOKEN_VERSION];
    forged.extend(serde_json::to_vec(&minted).unwrap());
    forged.extend_from_slice(tag);
    let forged = URL_SAFE_NO_PAD.encode(&forged);
    assert_eq!(
        k.verify(&creds.access_key_id, &forged, at(2_000)),
        Err(TokenError::Malformed)
    );
}

#[test]
fn tokens_stay_small_and_header_safe() {
    // A 2,048-character session policy, heavy on characters JSON escapes.
    let resources: Vec<String> = (0..200)
        .map(|i| format!("\"acs:fc:*:*:services/s{i:03}/*\""))
        .collect();
    let mut policy = format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"fc:*","Resource":[{}]}}]}}"#,
        resources.join(",")
    );
    policy.truncate(MAX_SESSION_POLICY_CHARS);
    assert_eq!(policy.chars().count(), MAX_SESSION_POLICY_CHARS);
    let (creds, _) = key().mint(claims(Some(policy)));
    let len = creds.security_token.len();
    assert!(len < 4_096, "token is {len} bytes");
    assert!(
        creds
            .security_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(http_header_value_ok(&creds.access_key_secret));
}

fn http_header_value_ok(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

#[test]
fn debug_never_shows_secrets() {
    let k = key();
    let (creds, _) = k.mint(claims(None));
    assert_eq!(format!("{k:?}"), "TokenKey(..)");
    let shown = format!("{creds:?}");
    assert!(!shown.contains(&creds.access_key_secret));
    assert!(!shown.contains(&creds.security_token));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(
        account in "[0-9]{1,16}",
        role in "[A-Za-z0-9.-]{1,64}",
        session in "[A-Za-z0-9.@_-]{2,64}",
        policy in prop::option::of("\\PC{0,300}"),
        issued in 0u64..4_000_000_000,
        ttl in 1u64..50_000,
        material in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let k = TokenKey::derive(&material);
        let c = SessionClaims {
            access_key_id: String::new(),
            account_id: account,
            role_name: role,
            role_id: "1".into(),
            session_name: session,
            issued_at: issued,
            expires_at: issued + ttl,
            session_policy: policy,
        };
        let (creds, minted) = k.mint(c);
        prop_assert_eq!(
            k.verify(&creds.access_key_id, &creds.security_token, at(issued)),
            Ok(minted)
        );
        prop_assert_eq!(
            k.verify(&creds.access_key_id, &creds.security_token, at(issued + ttl)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampering_is_refused(pos in any::<prop::sample::Index>(), c in "[A-Za-z0-9_-]") {
        let k = key();
        let (creds, _) = k.mint(claims(None));
        let mut t: Vec<char> = creds.security_token.chars().collect();
        let i = pos.index(t.len());
        let replacement = c.chars().next().unwrap();
        prop_assume!(t[i] != replacement);
        t[i] = replacement;
        let t: String = t.into_iter().collect();
        prop_assert!(k.verify(&creds.access_key_id, &t, at(2_000)).is_err());
    }

    #[test]
    fn verify_never_panics(token in "\\PC{0,200}", id in "\\PC{0,30}", now in any::<u64>()) {
        let _ = key().verify(&id, &token, at(now / 2));
    }

    #[test]
    fn verify_never_panics_on_base64(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let token = URL_SAFE_NO_PAD.encode(&bytes);
        prop_assert!(key().verify("STS.x", &token, at(0)).is_err());
    }
}
