//! iam-sync's naming and ownership rules, pure: the IAM user name, path and tags derived from the
//! person, the external-id tag (the ownership proof) and its inverse, the group map, and whose a
//! user is.
//!
//! Ownership is a tag: every user jml-sync creates carries `jml-sync:external-id` (the person's
//! ExternalId) and `jml-sync:managed-by`. A user of that name without this person's tag is never
//! taken over. IAM user names are unique case-insensitively, so the name is claimed in the ledger
//! in lower case before CreateUser, and a user found under another capitalisation is refused.

use std::collections::{BTreeMap, BTreeSet};

use jml_core::contract::{ExternalId, Profile};
use jml_core::engine::SyncError;

use crate::codes::Code;
use crate::port::IamUser;

/// The ledger target name of iam-sync.
pub const IAM_TARGET: &str = "iam-users";
/// `userNameType`: 1 to 64 of `[\w+=,.@-]`.
pub const MAX_USER_NAME: usize = 64;
/// `pathType`: at most 512.
pub const MAX_PATH: usize = 512;
pub const TAG_EXTERNAL_ID: &str = "jml-sync:external-id";
pub const TAG_MANAGED_BY: &str = "jml-sync:managed-by";
pub const TAG_STATUS: &str = "jml-sync:status";
pub const TAG_DISABLED_AT: &str = "jml-sync:disabled-at";
pub const MANAGED_BY: &str = "jml-sync";

/// The IAM user name of a person: their Identity Store userName transliterated to ASCII and
/// lower-cased, every character outside `[a-z0-9_+=,.@-]` replaced by `-`. Lower case keeps
/// IAM's case-insensitive uniqueness from ever surprising us. `Err`: the rule it breaks.
pub fn user_name(source: &str) -> Result<String, String> {
    let ascii = deunicode::deunicode(source).to_lowercase();
    let name: String =
        ascii.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).collect();
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Err(format!(
            "person.userName: the derived IAM user name is {} characters; IAM allows 1 to {MAX_USER_NAME} ([\\w+=,.@-]+)",
            name.len()
        ));
    }
    Ok(name)
}

/// The IAM path of a person: `prefix` + their department as a slug + `/` (`/jml/platform-engineering/`);
/// no department: `prefix`. The slug is the department transliterated, lower-cased, with runs of
/// characters outside `[a-z0-9_]` turned into one `-`. Checked against `pathType`.
pub fn path(prefix: &str, department: Option<&str>) -> Result<String, String> {
    let slug = department.map(|d| {
        let ascii = deunicode::deunicode(d).to_lowercase();
        let mut out = String::new();
        for c in ascii.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_matches('-').to_string()
    });
    let path = match slug.filter(|s| !s.is_empty()) {
        Some(s) => format!("{prefix}{s}/"),
        None => prefix.to_string(),
    };
    check_path(&path)?;
    Ok(path)
}

/// `pathType`: `/` or `/` + printable ASCII (`\u0021`-`\u007E`) + `/`, at most 512.
pub fn check_path(p: &str) -> Result<(), String> {
    let ok = p == "/"
        || (p.len() >= 3 && p.starts_with('/') && p.ends_with('/') && p.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    if !ok || p.len() > MAX_PATH {
        return Err(format!(
            "the IAM path must be / or /…/ of printable ASCII, at most {MAX_PATH} characters (pathType)"
        ));
    }
    Ok(())
}

/// The tag alphabet characters the external-id tag keeps as they are: letters (`\p{L}`), numbers
/// (`\p{N}`), the ASCII space and `_ . : + - @` (IAM `tagValueType`:
/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`; `/` and `=` are this encoding's own). Combining marks are not
/// letters (`\p{M}`): IAM refuses them, so they are written as `=XX` too.
static TAG_KEPT: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{N} _.:+\-@]$").expect("static regex compiles"));

/// A tag value's bound (`tagValueType` max 256: Java string length, UTF-16 units).
const TAG_VALUE_MAX: usize = 256;

/// The `jml-sync:external-id` tag value: `issuer/id`, each character outside the kept alphabet
/// (see `TAG_KEPT`) written as `=XX` per UTF-8 byte; longer than a tag value's 256 UTF-16
/// units: `sha256:` + the key's digest (one per person; [`external_id_of_tag`] gives `None`,
/// and reconciliation finds the person through the snapshot or the ledger).
pub fn external_id_tag(id: &ExternalId) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        let mut buf = [0u8; 4];
        for c in s.chars() {
            if TAG_KEPT.is_match(c.encode_utf8(&mut buf)) {
                out.push(c);
            } else {
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("={b:02X}"));
                }
            }
        }
        out
    }
    let value = format!("{}/{}", enc(id.issuer.as_str()), enc(id.id.as_str()));
    if value.encode_utf16().count() <= TAG_VALUE_MAX {
        return value;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.key().as_bytes());
    format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The person a plain external-id tag names: the inverse of [`external_id_tag`], strict (only
/// the exact value `external_id_tag` writes reads back; a hashed tag, or anything else, is `None`).
pub fn external_id_of_tag(value: &str) -> Option<ExternalId> {
    fn dec(s: &str) -> Option<String> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }
    let (issuer, id) = value.split_once('/')?;
    let person = ExternalId {
        issuer: jml_core::contract::ExternalIdPart::parse(&dec(issuer)?).ok()?,
        id: jml_core::contract::ExternalIdPart::parse(&dec(id)?).ok()?,
    };
    (external_id_tag(&person) == value).then_some(person)
}

/// Which IAM groups a person belongs in: the deployment's map of HR group -> IAM groups
/// (`IAM_GROUP_MAP`). Its values are the managed IAM groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMap(pub BTreeMap<String, BTreeSet<String>>);

impl GroupMap {
    /// Parses `{"hr-group": ["IamGroup", ...]}`; IAM group names are checked (`groupNameType`).
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, BTreeSet<String>> = serde_json::from_str(json)
            .map_err(|_| "must be a JSON object of HR group -> [IAM group names]".to_string())?;
        for groups in raw.values() {
            for g in groups {
                let ok = !g.is_empty()
                    && g.len() <= 128
                    && g.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
                if !ok {
                    return Err("IAM group names must be 1 to 128 of [\\w+=,.@-] (groupNameType)".to_string());
                }
            }
        }
        Ok(Self(raw))
    }

    pub fn desired(&self, profile: &Profile) -> BTreeSet<String> {
        profile.groups.iter().filter_map(|g| self.0.get(g.as_str())).flatten().cloned().collect()
    }

    pub fn managed(&self) -> BTreeSet<String> {
        self.0.values().flatten().cloned().collect()
    }
}

/// The tags of an active user of this person.
pub fn active_tags(id: &ExternalId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_EXTERNAL_ID.to_string(), external_id_tag(id)),
        (TAG_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (TAG_STATUS.to_string(), "active".to_string()),
    ])
}

/// Whose user is this?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    AnotherPerson,
    Unmanaged,
}

pub fn ownership(user: &IamUser, id: &ExternalId) -> Ownership {
    match user.tags.get(TAG_EXTERNAL_ID) {
        Some(v) if *v == external_id_tag(id) => Ownership::Ours,
        Some(_) => Ownership::AnotherPerson,
        None => Ownership::Unmanaged,
    }
}

/// Whether the user is tagged `jml-sync:status=disabled` (locked down by a leaver).
pub fn is_disabled(user: &IamUser) -> bool {
    user.tags.get(TAG_STATUS).map(String::as_str) == Some("disabled")
}

/// Refuses a user found under the name `wanted` that is not this person's (never taken over;
/// parked): `Ok` only for a user carrying this person's tag.
pub fn refuse(user: &IamUser, wanted: &str, id: &ExternalId) -> Result<(), SyncError> {
    let case_only = user.user_name != wanted && user.user_name.eq_ignore_ascii_case(wanted);
    match (ownership(user, id), case_only) {
        (Ownership::Ours, _) => Ok(()),
        (_, true) => Err(Code::IamUserNameCaseCollision.error(
            "person.userName: an IAM user exists whose name differs from the derived one only by case (IAM names are case-insensitive) and it is not this person's; refusing",
        )),
        (Ownership::AnotherPerson, false) => Err(Code::IamUserOwnedByAnother.error(format!(
                "person.userName: the IAM user is tagged {TAG_EXTERNAL_ID} of another person; refusing to take it over"
            ),
        )),
        (Ownership::Unmanaged, false) => Err(Code::IamUserNotManaged.error(format!(
                "person.userName: an IAM user of this name exists without the {TAG_EXTERNAL_ID} tag (EntityAlreadyExists); refusing to take it over"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(issuer: &str, id: &str) -> ExternalId {
        let v = serde_json::json!({"issuer": issuer, "id": id});
        let body = serde_json::json!({"eventId": "e", "type": "leaver", "occurredAt": "2026-11-02T09:00:00Z", "person": {"externalId": v}});
        jml_core::contract::event_from_value(&body).unwrap().external_id
    }

    #[test]
    fn user_names_follow_the_iam_pattern() {
        assert_eq!(user_name("Ada.Lovelace").unwrap(), "ada.lovelace");
        assert_eq!(user_name("zoë o'brien").unwrap(), "zoe-o-brien");
        assert_eq!(user_name("ada@example.com").unwrap(), "ada@example.com");
        assert!(user_name(&"a".repeat(65)).unwrap_err().contains("1 to 64"));
    }

    #[test]
    fn paths_come_from_the_department() {
        assert_eq!(path("/jml/", Some("Platform Engineering")).unwrap(), "/jml/platform-engineering/");
        assert_eq!(path("/jml/", Some("R&D / Zürich")).unwrap(), "/jml/r-d-zurich/");
        assert_eq!(path("/jml/", None).unwrap(), "/jml/");
        assert_eq!(path("/jml/", Some("&&")).unwrap(), "/jml/");
        assert!(path("/jml/", Some(&"x".repeat(600))).is_err());
        assert!(check_path("/").is_ok());
        assert!(check_path("jml/").is_err());
        assert!(check_path("/a b/").is_err());
    }

    #[test]
    fn external_id_tags_are_injective_and_in_the_tag_alphabet() {
        assert_eq!(external_id_tag(&ext("workday", "100234")), "workday/100234");
        assert_eq!(external_id_tag(&ext("a/b", "c")), "a=2Fb/c");
        assert_ne!(external_id_tag(&ext("a/b", "c")), external_id_tag(&ext("a", "b/c")));
        assert!(external_id_tag(&ext(&"x".repeat(200), &"y".repeat(200))).starts_with("sha256:"));
        let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c);
        assert!(external_id_tag(&ext("é#%!", "∑")).chars().all(allowed));
        // A combining mark is not a letter for IAM (\p{L}): encoded (Devanagari vowel sign AA).
        assert_eq!(external_id_tag(&ext("\u{0930}\u{093E}", "1")), "\u{0930}=E0=A4=BE/1");
        // 241 characters, but 481 UTF-16 units (IAM counts those): hashed.
        let astral = "\u{1D400}".repeat(120);
        assert!(external_id_tag(&ext(&astral, &astral)).starts_with("sha256:"));
        assert_eq!(external_id_of_tag("a=2Fb/c"), Some(ext("a/b", "c")));
        assert_eq!(external_id_of_tag("a/b/c"), None, "not what external_id_tag writes");
    }

    fn user(tags: BTreeMap<String, String>) -> IamUser {
        IamUser {
            user_name: "ada".into(),
            user_id: "AIDA1".into(),
            path: "/".into(),
            permissions_boundary: Some("arn:aws:iam::1:policy/b".into()),
            tags,
        }
    }

    #[test]
    fn ownership_is_the_external_id_tag() {
        let id = ext("workday", "1");
        let mut u = user(BTreeMap::new());
        assert_eq!(ownership(&u, &id), Ownership::Unmanaged);
        u.tags = active_tags(&ext("workday", "2"));
        assert_eq!(ownership(&u, &id), Ownership::AnotherPerson);
        u.tags = active_tags(&id);
        assert_eq!(ownership(&u, &id), Ownership::Ours);
        assert!(!is_disabled(&u));
        let mut bob = user(BTreeMap::new());
        bob.user_name = "Bob".into();
        assert_eq!(refuse(&bob, "bob", &id).unwrap_err().code(), "IamUserNameCaseCollision");
    }
}
