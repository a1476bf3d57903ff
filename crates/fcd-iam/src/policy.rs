//! The RAM policy language: `{"Version":"1","Statement":[{Effect, Action|NotAction, Resource,
//! Condition?}]}` for identity policies, and `Principal`-bearing trust policies for roles.

use std::net::IpAddr;
use std::time::SystemTime;

/// Why a policy document was refused (RAM: `MalformedPolicyDocument`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy document is malformed: {0}")]
    Malformed(String),
    #[error("the policy document is {len} characters long; at most {max} are allowed")]
    TooLarge { len: usize, max: usize },
}

/// An identity (permission) policy, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    // Filled in by the implementation.
}

impl Policy {
    /// Parses and validates a policy document (at most 6,144 characters, as RAM).
    pub fn parse(document: &str) -> Result<Policy, PolicyError> {
        let _ = document;
        todo!("fcd-iam policy parser")
    }
}

/// What is being asked: one action on one resource, with the condition keys' values.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    /// `fc:InvokeFunction`, `ram:CreateUser`, `sts:AssumeRole`, …
    pub action: &'a str,
    /// The full ARN, `acs:fc:cn-hangzhou:123:services/s.prod/functions/f`.
    pub resource: &'a str,
    /// `acs:SourceIp`: the TCP peer.
    pub source_ip: Option<IpAddr>,
    /// `acs:CurrentTime`: when the request arrived.
    pub current_time: SystemTime,
    /// `acs:SecureTransport`.
    pub secure_transport: bool,
}

/// The outcome of evaluating a request against a set of policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A Deny statement matched: nothing else can allow the request.
    ExplicitDeny,
    /// Nothing matched: denied by default.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Evaluates one request against the union of `policies` (a principal's attached policies):
/// any matching Deny → `ExplicitDeny`; else any matching Allow → `Allow`; else `ImplicitDeny`.
pub fn evaluate<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    ctx: &RequestContext<'_>,
) -> Decision {
    let _ = (policies.into_iter().count(), ctx);
    todo!("fcd-iam evaluator")
}

/// The decision for an assumed-role session: the role's policies, narrowed by the session
/// policy given to AssumeRole (when there is one): allowed only if both allow, denied if either
/// denies explicitly.
pub fn evaluate_session<'p>(
    role_policies: impl IntoIterator<Item = &'p Policy>,
    session_policy: Option<&Policy>,
    ctx: &RequestContext<'_>,
) -> Decision {
    let _ = (role_policies.into_iter().count(), session_policy, ctx);
    todo!("fcd-iam session evaluator")
}

/// Who asks to assume a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedPrincipal<'a> {
    /// A RAM identity: `acs:ram::<account>:user/<name>` or `acs:ram::<account>:role/<name>`
    /// (an assumed role re-assuming), with its account. `…:root` in a trust policy trusts every
    /// identity of that account.
    Ram { account_id: &'a str, arn: &'a str },
    /// A cloud service, e.g. `fc.aliyuncs.com` for a service's role given to its functions.
    Service(&'a str),
}

/// A role's trust policy (`AssumeRolePolicyDocument`), parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustPolicy {
    // Filled in by the implementation.
}

impl TrustPolicy {
    pub fn parse(document: &str) -> Result<TrustPolicy, PolicyError> {
        let _ = document;
        todo!("fcd-iam trust policy parser")
    }

    /// Whether `who` may call `sts:AssumeRole` on this role.
    pub fn trusts(&self, who: &TrustedPrincipal<'_>) -> bool {
        let _ = who;
        todo!("fcd-iam trust evaluation")
    }
}
