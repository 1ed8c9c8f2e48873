//! The person's Active Directory user name and who owns it (pure): where the name comes from
//! (the event, the ledger, the `DIRECTORY_USERNAME_RULE`), its claim key, and how two spellings
//! compare.

use std::collections::BTreeSet;

use jml_core::contract::{Change, DirectoryUserName, HrEvent};
use jml_core::engine::SyncError;
use jml_core::ledger::PersonRecord;

use crate::codes::Code;

/// The ledger target name of subscription-sync.
pub const SUBSCRIPTIONS_TARGET: &str = "user-subscriptions";

/// How to derive the AD user name when HR does not send `person.directoryUserName`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirectoryUserNameRule {
    /// The part of the Identity Store userName before `@` (the whole userName without one).
    #[default]
    UserNameLocalPart,
    /// HR must send `person.directoryUserName`; without it the event is parked.
    Required,
}

impl DirectoryUserNameRule {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user-name-local-part" => Some(Self::UserNameLocalPart),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

/// The AD user name for the event: sent by HR, else remembered in the ledger, else derived.
pub fn directory_user_name(
    event: &HrEvent,
    record: Option<&PersonRecord>,
    rule: DirectoryUserNameRule,
) -> Result<Option<DirectoryUserName>, SyncError> {
    let remembered = record.and_then(|r| r.user_name.as_deref()).and_then(|n| DirectoryUserName::parse(n).ok());
    match &event.change {
        Change::Leaver { directory_user_name, .. } => Ok(directory_user_name.clone().or(remembered)),
        Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p) => {
            if let Some(n) = &p.directory_user_name {
                return Ok(Some(n.clone()));
            }
            match rule {
                DirectoryUserNameRule::Required => Err(Code::NoDirectoryUserName
                    .error("person.directoryUserName: is required (DIRECTORY_USERNAME_RULE=required)")),
                DirectoryUserNameRule::UserNameLocalPart => {
                    let local = p.user_name.as_str().split('@').next().unwrap_or_default();
                    DirectoryUserName::parse(local).map(Some).map_err(|rule| {
                        Code::NoDirectoryUserName
                            .error(format!("person.directoryUserName: not sent, and the userName's local part {rule}"))
                    })
                }
            }
        }
    }
}

/// The claim key of an AD user name: lower-cased, as AD compares them (ownership is the AD
/// user's, whatever the spelling).
pub fn claim_key(name: &str) -> String {
    name.to_lowercase()
}

/// Do two user names name the same Active Directory user? AD compares sAMAccountNames without
/// case; how License Manager compares them is not documented (see `crate::port`).
pub fn same_ad_user(a: &str, b: &str) -> bool {
    a == b || claim_key(a) == claim_key(b)
}

/// Whether a leaver's `directoryUserName` hint names an AD user the person was given here (one
/// of `known`, the inventory and the record's). A hint counts only then, so a leaver never
/// releases another person's (or an unmanaged) AD user: the leaver releases `known` only.
pub fn hint_is_known(known: &BTreeSet<String>, hint: &str) -> bool {
    known.iter().any(|n| same_ad_user(n, hint))
}
