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
    /// produce the same key (used for logs, the ledger key and message groups).
    pub fn key(&self) -> String {
        fn esc(s: &str) -> String {
            s.replace('%', "%25").replace('#', "%23")
        }
        format!("{}#{}", esc(self.issuer.as_str()), esc(self.id.as_str()))
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

    #[test]
    fn debug_of_personal_data_is_redacted() {
        let e = Email::parse("ada@example.com").unwrap();
        assert!(!format!("{e:?}").contains("ada"));
    }
}
