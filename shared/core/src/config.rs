//! Settings from environment variables, validated once at start-up: a missing or invalid value
//! is a clear error at init, never a surprise on the first event. README "Configuration".
//! [`Config::from_lookup`] checks what every function shares; each target's slice reads and
//! checks its own section from the same source ([`Config::var`]) at start-up.

use std::sync::Arc;

/// Which implementation of the ports to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Real AWS through the SDK (default credential chain).
    Aws,
    /// The embedded in-memory simulators (local runs, `cargo lambda watch`).
    Memory,
}

type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

#[derive(Clone)]
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
    /// `BREAKER_LEAVERS_PER_HOUR`: leavers that revoke something applied in any trailing hour
    /// (all targets together, each leaver counted once) before the rest are held
    /// (default 25; 0 turns the breaker off).
    pub leavers_per_hour: Option<u32>,
    /// `TARGET_QUEUES` (hr-ingest): `name=fifo-queue-url,...`, one per enabled target.
    pub target_queues: Vec<crate::ingest::TargetQueue>,
    /// `DEFAULT_TIMEZONE` (an IANA zone, default `UTC`) and `MAX_EFFECTIVE_AHEAD_DAYS` (default
    /// 400): how dated events are resolved and bounded.
    pub dating: crate::engine::DatingRules,
    /// `SCHEDULE_GROUP`, `SCHEDULER_ROLE_ARN`, `SCHEDULE_TARGET_QUEUE_ARN`, `SCHEDULE_DLQ_ARN`
    /// (all four or none): where a target function schedules its pending changes (EventBridge
    /// Scheduler). `None`: nothing schedules, a change dated ahead is parked.
    pub schedules: Option<ScheduleConfig>,
    /// The source of every variable, for the targets' own sections.
    lookup: Lookup,
}

/// Where a target function's pending changes are scheduled (EventBridge Scheduler).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// `SCHEDULE_GROUP`: the schedule group every firing is created in.
    pub group: String,
    /// `SCHEDULER_ROLE_ARN`: the role EventBridge Scheduler assumes to send a firing.
    pub role_arn: String,
    /// `SCHEDULE_TARGET_QUEUE_ARN`: the function's own FIFO queue (a firing is sent there).
    pub target_queue_arn: String,
    /// `SCHEDULE_DLQ_ARN`: where an undeliverable firing goes (a standard queue: EventBridge
    /// Scheduler takes no FIFO dead-letter queue).
    pub dlq_arn: String,
}

const SCHEDULE_VARS: [&str; 4] =
    ["SCHEDULE_GROUP", "SCHEDULER_ROLE_ARN", "SCHEDULE_TARGET_QUEUE_ARN", "SCHEDULE_DLQ_ARN"];

/// The schedules section: all four variables or none, each of its shape.
fn schedule_config(get: impl Fn(&str) -> Option<String>) -> Result<Option<ScheduleConfig>, ConfigError> {
    let (group, role, queue, dlq) =
        (get("SCHEDULE_GROUP"), get("SCHEDULER_ROLE_ARN"), get("SCHEDULE_TARGET_QUEUE_ARN"), get("SCHEDULE_DLQ_ARN"));
    if group.is_none() && role.is_none() && queue.is_none() && dlq.is_none() {
        return Ok(None);
    }
    let need = |i: usize, v: Option<String>| {
        v.ok_or_else(|| {
            err(
                SCHEDULE_VARS[i],
                format!(
                    "is required with the other schedule variables (set all of {} or none)",
                    SCHEDULE_VARS.join(", ")
                ),
            )
        })
    };
    let (group, role_arn, target_queue_arn, dlq_arn) =
        (need(0, group)?, need(1, role)?, need(2, queue)?, need(3, dlq)?);
    if group.is_empty()
        || group.len() > 64
        || !group.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(err("SCHEDULE_GROUP", "must be a schedule group name: 1-64 of [0-9a-zA-Z-_.]"));
    }
    let arn_of = |var: &'static str, v: &str, service: &str| {
        let ok = v.split(':').count() >= 6 && v.starts_with("arn:") && v.split(':').nth(2) == Some(service);
        if ok { Ok(()) } else { Err(err(var, format!("must be an ARN of {service}"))) }
    };
    arn_of("SCHEDULER_ROLE_ARN", &role_arn, "iam")?;
    arn_of("SCHEDULE_TARGET_QUEUE_ARN", &target_queue_arn, "sqs")?;
    arn_of("SCHEDULE_DLQ_ARN", &dlq_arn, "sqs")?;
    if !target_queue_arn.ends_with(".fifo") {
        return Err(err("SCHEDULE_TARGET_QUEUE_ARN", "must be the function's own FIFO queue (.fifo)"));
    }
    if dlq_arn.ends_with(".fifo") {
        return Err(err(
            "SCHEDULE_DLQ_ARN",
            "must be a standard queue: EventBridge Scheduler takes no FIFO dead-letter queue",
        ));
    }
    Ok(Some(ScheduleConfig { group, role_arn, target_queue_arn, dlq_arn }))
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("backend", &self.backend)
            .field("dry_run", &self.dry_run)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {var}: {rule}")]
pub struct ConfigError {
    pub var: &'static str,
    pub rule: String,
}

/// A configuration error naming the variable and the rule it broke.
pub fn err(var: &'static str, rule: impl Into<String>) -> ConfigError {
    ConfigError { var, rule: rule.into() }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Result<Self, ConfigError> {
        let lookup: Lookup = Arc::new(move |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()));
        let get = |k: &str| lookup(k);
        let backend = match get("JML_BACKEND").as_deref() {
            None | Some("aws") => Backend::Aws,
            Some("memory") => Backend::Memory,
            Some(_) => return Err(err("JML_BACKEND", "must be 'aws' or 'memory'")),
        };
        let aws = backend == Backend::Aws;
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
        let mut dating = crate::engine::DatingRules::default();
        if let Some(zone) = get("DEFAULT_TIMEZONE") {
            crate::dated::zone(&zone).map_err(|e| err("DEFAULT_TIMEZONE", e.to_string()))?;
            dating.default_zone = zone;
        }
        if let Some(v) = get("MAX_EFFECTIVE_AHEAD_DAYS") {
            dating.max_ahead_days = v.parse::<i64>().ok().filter(|d| (1..=3650).contains(d)).ok_or_else(|| {
                err("MAX_EFFECTIVE_AHEAD_DAYS", "must be a whole number of days from 1 to 3650 (default 400)")
            })?;
        }
        let schedules = schedule_config(get)?;
        Ok(Self {
            schedules,
            dating,
            leavers_per_hour,
            target_queues,
            backend,
            dlq_url,
            ledger_table,
            max_concurrency,
            dry_run,
            audit_ttl_days,
            lookup,
        })
    }

    /// A variable of the same source, trimmed; `None` when unset or blank.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// Whether the functions run on the in-memory simulators.
    pub fn memory(&self) -> bool {
        self.backend == Backend::Memory
    }

    /// What every target function needs: the ledger (with the AWS backend).
    pub fn check_target(&self) -> Result<(), ConfigError> {
        if self.backend == Backend::Aws && self.ledger_table.is_none() {
            return Err(err("LEDGER_TABLE", "is required with JML_BACKEND=aws (the DynamoDB person ledger)"));
        }
        Ok(())
    }

    /// What hr-ingest needs beyond the common settings: the target queues (with the AWS backend;
    /// the memory backend uses in-memory queues, one per target).
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

    pub(crate) fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(move |k| m.get(k).cloned())
    }

    #[test]
    fn aws_backend_requires_dlq_and_the_ledger_and_ingest_its_queues() {
        assert_eq!(cfg(&[]).unwrap_err().var, "DLQ_URL");
        let no_ledger = cfg(&[("DLQ_URL", "https://sqs/q")]).unwrap();
        assert_eq!(no_ledger.check_target().unwrap_err().var, "LEDGER_TABLE");
        let common = [("DLQ_URL", "https://sqs/q"), ("LEDGER_TABLE", "jml-ledger")];
        let c = cfg(&common).unwrap();
        assert!(c.check_target().is_ok());
        assert_eq!(c.audit_ttl(), Some(chrono::Duration::days(400)));
        assert_eq!(cfg(&[common[0], common[1], ("AUDIT_TTL_DAYS", "0")]).unwrap().audit_ttl(), None);
        assert_eq!(cfg(&[common[0], common[1], ("AUDIT_TTL_DAYS", "a year")]).unwrap_err().var, "AUDIT_TTL_DAYS");
        assert_eq!(c.check_ingest().unwrap_err().var, "TARGET_QUEUES");
        assert_eq!(
            cfg(&[common[0], common[1], ("TARGET_QUEUES", "identity=https://q")]).unwrap_err().var,
            "TARGET_QUEUES"
        );
        let ok = cfg(&[common[0], common[1], ("TARGET_QUEUES", "identity=https://q.fifo")]).unwrap();
        assert!(ok.check_ingest().is_ok());
        assert_eq!(ok.var("  "), None);
        assert_eq!(cfg(&[("JML_BACKEND", "memory"), ("X", "  y ")]).unwrap().var("X").as_deref(), Some("y"));
    }

    #[test]
    fn the_schedule_variables_are_all_four_or_none() {
        let common = [("DLQ_URL", "https://sqs/q"), ("LEDGER_TABLE", "jml-ledger")];
        assert_eq!(cfg(&common).unwrap().schedules, None);
        let all = [
            ("SCHEDULE_GROUP", "jml-sync-dates"),
            ("SCHEDULER_ROLE_ARN", "arn:aws:iam::123456789012:role/jml-scheduler"),
            ("SCHEDULE_TARGET_QUEUE_ARN", "arn:aws:sqs:eu-west-2:123456789012:identity.fifo"),
            ("SCHEDULE_DLQ_ARN", "arn:aws:sqs:eu-west-2:123456789012:schedule-dlq"),
        ];
        let with = |pairs: &[(&'static str, &'static str)]| cfg(&[&common[..], pairs].concat());
        let s = with(&all).unwrap().schedules.unwrap();
        assert_eq!((s.group.as_str(), s.dlq_arn.as_str()), ("jml-sync-dates", all[3].1));
        for i in 0..4 {
            let mut some = all.to_vec();
            some.remove(i);
            let e = with(&some).unwrap_err();
            assert_eq!(e.var, all[i].0, "the missing one is named");
            assert!(e.rule.contains("all of"), "{e}");
        }
        let replaced = |i: usize, v: &'static str| {
            let mut x = all.to_vec();
            x[i].1 = v;
            with(&x).unwrap_err().var
        };
        assert_eq!(replaced(0, "has space"), "SCHEDULE_GROUP");
        assert_eq!(replaced(1, "jml-scheduler"), "SCHEDULER_ROLE_ARN");
        assert_eq!(replaced(2, "arn:aws:sqs:eu-west-2:123456789012:identity"), "SCHEDULE_TARGET_QUEUE_ARN");
        assert_eq!(replaced(3, "arn:aws:sqs:eu-west-2:123456789012:dlq.fifo"), "SCHEDULE_DLQ_ARN");
    }

    #[test]
    fn memory_backend_defaults_and_bad_values() {
        let c = cfg(&[("JML_BACKEND", "memory")]).unwrap();
        assert_eq!(c.max_concurrency, 4);
        assert!(c.check_target().is_ok() && c.check_ingest().is_ok());
        assert_eq!(c.leavers_per_hour, Some(25));
        assert_eq!(
            cfg(&[("JML_BACKEND", "memory"), ("BREAKER_LEAVERS_PER_HOUR", "0")]).unwrap().leavers_per_hour,
            None
        );
        assert_eq!(
            cfg(&[("JML_BACKEND", "memory"), ("BREAKER_LEAVERS_PER_HOUR", "-1")]).unwrap_err().var,
            "BREAKER_LEAVERS_PER_HOUR"
        );
        assert_eq!(cfg(&[("JML_BACKEND", "memory"), ("MAX_CONCURRENCY", "0")]).unwrap_err().var, "MAX_CONCURRENCY");
        assert_eq!(cfg(&[("JML_BACKEND", "memory"), ("DRY_RUN", "yes")]).unwrap_err().var, "DRY_RUN");
        assert_eq!(cfg(&[("JML_BACKEND", "s3")]).unwrap_err().var, "JML_BACKEND");
    }
}
