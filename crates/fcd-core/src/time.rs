//! Timestamps in the format FC puts in `createdTime` / `lastModifiedTime`.

use time::OffsetDateTime;
use time::macros::format_description;

/// Formats a UTC instant as `2006-01-02T15:04:05Z`.
pub fn fc_timestamp(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The current time as an FC timestamp.
pub fn now() -> String {
    fc_timestamp(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_like_fc() {
        let t = time::macros::datetime!(2024-01-02 03:04:05 UTC);
        assert_eq!(super::fc_timestamp(t), "2024-01-02T03:04:05Z");
    }
}
