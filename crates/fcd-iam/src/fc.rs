//! Which RAM action and resource each FC API request is. One table for both API versions
//! (`/2021-04-06/…` and `/2016-08-15/…` carry the same resources).

/// The authorization subject of one FC request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcOperation {
    /// `fc:InvokeFunction`, `fc:ListServices`, …
    pub action: &'static str,
    /// The resource relative to `acs:fc:<region>:<account>:`, e.g.
    /// `services/svc.prod/functions/f`.
    pub resource: String,
}

/// The operation of an FC API request, from its method, its full path (with the version
/// prefix, as received, still percent-encoded) and its `qualifier` query parameter. `None`
/// when the path is not an FC operation (the router then answers `PathNotSupported`).
///
/// InvokeFunction is always qualified (`services/{s}.{q}/functions/{f}`, `LATEST` when no
/// qualifier is given); other operations that take a qualifier are qualified only when one is
/// given.
pub fn operation(method: &str, path: &str, qualifier: Option<&str>) -> Option<FcOperation> {
    let _ = (method, path, qualifier);
    todo!("fcd-iam FC operation table")
}

/// `acs:fc:{region}:{account}:{relative}`.
pub fn arn(region: &str, account_id: &str, relative: &str) -> String {
    format!("acs:fc:{region}:{account_id}:{relative}")
}
