//! The system policies RAM provides built in, served from code (never stored, never changed).

/// One built-in policy.
#[derive(Debug)]
pub(crate) struct SystemPolicy {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) document: &'static str,
}

/// When the built-in policies are said to be created (they exist for every account).
pub(crate) const SYSTEM_POLICY_DATE: &str = "2024-01-01T00:00:00Z";

pub(crate) const SYSTEM_POLICIES: &[SystemPolicy] = &[
    SystemPolicy {
        name: "AdministratorAccess",
        description: "Provides full access to Alibaba Cloud services and resources.",
        document: r#"{"Statement":[{"Action":"*","Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
    },
    SystemPolicy {
        name: "AliyunFCFullAccess",
        description: "Provides full access to Function Compute (FC).",
        document: r#"{"Statement":[{"Action":"fc:*","Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
    },
    SystemPolicy {
        name: "AliyunFCInvocationAccess",
        description: "Provides access to invoke the functions of Function Compute (FC).",
        document: r#"{"Statement":[{"Action":"fc:InvokeFunction","Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
    },
    SystemPolicy {
        name: "AliyunFCReadOnlyAccess",
        description: "Provides read-only access to Function Compute (FC).",
        document: r#"{"Statement":[{"Action":["fc:Get*","fc:List*"],"Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
    },
    SystemPolicy {
        name: "AliyunSTSAssumeRoleAccess",
        description: "Provides access to assume RAM roles through Security Token Service (STS).",
        document: r#"{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
    },
];

pub(crate) fn find(name: &str) -> Option<&'static SystemPolicy> {
    SYSTEM_POLICIES.iter().find(|p| p.name == name)
}
