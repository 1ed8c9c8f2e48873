//! subscription-sync's section of the configuration, read and checked once at start-up.

use std::sync::LazyLock;

use jml_core::config::{Backend, Config, ConfigError, err};
use regex::Regex;

use crate::naming::DirectoryUserNameRule;

/// `Directory` in the License Manager user subscriptions model.
static DIRECTORY_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(d|sd)-[0-9a-f]{10}$").expect("static regex compiles"));

#[derive(Clone, Debug)]
pub struct Settings {
    /// `DIRECTORY_ID`: the Active Directory of user-based subscriptions (required on AWS).
    pub directory_id: Option<String>,
    /// `DIRECTORY_DOMAIN`: its domain name, sent with every subscriptions call when set.
    pub directory_domain: Option<String>,
    /// `DIRECTORY_USERNAME_RULE`: how the AD user name is derived when HR does not send it.
    pub directory_username_rule: DirectoryUserNameRule,
}

impl Settings {
    /// Reads and checks the section from the configuration's source.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.check_target()?;
        let directory_id = config.var("DIRECTORY_ID");
        if directory_id.as_deref().is_some_and(|d| !DIRECTORY_ID.is_match(d)) {
            return Err(err("DIRECTORY_ID", "must match (d|sd)-[0-9a-f]{10} (an AWS Directory Service directory id)"));
        }
        let directory_username_rule = match config.var("DIRECTORY_USERNAME_RULE") {
            None => DirectoryUserNameRule::default(),
            Some(v) => DirectoryUserNameRule::parse(&v)
                .ok_or_else(|| err("DIRECTORY_USERNAME_RULE", "must be user-name-local-part or required"))?,
        };
        if config.backend == Backend::Aws && directory_id.is_none() {
            return Err(err(
                "DIRECTORY_ID",
                "is required with JML_BACKEND=aws (the Active Directory of the subscriptions)",
            ));
        }
        Ok(Self { directory_id, directory_domain: config.var("DIRECTORY_DOMAIN"), directory_username_rule })
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
    fn the_directory_is_required_on_aws_and_checked() {
        let common = [("DLQ_URL", "https://sqs/q"), ("LEDGER_TABLE", "jml-ledger")];
        assert_eq!(settings(&common[..1]).unwrap_err().var, "LEDGER_TABLE");
        assert_eq!(settings(&common).unwrap_err().var, "DIRECTORY_ID");
        assert_eq!(settings(&[common[0], common[1], ("DIRECTORY_ID", "d-12")]).unwrap_err().var, "DIRECTORY_ID");
        assert!(settings(&[common[0], common[1], ("DIRECTORY_ID", "sd-0123456789")]).is_ok());
        let rule = settings(&[("JML_BACKEND", "memory"), ("DIRECTORY_USERNAME_RULE", "x")]);
        assert_eq!(rule.unwrap_err().var, "DIRECTORY_USERNAME_RULE");
        assert!(settings(&[("JML_BACKEND", "memory")]).is_ok());
    }
}
