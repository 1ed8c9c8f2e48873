//! iam-sync's section of the configuration, read and checked once at start-up.

use std::sync::LazyLock;

use jml_core::config::{Config, ConfigError, err};
use regex::Regex;

use crate::naming::{GroupMap, check_path};

/// A managed policy ARN (the permissions boundary).
static IAM_POLICY_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\x21-\x7e]{1,1900}$").expect("static regex compiles")
});

#[derive(Clone, Debug)]
pub struct Settings {
    /// `IAM_GROUP_MAP`: JSON HR group -> IAM groups; its values are the managed IAM groups.
    pub groups: GroupMap,
    /// `IAM_PATH_PREFIX`: the path under which users are created (default `/jml/`).
    pub path_prefix: String,
    /// `IAM_GROUP_PATH`: the IAM path of the groups jml-sync may add users to (default `/jml/`).
    /// The function's role grants AddUserToGroup on `group<path>*` only, so that it cannot put
    /// anyone in an administrators' group; a mapped group elsewhere is AccessDenied on joiners
    /// (`jml doctor` reports it). Leaving a group is allowed on any group.
    pub group_path: String,
    /// `IAM_PERMISSIONS_BOUNDARY`: the managed policy ARN every user gets as its permissions
    /// boundary. Always required (a demo one on the memory backend).
    pub permissions_boundary: String,
}

impl Settings {
    /// Reads and checks the section from the configuration's source.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.check_target()?;
        let groups = match config.var("IAM_GROUP_MAP") {
            None if config.memory() => {
                GroupMap::parse(crate::sim::DEMO_IAM_GROUP_MAP).map_err(|rule| err("IAM_GROUP_MAP", rule))?
            }
            None => GroupMap::default(),
            Some(v) => GroupMap::parse(&v).map_err(|rule| err("IAM_GROUP_MAP", rule))?,
        };
        let path_prefix = config.var("IAM_PATH_PREFIX").unwrap_or_else(|| "/jml/".to_string());
        check_path(&path_prefix).map_err(|rule| err("IAM_PATH_PREFIX", rule))?;
        let group_path = config.var("IAM_GROUP_PATH").unwrap_or_else(|| "/jml/".to_string());
        check_path(&group_path).map_err(|rule| err("IAM_GROUP_PATH", rule))?;
        let boundary = config
            .var("IAM_PERMISSIONS_BOUNDARY")
            .or_else(|| config.memory().then(|| crate::sim::DEMO_BOUNDARY.to_string()));
        let Some(permissions_boundary) = boundary else {
            return Err(err(
                "IAM_PERMISSIONS_BOUNDARY",
                "is required: every IAM user jml-sync creates gets this managed policy as its permissions boundary",
            ));
        };
        if !IAM_POLICY_ARN.is_match(&permissions_boundary) {
            return Err(err(
                "IAM_PERMISSIONS_BOUNDARY",
                "must be a managed policy ARN, arn:aws:iam::<account>:policy/<name> (arnType, 20 to 2048)",
            ));
        }
        Ok(Self { groups, path_prefix, group_path, permissions_boundary })
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
    fn the_boundary_is_required_and_every_value_checked() {
        let common = [("DLQ_URL", "https://sqs/q"), ("LEDGER_TABLE", "jml-ledger")];
        assert_eq!(settings(&common).unwrap_err().var, "IAM_PERMISSIONS_BOUNDARY");
        let boundary = ("IAM_PERMISSIONS_BOUNDARY", "arn:aws:iam::123456789012:policy/jml-boundary");
        assert!(settings(&[common[0], common[1], boundary]).is_ok());
        let bad = ("IAM_PERMISSIONS_BOUNDARY", "jml-boundary");
        assert_eq!(settings(&[common[0], common[1], bad]).unwrap_err().var, "IAM_PERMISSIONS_BOUNDARY");
        let path = ("IAM_PATH_PREFIX", "jml");
        assert_eq!(settings(&[common[0], common[1], boundary, path]).unwrap_err().var, "IAM_PATH_PREFIX");
        let group_path = ("IAM_GROUP_PATH", "jml/");
        assert_eq!(settings(&[common[0], common[1], boundary, group_path]).unwrap_err().var, "IAM_GROUP_PATH");
        let group_path = ("IAM_GROUP_PATH", "/corp/jml/");
        assert_eq!(settings(&[common[0], common[1], boundary, group_path]).unwrap().group_path, "/corp/jml/");
        assert_eq!(settings(&[common[0], common[1], boundary]).unwrap().group_path, "/jml/", "the default");
        let map = ("IAM_GROUP_MAP", "[1]");
        assert_eq!(settings(&[common[0], common[1], boundary, map]).unwrap_err().var, "IAM_GROUP_MAP");
        let demo = settings(&[("JML_BACKEND", "memory")]).unwrap();
        assert!(!demo.groups.managed().is_empty(), "demo boundary and group map on memory");
    }
}
