//! Per-qualifier function configs: the on-demand config (`maximumInstanceCount`) and the
//! provision config (provisioned instances kept started ahead of traffic), with their
//! validation.
//!
//! Both are keyed by (service, qualifier, function). FC names them by a `resource` string whose
//! form differs between the two (see [`OnDemandConfig::resource`] and
//! [`ProvisionConfig::resource`]).

use serde::{Deserialize, Serialize};

use crate::FcError;

/// The qualifier of the mutable head of a service.
pub const LATEST: &str = "LATEST";

/// Largest provision `target` (FC's `PutProvisionConfigRequest.target` docstring).
pub const PROVISION_TARGET_MAX: i64 = 10_000;

/// Largest `maximumInstanceCount` fcd accepts. FC bounds it by the account's concurrency quota
/// (300 by default); a self-hosted server has no such quota, so only the provision bound applies.
pub const MAXIMUM_INSTANCE_COUNT_MAX: i64 = 10_000;

/// A function's on-demand config under one qualifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnDemandConfig {
    pub service_name: String,
    pub qualifier: String,
    pub function_name: String,
    /// Most on-demand instances; 0 lets none start (only provisioned instances serve).
    pub maximum_instance_count: u32,
}

impl OnDemandConfig {
    /// FC's resource name of an on-demand config, `services/{s}.{q}/functions/{f}`, which is
    /// also what ListOnDemandConfigs orders, filters (`prefix`) and pages (`startKey`) by.
    pub fn resource(&self) -> String {
        on_demand_resource(&self.service_name, &self.qualifier, &self.function_name)
    }
}

pub fn on_demand_resource(service: &str, qualifier: &str, function: &str) -> String {
    format!("services/{service}.{qualifier}/functions/{function}")
}

/// The body of PutFunctionOnDemandConfig.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnDemandConfigUpdate {
    pub maximum_instance_count: Option<i64>,
}

impl OnDemandConfigUpdate {
    /// The validated `maximumInstanceCount`.
    pub fn maximum_instance_count(&self) -> Result<u32, FcError> {
        let n = self
            .maximum_instance_count
            .ok_or_else(|| FcError::invalid("maximumInstanceCount is required"))?;
        if !(0..=MAXIMUM_INSTANCE_COUNT_MAX).contains(&n) {
            return Err(FcError::invalid(format!(
                "maximumInstanceCount {n} is out of range: it must be between 0 and {MAXIMUM_INSTANCE_COUNT_MAX}"
            )));
        }
        Ok(n as u32)
    }
}

/// One entry of `scheduledActions`. Stored and returned as given; fcd does not act on it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
    /// FC 3.0's time zone of the schedule (empty: UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// One entry of `targetTrackingPolicies`. Stored and returned as given; fcd does not act on it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetTrackingPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_target: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<i64>,
    /// FC 3.0's time zone of `startTime`/`endTime` (empty: UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A function's provision config under one qualifier (an alias or a version, never LATEST).
///
/// Only `target` is acted on. `scheduledActions`, `targetTrackingPolicies` and
/// `alwaysAllocateCPU` are validated, stored and returned, but fcd keeps exactly `target`
/// instances at all times and never throttles their CPU between requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionConfig {
    pub service_name: String,
    pub qualifier: String,
    pub function_name: String,
    pub target: u32,
    #[serde(rename = "alwaysAllocateCPU")]
    pub always_allocate_cpu: bool,
    /// FC 3.0's `alwaysAllocateGPU` (stored and returned; fcd has no GPUs to keep allocated).
    /// Absent in configs put through 2.0.
    #[serde(
        default,
        rename = "alwaysAllocateGPU",
        skip_serializing_if = "Option::is_none"
    )]
    pub always_allocate_gpu: Option<bool>,
    #[serde(default)]
    pub scheduled_actions: Vec<ScheduledAction>,
    #[serde(default)]
    pub target_tracking_policies: Vec<TargetTrackingPolicy>,
}

impl ProvisionConfig {
    /// FC's resource name of a provision config: `{account}#{service}#{qualifier}#{function}`.
    pub fn resource(&self, account: &str) -> String {
        format!(
            "{account}#{}#{}#{}",
            self.service_name, self.qualifier, self.function_name
        )
    }

    /// Whether the config asks for nothing at all, so storing it would only leave a stale row
    /// (FC 2.0 has no DeleteProvisionConfig: a target of 0 is how a config is removed).
    pub fn is_empty(&self) -> bool {
        self.target == 0
            && self.scheduled_actions.is_empty()
            && self.target_tracking_policies.is_empty()
    }
}

/// The body of PutProvisionConfig.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionConfigUpdate {
    pub target: Option<i64>,
    #[serde(rename = "alwaysAllocateCPU")]
    pub always_allocate_cpu: Option<bool>,
    #[serde(rename = "alwaysAllocateGPU")]
    pub always_allocate_gpu: Option<bool>,
    pub scheduled_actions: Option<Vec<ScheduledAction>>,
    pub target_tracking_policies: Option<Vec<TargetTrackingPolicy>>,
}

fn check_target(what: &str, n: i64) -> Result<u32, FcError> {
    if !(0..=PROVISION_TARGET_MAX).contains(&n) {
        return Err(FcError::invalid(format!(
            "{what} {n} is out of range: it must be between 0 and {PROVISION_TARGET_MAX}"
        )));
    }
    Ok(n as u32)
}

impl ProvisionConfigUpdate {
    /// Validates the body and builds the config it asks for. A PUT replaces the whole config:
    /// fields left out take their defaults (`alwaysAllocateCPU` true, no actions or policies).
    pub fn into_config(
        self,
        service: &str,
        qualifier: &str,
        function: &str,
    ) -> Result<ProvisionConfig, FcError> {
        let target = check_target(
            "target",
            self.target
                .ok_or_else(|| FcError::invalid("target is required"))?,
        )?;
        let scheduled_actions = self.scheduled_actions.unwrap_or_default();
        for (i, a) in scheduled_actions.iter().enumerate() {
            if let Some(t) = a.target {
                check_target(&format!("scheduledActions[{i}].target"), t)?;
            }
        }
        let target_tracking_policies = self.target_tracking_policies.unwrap_or_default();
        for (i, p) in target_tracking_policies.iter().enumerate() {
            let min = p
                .min_capacity
                .map(|n| check_target(&format!("targetTrackingPolicies[{i}].minCapacity"), n))
                .transpose()?;
            let max = p
                .max_capacity
                .map(|n| check_target(&format!("targetTrackingPolicies[{i}].maxCapacity"), n))
                .transpose()?;
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                return Err(FcError::invalid(format!(
                    "targetTrackingPolicies[{i}]: minCapacity {min} is larger than maxCapacity {max}"
                )));
            }
            if let Some(m) = p.metric_target
                && !(m.is_finite() && m > 0.0)
            {
                return Err(FcError::invalid(format!(
                    "targetTrackingPolicies[{i}].metricTarget {m} is invalid: it must be a positive number"
                )));
            }
        }
        Ok(ProvisionConfig {
            service_name: service.to_owned(),
            qualifier: qualifier.to_owned(),
            function_name: function.to_owned(),
            target,
            always_allocate_cpu: self.always_allocate_cpu.unwrap_or(true),
            always_allocate_gpu: self.always_allocate_gpu,
            scheduled_actions,
            target_tracking_policies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(json: &str) -> ProvisionConfigUpdate {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn maximum_instance_count_is_required_and_bounded() {
        let u = |n: Option<i64>| OnDemandConfigUpdate {
            maximum_instance_count: n,
        };
        assert_eq!(u(Some(0)).maximum_instance_count(), Ok(0));
        assert_eq!(u(Some(10)).maximum_instance_count(), Ok(10));
        assert!(matches!(
            u(Some(-1)).maximum_instance_count(),
            Err(FcError::InvalidArgument(m)) if m.contains("out of range")
        ));
        assert!(
            u(Some(MAXIMUM_INSTANCE_COUNT_MAX + 1))
                .maximum_instance_count()
                .is_err()
        );
        assert!(matches!(
            u(None).maximum_instance_count(),
            Err(FcError::InvalidArgument(m)) if m.contains("required")
        ));
    }

    #[test]
    fn provision_target_is_validated_and_defaults_apply() {
        let c = update(r#"{"target": 3}"#)
            .into_config("s", "prod", "f")
            .unwrap();
        assert_eq!(c.target, 3);
        assert!(c.always_allocate_cpu);
        assert!(c.scheduled_actions.is_empty());
        assert_eq!(c.resource("123"), "123#s#prod#f");
        assert!(
            update(r#"{"target": 10000}"#)
                .into_config("s", "1", "f")
                .is_ok()
        );
        for bad in [r#"{"target": -1}"#, r#"{"target": 10001}"#, r#"{}"#] {
            assert!(
                matches!(
                    update(bad).into_config("s", "1", "f"),
                    Err(FcError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
        assert!(
            update(r#"{"target": 0}"#)
                .into_config("s", "1", "f")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn actions_and_policies_round_trip_and_are_checked() {
        let body = r#"{"target": 1, "alwaysAllocateCPU": false,
            "scheduledActions": [{"name": "a", "startTime": "2024-01-01T00:00:00Z",
                "endTime": "2025-01-01T00:00:00Z", "target": 5, "scheduleExpression": "cron(0 0 8 * * *)"}],
            "targetTrackingPolicies": [{"name": "p", "metricType": "ProvisionedConcurrencyUtilization",
                "metricTarget": 0.6, "minCapacity": 1, "maxCapacity": 4}]}"#;
        let c = update(body).into_config("s", "prod", "f").unwrap();
        assert!(!c.always_allocate_cpu);
        assert!(!c.is_empty());
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["alwaysAllocateCPU"], false);
        assert_eq!(
            json["scheduledActions"][0]["scheduleExpression"],
            "cron(0 0 8 * * *)"
        );
        assert_eq!(json["targetTrackingPolicies"][0]["maxCapacity"], 4);
        let back: ProvisionConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);

        let bad = [
            r#"{"target": 1, "scheduledActions": [{"target": -2}]}"#,
            r#"{"target": 1, "targetTrackingPolicies": [{"minCapacity": 5, "maxCapacity": 2}]}"#,
            r#"{"target": 1, "targetTrackingPolicies": [{"metricTarget": -0.5}]}"#,
        ];
        for b in bad {
            assert!(update(b).into_config("s", "1", "f").is_err(), "{b}");
        }
        // Wrong types are refused by the parser.
        assert!(
            serde_json::from_str::<ProvisionConfigUpdate>(r#"{"scheduledActions": {}}"#).is_err()
        );
    }

    #[test]
    fn on_demand_resource_is_fc_form() {
        let c = OnDemandConfig {
            service_name: "s".into(),
            qualifier: "LATEST".into(),
            function_name: "f".into(),
            maximum_instance_count: 2,
        };
        assert_eq!(c.resource(), "services/s.LATEST/functions/f");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["maximumInstanceCount"], 2);
    }
}
