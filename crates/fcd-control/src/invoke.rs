//! The one synchronous invocation every front end shares: InvokeFunction, HTTP triggers and
//! custom domains all call [`Control::invoke`], which resolves the qualifier to a cached
//! [`FunctionSpec`] and hands the request to the instance manager. What differs between them
//! (an event body, or a client's HTTP request in [`InvokeRequest::http`]) travels inside the
//! request; the path to the instance is this one. It is also where a function's
//! `reservedConcurrency` admits or refuses a synchronous call (`concurrency`).
//!
//! In a cluster, InvokeFunction first asks [`Control::place`] where the call should run: here
//! when this node has a free slot on a warm instance of the version (or nobody has one), else
//! on the node rendezvous hashing picks among those advertising free warm slots (the front end
//! forwards the request there; see `fcd_api::forward`).

use std::sync::Arc;

use fcd_core::FcError;
use fcd_runtime::{FunctionSpec, InvokeError, InvokeOutcome, InvokeRequest, StartError};

use crate::{Control, LATEST, runnable};

/// Where a synchronous call should run.
#[derive(Debug)]
pub enum Placement {
    /// On this node, as resolved.
    Here(Arc<FunctionSpec>),
    /// On another node, which holds a warm instance with a free slot.
    There { node_id: String, url: String },
}

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
        req: InvokeRequest,
    ) -> Result<Invoked, FcError> {
        let qualifier = qualifier.filter(|q| !q.is_empty());
        let spec = self.resolve(account, service, function, qualifier).await?;
        self.invoke_here(spec, qualifier, req).await
    }

    /// Where a call of `function` as `qualifier` names it should run. `forwarded`: it came
    /// from another node, and runs here whatever this node holds (one hop at most).
    pub async fn place(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        forwarded: bool,
    ) -> Result<Placement, FcError> {
        let qualifier = qualifier.filter(|q| !q.is_empty());
        let spec = self
            .resolve_unchecked(account, service, function, qualifier)
            .await?;
        if !forwarded && !self.cluster.is_single() {
            let key = fcd_cluster::route_key(
                account,
                service,
                function,
                spec.version_id.as_deref().unwrap_or(LATEST),
            );
            let free_here = self.runtime.free_slots(&spec) > 0;
            if let fcd_cluster::Route::Remote { node_id, url } = self.cluster.route(&key, free_here)
            {
                return Ok(Placement::There { node_id, url });
            }
        }
        // Only a call that stays here may be refused for having no instances to run on.
        runnable(&spec, qualifier)?;
        Ok(Placement::Here(spec))
    }

    /// Runs a call placed here ([`Placement::Here`]) on `spec`, as `qualifier` named it.
    pub async fn invoke_here(
        &self,
        spec: Arc<FunctionSpec>,
        qualifier: Option<&str>,
        mut req: InvokeRequest,
    ) -> Result<Invoked, FcError> {
        req.qualifier = qualifier
            .filter(|q| !q.is_empty())
            .unwrap_or(LATEST)
            .to_owned();
        // The function's reservedConcurrency, over all its qualifiers (`concurrency`).
        let _permit = self
            .reserve(
                &spec.account_id,
                &spec.service_name,
                &spec.function.function_name,
            )
            .await
            .map_err(|r| r.into_error(&spec.service_name, &spec.function.function_name))?;
        let outcome = self
            .runtime
            .invoke(&spec, req)
            .await
            .map_err(invoke_error)?;
        Ok(Invoked { spec, outcome })
    }
}
