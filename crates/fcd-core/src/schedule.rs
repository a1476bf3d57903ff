//! When a timer trigger fires: FC's `cronExpression` forms, parsed once and asked for the next
//! tick after an instant.
//!
//! Forms accepted (FC's documented ones):
//! - `@every <duration>`: Go duration syntax (`30m`, `1h30m`, `1.5h`, `90s`; units `h`, `m`,
//!   `s`, `ms`, `us`/`µs`, `ns`). FC's console offers whole minutes only, so fcd enforces a
//!   period of at least one minute and in whole seconds. Ticks fall on multiples of the period
//!   since the Unix epoch (`@every 5m` fires at :00, :05, … UTC): a tick is then a pure function
//!   of the expression, the same before and after a restart, which is what lets the scheduler
//!   fire each tick exactly once.
//! - Six-field cron with seconds first, `second minute hour day-of-month month day-of-week`, in
//!   UTC: `*`, ranges `a-b`, lists `a,b`, steps `*/n`, `a-b/n` and `a/n`, `?` in the two day
//!   fields, month names `JAN`–`DEC` and day names `SUN`–`SAT` (any case); day-of-week 0–6 with
//!   0 = Sunday (7 is Sunday as well). When both day fields are restricted a day matching
//!   either fires (the cron convention FC's Go scheduler follows). Quartz extensions (`L`, `W`,
//!   `#`) and five-field crontab lines are refused: FC does not document them, and a five-field
//!   line read as six fields would silently mean something else.
//! - A time-zone prefix, `CRON_TZ=Asia/Shanghai 0 0 4 1 * *` (FC's form; `TZ=` is accepted as
//!   the same), resolved from the system tz database (`/usr/share/zoneinfo`, or `$TZDIR`).
//!
//! Parsing uses the `croner` crate for the cron arithmetic (DST gaps and folds included); what
//! is checked here is which of croner's dialect FC admits.

use std::fmt;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use time::OffsetDateTime;

use crate::FcError;

/// The shortest `@every` period fcd accepts.
pub const EVERY_MIN_SECS: i64 = 60;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIELDS: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
];

/// A parsed `cronExpression`.
#[derive(Clone)]
pub struct Schedule {
    kind: Kind,
    expression: String,
}

#[derive(Clone)]
enum Kind {
    Every { period_secs: i64 },
    Cron { cron: Box<Cron>, zone: TimeZone },
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.expression).finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

fn refuse(expr: &str, why: impl fmt::Display) -> FcError {
    FcError::invalid(format!(
        "triggerConfig.cronExpression '{expr}' is invalid: {why}"
    ))
}

impl Schedule {
    /// Parses a `cronExpression`; anything FC would not run is `InvalidArgument` saying why.
    pub fn parse(expression: &str) -> Result<Schedule, FcError> {
        let expr = expression.trim();
        let (zone, rest) = split_zone(expr)?;
        let kind = if let Some(d) = rest.strip_prefix("@every") {
            if !d.starts_with(char::is_whitespace) {
                return Err(refuse(
                    expr,
                    "expected '@every <duration>', e.g. '@every 5m'",
                ));
            }
            let nanos = parse_go_duration(d.trim()).map_err(|why| refuse(expr, why))?;
            if nanos % 1_000_000_000 != 0 {
                return Err(refuse(expr, "the period must be a whole number of seconds"));
            }
            let period_secs = i64::try_from(nanos / 1_000_000_000)
                .map_err(|_| refuse(expr, "the period is too long"))?;
            if period_secs < EVERY_MIN_SECS {
                return Err(refuse(expr, "the period must be at least 1 minute"));
            }
            Kind::Every { period_secs }
        } else if rest.starts_with('@') {
            return Err(refuse(
                expr,
                "the only '@' form is '@every <duration>'; use a six-field cron expression otherwise",
            ));
        } else {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() != 6 {
                return Err(refuse(
                    expr,
                    format!(
                        "expected six fields (second minute hour day-of-month month day-of-week), found {}",
                        fields.len()
                    ),
                ));
            }
            for (i, field) in fields.iter().enumerate() {
                check_field(i, field).map_err(|why| refuse(expr, why))?;
            }
            let cron = CronParser::builder()
                .seconds(Seconds::Required)
                .year(Year::Disallowed)
                .sloppy_ranges(true)
                .build()
                .parse(&fields.join(" "))
                .map_err(|e| refuse(expr, e))?;
            Kind::Cron {
                cron: Box::new(cron),
                zone,
            }
        };
        let schedule = Schedule {
            kind,
            expression: expr.to_owned(),
        };
        // A valid-looking expression that never matches (`0 0 0 30 2 *`) is refused too: it
        // would be a trigger that silently never fires.
        if schedule
            .next_after_unix(OffsetDateTime::now_utc().unix_timestamp())
            .is_none()
        {
            return Err(refuse(expr, "it never fires"));
        }
        Ok(schedule)
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        self.next_after_unix(after.unix_timestamp())
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    }

    /// The first tick (Unix seconds) strictly after the second `after`. Ticks are whole seconds,
    /// so "after 12:00:00.5" and "after 12:00:00" are the same question.
    pub fn next_after_unix(&self, after: i64) -> Option<i64> {
        match &self.kind {
            Kind::Every { period_secs } => after
                .div_euclid(*period_secs)
                .checked_add(1)?
                .checked_mul(*period_secs),
            Kind::Cron { cron, zone } => {
                let start = Timestamp::from_second(after).ok()?.to_zoned(zone.clone());
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp().as_second())
            }
        }
    }
}

/// Splits off `CRON_TZ=<zone> ` (or `TZ=<zone> `); UTC when there is none.
fn split_zone(expr: &str) -> Result<(TimeZone, &str), FcError> {
    let Some(rest) = expr
        .strip_prefix("CRON_TZ=")
        .or_else(|| expr.strip_prefix("TZ="))
    else {
        return Ok((TimeZone::UTC, expr));
    };
    let (name, rest) = rest
        .split_once(char::is_whitespace)
        .ok_or_else(|| refuse(expr, "a schedule must follow the time zone"))?;
    let zone = if name.eq_ignore_ascii_case("UTC") {
        TimeZone::UTC
    } else {
        jiff::tz::db().get(name).map_err(|_| {
            refuse(
                expr,
                format!("unknown time zone '{name}' (expected an IANA name such as Asia/Shanghai)"),
            )
        })?
    };
    Ok((zone, rest.trim_start()))
}

/// Admits FC's characters in field `index`: digits, `* , - /`, `?` in the day fields, and
/// names in the month and day-of-week fields.
fn check_field(index: usize, field: &str) -> Result<(), String> {
    let name = FIELDS[index];
    for c in field.chars() {
        let ok = c.is_ascii_alphanumeric()
            || matches!(c, '*' | ',' | '-' | '/')
            || (c == '?' && (index == 3 || index == 5));
        if !ok {
            return Err(format!("'{c}' is not allowed in the {name} field"));
        }
    }
    for token in field.split([',', '-', '/']) {
        if token.is_empty() {
            return Err(format!("the {name} field '{field}' has an empty part"));
        }
        if token.bytes().all(|b| b.is_ascii_digit()) || token == "*" || token == "?" {
            continue;
        }
        let upper = token.to_ascii_uppercase();
        let named = match index {
            4 => MONTHS.contains(&upper.as_str()),
            5 => DAYS.contains(&upper.as_str()),
            _ => false,
        };
        if !named {
            return Err(format!(
                "'{token}' is not a valid value of the {name} field"
            ));
        }
    }
    Ok(())
}

/// Go's `time.ParseDuration`, in nanoseconds; negative and zero durations are refused.
fn parse_go_duration(s: &str) -> Result<u128, String> {
    const UNITS: [(&str, u128); 8] = [
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("μs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    let bad = || format!("'{s}' is not a duration (examples: 5m, 1h30m, 1.5h)");
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .ok_or_else(bad)?;
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(bad)?;
        if !frac.is_empty() {
            // Digits past nanosecond precision cannot change the result.
            let digits = &frac[..frac.len().min(18)];
            let f: u128 = digits.parse().map_err(|_| bad())?;
            // Checked: a whole part just below u128's limit plus a fraction overflows.
            part = part
                .checked_add(f * scale / 10u128.pow(digits.len() as u32))
                .ok_or_else(bad)?;
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = after;
    }
    if total == 0 {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn next(expr: &str, after: OffsetDateTime) -> OffsetDateTime {
        Schedule::parse(expr).unwrap().next_after(after).unwrap()
    }

    fn ticks(expr: &str, after: OffsetDateTime, n: usize) -> Vec<OffsetDateTime> {
        let s = Schedule::parse(expr).unwrap();
        let mut out = Vec::new();
        let mut t = after;
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn go_durations() {
        let cases: [(&str, u128); 7] = [
            ("5m", 300),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("90s", 90),
            ("2h45m30s", 9930),
            ("+1m", 60),
            ("60000ms", 60),
        ];
        for (s, secs) in cases {
            assert_eq!(parse_go_duration(s).unwrap(), secs * 1_000_000_000, "{s}");
        }
        for bad in ["", "5", "m", "5d", "-5m", "1h 30m", "0m", "1..5h", "5M"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        // Regression (found by property testing): the largest whole number of hours u128 holds
        // in nanoseconds, plus half an hour, overflowed (a panic with overflow checks on).
        assert!(parse_go_duration("94522879700260684295381835.5h").is_err());
        assert!(Schedule::parse("@every 94522879700260684295381835.5h").is_err());
    }

    #[test]
    fn every_ticks_on_multiples_of_the_period_since_the_epoch() {
        let t = datetime!(2026-12-01 03:04:05 UTC);
        assert_eq!(next("@every 1m", t), datetime!(2026-12-01 03:05:00 UTC));
        assert_eq!(next("@every 5m", t), datetime!(2026-12-01 03:05:00 UTC));
        assert_eq!(next("@every 1h30m", t), datetime!(2026-12-01 04:30:00 UTC));
        // Strictly after: a tick instant itself is not returned again.
        let on_tick = datetime!(2026-12-01 03:05:00 UTC);
        assert_eq!(
            next("@every 5m", on_tick),
            datetime!(2026-12-01 03:10:00 UTC)
        );
        // Sub-second parts of `after` do not matter.
        let late = datetime!(2026-12-01 03:04:59.999 UTC);
        assert_eq!(next("@every 1m", late), datetime!(2026-12-01 03:05:00 UTC));
        // The time zone prefix changes nothing for an interval.
        assert_eq!(
            next("CRON_TZ=Asia/Shanghai @every 5m", t),
            datetime!(2026-12-01 03:05:00 UTC)
        );
    }

    #[test]
    fn every_is_refused_below_a_minute_or_off_whole_seconds() {
        for bad in [
            "@every 30s",
            "@every 59s",
            "@every 90.5s",
            "@every",
            "@every5m",
            "@every 5",
            "@daily",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidArgument", "{bad}");
            assert!(e.to_string().contains("cronExpression"), "{bad}: {e}");
        }
        assert!(Schedule::parse("@every 60s").is_ok());
        assert!(Schedule::parse("  @every 1m  ").is_ok());
    }

    #[test]
    fn six_field_cron_in_utc() {
        let t = datetime!(2026-12-01 03:04:05 UTC);
        assert_eq!(
            ticks("*/2 * * * * *", t, 3),
            [
                datetime!(2026-12-01 03:04:06 UTC),
                datetime!(2026-12-01 03:04:08 UTC),
                datetime!(2026-12-01 03:04:10 UTC)
            ]
        );
        assert_eq!(next("0 0 4 * * *", t), datetime!(2026-12-01 04:00:00 UTC));
        assert_eq!(next("0 0 2 * * *", t), datetime!(2026-12-02 02:00:00 UTC));
        // Ranges, lists and steps.
        assert_eq!(
            ticks("0 10-20/5 3 * * *", t, 3),
            [
                datetime!(2026-12-01 03:10:00 UTC),
                datetime!(2026-12-01 03:15:00 UTC),
                datetime!(2026-12-01 03:20:00 UTC)
            ]
        );
        assert_eq!(
            ticks("0 0 1,13 * * *", t, 2),
            [
                datetime!(2026-12-01 13:00:00 UTC),
                datetime!(2026-12-02 01:00:00 UTC)
            ]
        );
        // `a/n` runs from a to the end of the field.
        assert_eq!(
            next("0 50/5 * * * *", t),
            datetime!(2026-12-01 03:50:00 UTC)
        );
    }

    #[test]
    fn names_question_marks_and_day_fields() {
        // 2026-12-01 is a Tuesday.
        let t = datetime!(2026-12-01 03:04:05 UTC);
        assert_eq!(
            next("0 0 8 ? * MON-FRI", t),
            datetime!(2026-12-01 08:00:00 UTC)
        );
        assert_eq!(next("0 0 8 ? * sat", t), datetime!(2026-12-05 08:00:00 UTC));
        assert_eq!(next("0 0 8 ? * 0", t), datetime!(2026-12-06 08:00:00 UTC));
        assert_eq!(next("0 0 8 ? * 7", t), datetime!(2026-12-06 08:00:00 UTC));
        assert_eq!(
            next("0 0 0 1 jan,Jul ?", t),
            datetime!(2027-01-01 00:00:00 UTC)
        );
        assert_eq!(next("0 0 0 29 2 *", t), datetime!(2028-02-29 00:00:00 UTC));
        // Both day fields restricted: either matches (the 15th, or a Friday).
        assert_eq!(
            ticks("0 0 0 15 * FRI", t, 3),
            [
                datetime!(2026-12-04 00:00:00 UTC),
                datetime!(2026-12-11 00:00:00 UTC),
                datetime!(2026-12-15 00:00:00 UTC)
            ]
        );
    }

    #[test]
    fn cron_tz_prefix() {
        let t = datetime!(2026-12-01 03:04:05 UTC);
        // 04:00 on the 1st in UTC+8 is 20:00 UTC the day before.
        assert_eq!(
            next("CRON_TZ=Asia/Shanghai 0 0 4 1 * *", t),
            datetime!(2026-12-31 20:00:00 UTC)
        );
        assert_eq!(
            next("TZ=Asia/Shanghai 0 0 12 * * *", t),
            datetime!(2026-12-01 04:00:00 UTC)
        );
        assert_eq!(
            next("CRON_TZ=UTC 0 0 4 * * *", t),
            datetime!(2026-12-01 04:00:00 UTC)
        );
        // Daylight saving: 02:30 does not exist in Berlin on 2026-03-29; it runs once, at 03:00
        // local (01:00 UTC), and the day after at 02:30 local (00:30 UTC) again.
        let spring = datetime!(2026-03-28 12:00:00 UTC);
        assert_eq!(
            ticks("CRON_TZ=Europe/Berlin 0 30 2 * * *", spring, 2),
            [
                datetime!(2026-03-29 01:00:00 UTC),
                datetime!(2026-03-30 00:30:00 UTC)
            ]
        );
        for bad in ["CRON_TZ=Mars/Olympus 0 0 4 * * *", "CRON_TZ=Asia/Shanghai"] {
            assert_eq!(
                Schedule::parse(bad).unwrap_err().code(),
                "InvalidArgument",
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_cron_is_refused_with_a_reason() {
        for (bad, says) in [
            ("* * * * *", "six fields"),
            ("0 0 0 * * * 2027", "six fields"),
            ("61 * * * * *", "cronExpression"),
            ("0 0 25 * * *", "cronExpression"),
            ("0 0 0 L * *", "'L'"),
            ("0 0 0 ? * 5#2", "'#'"),
            ("0 0 0 15W * *", "15W"),
            ("0 0 0 * FOO *", "FOO"),
            ("0 0 0 * * JAN", "JAN"),
            ("? * * * * *", "'?'"),
            ("0 0 0 30 2 *", "never fires"),
            ("0 0 0 1,,2 * *", "empty part"),
            ("0 0 0 1-* * *", "cronExpression"),
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidArgument", "{bad}");
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }
}

/// Properties over generated expressions (the `fuzz/` target `timer_schedule` explores the same
/// ground without bounds): parsing never panics, and a parsed schedule's ticks are strictly
/// increasing, whole seconds, and for `@every` on the period's grid.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// One cron field (`index` 0 to 5) as a client may write it: mostly FC's forms over the
    /// field's range, sometimes out of range, names, `?`, Quartz letters or stray text.
    fn field(index: usize) -> impl Strategy<Value = String> {
        let (lo, hi) = [(0u32, 59u32), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)][index];
        let names = match index {
            4 => MONTHS.to_vec(),
            5 => DAYS.to_vec(),
            _ => vec!["JAN", "MON"],
        };
        let value = prop_oneof![
            30 => (lo..=hi).prop_map(|n| n.to_string()),
            1 => (0u32..100).prop_map(|n| n.to_string()),
            if index >= 4 { 10 } else { 1 } =>
                prop::sample::select(names).prop_map(|s| s.to_lowercase()),
        ];
        let item = prop_oneof![
            4 => value.clone(),
            2 => (value.clone(), value.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
            2 => (prop_oneof![Just("*".to_owned()), value.clone()], 1u32..40)
                .prop_map(|(a, n)| format!("{a}/{n}")),
            1 => (value.clone(), value, 1u32..10).prop_map(|(a, b, n)| format!("{a}-{b}/{n}")),
        ];
        prop_oneof![
            20 => Just("*".to_owned()),
            if index == 3 || index == 5 { 5 } else { 1 } => Just("?".to_owned()),
            30 => prop::collection::vec(item, 1..4).prop_map(|v| v.join(",")),
            1 => "[LW#?a-z0-9,/*-]{1,4}",
            1 => "\\PC{0,2}",
        ]
    }

    fn expression() -> impl Strategy<Value = String> {
        let zone = prop_oneof![
            4 => Just(String::new()),
            1 => Just("CRON_TZ=Asia/Shanghai ".to_owned()),
            1 => Just("TZ=Europe/Berlin ".to_owned()),
            1 => Just("CRON_TZ=America/New_York ".to_owned()),
            1 => Just("CRON_TZ=utc ".to_owned()),
            1 => "(CRON_)?TZ=\\PC{0,12} ?",
        ];
        let body = prop_oneof![
            6 => (field(0), field(1), field(2), field(3), field(4), field(5))
                .prop_map(|f| [f.0, f.1, f.2, f.3, f.4, f.5].join(" ")),
            1 => (field(0), field(2), field(4), field(5)).prop_map(|f| [f.0, f.1, f.2, f.3].join(" ")),
            1 => (field(0), field(1), field(2), field(3), field(4), field(5), field(1))
                .prop_map(|f| [f.0, f.1, f.2, f.3, f.4, f.5, f.6].join(" ")),
            2 => "[0-9.]{1,6}(ns|us|µs|ms|s|m|h|d|M)?([0-9.]{1,4}(s|m|h))?"
                .prop_map(|d| format!("@every {d}")),
            1 => "@every [0-9]{15,40}(\\.[0-9]{1,20})?(ns|us|ms|s|m|h)",
            1 => "\\PC{0,40}",
        ];
        (zone, body).prop_map(|(z, b)| format!("{z}{b}"))
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = Schedule::parse(&s);
        }

        #[test]
        fn go_durations_near_the_limit_never_panic(
            unit in prop::sample::select(vec![("ns", 1u128), ("us", 1_000), ("ms", 1_000_000),
                ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)]),
            below in 0u128..3,
            frac in "[0-9]{1,20}",
        ) {
            let whole = u128::MAX / unit.1 - below;
            let _ = parse_go_duration(&format!("{whole}.{frac}{}", unit.0));
            let _ = parse_go_duration(&format!("{whole}{}1{}", unit.0, unit.0));
        }

        #[test]
        fn go_durations_never_panic(s in "[+-]?([0-9]{0,42}(\\.[0-9]{0,30})?(ns|us|µs|ms|s|m|h|x)?){0,4}") {
            let _ = parse_go_duration(&s);
        }

        #[test]
        fn go_durations_add_up(parts in prop::collection::vec((0u64..100_000, 0usize..8), 1..5)) {
            const SCALE: [(&str, u128); 6] = [
                ("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
                ("m", 60_000_000_000), ("h", 3_600_000_000_000),
            ];
            let text: String = parts.iter().map(|(n, u)| format!("{n}{}", SCALE[u % 6].0)).collect();
            let want: u128 = parts.iter().map(|(n, u)| u128::from(*n) * SCALE[u % 6].1).sum();
            if want == 0 {
                prop_assert!(parse_go_duration(&text).is_err());
            } else {
                prop_assert_eq!(parse_go_duration(&text), Ok(want), "{}", text);
            }
        }

        #[test]
        fn ticks_are_strictly_increasing(
            expr in expression(),
            // From before the epoch to past year 9999 (beyond what jiff and time represent).
            start in -100_000_000_000i64..300_000_000_000,
        ) {
            let Ok(schedule) = Schedule::parse(&expr) else {
                return Ok(());
            };
            let mut t = start;
            for _ in 0..16 {
                let Some(next) = schedule.next_after_unix(t) else {
                    break;
                };
                prop_assert!(next > t, "{}: {} after {}", expr, next, t);
                if let Kind::Every { period_secs } = schedule.kind {
                    prop_assert_eq!(next.rem_euclid(period_secs), 0);
                    prop_assert!(next - t <= period_secs);
                }
                // The OffsetDateTime form agrees wherever it can represent the instant.
                if let (Ok(at), Ok(n)) = (
                    OffsetDateTime::from_unix_timestamp(t),
                    OffsetDateTime::from_unix_timestamp(next),
                ) {
                    prop_assert_eq!(schedule.next_after(at), Some(n));
                }
                t = next;
            }
        }

        #[test]
        fn every_with_whole_minutes_always_parses(minutes in 1u64..10_000_000) {
            let s = Schedule::parse(&format!("@every {minutes}m")).unwrap();
            let period = i64::try_from(minutes * 60).unwrap();
            prop_assert_eq!(s.next_after_unix(0), Some(period));
            prop_assert_eq!(s.next_after_unix(-1), Some(0));
        }
    }
}
