//! appstream-sync's section of the configuration, read and checked once at start-up.

use jml_core::config::{Config, ConfigError, err};

use crate::naming::StackRules;
use crate::port::WelcomeEmail;

#[derive(Clone, Debug)]
pub struct Settings {
    /// `APPSTREAM_STACKS_BY_DEPARTMENT`: JSON department -> stacks (`*`: any other); used when
    /// an event lists no `appstreamStacks`. Demo rules on the memory backend.
    pub stacks: StackRules,
    /// `APPSTREAM_WELCOME_EMAIL`: `send` (default: AppStream e-mails a temporary password; a
    /// rehire is a new user, so a new welcome e-mail) or `suppress`.
    pub welcome: WelcomeEmail,
}

impl Settings {
    /// Reads and checks the section from the configuration's source.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.check_target()?;
        let stacks = match config.var("APPSTREAM_STACKS_BY_DEPARTMENT") {
            None if config.memory() => StackRules::parse(crate::sim::DEMO_STACK_RULES)
                .map_err(|rule| err("APPSTREAM_STACKS_BY_DEPARTMENT", rule))?,
            None => StackRules::default(),
            Some(v) => StackRules::parse(&v).map_err(|rule| err("APPSTREAM_STACKS_BY_DEPARTMENT", rule))?,
        };
        let welcome = match config.var("APPSTREAM_WELCOME_EMAIL").as_deref() {
            None | Some("send") => WelcomeEmail::Send,
            Some("suppress") => WelcomeEmail::Suppress,
            Some(_) => return Err(err("APPSTREAM_WELCOME_EMAIL", "must be send or suppress")),
        };
        Ok(Self { stacks, welcome })
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
    fn rules_and_welcome_are_checked_and_memory_has_demo_rules() {
        let common = [("DLQ_URL", "https://sqs/q"), ("LEDGER_TABLE", "jml-ledger")];
        assert!(settings(&common).is_ok_and(|s| s.stacks.0.is_empty()));
        let stacks = ("APPSTREAM_STACKS_BY_DEPARTMENT", r#"{"Finance": ["bad stack"]}"#);
        assert_eq!(settings(&[common[0], common[1], stacks]).unwrap_err().var, "APPSTREAM_STACKS_BY_DEPARTMENT");
        let welcome = ("APPSTREAM_WELCOME_EMAIL", "maybe");
        assert_eq!(settings(&[common[0], common[1], welcome]).unwrap_err().var, "APPSTREAM_WELCOME_EMAIL");
        assert!(!settings(&[("JML_BACKEND", "memory")]).unwrap().stacks.0.is_empty());
    }
}
