//! Names, inventory keys and ownership (pure): what the Identity Store slice calls things in
//! the ledger, and whether a user found by any lookup is this person's.

use crate::port::UserRecord;
use jml_core::contract::ExternalId;

/// The ledger target name of identity-sync. Every target keeps its own item and stale guard.
pub const IDENTITY_TARGET: &str = "identity-store";

/// The ledger "target" of the manager links: one inventory item per manager userName (its
/// partition `reports#identity-store#<userName, lower case>`, never a person's), listing every
/// person (`issuer#id`) whose profile named that manager. Its own target name, so that the
/// reconciliation's ledger view of `identity-store` never lists these items as people.
pub const MANAGER_LINKS: &str = "identity-store-manager-links";

/// The partition of a manager's links (Identity Store userNames are unique regardless of case).
pub fn links_key(manager_user_name: &str) -> String {
    format!("reports#{IDENTITY_TARGET}#{}", manager_user_name.to_lowercase())
}

/// The inventory key that says the rehire `event_id` already started from a fresh user: written
/// after the previous employment's users were deleted, before the new user is created, so a
/// retry of the same rehire never deletes the user it created.
pub fn rehire_key(event_id: &str) -> String {
    format!("rehire:{event_id}")
}

/// Inventory key of a userName given before CreateUser or a rename.
pub fn name_key(user_name: &str) -> String {
    format!("name:{user_name}")
}

/// Inventory key of a UserId once created.
pub fn id_key(user_id: &str) -> String {
    format!("id:{user_id}")
}

/// The userNames and UserIds an inventory names.
pub fn inventory_names(inventory: &std::collections::BTreeSet<String>) -> impl Iterator<Item = &str> {
    inventory.iter().filter_map(|k| k.strip_prefix("name:"))
}

/// The UserIds an inventory names.
pub fn inventory_ids(inventory: &std::collections::BTreeSet<String>) -> impl Iterator<Item = &str> {
    inventory.iter().filter_map(|k| k.strip_prefix("id:"))
}

/// Whether a found user belongs to this person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Carries this person's managed marker or ExternalId.
    Ours,
    /// Carries another person's marker or ExternalIds: never touch.
    OtherPerson,
    /// Carries neither marker nor ExternalId: created by hand or another tool: never adopt.
    Unmanaged,
}

/// Decides ownership of a user found by userName (or any other lookup).
pub fn ownership(user: &UserRecord, person: &ExternalId) -> Ownership {
    let ours_by_external_id =
        user.external_ids.iter().any(|(issuer, id)| issuer == person.issuer.as_str() && id == person.id.as_str());
    let marker = user.attributes.marker.as_deref();
    if ours_by_external_id || marker == Some(person.marker().as_str()) {
        Ownership::Ours
    } else if marker.is_some_and(|m| m.starts_with(jml_core::contract::MARKER_PREFIX)) || !user.external_ids.is_empty()
    {
        Ownership::OtherPerson
    } else {
        Ownership::Unmanaged
    }
}
