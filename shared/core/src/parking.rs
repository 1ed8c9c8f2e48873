//! Parking codes: the stable, machine-readable reason a record was put aside (the DLQ message's
//! `ErrorCode` attribute, the logs, the `Parked` metric's dimension).
//!
//! Each slice declares its own codes with [`crate::parking_codes!`], one enum variant per code
//! with a doc comment: what it means, then a line starting `Do:` and what the operator does. The
//! runbook's table of codes (README, between the `parking-codes` markers) is generated from those
//! comments (`jml codes`) and checked in the test command, so a code without its runbook line, or
//! a runbook line for a code that no longer exists, fails the build's tests.

/// One code's runbook line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeDoc {
    /// The code as carried (`UserNameOwnedByAnother`).
    pub code: &'static str,
    /// Who parks it (`engine`, `identity-sync`, ...).
    pub owner: &'static str,
    /// Its doc comment, lines joined with `\n`.
    pub doc: &'static str,
}

impl CodeDoc {
    /// What the code means: the doc comment before its `Do:` line, on one line.
    pub fn meaning(&self) -> String {
        self.parts().0
    }

    /// What the operator does: the doc comment from its `Do:` line on, on one line.
    pub fn action(&self) -> String {
        self.parts().1
    }

    fn parts(&self) -> (String, String) {
        let lines: Vec<&str> = self.doc.lines().map(str::trim).collect();
        let split = lines.iter().position(|l| l.starts_with("Do:")).unwrap_or(lines.len());
        let action = lines[split..].join(" ");
        (one_line(&lines[..split].join(" ")), one_line(action.strip_prefix("Do:").unwrap_or(&action)))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// The runbook's markdown table of every code in `codes` (in order), one row each.
pub fn runbook_table(codes: &[CodeDoc]) -> String {
    let mut out = String::from("| code | parked by | what it means | what to do |\n| --- | --- | --- | --- |\n");
    for c in codes {
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", c.code, c.owner, c.meaning(), c.action()));
    }
    out
}

/// Declares an enum of parking codes: each variant's name is its code, and its doc comment is
/// its runbook line (what it means; then a line `Do:` and what to do). Generates `ALL`,
/// `as_str`, `docs` (for the runbook table) and `error` (the [`crate::engine::SyncError`] that
/// parks with the code).
///
/// ```
/// jml_core::parking_codes! {
///     /// Codes of an example target.
///     pub enum ExampleCode("example-target") {
///         /// The account name is held by another person.
///         /// Do: rename one of them in HR.
///         NameTaken,
///     }
/// }
/// assert_eq!(ExampleCode::NameTaken.as_str(), "NameTaken");
/// assert_eq!(ExampleCode::docs()[0].action(), "rename one of them in HR.");
/// ```
#[macro_export]
macro_rules! parking_codes {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($owner:literal) {
            $( $(#[doc = $doc:literal])+ $variant:ident ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[doc = $doc])+ $variant ),+
        }

        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The code as carried in the DLQ message and the logs.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant)),+
                }
            }

            /// Every code's runbook line.
            pub fn docs() -> ::std::vec::Vec<$crate::parking::CodeDoc> {
                ::std::vec![$($crate::parking::CodeDoc {
                    code: stringify!($variant),
                    owner: $owner,
                    doc: concat!($($doc, "\n"),+).trim_ascii(),
                }),+]
            }

            /// The error that parks the record with this code and `reason` (which field, which
            /// rule; never a personal value).
            pub fn error(self, reason: impl Into<String>) -> $crate::engine::SyncError {
                $crate::engine::SyncError::permanent(self.as_str(), reason)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::parking_codes! {
        /// Test codes.
        pub enum TestCode("example-target") {
            /// First line
            /// of the meaning | with a bar.
            /// Do: fix it,
            /// then redrive.
            Alpha,
            /// No action line.
            Beta,
        }
    }

    #[test]
    fn a_code_is_its_variant_name_and_its_doc_splits_at_do() {
        assert_eq!(TestCode::ALL, &[TestCode::Alpha, TestCode::Beta]);
        assert_eq!(TestCode::Alpha.as_str(), "Alpha");
        let docs = TestCode::docs();
        assert_eq!(docs[0].meaning(), "First line of the meaning \\| with a bar.");
        assert_eq!(docs[0].action(), "fix it, then redrive.");
        assert_eq!(docs[1].action(), "");
        let table = runbook_table(&docs);
        assert!(table.contains(
            "| `Alpha` | example-target | First line of the meaning \\| with a bar. | fix it, then redrive. |"
        ));
        assert_eq!(TestCode::Beta.error("why").code(), "Beta");
    }
}
