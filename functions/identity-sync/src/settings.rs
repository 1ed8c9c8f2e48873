//! identity-sync's section of the configuration, read and checked once at start-up.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use jml_core::config::{Backend, Config, ConfigError, err};
use regex::Regex;

use crate::planner::ManagedGroups;

/// `IdentityStoreId` from the service model.
static IDENTITY_STORE_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(arn:aws[a-z-]*:identitystore::\d{12}:identitystore/)?(d-[0-9a-f]{10}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
        .expect("static regex compiles")
});

/// The managed-group prefix the memory backend uses when none is configured.
pub const DEMO_GROUP_PREFIX: &str = "jml-";

#[derive(Clone, Debug)]
pub struct Settings {
    /// `IDENTITY_STORE_ID` (required with the AWS backend).
    pub identity_store_id: Option<String>,
    /// `MANAGED_GROUP_PREFIX` / `MANAGED_GROUPS`: the only groups jml-sync writes.
    pub managed_groups: ManagedGroups,
    /// `GROUP_RECHECK_SECONDS`: a cached group name is confirmed (DescribeGroup) before a
    /// membership write when it was last confirmed longer ago than this (default 30, 0-300).
    pub group_recheck_seconds: u64,
    /// `IDENTITY_STORE_RPS`: Identity Store HTTP requests in any trailing second of one instance
    /// (default 10 on AWS: the 20/s account quota shared by MaximumConcurrency 2; unpaced on
    /// the memory backend unless set).
    pub identity_store_rps: Option<f64>,
}

impl Settings {
    /// Reads and checks the section from the configuration's source.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.check_target()?;
        let get = |k: &str| config.var(k);
        let aws = config.backend == Backend::Aws;
        let identity_store_id = get("IDENTITY_STORE_ID");
        if identity_store_id.as_deref().is_some_and(|id| !IDENTITY_STORE_ID.is_match(id)) {
            return Err(err(
                "IDENTITY_STORE_ID",
                "must be d-XXXXXXXXXX (10 hex digits), a UUID, or an identity store ARN",
            ));
        }
        let prefix = get("MANAGED_GROUP_PREFIX");
        let names: BTreeSet<String> = get("MANAGED_GROUPS")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let managed_groups = match (prefix, names.is_empty(), config.backend) {
            (None, true, Backend::Memory) => ManagedGroups { prefix: Some(DEMO_GROUP_PREFIX.to_string()), names },
            (prefix, _, _) => ManagedGroups { prefix, names },
        };
        let group_recheck_seconds = match get("GROUP_RECHECK_SECONDS") {
            None => 30,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= 300)
                .ok_or_else(|| err("GROUP_RECHECK_SECONDS", "must be a whole number of seconds from 0 to 300"))?,
        };
        let identity_store_rps = match get("IDENTITY_STORE_RPS") {
            None => aws.then_some(10.0),
            Some(v) => match v.parse::<f64>() {
                Ok(r) if (1.0..=20.0).contains(&r) => Some(r),
                _ => {
                    return Err(err(
                        "IDENTITY_STORE_RPS",
                        "must be a number of requests per second from 1 to 20 (the account quota)",
                    ));
                }
            },
        };
        if aws {
            if identity_store_id.is_none() {
                return Err(err("IDENTITY_STORE_ID", "is required with JML_BACKEND=aws (e.g. d-1234567890)"));
            }
            if managed_groups.prefix.is_none() && managed_groups.names.is_empty() {
                return Err(err(
                    "MANAGED_GROUP_PREFIX",
                    "set MANAGED_GROUP_PREFIX and/or MANAGED_GROUPS: jml-sync only reconciles groups it is told it manages",
                ));
            }
        }
        Ok(Self { identity_store_id, managed_groups, group_recheck_seconds, identity_store_rps })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_config(&Config::from_lookup(move |k| m.get(k).cloned())?)
    }

    #[test]
    fn aws_requires_the_store_and_the_managed_groups() {
        let common = [("DLQ_URL", "https://sqs/q"), ("LEDGER_TABLE", "jml-ledger")];
        assert_eq!(settings(&common[..1]).unwrap_err().var, "LEDGER_TABLE");
        assert_eq!(settings(&common).unwrap_err().var, "IDENTITY_STORE_ID");
        assert_eq!(
            settings(&[common[0], common[1], ("IDENTITY_STORE_ID", "d-12")]).unwrap_err().var,
            "IDENTITY_STORE_ID"
        );
        let store = ("IDENTITY_STORE_ID", "d-1234567890");
        assert_eq!(settings(&[common[0], common[1], store]).unwrap_err().var, "MANAGED_GROUP_PREFIX");
        let s = settings(&[common[0], common[1], store, ("MANAGED_GROUPS", "a, b,")]).unwrap();
        assert_eq!(s.managed_groups.names.len(), 2);
        assert_eq!(s.identity_store_rps, Some(10.0));
        assert_eq!(s.group_recheck_seconds, 30);
    }

    #[test]
    fn memory_defaults_and_bad_values() {
        let s = settings(&[("JML_BACKEND", "memory")]).unwrap();
        assert_eq!(s.managed_groups.prefix.as_deref(), Some("jml-"));
        assert_eq!(s.identity_store_rps, None, "the simulator is not paced unless asked");
        let m = ("JML_BACKEND", "memory");
        assert_eq!(settings(&[m, ("IDENTITY_STORE_RPS", "25")]).unwrap_err().var, "IDENTITY_STORE_RPS");
        assert_eq!(settings(&[m, ("IDENTITY_STORE_RPS", "0.5")]).unwrap_err().var, "IDENTITY_STORE_RPS");
        assert_eq!(settings(&[m, ("GROUP_RECHECK_SECONDS", "301")]).unwrap_err().var, "GROUP_RECHECK_SECONDS");
    }
}
