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
    /// `GROUP_RECHECK_SECONDS`: a cached group name is confirmed (DescribeGroup) before a
    /// membership write when it was last confirmed longer ago than this (default 30, 0-300).
    pub group_recheck_seconds: u64,
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
    /// `BREAKER_LEAVERS_PER_HOUR`: leavers that revoke something applied in any trailing hour
    /// (all targets together, each leaver counted once) before the rest are held
    /// (default 25; 0 turns the breaker off).
    pub leavers_per_hour: Option<u32>,
    /// `TARGET_QUEUES` (hr-ingest): `name=fifo-queue-url,...`, one per enabled target.
    pub target_queues: Vec<crate::ingest::TargetQueue>,
    /// `APPSTREAM_STACKS_BY_DEPARTMENT` (appstream-sync): JSON department -> stacks (`*`: any
    /// other); used when an event lists no `appstreamStacks`. Demo rules on the memory backend.
    pub appstream_stacks: crate::appstream::StackRules,
    /// `APPSTREAM_WELCOME_EMAIL` (appstream-sync): `send` (default: AppStream e-mails a temporary
    /// password; a rehire gets a RESEND) or `suppress`.
    pub appstream_welcome: crate::ports::WelcomeEmail,
    /// `IAM_GROUP_MAP` (iam-sync): JSON HR group -> IAM groups; its values are the managed IAM groups.
    pub iam_groups: crate::iam::GroupMap,
    /// `IAM_PATH_PREFIX` (iam-sync): the path under which users are created (default `/jml/`).
    pub iam_path_prefix: String,
    /// `IAM_PERMISSIONS_BOUNDARY` (iam-sync): the managed policy ARN every user gets as its
    /// permissions boundary. Mandatory with the AWS backend.
    pub iam_permissions_boundary: Option<String>,
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

/// A managed policy ARN (the permissions boundary).
static IAM_POLICY_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\x21-\x7e]{1,1900}$").expect("static regex compiles")
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
        let group_recheck_seconds = match get("GROUP_RECHECK_SECONDS") {
            None => 30,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= 300)
                .ok_or_else(|| err("GROUP_RECHECK_SECONDS", "must be a whole number of seconds from 0 to 300"))?,
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
        let appstream_stacks = match get("APPSTREAM_STACKS_BY_DEPARTMENT") {
            None if !aws => crate::appstream::StackRules::parse(crate::sim::DEMO_STACK_RULES)
                .map_err(|rule| err("APPSTREAM_STACKS_BY_DEPARTMENT", rule))?,
            None => crate::appstream::StackRules::default(),
            Some(v) => {
                crate::appstream::StackRules::parse(&v).map_err(|rule| err("APPSTREAM_STACKS_BY_DEPARTMENT", rule))?
            }
        };
        let appstream_welcome = match get("APPSTREAM_WELCOME_EMAIL").as_deref() {
            None | Some("send") => crate::ports::WelcomeEmail::Send,
            Some("suppress") => crate::ports::WelcomeEmail::Suppress,
            Some(_) => return Err(err("APPSTREAM_WELCOME_EMAIL", "must be send or suppress")),
        };
        let iam_groups = match get("IAM_GROUP_MAP") {
            None if !aws => crate::iam::GroupMap::parse(crate::sim::DEMO_IAM_GROUP_MAP)
                .map_err(|rule| err("IAM_GROUP_MAP", rule))?,
            None => crate::iam::GroupMap::default(),
            Some(v) => crate::iam::GroupMap::parse(&v).map_err(|rule| err("IAM_GROUP_MAP", rule))?,
        };
        let iam_path_prefix = get("IAM_PATH_PREFIX").unwrap_or_else(|| "/jml/".to_string());
        crate::iam::check_path(&iam_path_prefix).map_err(|rule| err("IAM_PATH_PREFIX", rule))?;
        let iam_permissions_boundary =
            get("IAM_PERMISSIONS_BOUNDARY").or_else(|| (!aws).then(|| crate::sim::DEMO_BOUNDARY.to_string()));
        if iam_permissions_boundary.as_deref().is_some_and(|a| !IAM_POLICY_ARN.is_match(a)) {
            return Err(err(
                "IAM_PERMISSIONS_BOUNDARY",
                "must be a managed policy ARN, arn:aws:iam::<account>:policy/<name> (arnType, 20 to 2048)",
            ));
        }
        Ok(Self {
            appstream_stacks,
            appstream_welcome,
            iam_groups,
            iam_path_prefix,
            iam_permissions_boundary,
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
            group_recheck_seconds,
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

    /// What appstream-sync needs beyond the common settings (the stacks come from events or
    /// the department rules; none is mandatory).
    pub fn check_appstream(&self) -> Result<(), ConfigError> {
        self.check_ledger()
    }

    /// What iam-sync needs beyond the common settings: a permissions boundary, always.
    pub fn check_iam(&self) -> Result<(), ConfigError> {
        self.check_ledger()?;
        if self.iam_permissions_boundary.is_none() {
            return Err(err(
                "IAM_PERMISSIONS_BOUNDARY",
                "is required: every IAM user jml-sync creates gets this managed policy as its permissions boundary",
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
    /// the memory backend uses in-memory `identity`, `subscriptions`, `appstream` and `iam` queues).
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
        assert!(c.check_appstream().is_ok());
        assert_eq!(c.check_iam().unwrap_err().var, "IAM_PERMISSIONS_BOUNDARY");
        let boundary = ("IAM_PERMISSIONS_BOUNDARY", "arn:aws:iam::123456789012:policy/jml-boundary");
        assert!(cfg(&[common[0], common[1], boundary]).unwrap().check_iam().is_ok());
        let bad = ("IAM_PERMISSIONS_BOUNDARY", "jml-boundary");
        assert_eq!(cfg(&[common[0], common[1], bad]).unwrap_err().var, "IAM_PERMISSIONS_BOUNDARY");
        assert_eq!(cfg(&[common[0], common[1], ("IAM_PATH_PREFIX", "jml")]).unwrap_err().var, "IAM_PATH_PREFIX");
        assert_eq!(cfg(&[common[0], common[1], ("IAM_GROUP_MAP", "[1]")]).unwrap_err().var, "IAM_GROUP_MAP");
        let stacks = ("APPSTREAM_STACKS_BY_DEPARTMENT", r#"{"Finance": ["bad stack"]}"#);
        assert_eq!(cfg(&[common[0], common[1], stacks]).unwrap_err().var, "APPSTREAM_STACKS_BY_DEPARTMENT");
        assert_eq!(
            cfg(&[common[0], common[1], ("APPSTREAM_WELCOME_EMAIL", "maybe")]).unwrap_err().var,
            "APPSTREAM_WELCOME_EMAIL"
        );
        let rule = cfg(&[common[0], common[1], ("DIRECTORY_USERNAME_RULE", "x")]);
        assert_eq!(rule.unwrap_err().var, "DIRECTORY_USERNAME_RULE");
    }

    #[test]
    fn memory_backend_defaults_and_bad_values() {
        let c = cfg(&[("JML_BACKEND", "memory")]).unwrap();
        assert_eq!(c.managed_groups.prefix.as_deref(), Some("jml-"));
        assert_eq!(c.max_concurrency, 4);
        assert!(c.check_identity().is_ok() && c.check_subscriptions().is_ok());
        assert!(c.check_appstream().is_ok() && c.check_iam().is_ok(), "demo boundary and rules on memory");
        assert!(!c.iam_groups.managed().is_empty() && !c.appstream_stacks.0.is_empty());
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
