//! The reconcile function's section of the configuration, read and checked once at start-up.

use jml_core::config::{Backend, Config, ConfigError, err};

use crate::TargetKind;

/// The function's section of the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `RECONCILE_TARGETS` (required on AWS; every target on the memory backend).
    pub targets: Vec<TargetKind>,
    /// `SNAPSHOT_BUCKET` and `SNAPSHOT_KEY`: the HR snapshot (JSON Lines) in S3.
    pub bucket: String,
    pub key: String,
    /// `RECONCILE_MAX_MISSING`: the share of the managed people a snapshot may miss before it is
    /// refused as partial (default 0.10).
    pub max_missing: f64,
    /// `RECONCILE_MODE`: `report` (default) or `correct` (corrective events to
    /// `INBOUND_QUEUE_URL`).
    pub correct: bool,
    pub inbound_queue_url: Option<String>,
    /// `DEFAULT_TIMEZONE` (and the cut-off): how a snapshot line's `effectiveDate` / `leaveDate`
    /// is placed in time.
    pub dating: jml_core::reconcile::SnapshotDating,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        let memory = cfg.backend == Backend::Memory;
        let targets = match cfg.var("RECONCILE_TARGETS") {
            Some(v) => {
                let list = TargetKind::parse_list(&v).map_err(|rule| err("RECONCILE_TARGETS", rule))?;
                if list.is_empty() {
                    return Err(err("RECONCILE_TARGETS", format!("names no target ({})", TargetKind::names())));
                }
                list
            }
            None if memory => TargetKind::ALL.to_vec(),
            None => return Err(err("RECONCILE_TARGETS", "is required: the targets to reconcile (e.g. identity,iam)")),
        };
        let required = |k: &'static str, v: Option<String>| -> Result<String, ConfigError> {
            match v {
                Some(v) => Ok(v),
                None if memory => Ok(String::new()),
                None => Err(err(k, "is required: where the HR snapshot (JSON Lines) is in S3")),
            }
        };
        let bucket = required("SNAPSHOT_BUCKET", cfg.var("SNAPSHOT_BUCKET"))?;
        let key = required("SNAPSHOT_KEY", cfg.var("SNAPSHOT_KEY"))?;
        let max_missing = match cfg.var("RECONCILE_MAX_MISSING") {
            None => 0.10,
            Some(v) => match v.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => x,
                _ => return Err(err("RECONCILE_MAX_MISSING", "must be a share from 0 to 1 (default 0.10)")),
            },
        };
        let correct = match cfg.var("RECONCILE_MODE").as_deref() {
            None | Some("report") => false,
            Some("correct") => true,
            Some(_) => return Err(err("RECONCILE_MODE", "must be report or correct")),
        };
        let inbound_queue_url = cfg.var("INBOUND_QUEUE_URL");
        if correct && inbound_queue_url.is_none() && !memory {
            return Err(err(
                "INBOUND_QUEUE_URL",
                "is required with RECONCILE_MODE=correct (corrections go through hr-ingest)",
            ));
        }
        let dating = jml_core::reconcile::SnapshotDating::from(&cfg.dating);
        Ok(Self { targets, bucket, key, max_missing, correct, inbound_queue_url, dating })
    }
}
