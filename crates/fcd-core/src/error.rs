//! The single error type of the platform and its mapping to FC error codes and HTTP statuses.
//!
//! Every layer converts its own failures into [`FcError`]; the API layer renders it as FC's error
//! body. Keeping the code/status table here means the mapping lives in exactly one place.

/// A platform error as Function Compute reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FcError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("required HTTP header {0} was not specified")]
    MissingRequiredHeader(String),
    #[error("'{method}' against '{path}' is not supported")]
    PathNotSupported { method: String, path: String },
    #[error("payload size exceeds maximum allowed size ({limit} bytes)")]
    EntityTooLarge { limit: u64 },
    #[error("{0}")]
    AccessDenied(String),
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your access key and signing method"
    )]
    SignatureNotMatch,
    #[error("invalid access key ID '{0}'")]
    InvalidAccessKeyId(String),
    #[error("the difference between the request time '{0}' and the server's time is too large")]
    RequestTimeTooSkewed(String),
    /// An ACS3 request whose `x-acs-signature-nonce` was already used within the skew window.
    #[error("The request signature nonce has been used.")]
    SignatureNonceUsed,
    /// A signed request dated before the oldest moment the replay cache still covers: under
    /// extreme load the remembered window shrinks rather than memory growing.
    #[error(
        "the request time '{0}' is older than the server can check for replays right now; sign the request again with the current time"
    )]
    RequestOlderThanReplayWindow(String),
    #[error("the request path is {len} bytes long; at most {limit} are allowed")]
    PathTooLong { len: usize, limit: usize },
    #[error("the request headers are too large: {what}")]
    RequestHeaderTooLarge { what: String },
    #[error("no part of the request body arrived for {secs} seconds")]
    RequestTimeout { secs: u64 },
    #[error("service '{0}' does not exist")]
    ServiceNotFound(String),
    #[error("function '{function}' does not exist in service '{service}'")]
    FunctionNotFound { service: String, function: String },
    #[error("version '{version}' of service '{service}' does not exist")]
    VersionNotFound { service: String, version: String },
    #[error("alias '{alias}' of service '{service}' does not exist")]
    AliasNotFound { service: String, alias: String },
    #[error("alias {alias} of service {service} already exists")]
    AliasAlreadyExists { service: String, alias: String },
    #[error("additionalVersionWeight {weights} should not contain major version {major}")]
    AdditionalVersionContainsMajorVersion { weights: String, major: u64 },
    #[error(
        "cannot publish a version of service '{service}': nothing changed since version {version}"
    )]
    VersionNotChanged { service: String, version: String },
    #[error("version {version} of service '{service}' is in use by alias '{alias}'")]
    VersionInUse {
        service: String,
        version: String,
        alias: String,
    },
    #[error(
        "the on-demand config of function '{function}' for qualifier '{qualifier}' of service '{service}' does not exist"
    )]
    OnDemandConfigNotFound {
        service: String,
        qualifier: String,
        function: String,
    },
    #[error(
        "{what} of service '{service}' has provisioned instances of function '{function}': set the provision config's target to 0 first"
    )]
    ProvisionConfigExist {
        service: String,
        what: String,
        function: String,
    },
    #[error("an async invocation with id '{id}' already exists for {service}:{function}")]
    InvocationAlreadyExists {
        service: String,
        function: String,
        id: String,
    },
    #[error("stateful async invocation '{0}' does not exist")]
    StatefulAsyncInvocationNotFound(String),
    #[error("The async invocation for {service}:{function}:{id} has been stopped")]
    AsyncInvocationStopped {
        service: String,
        function: String,
        id: String,
    },
    #[error("AsyncConfig for {service}:{function} does not exist.")]
    AsyncConfigNotExists { service: String, function: String },
    #[error("service '{0}' already exists")]
    ServiceAlreadyExists(String),
    #[error("function '{function}' already exists in service '{service}'")]
    FunctionAlreadyExists { service: String, function: String },
    #[error("service '{0}' is not empty: delete its functions, aliases and versions first")]
    ServiceNotEmpty(String),
    #[error("the resource being modified has been changed")]
    PreconditionFailed,
    #[error("ConcurrentUpdateError: {0}")]
    ConcurrentUpdate(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("The function either cannot be started or exited. {0}")]
    FunctionNotStarted(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    ResourceThrottled(String),
    #[error("an internal error has occurred. Please retry.")]
    Internal,
    #[error("the server is shutting down")]
    ServiceUnavailable,
}

impl FcError {
    /// FC's `ErrorCode` for this error.
    pub fn code(&self) -> &'static str {
        match self {
            FcError::InvalidArgument(_) => "InvalidArgument",
            FcError::MissingRequiredHeader(_) => "MissingRequiredHeader",
            FcError::PathNotSupported { .. } => "PathNotSupported",
            FcError::EntityTooLarge { .. } => "EntityTooLarge",
            FcError::AccessDenied(_) => "AccessDenied",
            FcError::SignatureNotMatch => "SignatureNotMatch",
            FcError::InvalidAccessKeyId(_) => "InvalidAccessKeyID",
            FcError::RequestTimeTooSkewed(_) | FcError::RequestOlderThanReplayWindow(_) => {
                "RequestTimeTooSkewed"
            }
            FcError::SignatureNonceUsed => "SignatureNonceUsed",
            // FC documents no codes for these front-door limits; the names say what happened.
            FcError::PathTooLong { .. } => "PathTooLong",
            FcError::RequestHeaderTooLarge { .. } => "RequestHeaderTooLarge",
            FcError::RequestTimeout { .. } => "RequestTimeout",
            FcError::ServiceNotFound(_) => "ServiceNotFound",
            FcError::FunctionNotFound { .. } => "FunctionNotFound",
            FcError::VersionNotFound { .. } => "VersionNotFound",
            FcError::AliasNotFound { .. } => "AliasNotFound",
            FcError::AliasAlreadyExists { .. } => "AliasAlreadyExists",
            FcError::AdditionalVersionContainsMajorVersion { .. } => {
                "AdditionalVersionContainsMajorVersion"
            }
            // FC documents no dedicated codes for these two; they are invalid requests.
            FcError::VersionNotChanged { .. } | FcError::VersionInUse { .. } => "InvalidArgument",
            FcError::OnDemandConfigNotFound { .. } => "OnDemandConfigNotFound",
            FcError::ProvisionConfigExist { .. } => "ProvisionConfigExist",
            FcError::InvocationAlreadyExists { .. } => "StatefulAsyncInvocationAlreadyExists",
            FcError::StatefulAsyncInvocationNotFound(_) => "StatefulAsyncInvocationNotFound",
            FcError::AsyncInvocationStopped { .. } => "AsyncInvocationStopped",
            FcError::AsyncConfigNotExists { .. } => "AsyncConfigNotExists",
            FcError::ServiceAlreadyExists(_) => "ServiceAlreadyExists",
            FcError::FunctionAlreadyExists { .. } => "FunctionAlreadyExists",
            FcError::ServiceNotEmpty(_) => "ServiceNotEmpty",
            FcError::PreconditionFailed => "PreconditionFailed",
            FcError::ConcurrentUpdate(_) => "ConcurrentUpdateError",
            FcError::LimitExceeded(_) => "LimitExceededError",
            FcError::FunctionNotStarted(_) => "FunctionNotStarted",
            FcError::ResourceExhausted(_) => "ResourceExhausted",
            FcError::ResourceThrottled(_) => "ResourceThrottled",
            FcError::Internal => "InternalServerError",
            FcError::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status FC answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            FcError::InvalidArgument(_)
            | FcError::MissingRequiredHeader(_)
            | FcError::PathNotSupported { .. }
            | FcError::EntityTooLarge { .. }
            | FcError::AdditionalVersionContainsMajorVersion { .. }
            | FcError::VersionNotChanged { .. }
            | FcError::VersionInUse { .. }
            | FcError::LimitExceeded(_)
            | FcError::SignatureNonceUsed => 400,
            FcError::AccessDenied(_)
            | FcError::SignatureNotMatch
            | FcError::InvalidAccessKeyId(_)
            | FcError::RequestTimeTooSkewed(_)
            | FcError::RequestOlderThanReplayWindow(_) => 403,
            FcError::RequestTimeout { .. } => 408,
            FcError::PathTooLong { .. } => 414,
            FcError::RequestHeaderTooLarge { .. } => 431,
            FcError::StatefulAsyncInvocationNotFound(_) | FcError::AsyncConfigNotExists { .. } => {
                404
            }
            FcError::InvocationAlreadyExists { .. } => 409,
            FcError::AsyncInvocationStopped { .. } => 412,
            FcError::ServiceNotFound(_)
            | FcError::FunctionNotFound { .. }
            | FcError::VersionNotFound { .. }
            | FcError::AliasNotFound { .. }
            | FcError::OnDemandConfigNotFound { .. } => 404,
            FcError::ServiceAlreadyExists(_)
            | FcError::AliasAlreadyExists { .. }
            | FcError::FunctionAlreadyExists { .. }
            | FcError::ProvisionConfigExist { .. }
            | FcError::ConcurrentUpdate(_) => 409,
            FcError::ServiceNotEmpty(_)
            | FcError::PreconditionFailed
            | FcError::FunctionNotStarted(_) => 412,
            FcError::ResourceExhausted(_) => 429,
            FcError::Internal => 500,
            FcError::ResourceThrottled(_) | FcError::ServiceUnavailable => 503,
        }
    }

    /// Shorthand for the most common error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        FcError::InvalidArgument(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_match_fc() {
        let e = FcError::FunctionNotFound {
            service: "s".into(),
            function: "f".into(),
        };
        assert_eq!(e.code(), "FunctionNotFound");
        assert_eq!(e.http_status(), 404);
        assert_eq!(e.to_string(), "function 'f' does not exist in service 's'");
        assert_eq!(
            FcError::InvalidAccessKeyId("x".into()).code(),
            "InvalidAccessKeyID"
        );
        assert_eq!(FcError::ServiceNotEmpty("s".into()).http_status(), 412);
        assert_eq!(
            FcError::EntityTooLarge { limit: 10 }.to_string(),
            "payload size exceeds maximum allowed size (10 bytes)"
        );
        // RAM/STS's replay error (ram-sts.md section 3), used for FC too.
        assert_eq!(FcError::SignatureNonceUsed.code(), "SignatureNonceUsed");
        assert_eq!(FcError::SignatureNonceUsed.http_status(), 400);
        assert_eq!(
            FcError::SignatureNonceUsed.to_string(),
            "The request signature nonce has been used."
        );
        assert_eq!(
            FcError::RequestOlderThanReplayWindow("d".into()).http_status(),
            403
        );
        assert_eq!(FcError::RequestTimeout { secs: 1 }.http_status(), 408);
        assert_eq!(FcError::PathTooLong { len: 2, limit: 1 }.http_status(), 414);
        assert_eq!(
            FcError::RequestHeaderTooLarge { what: "x".into() }.http_status(),
            431
        );
    }
}
