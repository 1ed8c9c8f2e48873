//! Settings from environment variables, validated once at start-up: a missing or invalid value
//! is a clear error at init, never a surprise on the first event. README "Configuration".

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::planner::ManagedGroups;

/// Which implementation of the ports to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Real AWS through the SDK (default credential chain).
    Aws,
    /// The embedded in-memory simulators (local runs, `cargo lambda watch`).
    Memory,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub backend: Backend,
    /// `IDENTITY_STORE_ID`, required with the AWS backend.
    pub identity_store_id: Option<String>,
    /// `DLQ_URL`, required with the AWS backend.
    pub dlq_url: Option<String>,
    pub managed_groups: ManagedGroups,
    /// `MAX_CONCURRENCY`: records of different people processed at once within one batch.
    pub max_concurrency: usize,
    /// `DRY_RUN`: plan and log, write nothing.
    pub dry_run: bool,
    /// `LEDGER_TABLE`: the DynamoDB person ledger, required with the AWS backend.
    pub ledger_table: Option<String>,
    /// `AUDIT_TTL_DAYS`: how long audit entries are kept (default 400; 0 keeps them).
    pub audit_ttl_days: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {var}: {rule}")]
pub struct ConfigError {
    pub var: &'static str,
    pub rule: String,
}

fn err(var: &'static str, rule: impl Into<String>) -> ConfigError {
    ConfigError { var, rule: rule.into() }
}

/// `IdentityStoreId` from the service model.
static IDENTITY_STORE_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(arn:aws[a-z-]*:identitystore::\d{12}:identitystore/)?(d-[0-9a-f]{10}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
        .expect("static regex compiles")
});

/// The managed-group prefix the memory backend uses when none is configured.
pub const DEMO_GROUP_PREFIX: &str = "jml-";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let backend = match get("JML_BACKEND").as_deref() {
            None | Some("aws") => Backend::Aws,
            Some("memory") => Backend::Memory,
            Some(_) => return Err(err("JML_BACKEND", "must be 'aws' or 'memory'")),
        };
        let identity_store_id = get("IDENTITY_STORE_ID");
        let dlq_url = get("DLQ_URL");
        if backend == Backend::Aws {
            match &identity_store_id {
                None => {
                    return Err(err("IDENTITY_STORE_ID", "is required with JML_BACKEND=aws (e.g. d-1234567890)"));
                }
                Some(id) if !IDENTITY_STORE_ID.is_match(id) => {
                    return Err(err(
                        "IDENTITY_STORE_ID",
                        "must be d-XXXXXXXXXX (10 hex digits), a UUID, or an identity store ARN",
                    ));
                }
                Some(_) => {}
            }
            match &dlq_url {
                None => {
                    return Err(err(
                        "DLQ_URL",
                        "is required with JML_BACKEND=aws (the queue that receives parked events)",
                    ));
                }
                Some(u) if !u.starts_with("https://") && !u.starts_with("http://") => {
                    return Err(err("DLQ_URL", "must be an SQS queue URL"));
                }
                Some(_) => {}
            }
        }
        let prefix = get("MANAGED_GROUP_PREFIX");
        let names: BTreeSet<String> = get("MANAGED_GROUPS")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let managed_groups = match (prefix, names.is_empty(), backend) {
            (None, true, Backend::Memory) => ManagedGroups { prefix: Some(DEMO_GROUP_PREFIX.to_string()), names },
            (None, true, Backend::Aws) => {
                return Err(err(
                    "MANAGED_GROUP_PREFIX",
                    "set MANAGED_GROUP_PREFIX and/or MANAGED_GROUPS: jml-sync only reconciles groups it is told it manages",
                ));
            }
            (prefix, _, _) => ManagedGroups { prefix, names },
        };
        let max_concurrency = match get("MAX_CONCURRENCY") {
            None => 4,
            Some(v) => match v.parse::<usize>() {
                Ok(n @ 1..=10) => n,
                _ => {
                    return Err(err(
                        "MAX_CONCURRENCY",
                        "must be a whole number from 1 to 10 (an SQS batch holds at most 10 records)",
                    ));
                }
            },
        };
        let ledger_table = get("LEDGER_TABLE");
        if backend == Backend::Aws && ledger_table.is_none() {
            return Err(err("LEDGER_TABLE", "is required with JML_BACKEND=aws (the DynamoDB person ledger)"));
        }
        let audit_ttl_days = match get("AUDIT_TTL_DAYS") {
            None => 400,
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| err("AUDIT_TTL_DAYS", "must be a whole number of days (0 keeps audit entries)"))?,
        };
        let dry_run = match get("DRY_RUN").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(_) => return Err(err("DRY_RUN", "must be true or false")),
        };
        Ok(Self {
            backend,
            identity_store_id,
            dlq_url,
            managed_groups,
            max_concurrency,
            dry_run,
            ledger_table,
            audit_ttl_days,
        })
    }

    /// The audit retention as a duration (`None`: keep forever).
    pub fn audit_ttl(&self) -> Option<chrono::Duration> {
        (self.audit_ttl_days > 0).then(|| chrono::Duration::days(i64::from(self.audit_ttl_days)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn aws_backend_requires_store_dlq_and_managed_groups() {
        assert_eq!(cfg(&[]).unwrap_err().var, "IDENTITY_STORE_ID");
        assert_eq!(cfg(&[("IDENTITY_STORE_ID", "d-12")]).unwrap_err().var, "IDENTITY_STORE_ID");
        assert_eq!(cfg(&[("IDENTITY_STORE_ID", "d-1234567890")]).unwrap_err().var, "DLQ_URL");
        let e = cfg(&[("IDENTITY_STORE_ID", "d-1234567890"), ("DLQ_URL", "https://sqs/q")]).unwrap_err();
        assert_eq!(e.var, "MANAGED_GROUP_PREFIX");
        let base = [("IDENTITY_STORE_ID", "d-1234567890"), ("DLQ_URL", "https://sqs/q"), ("MANAGED_GROUPS", "a, b,")];
        assert_eq!(cfg(&base).unwrap_err().var, "LEDGER_TABLE");
        let c = cfg(&[base[0], base[1], base[2], ("LEDGER_TABLE", "jml-ledger")]).unwrap();
        assert_eq!(c.managed_groups.names.len(), 2);
        assert_eq!(c.audit_ttl(), Some(chrono::Duration::days(400)));
        let keep = cfg(&[base[0], base[1], base[2], ("LEDGER_TABLE", "t"), ("AUDIT_TTL_DAYS", "0")]).unwrap();
        assert_eq!(keep.audit_ttl(), None);
        let bad = cfg(&[base[0], base[1], base[2], ("LEDGER_TABLE", "t"), ("AUDIT_TTL_DAYS", "a year")]);
        assert_eq!(bad.unwrap_err().var, "AUDIT_TTL_DAYS");
    }

    #[test]
    fn memory_backend_defaults_and_bad_values() {
        let c = cfg(&[("JML_BACKEND", "memory")]).unwrap();
        assert_eq!(c.managed_groups.prefix.as_deref(), Some("jml-"));
        assert_eq!(c.max_concurrency, 4);
        assert_eq!(cfg(&[("JML_BACKEND", "memory"), ("MAX_CONCURRENCY", "0")]).unwrap_err().var, "MAX_CONCURRENCY");
        assert_eq!(cfg(&[("JML_BACKEND", "memory"), ("DRY_RUN", "yes")]).unwrap_err().var, "DRY_RUN");
        assert_eq!(cfg(&[("JML_BACKEND", "s3")]).unwrap_err().var, "JML_BACKEND");
    }
}
