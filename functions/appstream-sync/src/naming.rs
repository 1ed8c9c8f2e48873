//! AppStream 2.0 user pool names, pure: the target's ledger name, the user name of a person (their
//! work e-mail), first and last names as the pool accepts them, and the deployment's stacks by
//! department.
//!
//! A user pool user carries no ExternalId, tag or attribute jml-sync could stamp, so ownership
//! lives in the ledger: before creating `user@example.com` the target claims that name for the
//! person (first claimant wins). ResourceAlreadyExistsException on CreateUser is then "exists and
//! ours" only when the claim is ours; another person's claim is a hijack refusal.

use std::collections::{BTreeMap, BTreeSet};

use jml_core::contract::{Profile, StackName};

/// The ledger target name of appstream-sync (its records, name claims and inventory).
pub const APPSTREAM_TARGET: &str = "appstream-user-pool";
/// `Username`: at most 128 characters.
pub const MAX_USER_NAME: usize = 128;
/// `UserAttributeValue` (FirstName, LastName): at most 2048 characters.
pub const MAX_NAME: usize = 2048;

/// The AppStream user name of a person: their work e-mail address, trimmed and lower-cased.
///
/// AppStream user names are case-sensitive (a user who signs in with other capitalisation is
/// "user does not exist"), so jml-sync always creates the lower-case form: a change of
/// capitalisation in HR is the same user, never a second one. `Err`: the rule it breaks.
pub fn user_name(email: &str) -> Result<String, String> {
    let name = email.trim().to_lowercase();
    let len = name.encode_utf16().count();
    if len == 0 || len > MAX_USER_NAME {
        return Err(format!(
            "person.email: is {len} characters once lower-cased; an AppStream user name (Username) must be 1 to {MAX_USER_NAME}"
        ));
    }
    Ok(name)
}

/// A first or last name as the user pool accepts it (`^[A-Za-z0-9_\-\s]+$`, at most 2048), by
/// one documented rule: transliterate to ASCII (Zoë -> Zoe, Łukasz -> Lukasz, 李 -> Li), drop
/// every other character (O'Brien -> OBrien), collapse white space, trim. Nothing left: `None`,
/// the name is omitted (it only personalises the welcome e-mail). Never a rejection.
pub fn pool_name(name: &str) -> Option<String> {
    let ascii = deunicode::deunicode(name);
    let kept: String =
        ascii.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || c.is_whitespace()).collect();
    let collapsed = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    let truncated: String = collapsed.chars().take(MAX_NAME).collect();
    let truncated = truncated.trim_end().to_string();
    (!truncated.is_empty()).then_some(truncated)
}

/// The deployment's stacks by department (`APPSTREAM_STACKS_BY_DEPARTMENT`), used when an event
/// does not list `appstreamStacks`. The key `*` applies to a department without its own entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackRules(pub BTreeMap<String, BTreeSet<StackName>>);

impl StackRules {
    /// Parses `{"Department": ["stack", ...], "*": [...]}`; `Err`: the rule broken.
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, Vec<String>> = serde_json::from_str(json)
            .map_err(|_| "must be a JSON object of department -> [stack names]".to_string())?;
        let mut rules = BTreeMap::new();
        for (dept, stacks) in raw {
            let mut set = BTreeSet::new();
            for s in stacks {
                set.insert(StackName::parse(&s).map_err(|rule| format!("{dept}: {rule}"))?);
            }
            rules.insert(dept, set);
        }
        Ok(Self(rules))
    }

    /// The stacks a person should have: the event's list, else their department's, else `*`'s.
    pub fn desired(&self, profile: &Profile) -> BTreeSet<String> {
        let from_rule = || {
            profile
                .enterprise
                .department
                .as_ref()
                .and_then(|d| self.0.get(d.as_str()))
                .or_else(|| self.0.get("*"))
                .cloned()
                .unwrap_or_default()
        };
        profile.appstream_stacks.clone().unwrap_or_else(from_rule).iter().map(|s| s.as_str().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_lower_cased_and_bounded() {
        assert_eq!(user_name(" Ada.Lovelace@Example.COM ").unwrap(), "ada.lovelace@example.com");
        let long = format!("{}@example.com", "a".repeat(120));
        assert!(user_name(&long).unwrap_err().contains("1 to 128"));
    }

    #[test]
    fn names_are_transliterated_or_omitted_never_rejected() {
        assert_eq!(pool_name("Zoë").as_deref(), Some("Zoe"));
        assert_eq!(pool_name("Łukasz").as_deref(), Some("Lukasz"));
        assert_eq!(pool_name("O'Brien").as_deref(), Some("OBrien"));
        assert_eq!(pool_name("Jean-Luc  de la Tour").as_deref(), Some("Jean-Luc de la Tour"));
        assert_eq!(pool_name("李").as_deref(), Some("Li"));
        assert_eq!(pool_name("'.'"), None);
        assert_eq!(pool_name(&"x".repeat(3000)).map(|n| n.len()), Some(MAX_NAME));
    }

    #[test]
    fn department_rules_fill_in_when_the_event_lists_no_stacks() {
        let rules = StackRules::parse(r#"{"Finance": ["fin-desktop"], "*": ["staff-desktop"]}"#).unwrap();
        assert!(StackRules::parse(r#"{"Finance": ["-bad"]}"#).unwrap_err().contains("Finance"));
        let body =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/01-joiner-ada.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_object_mut().unwrap().remove("appstreamStacks");
        let event = jml_core::contract::event_from_value(&v).unwrap();
        let profile = event.profile().unwrap();
        assert_eq!(rules.desired(profile), BTreeSet::from(["staff-desktop".to_string()]), "no Platform rule: *");
        v["person"]["enterprise"]["department"] = "Finance".into();
        let event = jml_core::contract::event_from_value(&v).unwrap();
        assert_eq!(rules.desired(event.profile().unwrap()), BTreeSet::from(["fin-desktop".to_string()]));
        v["appstreamStacks"] = serde_json::json!([]);
        let event = jml_core::contract::event_from_value(&v).unwrap();
        assert!(rules.desired(event.profile().unwrap()).is_empty(), "the event's [] wins");
    }
}
