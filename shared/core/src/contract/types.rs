//! Validated newtypes. Each `parse` enforces the limits and patterns of the Identity Store service
//! model (`../shared/reference/service-models/identitystore.json`), so unvalidated data cannot reach
//! an adapter. Errors never echo the rejected value: it may be personal data.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// `UserName`, `ExternalIdIssuer`, `ExternalIdIdentifier`: `[\p{L}\p{M}\p{S}\p{N}\p{P}]+`.
static NAME_PATTERN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{M}\p{S}\p{N}\p{P}]+$").expect("static regex compiles"));

/// `SensitiveStringType` and `GroupDisplayName`: `[\p{L}\p{M}\p{S}\p{N}\p{P}\t\n\r  　]+`.
static TEXT_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\p{L}\p{M}\p{S}\p{N}\p{P}\t\n\r \x{00A0}\x{3000}]+$").expect("static regex compiles")
});

/// Names the Identity Store reserves for users and groups (CreateUser `UserName` documentation).
pub const RESERVED_NAMES: [&str; 2] = ["Administrator", "AWSAdministrators"];

/// Length as the service counts it (the model's limits are Java string lengths: UTF-16 units).
fn service_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Checks the length bounds and the pattern; the `Err` is the rule that was broken.
fn check(s: &str, min: usize, max: usize, pattern: &Regex, pattern_doc: &str) -> Result<(), String> {
    let len = service_len(s);
    if len < min {
        return Err(format!("must be at least {min} character(s) long"));
    }
    if len > max {
        return Err(format!("must be at most {max} characters long (got {len})"));
    }
    if min > 0 && s.trim().is_empty() {
        return Err("must not be blank (white space only)".to_string());
    }
    if !pattern.is_match(s) {
        return Err(format!(
            "must match the Identity Store pattern {pattern_doc} (control characters and unassigned code points are not allowed)"
        ));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// `UserName`: 1..=128, `[\p{L}\p{M}\p{S}\p{N}\p{P}]+`, not a reserved name.
    UserName
);
string_newtype!(
    /// `SensitiveStringType`: 1..=1024, letters, marks, symbols, numbers, punctuation and spaces.
    Text
);
string_newtype!(
    /// A single work e-mail address (`Emails` holds at most one).
    Email
);
string_newtype!(
    /// A single work phone number (`PhoneNumbers` holds at most one).
    Phone
);
string_newtype!(
    /// `GroupDisplayName`: 1..=1024, same character classes as `SensitiveStringType`.
    GroupName
);
string_newtype!(
    /// HR change identifier: 1..=128 printable ASCII characters, no spaces (it also feeds SQS
    /// `MessageDeduplicationId`, which allows at most 128 such characters).
    EventId
);
string_newtype!(
    /// `ExternalIdIssuer` / `ExternalIdIdentifier`: 1..=256, `[\p{L}\p{M}\p{S}\p{N}\p{P}]+`.
    ExternalIdPart
);
string_newtype!(
    /// An Active Directory user name (sAMAccountName rules): 1..=20 characters, none of
    /// `" / \ [ ] : ; | = , + * ? < > @` or control characters, not ending with a period.
    DirectoryUserName
);
string_newtype!(
    /// A License Manager user-based subscription product, e.g. `OFFICE_PROFESSIONAL_PLUS`:
    /// 1..=64 of `A-Z 0-9 _`, starting with a letter.
    Product
);
string_newtype!(
    /// An EC2 instance id: `i-` and 8 or 17 lowercase hex digits.
    InstanceId
);
string_newtype!(
    /// An AppStream 2.0 stack name (`Name` in appstream.json): `^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,100}$`.
    StackName
);

// Personal data never appears in Debug output (and so never in a log line by accident).
macro_rules! redacted_debug {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted {} chars>)"), self.0.chars().count())
            }
        }
    )*};
}
redacted_debug!(UserName, Text, Email, Phone, DirectoryUserName);

macro_rules! plain_debug_display {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
plain_debug_display!(GroupName, EventId, ExternalIdPart, Product, InstanceId, StackName);

impl UserName {
    pub fn parse(s: &str) -> Result<Self, String> {
        check(s, 1, 128, &NAME_PATTERN, r"[\p{L}\p{M}\p{S}\p{N}\p{P}]+")?;
        if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(s)) {
            return Err("is a reserved name (Administrator and AWSAdministrators can't be used for users or groups)"
                .to_string());
        }
        Ok(Self(s.to_string()))
    }
}

impl Text {
    pub fn parse(s: &str) -> Result<Self, String> {
        check(s, 1, 1024, &TEXT_PATTERN, r"[\p{L}\p{M}\p{S}\p{N}\p{P}\t\n\r ]+")?;
        Ok(Self(s.to_string()))
    }
}

impl Email {
    /// A `SensitiveStringType` holding one address: one `@`, non-empty local part and a dotted
    /// domain, no white space.
    pub fn parse(s: &str) -> Result<Self, String> {
        Text::parse(s)?;
        if s.chars().any(char::is_whitespace) {
            return Err("must be a single e-mail address without white space".to_string());
        }
        let mut parts = s.split('@');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None)
                if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') =>
            {
                Ok(Self(s.to_string()))
            }
            _ => Err("must be one e-mail address of the form local@domain.tld".to_string()),
        }
    }
}

impl Phone {
    /// A `SensitiveStringType` made of digits and the usual separators (`+ - ( ) . x` and spaces).
    pub fn parse(s: &str) -> Result<Self, String> {
        Text::parse(s)?;
        let allowed = |c: char| c.is_ascii_digit() || " +-().x".contains(c);
        if !s.chars().all(allowed) || !s.chars().any(|c| c.is_ascii_digit()) {
            return Err("must be one phone number: digits and + - ( ) . x or spaces only".to_string());
        }
        Ok(Self(s.to_string()))
    }
}

impl GroupName {
    pub fn parse(s: &str) -> Result<Self, String> {
        check(s, 1, 1024, &TEXT_PATTERN, r"[\p{L}\p{M}\p{S}\p{N}\p{P}\t\n\r ]+")?;
        if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(s)) {
            return Err("is a reserved group name (Administrator, AWSAdministrators)".to_string());
        }
        Ok(Self(s.to_string()))
    }
}

impl EventId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 128 {
            return Err("must be 1 to 128 characters long".to_string());
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(
                "must be printable ASCII without spaces (it is used as the SQS MessageDeduplicationId)".to_string()
            );
        }
        Ok(Self(s.to_string()))
    }
}

impl ExternalIdPart {
    pub fn parse(s: &str) -> Result<Self, String> {
        check(s, 1, 256, &NAME_PATTERN, r"[\p{L}\p{M}\p{S}\p{N}\p{P}]+")?;
        Ok(Self(s.to_string()))
    }
}

impl DirectoryUserName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let len = s.chars().count();
        if len == 0 || len > 20 {
            return Err(format!("must be 1 to 20 characters long (Active Directory sAMAccountName; got {len})"));
        }
        if s.chars().any(|c| c.is_control() || "\"/\\[]:;|=,+*?<>@".contains(c)) {
            return Err("must not contain \" / \\ [ ] : ; | = , + * ? < > @ or control characters (Active Directory sAMAccountName)".to_string());
        }
        if s.ends_with('.') || s.trim() != s {
            return Err(
                "must not end with a period or start or end with a space (Active Directory sAMAccountName)".to_string()
            );
        }
        Ok(Self(s.to_string()))
    }
}

impl Product {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err("must be a product name of 1 to 64 of A-Z, 0-9 and _ (e.g. OFFICE_PROFESSIONAL_PLUS)".to_string())
        }
    }
}

impl InstanceId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("i-").unwrap_or("");
        let ok = matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err("must be an EC2 instance id: i- and 8 or 17 lowercase hex digits".to_string())
        }
    }
}

impl StackName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest: Vec<char> = chars.collect();
        let ok = first_ok && rest.len() <= 100 && rest.iter().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err("must be an AppStream stack name: ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,100}$".to_string())
        }
    }
}

/// The person's identity in HR: issuer + id. The idempotency key of the whole system.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ExternalId {
    pub issuer: ExternalIdPart,
    pub id: ExternalIdPart,
}

impl ExternalId {
    /// `issuer#id` with `%` and `#` percent-encoded in each part, so distinct pairs never
    /// produce the same key (used for logs, the ledger key and message groups). A key has exactly
    /// one `#` (the ledger's fixed partitions have none or two and more: they are never a key);
    /// a part without `%` or `#` is written as is. [`ExternalId::from_key`] reads it back.
    pub fn key(&self) -> String {
        fn esc(s: &str) -> String {
            s.replace('%', "%25").replace('#', "%23")
        }
        format!("{}#{}", esc(self.issuer.as_str()), esc(self.id.as_str()))
    }

    /// The person a [`key`](Self::key) names: the inverse of `key`, strict (exactly one `#`,
    /// `%` only as `%23` or `%25`, each part valid). `None` for anything `key` never writes, so
    /// two different strings never read as the same person.
    pub fn from_key(key: &str) -> Option<Self> {
        fn unesc(s: &str) -> Option<String> {
            let mut out = String::with_capacity(s.len());
            let mut rest = s;
            while let Some(i) = rest.find('%') {
                out.push_str(&rest[..i]);
                let c = match rest.get(i + 1..i + 3)? {
                    "23" => '#',
                    "25" => '%',
                    _ => return None,
                };
                out.push(c);
                rest = &rest[i + 3..];
            }
            out.push_str(rest);
            Some(out)
        }
        let (issuer, id) = key.split_once('#')?;
        if id.contains('#') {
            return None;
        }
        Some(Self {
            issuer: ExternalIdPart::parse(&unesc(issuer)?).ok()?,
            id: ExternalIdPart::parse(&unesc(id)?).ok()?,
        })
    }

    /// The person a plain [`marker`](Self::marker) names; `None` for a hashed marker (the person
    /// is not recoverable from it: look it up among known people) or anything `marker` never
    /// writes (a marker is read back only in the exact form `marker` gives it).
    pub fn from_marker(marker: &str) -> Option<Self> {
        let plain = marker.strip_prefix(MARKER_PREFIX)?.strip_prefix(':')?;
        let (issuer, id) = plain.split_once(':')?;
        let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|c| c.into_owned());
        let person =
            Self { issuer: ExternalIdPart::parse(&dec(issuer)?).ok()?, id: ExternalIdPart::parse(&dec(id)?).ok()? };
        (person.marker() == marker).then_some(person)
    }

    /// Whether `marker` is a hashed marker (see [`marker`](Self::marker)).
    pub fn is_hashed_marker(marker: &str) -> bool {
        marker.strip_prefix(MARKER_PREFIX).is_some_and(|r| r.starts_with("-sha256:"))
    }

    /// The managed marker stamped on every user this project creates (the user's `ProfileUrl`):
    /// `urn:jml-sync:person:<issuer>:<id>`, each part percent-encoded. See README "Managed marker".
    /// ProfileUrl holds at most [`MARKER_MAX`] characters; a longer one (issuer and id may have
    /// 256 characters each, and encoding triples a reserved one) becomes
    /// `urn:jml-sync:person-sha256:<hex digest of the person's key>`, still one per person and
    /// distinct from every plain marker.
    pub fn marker(&self) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        use sha2::{Digest, Sha256};
        const SET: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
        let plain = format!(
            "{MARKER_PREFIX}:{}:{}",
            utf8_percent_encode(self.issuer.as_str(), SET),
            utf8_percent_encode(self.id.as_str(), SET)
        );
        if plain.chars().count() <= MARKER_MAX {
            return plain;
        }
        let digest = Sha256::digest(self.key().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{MARKER_PREFIX}-sha256:{hex}")
    }
}

/// What every managed marker starts with (see [`ExternalId::marker`]).
pub const MARKER_PREFIX: &str = "urn:jml-sync:person";

/// The longest marker: ProfileUrl is a `SensitiveStringType` of 1 to 1,024 characters.
pub const MARKER_MAX: usize = 1024;

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_name_limits_and_reserved_names() {
        assert!(UserName::parse("ada.lovelace").is_ok());
        assert!(UserName::parse(&"a".repeat(128)).is_ok());
        assert!(UserName::parse(&"a".repeat(129)).unwrap_err().contains("at most 128"));
        assert!(UserName::parse("").unwrap_err().contains("at least 1"));
        assert!(UserName::parse("ada lovelace").unwrap_err().contains("pattern"));
        assert!(UserName::parse("administrator").unwrap_err().contains("reserved"));
        assert!(UserName::parse("AWSAdministrators").unwrap_err().contains("reserved"));
    }

    #[test]
    fn text_rejects_control_characters_but_allows_spaces() {
        assert!(Text::parse("Ada Lovelace").is_ok());
        assert!(Text::parse("Zoë Ångström-Øster 三").is_ok());
        assert!(Text::parse("bad\u{0007}bell").unwrap_err().contains("pattern"));
        assert!(Text::parse(&"x".repeat(1025)).unwrap_err().contains("at most 1024"));
    }

    #[test]
    fn external_id_key_and_marker_are_injective() {
        let a = ExternalId { issuer: ExternalIdPart::parse("a#b").unwrap(), id: ExternalIdPart::parse("c").unwrap() };
        let b = ExternalId { issuer: ExternalIdPart::parse("a").unwrap(), id: ExternalIdPart::parse("b#c").unwrap() };
        assert_ne!(a.key(), b.key());
        assert_ne!(a.marker(), b.marker());
        assert_eq!(a.marker(), "urn:jml-sync:person:a%23b:c");
    }

    #[test]
    fn a_marker_beyond_profile_url_s_bound_is_a_digest_one_per_person() {
        let long = |issuer: &str, id: &str| ExternalId {
            issuer: ExternalIdPart::parse(issuer).unwrap(),
            id: ExternalIdPart::parse(id).unwrap(),
        };
        // 256 characters each way that percent-encode to 3 characters apiece.
        let (issuer, id) = ("#".repeat(256), "%".repeat(256));
        let a = long(&issuer, &id).marker();
        assert!(a.starts_with("urn:jml-sync:person-sha256:") && a.chars().count() <= MARKER_MAX, "{a}");
        assert_eq!(a, long(&issuer, &id).marker(), "stable");
        assert_ne!(a, long(&issuer, &"%".repeat(255)).marker(), "one per person");
        // 20 (prefix and colon) + 235 + 1 + 256 x 3 = 1,024: plain; one character more: a digest.
        let at_bound = long(&"w".repeat(235), &"#".repeat(256)).marker();
        assert_eq!(at_bound.chars().count(), MARKER_MAX, "a marker at the bound stays plain");
        assert!(at_bound.starts_with("urn:jml-sync:person:www"));
        assert!(long(&"w".repeat(236), &"#".repeat(256)).marker().starts_with("urn:jml-sync:person-sha256:"));
    }

    /// The proptest case count: `JML_PROPTEST_CASES`, else `default`.
    fn cases(default: u32) -> u32 {
        std::env::var("JML_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    /// ExternalId parts the contract allows, biased to what breaks encodings: the separators of
    /// every encoding (`#`, `%`, `:`, `/`, `=`), escapes that look encoded (`%23`, `=2F`), the
    /// fixed partitions' words (`held`, `claim`, `breaker`, target names), Unicode letters, marks,
    /// symbols and astral characters, and lengths up to the 256 UTF-16 units of a part (long
    /// enough for hashed markers).
    pub(crate) fn part() -> impl proptest::strategy::Strategy<Value = ExternalIdPart> {
        use proptest::prelude::*;
        let atom = prop_oneof![
            Just("#".to_string()),
            Just("%".to_string()),
            Just(":".to_string()),
            Just("/".to_string()),
            Just("=".to_string()),
            Just("%23".to_string()),
            Just("%25".to_string()),
            Just("=2F".to_string()),
            Just("held".to_string()),
            Just("claim".to_string()),
            Just("breaker".to_string()),
            Just("example-target".to_string()),
            Just("target".to_string()),
            Just("sha256".to_string()),
            Just("urn:jml-sync:person".to_string()),
            Just("é".to_string()),
            Just("e\u{301}".to_string()),
            Just("\u{930}\u{93E}".to_string()),
            Just("三".to_string()),
            Just("\u{1D400}".to_string()),
            Just("€".to_string()),
            "[a-zA-Z0-9_.@+-]{1,4}",
            "[!-~]{1,3}",
        ];
        let long = prop_oneof![Just("#".repeat(200)), Just("w".repeat(250)), Just("%".repeat(256))];
        prop_oneof![
            8 => proptest::collection::vec(atom, 1..12).prop_map(|v| v.concat()),
            1 => long,
        ]
        .prop_filter_map("a valid ExternalId part", |s| ExternalIdPart::parse(&s).ok())
    }

    pub(crate) fn external_id() -> impl proptest::strategy::Strategy<Value = ExternalId> {
        use proptest::prelude::*;
        (part(), part()).prop_map(|(issuer, id)| ExternalId { issuer, id })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cases(256)))]

        /// Every encoding of an ExternalId is injective (two people never share one), and the
        /// key and a plain marker read back to the same pair (the oracle: the pair itself).
        #[test]
        fn every_encoding_is_injective_and_reads_back(a in external_id(), b in external_id()) {
            proptest::prop_assert_eq!(ExternalId::from_key(&a.key()), Some(a.clone()));
            let m = a.marker();
            proptest::prop_assert!(m.chars().count() <= MARKER_MAX);
            if ExternalId::is_hashed_marker(&m) {
                proptest::prop_assert_eq!(ExternalId::from_marker(&m), None);
            } else {
                proptest::prop_assert_eq!(ExternalId::from_marker(&m), Some(a.clone()));
            }
            proptest::prop_assert_eq!(a.key() == b.key(), a == b);
            proptest::prop_assert_eq!(a.marker() == b.marker(), a == b);
            // A key of a part without `#` or `%` is unchanged: `issuer#id` (stored keys stay).
            if !format!("{}{}", a.issuer, a.id).contains(['#', '%']) {
                proptest::prop_assert_eq!(a.key(), format!("{}#{}", a.issuer, a.id));
            }
        }

        /// Only what `key` / `marker` write reads back: any string that reads as a person is that
        /// person's exact encoding (so no two strings name one person, and no string names two).
        #[test]
        fn only_exact_encodings_read_back(s in "[a-z#%0-9:]{0,12}|urn:jml-sync:person:[a-z%0-9A-F:]{0,12}") {
            if let Some(p) = ExternalId::from_key(&s) {
                proptest::prop_assert_eq!(p.key(), s.clone());
            }
            if let Some(p) = ExternalId::from_marker(&s) {
                proptest::prop_assert_eq!(p.marker(), s);
            }
        }
    }

    #[test]
    fn the_person_held_was_the_legacy_held_partition_and_is_not_the_new_one() {
        let held = ExternalId {
            issuer: ExternalIdPart::parse("held").unwrap(),
            id: ExternalIdPart::parse("example-target").unwrap(),
        };
        assert_eq!(held.key(), "held#example-target");
        // Readers are strict: `a#b#c` is no person (it could be either of two).
        assert_eq!(ExternalId::from_key("a#b#c"), None);
        assert_eq!(ExternalId::from_key("a%23b#c").unwrap().issuer.as_str(), "a#b");
        assert_eq!(ExternalId::from_key("a%2#c"), None);
        assert_eq!(ExternalId::from_key("a%41#c"), None, "only %23 and %25 are escapes");
        assert_eq!(ExternalId::from_marker("urn:jml-sync:person:a%2fb:c"), None, "not the exact form (upper-case hex)");
    }

    #[test]
    fn debug_of_personal_data_is_redacted() {
        let e = Email::parse("ada@example.com").unwrap();
        assert!(!format!("{e:?}").contains("ada"));
    }
}
