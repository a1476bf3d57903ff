//! Function credentials: the temporary STS credentials a service's `role` gives its instances
//! (fc-runtime-contract.md §2.2, §4.1/§4.2 and §5).
//!
//! The control plane decides *whether* a function has credentials and mints them; this module
//! defines what the instance manager needs from it — a [`CredentialSource`] on the
//! [`crate::FunctionSpec`], usually a [`CachingSource`] around the control plane's [`Mint`] —
//! and how the credentials reach an instance:
//!
//! - **Headers, per call.** Every `/invoke`, `/initialize`, `/pre-freeze` and `/pre-stop` of a
//!   function with a source carries `x-fc-access-key-id`, `x-fc-access-key-secret` and
//!   `x-fc-security-token`, taken from the source at the time of the call. Custom runtimes read
//!   them directly; fcd's bootstraps build `context.credentials` from them. These rotate: a warm
//!   instance gets whatever the source holds now.
//! - **Environment, at launch.** A new instance (started afresh or from a prewarmed jail's
//!   assignment) gets `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET` and
//!   `ALIBABA_CLOUD_SECURITY_TOKEN` (FC's documented system variables), plus the legacy names
//!   `accessKeyID`, `accessKeySecret` and `securityToken` older code reads. A process's
//!   environment cannot be changed from outside, so these are the credentials of the
//!   invocation that started the instance, and they do not rotate. A function that sets any of
//!   these variables itself gets none of them from the role.
//!
//! Each invocation asks the source once, before it is given a slot or an instance: an error
//! fails that invocation with [`crate::StartError::Credentials`] (the source's `FcError`) and
//! touches no instance. Functions without a source never ask.
//!
//! Instances can outlive their environment's credentials (FC's last 36 h; a provisioned or
//! always-busy instance may run longer). fcd does not let an instance hold expired ones: the
//! idle reclaimer retires an instance once its environment's credentials have less than
//! [`ENV_RENEW_MARGIN`] left — after its in-flight requests, with preStop, like any planned
//! stop — and the next request (or the provisioning reconciler) starts a fresh one with fresh
//! variables. Sources must therefore hand out credentials valid for at least
//! [`MIN_VALIDITY`], or new instances would be recycled as soon as they start.
//!
//! Nothing here logs credentials: [`FunctionCredentials`]'s `Debug` redacts the secret and the
//! token, and the header values are marked sensitive.

use std::fmt;
use std::time::Duration;

use fcd_core::FcError;
use http::{HeaderMap, HeaderName, HeaderValue};

/// An instance whose environment's credentials expire within this margin is retired (once its
/// requests are done) and replaced on demand.
pub const ENV_RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The least time credentials from a [`CredentialSource`] must have left: sources refresh
/// their cached credentials before they get this close to expiry. Twice [`ENV_RENEW_MARGIN`],
/// so an instance started with them serves at least that margin before it is recycled.
pub const MIN_VALIDITY: Duration = Duration::from_secs(10 * 60);

const _: () = assert!(MIN_VALIDITY.as_secs() >= 2 * ENV_RENEW_MARGIN.as_secs());

/// Temporary credentials for one function's instances (an STS token of the service's role).
#[derive(Clone, PartialEq, Eq)]
pub struct FunctionCredentials {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: String,
    /// When they stop working, in seconds since the Unix epoch.
    pub expires_at: u64,
}

impl fmt::Debug for FunctionCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("security_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where a function's credentials come from: held by its [`crate::FunctionSpec`] when its
/// service has a role.
///
/// Contract for implementations:
/// - **Cache.** The instance manager calls [`CredentialSource::credentials`] once per
///   invocation (and once per lifecycle hook and per provisioning round), so the call must be
///   cheap when credentials are cached: no network, no database on the common path.
///   [`CachingSource`] around a [`Mint`] does this (and the next two points).
/// - **Fresh enough.** Hand out credentials with at least [`MIN_VALIDITY`] left, refreshing
///   (re-minting) before that; never expired ones.
/// - **Bounded.** Minting does IO: bound it (a hook gives up on a source after its own
///   timeout and runs without credentials; an invocation waits as long as the source does).
/// - **Errors are the caller's answer.** An `Err` fails the invocation with that error as it
///   is (no instance is started, touched or harmed), so it must be an `FcError` a client may
///   see — e.g. `AccessDenied` naming the role that cannot be assumed — and must not contain
///   secrets.
#[async_trait::async_trait]
pub trait CredentialSource: Send + Sync + fmt::Debug {
    async fn credentials(&self) -> Result<std::sync::Arc<FunctionCredentials>, FcError>;
}

/// What mints a function's credentials (STS `AssumeRole` of the service's role, in the control
/// plane). Wrapped in a [`CachingSource`] it becomes a [`CredentialSource`].
#[async_trait::async_trait]
pub trait Mint: Send + Sync + fmt::Debug {
    async fn mint(&self) -> Result<FunctionCredentials, FcError>;
}

/// A [`CredentialSource`] that keeps what its [`Mint`] returned and mints again once half of
/// the credentials' lifetime has passed, or sooner when they get within [`MIN_VALIDITY`] of
/// expiry. Only one mint runs at a time; callers meanwhile wait for it. If minting fails while
/// the kept credentials still have [`MIN_VALIDITY`] left, those are handed out (a mint
/// failure is not an outage until it has to be); otherwise the mint's error is the answer.
///
/// The common path is a read lock and an `Arc` clone: no await, no IO.
pub struct CachingSource<M> {
    mint: M,
    kept: std::sync::RwLock<Option<Kept>>,
    minting: tokio::sync::Mutex<()>,
    now: fn() -> u64,
}

#[derive(Clone)]
struct Kept {
    creds: std::sync::Arc<FunctionCredentials>,
    /// When to mint again (unix seconds).
    refresh_at: u64,
}

impl<M: fmt::Debug> fmt::Debug for CachingSource<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingSource")
            .field("mint", &self.mint)
            .finish_non_exhaustive()
    }
}

impl<M: Mint> CachingSource<M> {
    pub fn new(mint: M) -> CachingSource<M> {
        Self::with_clock(mint, unix_now)
    }

    fn with_clock(mint: M, now: fn() -> u64) -> CachingSource<M> {
        CachingSource {
            mint,
            kept: std::sync::RwLock::new(None),
            minting: tokio::sync::Mutex::new(()),
            now,
        }
    }

    fn kept(&self) -> Option<Kept> {
        self.kept.read().ok().and_then(|k| k.clone())
    }

    /// The kept credentials if they need no refresh at `now`.
    fn fresh(&self, now: u64) -> Option<std::sync::Arc<FunctionCredentials>> {
        self.kept().filter(|k| now < k.refresh_at).map(|k| k.creds)
    }
}

#[async_trait::async_trait]
impl<M: Mint> CredentialSource for CachingSource<M> {
    async fn credentials(&self) -> Result<std::sync::Arc<FunctionCredentials>, FcError> {
        if let Some(c) = self.fresh((self.now)()) {
            return Ok(c);
        }
        let _one = self.minting.lock().await;
        // Someone else may have minted while this call waited.
        let now = (self.now)();
        if let Some(c) = self.fresh(now) {
            return Ok(c);
        }
        match self.mint.mint().await {
            Ok(c) => {
                let lifetime = c.expires_at.saturating_sub(now);
                let refresh_at =
                    (now + lifetime / 2).min(c.expires_at.saturating_sub(MIN_VALIDITY.as_secs()));
                let creds = std::sync::Arc::new(c);
                if let Ok(mut k) = self.kept.write() {
                    *k = Some(Kept {
                        creds: creds.clone(),
                        refresh_at,
                    });
                }
                Ok(creds)
            }
            Err(e) => match self.kept() {
                Some(k) if k.creds.expires_at >= now + MIN_VALIDITY.as_secs() => {
                    tracing::warn!(error = %e, "minting function credentials failed; the current ones are still valid");
                    Ok(k.creds)
                }
                _ => Err(e),
            },
        }
    }
}

/// The seconds since the Unix epoch now (0 if the clock is before 1970).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sensitive(map: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(mut v) = HeaderValue::from_str(value) {
        v.set_sensitive(true);
        map.insert(HeaderName::from_static(name), v);
    }
}

/// Adds the credential headers of fc-runtime-contract.md §2.2 to one call's headers.
pub(crate) fn add_headers(map: &mut HeaderMap, c: &FunctionCredentials) {
    sensitive(map, "x-fc-access-key-id", &c.access_key_id);
    sensitive(map, "x-fc-access-key-secret", &c.access_key_secret);
    sensitive(map, "x-fc-security-token", &c.security_token);
}

/// The names of [`env`]'s variables.
pub(crate) const ENV_NAMES: [&str; 6] = [
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "accessKeyID",
    "accessKeySecret",
    "securityToken",
];

/// The variables of fc-runtime-contract.md §5 that carry the credentials: FC's documented
/// names, then the legacy ones (each triple in [`ENV_NAMES`]' order: id, secret, token).
pub(crate) fn env(c: &FunctionCredentials) -> impl Iterator<Item = (&'static str, &str)> {
    let values = [
        c.access_key_id.as_str(),
        c.access_key_secret.as_str(),
        c.security_token.as_str(),
    ];
    ENV_NAMES.into_iter().zip(values.into_iter().cycle())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use super::*;

    /// The test's clock (unix seconds), moved by hand: no test here waits for time to pass.
    static NOW: AtomicU64 = AtomicU64::new(1_000_000);

    fn test_now() -> u64 {
        NOW.load(Ordering::SeqCst)
    }

    /// Mints credentials valid for `lifetime` seconds from the test clock, numbered by call;
    /// fails while `fail` is set.
    #[derive(Debug, Default)]
    struct TestMint {
        lifetime: u64,
        calls: AtomicU32,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Mint for Arc<TestMint> {
        async fn mint(&self) -> Result<FunctionCredentials, FcError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail.load(Ordering::SeqCst) {
                return Err(FcError::AccessDenied("cannot assume".into()));
            }
            Ok(FunctionCredentials {
                access_key_id: format!("STS.{n}"),
                access_key_secret: format!("secret-{n}"),
                security_token: format!("token-{n}"),
                expires_at: test_now() + self.lifetime,
            })
        }
    }

    // One test drives the shared clock, so the cases run in order.
    #[tokio::test]
    async fn caching_source_mints_once_refreshes_at_half_life_and_rides_out_failures() {
        // 36 h credentials: minted once, then served from the cache until half-life.
        let mint = Arc::new(TestMint {
            lifetime: 36 * 3600,
            ..TestMint::default()
        });
        let src = CachingSource::with_clock(mint.clone(), test_now);
        let start = test_now();
        for _ in 0..5 {
            assert_eq!(src.credentials().await.unwrap().access_key_id, "STS.1");
        }
        assert_eq!(mint.calls.load(Ordering::SeqCst), 1);
        NOW.store(start + 18 * 3600 - 1, Ordering::SeqCst);
        assert_eq!(src.credentials().await.unwrap().access_key_id, "STS.1");
        NOW.store(start + 18 * 3600, Ordering::SeqCst);
        assert_eq!(src.credentials().await.unwrap().access_key_id, "STS.2");
        assert_eq!(mint.calls.load(Ordering::SeqCst), 2);

        // A failing mint: the current credentials while they have MIN_VALIDITY left, then the
        // mint's error.
        let minted = test_now();
        mint.fail.store(true, Ordering::SeqCst);
        NOW.store(minted + 18 * 3600, Ordering::SeqCst);
        assert_eq!(src.credentials().await.unwrap().access_key_id, "STS.2");
        NOW.store(
            minted + 36 * 3600 - MIN_VALIDITY.as_secs() + 1,
            Ordering::SeqCst,
        );
        assert_eq!(
            src.credentials().await.unwrap_err(),
            FcError::AccessDenied("cannot assume".into())
        );
        mint.fail.store(false, Ordering::SeqCst);
        let c = src.credentials().await.unwrap();
        assert!(c.expires_at >= test_now() + MIN_VALIDITY.as_secs());

        // Short-lived credentials (AssumeRole's minimum, 15 min) are refreshed once they get
        // within MIN_VALIDITY of expiry, not at every call.
        let short = Arc::new(TestMint {
            lifetime: 900,
            ..TestMint::default()
        });
        let src = CachingSource::with_clock(short.clone(), test_now);
        let t0 = test_now();
        src.credentials().await.unwrap();
        NOW.store(t0 + 900 - MIN_VALIDITY.as_secs() - 1, Ordering::SeqCst);
        src.credentials().await.unwrap();
        assert_eq!(short.calls.load(Ordering::SeqCst), 1);
        NOW.store(t0 + 900 - MIN_VALIDITY.as_secs(), Ordering::SeqCst);
        src.credentials().await.unwrap();
        assert_eq!(short.calls.load(Ordering::SeqCst), 2);
    }

    fn creds() -> FunctionCredentials {
        FunctionCredentials {
            access_key_id: "STS.NKeyId".into(),
            access_key_secret: "very-secret-value".into(),
            security_token: "CAIS-token-value".into(),
            expires_at: 1_700_000_000,
        }
    }

    #[test]
    fn debug_redacts_secret_and_token() {
        let shown = format!("{:?}", creds());
        assert!(shown.contains("STS.NKeyId"), "{shown}");
        assert!(shown.contains("1700000000"), "{shown}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("CAIS-token-value"), "{shown}");
        let pretty = format!("{:#?}", creds());
        assert!(!pretty.contains("very-secret-value") && !pretty.contains("CAIS-token-value"));
    }

    #[test]
    fn headers_are_the_contract_names_and_sensitive() {
        let mut h = HeaderMap::new();
        add_headers(&mut h, &creds());
        assert_eq!(h.len(), 3);
        for (name, want) in [
            ("x-fc-access-key-id", "STS.NKeyId"),
            ("x-fc-access-key-secret", "very-secret-value"),
            ("x-fc-security-token", "CAIS-token-value"),
        ] {
            let v = h.get(name).unwrap();
            assert_eq!(v.to_str().unwrap(), want);
            assert!(v.is_sensitive(), "{name}");
        }
        // A sensitive header value's Debug hides it.
        let shown = format!("{h:?}");
        assert!(!shown.contains("very-secret-value") && !shown.contains("CAIS-token-value"));
    }

    #[test]
    fn env_names_documented_and_legacy() {
        let c = creds();
        let e: Vec<_> = env(&c).collect();
        assert_eq!(
            e,
            vec![
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.NKeyId"),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "very-secret-value"),
                ("ALIBABA_CLOUD_SECURITY_TOKEN", "CAIS-token-value"),
                ("accessKeyID", "STS.NKeyId"),
                ("accessKeySecret", "very-secret-value"),
                ("securityToken", "CAIS-token-value"),
            ]
        );
    }
}
