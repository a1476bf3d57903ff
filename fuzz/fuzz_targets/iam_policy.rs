//! RAM policies: parsing, evaluation and session narrowing; trust policies.
//!
//! Input: 8 bytes of request context (source address, transport, time), then UTF-8 text split
//! at NUL into the policy, the action, the resource and a session policy (seeds in
//! `fuzz/seeds/iam_policy` are written that way).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use fcd_iam::{Decision, Policy, RequestContext, TrustPolicy, TrustedPrincipal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (head, rest) = data.split_at(8);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = text.split('\0');
    let doc = parts.next().unwrap_or("");
    let action = parts.next().unwrap_or("fc:InvokeFunction");
    let resource = parts
        .next()
        .unwrap_or("acs:fc:cn-hangzhou:123:services/s.LATEST/functions/f");
    let session_doc = parts.next();

    let source_ip = match head[0] % 4 {
        0 => None,
        1 => Some(IpAddr::V4(Ipv4Addr::new(
            head[1], head[2], head[3], head[4],
        ))),
        2 => Some(IpAddr::V6(
            Ipv4Addr::new(head[1], head[2], head[3], head[4]).to_ipv6_mapped(),
        )),
        _ => Some(IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            u16::from(head[1]),
            u16::from(head[2]),
        ))),
    };
    let secs = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]])) * 4;
    let ctx = RequestContext {
        action,
        resource,
        source_ip,
        current_time: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        secure_transport: head[0] & 4 != 0,
    };

    if let Ok(policy) = Policy::parse(doc) {
        let alone = policy.evaluate(&ctx);
        assert_eq!(fcd_iam::evaluate([&policy], &ctx), alone);
        if let Some(session) = session_doc.and_then(|d| Policy::parse(d).ok()) {
            let narrowed = fcd_iam::evaluate_session([&policy], Some(&session), &ctx);
            // Narrowing never widens, and a denial stays a denial.
            if narrowed.is_allowed() {
                assert!(alone.is_allowed() && session.evaluate(&ctx).is_allowed());
            }
            if alone == Decision::ExplicitDeny {
                assert_eq!(narrowed, Decision::ExplicitDeny);
            }
        }
    }
    if let Ok(trust) = TrustPolicy::parse(doc) {
        let _ = trust.trusts(&TrustedPrincipal::Ram {
            account_id: action,
            arn: resource,
        });
        let _ = trust.trusts(&TrustedPrincipal::Service(action));
    }
});
