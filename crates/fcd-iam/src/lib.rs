//! Access control the way Alibaba Cloud RAM does it, as pure functions with no I/O. This crate
//! owns the *decisions*; who a caller is, which policies are attached to it, and storing
//! users, roles and policies is the service layer's business (`fcd-control`), and reading
//! requests off the wire is `fcd-api`'s.
//!
//! - [`policy`]: the policy language (identity policies and role trust policies): parsing and
//!   validation with messages that say what is wrong, and evaluation of one request against a
//!   set of policies — explicit Deny wins, default deny, `*`/`?` wildcards, conditions on
//!   `acs:SourceIp`, `acs:CurrentTime`, `acs:SecureTransport`, `acs:MFAPresent`, and
//!   undecidable conditions failing safe; a session policy narrows a role
//!   ([`evaluate_session`]); [`TrustPolicy`] decides who may assume a role.
//! - [`fc`]: which RAM action and resource each FC API request is (both API versions), reading
//!   the path exactly as the router does so the decision is about what the handler will do.
//! - [`sts`]: temporary credentials: self-contained, HMAC-sealed security tokens that any node
//!   holding the token key can verify without a lookup, and access key secrets derived from
//!   their key id (never stored).
//! - [`glob`]: the wildcard matcher policies use; quadratic at worst, never exponential.
//!
//! Nothing here panics on input: every parser is property-tested and fuzzed (`fuzz/`).

pub mod fc;
pub mod glob;
mod json;
pub mod policy;
pub mod sts;

pub use policy::{
    Decision, MAX_POLICY_CHARS, Policy, PolicyError, RequestContext, TrustPolicy, TrustedPrincipal,
    evaluate, evaluate_session,
};
pub use sts::{SessionClaims, TemporaryCredentials, TokenError, TokenKey};
