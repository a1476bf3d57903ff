//! The single error type of the platform and its mapping to FC error codes and HTTP statuses.
//!
//! Every layer converts its own failures into [`FcError`]; the API layer renders it as FC's error
//! body. Keeping the code/status table here means the mapping lives in exactly one place.

/// A RAM entity, as named in `EntityNotExist.*` and `EntityAlreadyExists.*` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamEntity {
    User,
    /// An access key of a user.
    UserAccessKey,
    Policy,
    Role,
    /// A policy's attachment to a user.
    UserPolicy,
    /// A policy's attachment to a role.
    RolePolicy,
}

impl RamEntity {
    fn noun(self) -> &'static str {
        match self {
            RamEntity::User => "user",
            RamEntity::UserAccessKey => "access key",
            RamEntity::Policy => "policy",
            RamEntity::Role => "role",
            RamEntity::UserPolicy => "policy attachment of user",
            RamEntity::RolePolicy => "policy attachment of role",
        }
    }
}

/// What still depends on a RAM entity that was asked to be deleted (`DeleteConflict.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamConflict {
    /// The user still has access keys.
    UserAccessKey,
    /// The user still has policies attached.
    UserPolicy,
    /// The policy is still attached to users.
    PolicyUser,
    /// The policy is still attached to roles.
    PolicyRole,
    /// The role still has policies attached.
    RolePolicy,
}

/// A RAM quota (`LimitExceeded.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamLimit {
    /// Access keys per user.
    UserAccessKey,
    /// Custom policies attached per user.
    UserPolicy,
}

/// Why a security token (STS temporary credentials) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// A temporary access key without its token.
    Missing,
    /// Not a token this server issued, altered, or not covered by the signature.
    Malformed,
    Expired,
    /// The token belongs to another access key.
    MismatchWithAccessKey,
}

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
    /// A layer or layer version that does not exist (or was deleted), looked up or named by
    /// a function; the text names it (`layer 'l' version 3`).
    #[error("{0} does not exist")]
    LayerNotFound(String),
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
    /// DeleteVpcBinding of a VPC the service is not bound to.
    #[error("vpc '{vpc_id}' is not bound to service '{service}'")]
    VpcBindingNotFound { service: String, vpc_id: String },
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
    #[error("trigger '{trigger}' of function '{function}' in service '{service}' does not exist")]
    TriggerNotFound {
        service: String,
        function: String,
        trigger: String,
    },
    #[error("trigger '{trigger}' already exists for function '{function}' in service '{service}'")]
    TriggerAlreadyExists {
        service: String,
        function: String,
        trigger: String,
    },
    #[error("function '{0}' has active triggers: delete them first")]
    FunctionNotEmpty(String),
    #[error("domain name '{0}' does not exist")]
    DomainNameNotFound(String),
    #[error("domain name {0} already exists")]
    DomainNameAlreadyExists(String),
    /// A function's response fcd cannot pass on (an HTTP trigger's over-large headers).
    #[error("BadResponse: {0}")]
    BadResponse(String),
    /// A request on a custom domain whose path no route of the domain matches.
    #[error("no route of custom domain '{domain}' matches path '{path}'")]
    RouteNotFound { domain: String, path: String },
    #[error("the resource being modified has been changed")]
    PreconditionFailed,
    #[error("ConcurrentUpdateError: {0}")]
    ConcurrentUpdate(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("The function either cannot be started or exited. {0}")]
    FunctionNotStarted(String),
    /// A `custom-container` function's image cannot be had: `code` names the cause
    /// (`InvalidImage`, `ImageNotFound`, `ImageAccessDenied`, `ImageRegistryUnreachable`,
    /// `ImagePlatformMismatch`, `ImageNotSupported`), the message says it in words.
    #[error("{message}")]
    Image { code: &'static str, message: String },
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    ResourceThrottled(String),
    #[error("an internal error has occurred. Please retry.")]
    Internal,
    #[error("the server is shutting down")]
    ServiceUnavailable,
    /// Something the server depends on cannot be reached right now (the cluster's PostgreSQL
    /// or NATS, the node a call was forwarded to): FC's 503, with what and why.
    #[error("{0}")]
    Unavailable(String),

    // ---- RAM and STS (the RPC APIs at `/`), and temporary credentials everywhere ----
    #[error("The {} does not exist: {name}", .entity.noun())]
    EntityNotExist { entity: RamEntity, name: String },
    #[error("The {} already exists: {name}", .entity.noun())]
    EntityAlreadyExists { entity: RamEntity, name: String },
    #[error("{message}")]
    DeleteConflict {
        conflict: RamConflict,
        message: String,
    },
    #[error("{message}")]
    RamLimitExceeded { limit: RamLimit, message: String },
    /// A RAM or STS parameter out of its rules; `code` is the full `InvalidParameter.*` code.
    #[error("{message}")]
    RamInvalidParameter { code: &'static str, message: String },
    #[error(
        "The input parameter \"{0}\" that is mandatory for processing this request is not supplied."
    )]
    MissingParameter(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// A RAM or STS call the caller may not make.
    #[error("{0}")]
    NoPermission(String),
    #[error("{message}")]
    InvalidSecurityToken {
        problem: TokenProblem,
        message: String,
    },
    /// An RPC action the API version does not have.
    #[error("Specified api is not found, please check your url and method: {0}")]
    InvalidAction(String),
    /// An RPC call without a known `x-acs-version`/`x-acs-action`.
    #[error("The specified parameter \"Action or Version\" is not valid.")]
    InvalidActionOrVersion,
    /// FC 3.0: a function (native `F` or `svc$fn`) that does not exist; 3.0 messages never
    /// speak of services.
    #[error("function '{0}' does not exist")]
    Fc3FunctionNotFound(String),
    /// FC 3.0: CreateFunction on a name that exists; deploy tools fall back to UpdateFunction.
    #[error("function '{0}' already exists")]
    Fc3FunctionAlreadyExists(String),
    /// FC 3.0's wording of an error of the 2.0 layer underneath (see `fc3::rephrase`), or a
    /// 3.0-only refusal: the code and status are FC's for that case.
    #[error("{message}")]
    Fc3Message {
        code: &'static str,
        status: u16,
        message: String,
    },
    /// An FC 3.0 operation fcd does not provide (sessions, snapshots, scaling configs, resource
    /// groups, …); listed in README.
    #[error("{0} is not supported by fcd")]
    NotSupported(String),
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
            FcError::LayerNotFound(_) => "LayerNotFound",
            FcError::AliasAlreadyExists { .. } => "AliasAlreadyExists",
            FcError::AdditionalVersionContainsMajorVersion { .. } => {
                "AdditionalVersionContainsMajorVersion"
            }
            // FC documents no dedicated codes for these two; they are invalid requests.
            FcError::VersionNotChanged { .. } | FcError::VersionInUse { .. } => "InvalidArgument",
            FcError::OnDemandConfigNotFound { .. } => "OnDemandConfigNotFound",
            FcError::VpcBindingNotFound { .. } => "VpcBindingNotFound",
            FcError::ProvisionConfigExist { .. } => "ProvisionConfigExist",
            FcError::InvocationAlreadyExists { .. } => "StatefulAsyncInvocationAlreadyExists",
            FcError::StatefulAsyncInvocationNotFound(_) => "StatefulAsyncInvocationNotFound",
            FcError::AsyncInvocationStopped { .. } => "AsyncInvocationStopped",
            FcError::AsyncConfigNotExists { .. } => "AsyncConfigNotExists",
            FcError::ServiceAlreadyExists(_) => "ServiceAlreadyExists",
            FcError::FunctionAlreadyExists { .. } => "FunctionAlreadyExists",
            FcError::ServiceNotEmpty(_) => "ServiceNotEmpty",
            FcError::TriggerNotFound { .. } => "TriggerNotFound",
            FcError::TriggerAlreadyExists { .. } => "TriggerAlreadyExists",
            FcError::FunctionNotEmpty(_) => "FunctionNotEmpty",
            FcError::DomainNameNotFound(_) => "DomainNameNotFound",
            FcError::DomainNameAlreadyExists(_) => "DomainNameAlreadyExists",
            FcError::BadResponse(_) => "BadResponse",
            FcError::RouteNotFound { .. } => "RouteNotFound",
            FcError::PreconditionFailed => "PreconditionFailed",
            FcError::ConcurrentUpdate(_) => "ConcurrentUpdateError",
            FcError::LimitExceeded(_) => "LimitExceededError",
            FcError::FunctionNotStarted(_) => "FunctionNotStarted",
            FcError::Image { code, .. } => code,
            FcError::ResourceExhausted(_) => "ResourceExhausted",
            FcError::ResourceThrottled(_) => "ResourceThrottled",
            FcError::Internal => "InternalServerError",
            FcError::ServiceUnavailable | FcError::Unavailable(_) => "ServiceUnavailable",
            FcError::EntityNotExist { entity, .. } => match entity {
                RamEntity::User => "EntityNotExist.User",
                RamEntity::UserAccessKey => "EntityNotExist.User.AccessKey",
                RamEntity::Policy => "EntityNotExist.Policy",
                RamEntity::Role => "EntityNotExist.Role",
                RamEntity::UserPolicy => "EntityNotExist.User.Policy",
                RamEntity::RolePolicy => "EntityNotExist.Role.Policy",
            },
            FcError::EntityAlreadyExists { entity, .. } => match entity {
                RamEntity::User => "EntityAlreadyExists.User",
                RamEntity::UserAccessKey => "EntityAlreadyExists.User.AccessKey",
                RamEntity::Policy => "EntityAlreadyExists.Policy",
                RamEntity::Role => "EntityAlreadyExists.Role",
                RamEntity::UserPolicy => "EntityAlreadyExists.User.Policy",
                RamEntity::RolePolicy => "EntityAlreadyExists.Role.Policy",
            },
            FcError::DeleteConflict { conflict, .. } => match conflict {
                RamConflict::UserAccessKey => "DeleteConflict.User.AccessKey",
                RamConflict::UserPolicy => "DeleteConflict.User.Policy",
                RamConflict::PolicyUser => "DeleteConflict.Policy.User",
                RamConflict::PolicyRole => "DeleteConflict.Policy.Role",
                RamConflict::RolePolicy => "DeleteConflict.Role.Policy",
            },
            FcError::RamLimitExceeded { limit, .. } => match limit {
                RamLimit::UserAccessKey => "LimitExceeded.User.AccessKey",
                RamLimit::UserPolicy => "LimitExceeded.User.Policy",
            },
            FcError::RamInvalidParameter { code, .. } => code,
            FcError::MissingParameter(_) => "MissingParameter",
            FcError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            FcError::NoPermission(_) => "NoPermission",
            FcError::InvalidSecurityToken { problem, .. } => match problem {
                TokenProblem::Missing => "MissingSecurityToken",
                TokenProblem::Malformed => "InvalidSecurityToken.Malformed",
                TokenProblem::Expired => "InvalidSecurityToken.Expired",
                TokenProblem::MismatchWithAccessKey => "InvalidSecurityToken.MismatchWithAccessKey",
            },
            FcError::InvalidAction(_) => "InvalidAction.NotFound",
            FcError::InvalidActionOrVersion => "InvalidParameter",
            FcError::Fc3FunctionNotFound(_) => "FunctionNotFound",
            FcError::Fc3FunctionAlreadyExists(_) => "FunctionAlreadyExists",
            FcError::Fc3Message { code, .. } => code,
            FcError::NotSupported(_) => "NotSupported",
        }
    }

    /// The code of this error in an RPC-style (RAM, STS) response: the common RPC codes where
    /// they differ from FC's, else [`FcError::code`].
    pub fn rpc_code(&self) -> &'static str {
        match self {
            FcError::InvalidAccessKeyId(_) => "InvalidAccessKeyId.NotFound",
            FcError::SignatureNotMatch => "SignatureDoesNotMatch",
            FcError::RequestTimeTooSkewed(_) => "InvalidTimeStamp.Expired",
            FcError::InvalidArgument(_) => "InvalidParameter",
            FcError::MissingRequiredHeader(_) => "MissingParameter",
            FcError::Internal => "InternalError",
            other => other.code(),
        }
    }

    /// The HTTP status of this error in an RPC-style (RAM, STS) response.
    pub fn rpc_status(&self) -> u16 {
        match self {
            FcError::InvalidAccessKeyId(_) => 404,
            FcError::RequestTimeTooSkewed(_) => 400,
            other => other.http_status(),
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
            | FcError::Image { .. }
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
            | FcError::LayerNotFound(_)
            | FcError::OnDemandConfigNotFound { .. }
            | FcError::VpcBindingNotFound { .. }
            | FcError::TriggerNotFound { .. }
            | FcError::DomainNameNotFound(_) => 404,
            FcError::ServiceAlreadyExists(_)
            | FcError::AliasAlreadyExists { .. }
            | FcError::FunctionAlreadyExists { .. }
            | FcError::ProvisionConfigExist { .. }
            | FcError::TriggerAlreadyExists { .. }
            | FcError::DomainNameAlreadyExists(_)
            | FcError::ConcurrentUpdate(_) => 409,
            FcError::BadResponse(_) => 502,
            FcError::RouteNotFound { .. } => 404,
            FcError::FunctionNotEmpty(_)
            | FcError::ServiceNotEmpty(_)
            | FcError::PreconditionFailed
            | FcError::FunctionNotStarted(_) => 412,
            FcError::ResourceExhausted(_) => 429,
            FcError::Internal => 500,
            FcError::ResourceThrottled(_)
            | FcError::ServiceUnavailable
            | FcError::Unavailable(_) => 503,
            FcError::RamInvalidParameter { .. }
            | FcError::MissingParameter(_)
            | FcError::MalformedPolicyDocument(_)
            | FcError::InvalidActionOrVersion => 400,
            FcError::NoPermission(_) | FcError::InvalidSecurityToken { .. } => 403,
            FcError::EntityNotExist { .. } | FcError::InvalidAction(_) => 404,
            FcError::EntityAlreadyExists { .. }
            | FcError::DeleteConflict { .. }
            | FcError::RamLimitExceeded { .. } => 409,
            FcError::Fc3FunctionNotFound(_) => 404,
            FcError::Fc3FunctionAlreadyExists(_) => 409,
            FcError::Fc3Message { status, .. } => *status,
            FcError::NotSupported(_) => 400,
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

    #[test]
    fn ram_codes_and_statuses() {
        let e = FcError::EntityNotExist {
            entity: RamEntity::User,
            name: "ci".into(),
        };
        assert_eq!(
            (e.code(), e.http_status(), e.to_string().as_str()),
            ("EntityNotExist.User", 404, "The user does not exist: ci")
        );
        let e = FcError::RamLimitExceeded {
            limit: RamLimit::UserAccessKey,
            message: "m".into(),
        };
        assert_eq!(
            (e.code(), e.http_status()),
            ("LimitExceeded.User.AccessKey", 409)
        );
        let e = FcError::DeleteConflict {
            conflict: RamConflict::PolicyUser,
            message: "m".into(),
        };
        assert_eq!(
            (e.code(), e.http_status()),
            ("DeleteConflict.Policy.User", 409)
        );
        assert_eq!(FcError::NoPermission("x".into()).http_status(), 403);
        // Authentication failures keep FC's codes on FC paths and take RPC's on RAM/STS.
        let e = FcError::InvalidAccessKeyId("k".into());
        assert_eq!((e.code(), e.http_status()), ("InvalidAccessKeyID", 403));
        assert_eq!(
            (e.rpc_code(), e.rpc_status()),
            ("InvalidAccessKeyId.NotFound", 404)
        );
        assert_eq!(
            FcError::SignatureNotMatch.rpc_code(),
            "SignatureDoesNotMatch"
        );
        let e = FcError::InvalidSecurityToken {
            problem: TokenProblem::Expired,
            message: "m".into(),
        };
        assert_eq!(
            (e.code(), e.http_status(), e.rpc_code()),
            (
                "InvalidSecurityToken.Expired",
                403,
                "InvalidSecurityToken.Expired"
            )
        );
    }
}
