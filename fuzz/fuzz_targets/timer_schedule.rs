//! Timer triggers: `cronExpression` parsing (`@every`, six-field cron, `CRON_TZ=`), the ticks
//! of what parses (strictly increasing, never a hang: `-timeout` catches an expression whose
//! next tick is searched for too long), and `triggerConfig` parsing of both trigger types with
//! its normalised wire form parsing back to the same configuration.
//!
//! Input: 8 bytes (little-endian i64, the instant ticks are asked after, in Unix seconds),
//! then UTF-8 text: the expression, or with a leading `{` a `triggerConfig` JSON string.
#![no_main]

use fcd_core::schedule::Schedule;
use fcd_core::triggers::TriggerConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((start, text)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    // Up to well past year 9999 either way, beyond what the time crates represent.
    let start = i64::from_le_bytes(*start) % 400_000_000_000;

    if text.trim_start().starts_with('{') {
        for kind in ["http", "timer"] {
            let raw = serde_json::Value::String(text.to_owned());
            if let Ok(config) = TriggerConfig::parse(kind, &raw) {
                let wire = serde_json::Value::String(config.to_wire());
                assert_eq!(
                    TriggerConfig::parse(kind, &wire).ok(),
                    Some(config),
                    "the normalised {kind} triggerConfig parses back to itself"
                );
            }
        }
        return;
    }

    let Ok(schedule) = Schedule::parse(text) else {
        return;
    };
    assert_eq!(schedule.expression(), text.trim());
    let mut t = start;
    for _ in 0..8 {
        let Some(next) = schedule.next_after_unix(t) else {
            break;
        };
        assert!(next > t, "{text}: tick {next} is not after {t}");
        t = next;
    }
});
