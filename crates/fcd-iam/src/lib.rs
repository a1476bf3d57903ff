//! Access control the way Alibaba Cloud RAM does it, as pure functions with no I/O:
//!
//! - [`policy`]: the policy language (identity policies and role trust policies): parsing,
//!   validation, and evaluation of one request against a set of policies (explicit Deny wins,
//!   default deny, `*`/`?` wildcards, conditions).
//! - [`fc`]: which RAM action and resource ARN each FC API request is (both API versions).
//! - [`sts`]: temporary credentials: self-contained, HMAC-sealed security tokens that any node
//!   holding the token key can verify without a lookup.
//!
//! Who a caller is and which policies are attached to it is the service layer's business
//! (`fcd-control`); this crate only decides.

pub mod fc;
pub mod policy;
pub mod sts;

pub use policy::{Decision, Policy, PolicyError, RequestContext, TrustPolicy, TrustedPrincipal};
pub use sts::{SessionClaims, TemporaryCredentials, TokenError, TokenKey};
