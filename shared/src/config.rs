//! Settings from environment variables, validated once at start-up: a missing or invalid value
//! is a clear error at init, never a surprise on the first event. README "Configuration".
//! Common settings are checked by [`Config::from_lookup`]; what only one target needs by
//! [`Config::check_identity`] and [`Config::check_subscriptions`].

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::planner::ManagedGroups;
use crate::subscriptions::DirectoryUserNameRule;

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
    /// `DLQ_URL`: where permanently failing events are parked (required with the AWS backend).
    pub dlq_url: Option<String>,
    /// `LEDGER_TABLE`: the DynamoDB person ledger (required with the AWS backend).
    pub ledger_table: Option<String>,
    /// `MAX_CONCURRENCY`: records of different people processed at once within one batch.
    pub max_concurrency: usize,
    /// `DRY_RUN`: plan and log, write nothing.
    pub dry_run: bool,
    /// `AUDIT_TTL_DAYS`: how long audit entries are kept (default 400; 0 keeps them).
    pub audit_ttl_days: u32,
    /// `IDENTITY_STORE_ID` (identity-sync).
    pub identity_store_id: Option<String>,
    /// `MANAGED_GROUP_PREFIX` / `MANAGED_GROUPS` (identity-sync).
    pub managed_groups: ManagedGroups,
    /// `DIRECTORY_ID`: the Active Directory of user-based subscriptions (subscription-sync).
    pub directory_id: Option<String>,
    /// `DIRECTORY_DOMAIN`: its domain name, sent with every subscriptions call when set.
    pub directory_domain: Option<String>,
    /// `DIRECTORY_USERNAME_RULE`: how the AD user name is derived when HR does not send it.
    pub directory_username_rule: DirectoryUserNameRule,
    /// `IDENTITY_STORE_RPS` (identity-sync): Identity Store calls per second of one instance
    /// (default 10 on AWS: the 20/s account quota shared by MaximumConcurrency 2; unpaced on the
    /// memory backend).
    pub identity_store_rps: Option<f64>,
    /// `BREAKER_LEAVERS_PER_HOUR`: leavers applied per hour per target before the rest are held
    /// (default 25; 0 turns the breaker off).
    pub leavers_per_hour: Option<u32>,
    /// `TARGET_QUEUES` (hr-ingest): `name=fifo-queue-url,...`, one per enabled target.
    pub target_queues: Vec<crate::ingest::TargetQueue>,
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

/// `Directory` in the License Manager user subscriptions model.
static DIRECTORY_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(d|sd)-[0-9a-f]{10}$").expect("static regex compiles"));

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
        let aws = backend == Backend::Aws;

        let identity_store_id = get("IDENTITY_STORE_ID");
        if identity_store_id.as_deref().is_some_and(|id| !IDENTITY_STORE_ID.is_match(id)) {
            return Err(err(
                "IDENTITY_STORE_ID",
                "must be d-XXXXXXXXXX (10 hex digits), a UUID, or an identity store ARN",
            ));
        }
        let dlq_url = get("DLQ_URL");
        match &dlq_url {
            None if aws => {
                return Err(err("DLQ_URL", "is required with JML_BACKEND=aws (the queue that receives parked events)"));
            }
            Some(u) if !u.starts_with("https://") && !u.starts_with("http://") => {
                return Err(err("DLQ_URL", "must be an SQS queue URL"));
            }
            _ => {}
        }
        let ledger_table = get("LEDGER_TABLE");
        let prefix = get("MANAGED_GROUP_PREFIX");
        let names: BTreeSet<String> = get("MANAGED_GROUPS")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let managed_groups = match (prefix, names.is_empty(), backend) {
            (None, true, Backend::Memory) => ManagedGroups { prefix: Some(DEMO_GROUP_PREFIX.to_string()), names },
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
        let directory_id = get("DIRECTORY_ID");
        if directory_id.as_deref().is_some_and(|d| !DIRECTORY_ID.is_match(d)) {
            return Err(err("DIRECTORY_ID", "must match (d|sd)-[0-9a-f]{10} (an AWS Directory Service directory id)"));
        }
        let directory_domain = get("DIRECTORY_DOMAIN");
        let directory_username_rule = match get("DIRECTORY_USERNAME_RULE") {
            None => DirectoryUserNameRule::default(),
            Some(v) => DirectoryUserNameRule::parse(&v)
                .ok_or_else(|| err("DIRECTORY_USERNAME_RULE", "must be user-name-local-part or required"))?,
        };
        let identity_store_rps = match get("IDENTITY_STORE_RPS") {
            None => aws.then_some(10.0),
            Some(v) => match v.parse::<f64>() {
                Ok(r) if r > 0.0 && r <= 20.0 => Some(r),
                _ => {
                    return Err(err(
                        "IDENTITY_STORE_RPS",
                        "must be a number of requests per second above 0 and at most 20 (the account quota)",
                    ));
                }
            },
        };
        let leavers_per_hour = match get("BREAKER_LEAVERS_PER_HOUR") {
            None => Some(25),
            Some(v) => match v.parse::<u32>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(err(
                        "BREAKER_LEAVERS_PER_HOUR",
                        "must be a whole number of leavers per hour (0: no breaker)",
                    ));
                }
            },
        };
        let target_queues = match get("TARGET_QUEUES") {
            None => Vec::new(),
            Some(v) => crate::ingest::parse_target_queues(&v).map_err(|rule| err("TARGET_QUEUES", rule))?,
        };
        Ok(Self {
            leavers_per_hour,
            identity_store_rps,
            target_queues,
            backend,
            dlq_url,
            ledger_table,
            max_concurrency,
            dry_run,
            audit_ttl_days,
            identity_store_id,
            managed_groups,
            directory_id,
            directory_domain,
            directory_username_rule,
        })
    }

    /// What identity-sync needs beyond the common settings: the identity store and which groups
    /// it manages (with the AWS backend).
    pub fn check_identity(&self) -> Result<(), ConfigError> {
        self.check_ledger()?;
        if self.backend == Backend::Aws {
            if self.identity_store_id.is_none() {
                return Err(err("IDENTITY_STORE_ID", "is required with JML_BACKEND=aws (e.g. d-1234567890)"));
            }
            if self.managed_groups.prefix.is_none() && self.managed_groups.names.is_empty() {
                return Err(err(
                    "MANAGED_GROUP_PREFIX",
                    "set MANAGED_GROUP_PREFIX and/or MANAGED_GROUPS: jml-sync only reconciles groups it is told it manages",
                ));
            }
        }
        Ok(())
    }

    /// What subscription-sync needs beyond the common settings: the Active Directory.
    pub fn check_subscriptions(&self) -> Result<(), ConfigError> {
        self.check_ledger()?;
        if self.backend == Backend::Aws && self.directory_id.is_none() {
            return Err(err(
                "DIRECTORY_ID",
                "is required with JML_BACKEND=aws (the Active Directory of the subscriptions)",
            ));
        }
        Ok(())
    }

    /// The targets keep their state in the ledger.
    fn check_ledger(&self) -> Result<(), ConfigError> {
        if self.backend == Backend::Aws && self.ledger_table.is_none() {
            return Err(err("LEDGER_TABLE", "is required with JML_BACKEND=aws (the DynamoDB person ledger)"));
        }
        Ok(())
    }

    /// What hr-ingest needs beyond the common settings: the target queues (with the AWS backend;
    /// the memory backend uses in-memory `identity` and `subscriptions` queues).
    pub fn check_ingest(&self) -> Result<(), ConfigError> {
        if self.backend == Backend::Aws && self.target_queues.is_empty() {
            return Err(err(
                "TARGET_QUEUES",
                "is required with JML_BACKEND=aws: name=fifo-queue-url for every enabled target",
            ));
        }
        Ok(())
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
    fn aws_backend_requires_dlq_ledger_and_each_target_its_own() {
        assert_eq!(cfg(&[]).unwrap_err().var, "DLQ_URL");
        assert_eq!(cfg(&[("IDENTITY_STORE_ID", "d-12")]).unwrap_err().var, "IDENTITY_STORE_ID");
        let no_ledger = cfg(&[("DLQ_URL", "https://sqs/q")]).unwrap();
        assert_eq!(no_ledger.check_identity().unwrap_err().var, "LEDGER_TABLE");
        assert_eq!(no_ledger.check_subscriptions().unwrap_err().var, "LEDGER_TABLE");
        let common = [("DLQ_URL", "https://sqs/q"), ("LEDGER_TABLE", "jml-ledger")];
        let c = cfg(&common).unwrap();
        assert_eq!(c.check_identity().unwrap_err().var, "IDENTITY_STORE_ID");
        assert_eq!(c.check_subscriptions().unwrap_err().var, "DIRECTORY_ID");
        let c = cfg(&[common[0], common[1], ("IDENTITY_STORE_ID", "d-1234567890")]).unwrap();
        assert_eq!(c.check_identity().unwrap_err().var, "MANAGED_GROUP_PREFIX");
        let c =
            cfg(&[common[0], common[1], ("IDENTITY_STORE_ID", "d-1234567890"), ("MANAGED_GROUPS", "a, b,")]).unwrap();
        assert!(c.check_identity().is_ok());
        assert_eq!(c.managed_groups.names.len(), 2);
        assert_eq!(c.audit_ttl(), Some(chrono::Duration::days(400)));
        assert_eq!(c.identity_store_rps, Some(10.0));
        assert_eq!(cfg(&[common[0], common[1], ("DIRECTORY_ID", "d-12")]).unwrap_err().var, "DIRECTORY_ID");
        assert!(cfg(&[common[0], common[1], ("DIRECTORY_ID", "sd-0123456789")]).unwrap().check_subscriptions().is_ok());
        assert_eq!(cfg(&[common[0], common[1], ("AUDIT_TTL_DAYS", "0")]).unwrap().audit_ttl(), None);
        assert_eq!(cfg(&[common[0], common[1], ("AUDIT_TTL_DAYS", "a year")]).unwrap_err().var, "AUDIT_TTL_DAYS");
        assert_eq!(c.check_ingest().unwrap_err().var, "TARGET_QUEUES");
        assert_eq!(
            cfg(&[common[0], common[1], ("TARGET_QUEUES", "identity=https://q")]).unwrap_err().var,
            "TARGET_QUEUES"
        );
        let ok = cfg(&[common[0], common[1], ("TARGET_QUEUES", "identity=https://q.fifo")]).unwrap();
        assert!(ok.check_ingest().is_ok());
        let rule = cfg(&[common[0], common[1], ("DIRECTORY_USERNAME_RULE", "x")]);
        assert_eq!(rule.unwrap_err().var, "DIRECTORY_USERNAME_RULE");
    }

    #[test]
    fn memory_backend_defaults_and_bad_values() {
        let c = cfg(&[("JML_BACKEND", "memory")]).unwrap();
        assert_eq!(c.managed_groups.prefix.as_deref(), Some("jml-"));
        assert_eq!(c.max_concurrency, 4);
        assert!(c.check_identity().is_ok() && c.check_subscriptions().is_ok());
        assert_eq!(c.identity_store_rps, None, "the simulator is not paced unless asked");
        assert_eq!(c.leavers_per_hour, Some(25));
        assert_eq!(
            cfg(&[("JML_BACKEND", "memory"), ("BREAKER_LEAVERS_PER_HOUR", "0")]).unwrap().leavers_per_hour,
            None
        );
        assert_eq!(
            cfg(&[("JML_BACKEND", "memory"), ("BREAKER_LEAVERS_PER_HOUR", "-1")]).unwrap_err().var,
            "BREAKER_LEAVERS_PER_HOUR"
        );
        assert_eq!(
            cfg(&[("JML_BACKEND", "memory"), ("IDENTITY_STORE_RPS", "25")]).unwrap_err().var,
            "IDENTITY_STORE_RPS"
        );
        assert_eq!(cfg(&[("JML_BACKEND", "memory"), ("MAX_CONCURRENCY", "0")]).unwrap_err().var, "MAX_CONCURRENCY");
        assert_eq!(cfg(&[("JML_BACKEND", "memory"), ("DRY_RUN", "yes")]).unwrap_err().var, "DRY_RUN");
        assert_eq!(cfg(&[("JML_BACKEND", "s3")]).unwrap_err().var, "JML_BACKEND");
    }
}
