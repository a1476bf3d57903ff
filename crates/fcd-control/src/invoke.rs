//! The one synchronous invocation every front end shares: InvokeFunction, HTTP triggers and
//! custom domains all call [`Control::invoke`], which resolves the qualifier to a cached
//! [`FunctionSpec`] and hands the request to the instance manager. What differs between them
//! (an event body, or a client's HTTP request in [`InvokeRequest::http`]) travels inside the
//! request; the path to the instance is this one.

use std::sync::Arc;

use fcd_core::FcError;
use fcd_runtime::{FunctionSpec, InvokeError, InvokeOutcome, InvokeRequest, StartError};

use crate::{Control, LATEST};

/// What ran and what it produced.
#[derive(Debug)]
pub struct Invoked {
    /// The function as resolved for this call (its config, version, code checksum).
    pub spec: Arc<FunctionSpec>,
    pub outcome: InvokeOutcome,
}

/// A platform failure of an invocation as FC reports it.
pub fn invoke_error(e: InvokeError) -> FcError {
    match e {
        InvokeError::ShuttingDown => FcError::ServiceUnavailable,
        e @ InvokeError::Start(StartError::UnsupportedRuntime { .. }) => {
            FcError::invalid(e.to_string())
        }
        // The service role's credentials could not be issued: the source's own error (e.g.
        // AccessDenied naming the role) is what the caller must fix.
        InvokeError::Start(StartError::Credentials(e)) => e,
        InvokeError::Start(other) => FcError::FunctionNotStarted(other.to_string()),
        e @ InvokeError::FunctionThrottled(_) => {
            FcError::ResourceExhausted(format!("{e}: retry later or raise maximumInstanceCount"))
        }
        e @ InvokeError::ServerThrottled => FcError::ResourceThrottled(e.to_string()),
        InvokeError::Body(e) => e,
    }
}

impl Control {
    /// Runs one synchronous invocation of `function` in `service` as `qualifier` (absent or
    /// empty: LATEST) names it. `req.qualifier` is set here, from `qualifier`. A function
    /// error is an `Ok` outcome with its error type; `Err` is a platform error.
    pub async fn invoke(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        mut req: InvokeRequest,
    ) -> Result<Invoked, FcError> {
        let qualifier = qualifier.filter(|q| !q.is_empty());
        let spec = self.resolve(account, service, function, qualifier).await?;
        req.qualifier = qualifier.unwrap_or(LATEST).to_owned();
        let outcome = self
            .runtime
            .invoke(&spec, req)
            .await
            .map_err(invoke_error)?;
        Ok(Invoked { spec, outcome })
    }
}
