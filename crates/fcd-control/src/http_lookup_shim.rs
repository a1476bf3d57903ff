//! TEMPORARY: the signatures of CONTRACT-12 section 1 (branch trig-api) so that the HTTP data
//! path compiles before that branch lands. Removed when trig-api is merged.

use std::sync::Arc;

use fcd_core::FcError;

use crate::Control;

pub struct HttpTriggerRoute {
    pub trigger: fcd_core::triggers::Trigger,
    pub config: fcd_core::triggers::HttpTriggerConfig,
}

impl Control {
    pub async fn http_trigger(
        &self,
        _account: &str,
        service: &str,
        _qualifier: Option<&str>,
        function: &str,
    ) -> Result<Arc<HttpTriggerRoute>, FcError> {
        Err(FcError::TriggerNotFound {
            service: service.to_owned(),
            function: function.to_owned(),
            trigger: String::new(),
        })
    }

    pub async fn custom_domain(
        &self,
        _domain: &str,
    ) -> Option<Arc<fcd_core::domains::CustomDomain>> {
        None
    }
}
