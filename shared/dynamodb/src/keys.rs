//! The table's key formats: every partition and sort key the ledger writes. Person items live
//! under the person's key (`ExternalId::key`: exactly one `#`); every fixed partition (held
//! events, name claims, the breaker, the folded-identity index) has none or two and more, so the
//! key spaces never overlap, whatever the issuer or the parts' punctuation.

use jml_core::ledger::{AuditEntry, HeldEvent};

/// The person item's sort key on a target.
pub fn record_sort_key(target: &str) -> String {
    format!("target#{target}")
}

/// The sort key of a person's lease on a target.
pub fn lease_sort_key(target: &str) -> String {
    format!("lease#{target}")
}

/// The sort key of a person's account inventory on a target.
pub fn inventory_sort_key(target: &str) -> String {
    format!("inventory#{target}")
}

/// The audit sort key: chronological by HR time across targets, unique per (event, target).
pub fn audit_sort_key(audit: &AuditEntry) -> String {
    format!(
        "audit#{}#{}#{}",
        audit.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        audit.target,
        audit.event_id
    )
}

/// The sort key of the breaker's decision on one of a person's events.
pub fn decision_sort_key(event_id: &str) -> String {
    format!("breaker#{event_id}")
}

/// The key of a name claim: its own partition, never a person's (two `#` or more).
pub fn claim_key(target: &str, name: &str) -> String {
    format!("claim#{target}#{name}")
}

/// The partition of the blast-radius breaker's windows: no `#`, never a person key.
pub const BREAKER_PARTITION: &str = "breaker";

/// The partition of the people known under one folded identity
/// ([`jml_core::ledger::folded_identity`]): two `#`, never a person key.
pub fn variant_partition(folded: &str) -> String {
    format!("variant#v1#{folded}")
}

/// The sort key of a folded-identity item.
pub const VARIANT_SORT_KEY: &str = "variant";

/// Partition of a target's held events: one Query lists them all. `held#<target>#events`: two
/// `#`, never a person key (the first form, `held#<target>`, was the key of the person whose
/// issuer is `held` and id the target's name; see [`held_legacy_partition`]).
pub fn held_partition(target: &str) -> String {
    format!("held#{target}#events")
}

/// Where held events were kept before [`held_partition`]: still read (and released from), never
/// written, so an event held before the upgrade is not lost. That partition may also hold a
/// person's items (issuer `held`): a reader keeps only held-event items (a sort key starting with
/// the held time's digit; a person's sort keys start with a letter).
pub fn held_legacy_partition(target: &str) -> String {
    format!("held#{target}")
}

/// A held event's sort key: oldest HR time first.
pub fn held_sort_key(h: &HeldEvent) -> String {
    format!("{}#{}#{}", h.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), h.person, h.event_id)
}

/// Whether a partition key is a person's ([`jml_core::contract::ExternalId::key`], read back
/// strictly).
pub fn is_person_key(pk: &str) -> bool {
    jml_core::contract::ExternalId::from_key(pk).is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jml_core::contract::{ExternalId, ExternalIdPart};

    fn xid(issuer: &str, id: &str) -> ExternalId {
        ExternalId { issuer: ExternalIdPart::parse(issuer).unwrap(), id: ExternalIdPart::parse(id).unwrap() }
    }

    proptest::proptest! {
        /// The ledger's key spaces never overlap: no person key is a fixed partition (held
        /// events, name claims, the breaker, the folded-identity index), whatever the issuer or
        /// the target's name.
        #[test]
        fn no_person_key_is_a_fixed_partition(
            issuer in "[a-zA-Z0-9#%:._-]{1,12}",
            id in "[a-zA-Z0-9#%:._-]{1,12}",
            target in "[a-z-]{1,20}",
            name in ".{0,20}",
        ) {
            let (Ok(issuer), Ok(id)) = (ExternalIdPart::parse(&issuer), ExternalIdPart::parse(&id)) else {
                return Ok(());
            };
            let person = ExternalId { issuer, id };
            let key = person.key();
            proptest::prop_assert!(is_person_key(&key));
            let folded = variant_partition(&jml_core::ledger::folded_identity(&person));
            for fixed in [held_partition(&target), claim_key(&target, &name), BREAKER_PARTITION.to_string(), folded] {
                proptest::prop_assert_ne!(&key, &fixed);
                proptest::prop_assert!(!is_person_key(&fixed), "{} reads as a person key", fixed);
            }
        }
    }

    #[test]
    fn the_person_held_was_the_legacy_held_partition_and_is_not_the_new_one() {
        let held = xid("held", "example-target");
        assert_eq!(held.key(), held_legacy_partition("example-target"));
        assert_ne!(held.key(), held_partition("example-target"));
        assert!(!is_person_key(&held_partition("example-target")));
    }

    #[test]
    fn audit_and_held_keys_sort_chronologically() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let mut a = AuditEntry {
            person: "w#1".into(),
            target: "example-target".into(),
            event_id: "e".into(),
            event_type: "joiner".into(),
            occurred_at: at("2026-11-02T09:00:00Z"),
            decision: "create".into(),
            actions: 1,
            writes: 1,
            recorded_at: at("2026-11-02T09:00:01Z"),
            expires_at: None,
        };
        let k1 = audit_sort_key(&a);
        a.occurred_at = at("2026-11-20T17:00:00Z");
        assert!(audit_sort_key(&a) > k1);
        assert!(k1.starts_with("audit#2026-11-02T09:00:00.000Z#example-target#"));
        let mut h = HeldEvent {
            target: "example-target".into(),
            person: "w#1".into(),
            event_id: "l".into(),
            occurred_at: at("2026-11-02T09:00:00Z"),
            body: "{}".into(),
            held_at: at("2026-11-02T09:00:01Z"),
        };
        let h1 = held_sort_key(&h);
        h.occurred_at = at("2026-11-03T09:00:00Z");
        assert!(held_sort_key(&h) > h1);
        // A held item's sort key starts with a digit; a person's sort keys with a letter.
        assert!(h1.starts_with(|c: char| c.is_ascii_digit()));
        assert!(record_sort_key("t").starts_with(|c: char| c.is_ascii_alphabetic()));
    }

    #[test]
    fn near_identical_external_ids_share_one_variant_partition() {
        let p = |i, d| variant_partition(&jml_core::ledger::folded_identity(&xid(i, d)));
        assert_eq!(p("Workday", "100234"), p("workday", "100234"));
        assert_ne!(p("workday", "100235"), p("workday", "100234"));
        assert!(p("workday", "1").starts_with("variant#v1#"));
    }
}
