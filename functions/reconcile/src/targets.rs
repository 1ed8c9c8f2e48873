//! The deployment's targets, as one enum: its CLI / `RECONCILE_TARGETS` / `TARGET_QUEUES` name,
//! its function, its ledger name and its parking codes. A fifth target is a new variant here,
//! and then a list of compile errors (every `match` on it), not a grep.

use jml_core::parking::CodeDoc;

/// One target of the deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TargetKind {
    /// IAM Identity Center Identity Store users and managed group memberships.
    #[cfg_attr(feature = "clap", value(name = "identity"))]
    Identity,
    /// License Manager user-based subscriptions of the person's Active Directory user.
    #[cfg_attr(feature = "clap", value(name = "subscriptions"))]
    Subscriptions,
    /// AppStream 2.0 user pool users and their stacks.
    #[cfg_attr(feature = "clap", value(name = "appstream"))]
    AppStream,
    /// IAM users and their groups.
    #[cfg_attr(feature = "clap", value(name = "iam"))]
    Iam,
}

impl TargetKind {
    /// Every target, in the order tables and runs list them.
    pub const ALL: [Self; 4] = [Self::Identity, Self::Subscriptions, Self::AppStream, Self::Iam];

    /// The name on the command line, in `RECONCILE_TARGETS` and as a `TARGET_QUEUES` key.
    pub const fn cli_name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Subscriptions => "subscriptions",
            Self::AppStream => "appstream",
            Self::Iam => "iam",
        }
    }

    /// The function (crate, SAM resource's binary, `jml operations` row).
    pub const fn function(self) -> &'static str {
        match self {
            Self::Identity => "identity-sync",
            Self::Subscriptions => "subscription-sync",
            Self::AppStream => "appstream-sync",
            Self::Iam => "iam-sync",
        }
    }

    /// The ledger's target name (each target keeps its own record and stale guard).
    pub const fn ledger(self) -> &'static str {
        match self {
            Self::Identity => identity_sync::naming::IDENTITY_TARGET,
            Self::Subscriptions => subscription_sync::naming::SUBSCRIPTIONS_TARGET,
            Self::AppStream => appstream_sync::naming::APPSTREAM_TARGET,
            Self::Iam => iam_sync::naming::IAM_TARGET,
        }
    }

    /// The service, as tables title it.
    pub const fn title(self) -> &'static str {
        match self {
            Self::Identity => "Identity Store",
            Self::Subscriptions => "License Manager user subscriptions",
            Self::AppStream => "AppStream 2.0",
            Self::Iam => "IAM",
        }
    }

    /// The target of a function (`identity-sync`, ...).
    pub fn by_function(function: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.function() == function)
    }

    /// The function's start-up check of its section of the configuration.
    pub fn check(self, cfg: &jml_core::config::Config) -> Result<(), jml_core::config::ConfigError> {
        match self {
            Self::Identity => identity_sync::Settings::from_config(cfg).map(drop),
            Self::Subscriptions => subscription_sync::Settings::from_config(cfg).map(drop),
            Self::AppStream => appstream_sync::Settings::from_config(cfg).map(drop),
            Self::Iam => iam_sync::Settings::from_config(cfg).map(drop),
        }
    }

    /// The target by its CLI name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.cli_name() == name)
    }

    /// A comma-separated list of CLI names (`--targets`, `RECONCILE_TARGETS`), each once, in
    /// the order given; `Err`: the first unknown name, with the known ones.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let t = Self::parse(name).ok_or_else(|| format!("unknown target {name} ({})", Self::names()))?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Every CLI name, comma-separated (for messages).
    pub fn names() -> String {
        Self::ALL.map(Self::cli_name).join(", ")
    }

    /// The function's own parking codes (besides the engine's, [`jml_core::codes::EngineCode`]).
    pub fn parking_codes(self) -> Vec<CodeDoc> {
        match self {
            Self::Identity => identity_sync::codes::IdentityCode::docs(),
            Self::Subscriptions => subscription_sync::codes::Code::docs(),
            Self::AppStream => appstream_sync::codes::Code::docs(),
            Self::Iam => iam_sync::codes::Code::docs(),
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cli_name())
    }
}

/// Every parking code of the deployment, in runbook order: the engine's, then each target's.
pub fn all_parking_codes() -> Vec<CodeDoc> {
    let mut out = jml_core::codes::EngineCode::docs();
    for t in TargetKind::ALL {
        out.extend(t.parking_codes());
    }
    out
}
