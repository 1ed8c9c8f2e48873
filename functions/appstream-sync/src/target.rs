//! The AppStream 2.0 user pool target: user names and names as the service accepts them, the
//! pure stack planner, and the converge step through the `AppStreamUsers` port.
//!
//! A user pool user carries no ExternalId, tag or attribute jml-sync could stamp, so ownership
//! lives in the ledger: before creating `user@example.com` the target claims that name for the
//! person (`Ledger::claim`, first claimant wins). ResourceAlreadyExistsException on CreateUser is
//! then "exists and ours" only when the claim is ours; another person's claim is a hijack refusal.

use crate::port::op;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;

use crate::port::{AppStreamNewUser, AppStreamUsers, ServiceError, StackAssociationError, WelcomeEmail};
use jml_core::contract::{Change, EventKind, HrEvent, Profile, StackName};
use jml_core::engine::Decision;
use jml_core::engine::{Ctx, Outcome, SyncError, Target};
use jml_core::ledger::{Ledger, PersonRecord, PersonStatus};

/// The ledger target name of appstream-sync.
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

const USER_NAME_NOT_FOUND: &str = "USER_NAME_NOT_FOUND";

/// Stack changes: (disassociate, associate), each sorted.
pub fn plan_stacks(desired: &BTreeSet<String>, current: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    (current.difference(desired).cloned().collect(), desired.difference(current).cloned().collect())
}

/// What a batch call's per-association errors mean, read in full (not only the first): none is
/// success; stacks or a directory that do not exist can never succeed (parked, naming every
/// missing stack); anything else (USER_NAME_NOT_FOUND right after CreateUser is eventual
/// consistency, INTERNAL_ERROR is theirs) is retried.
pub fn check_batch(op: crate::port::Op, errors: &[StackAssociationError]) -> Result<(), SyncError> {
    if errors.is_empty() {
        return Ok(());
    }
    let with = |code: &str| errors.iter().filter(|e| e.code == code).map(|e| e.stack.as_str()).collect::<Vec<_>>();
    let missing = with("STACK_NOT_FOUND");
    if !missing.is_empty() {
        return Err(SyncError::permanent(
            "StackNotFound",
            format!("appstreamStacks: stack(s) {} do not exist ({op}: STACK_NOT_FOUND)", missing.join(", ")),
        ));
    }
    let directory = with("DIRECTORY_NOT_FOUND");
    if !directory.is_empty() {
        return Err(SyncError::permanent(
            "DirectoryNotFound",
            format!("{op}: DIRECTORY_NOT_FOUND for stack(s) {}", directory.join(", ")),
        ));
    }
    let mut codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    Err(SyncError::Service(ServiceError::Unavailable {
        op,
        message: format!("{} for {} association(s)", codes.join(", "), errors.len()),
    }))
}

/// The AppStream target.
pub struct AppStreamSync {
    service: Arc<dyn AppStreamUsers>,
    ledger: Arc<dyn Ledger>,
    rules: StackRules,
    welcome: WelcomeEmail,
}

impl std::fmt::Debug for AppStreamSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStreamSync").field("welcome", &self.welcome).finish_non_exhaustive()
    }
}

/// Actions as they are reported (free of personal data: no user name, no stack is personal).
fn stack_actions(verb: &str, stacks: &[String]) -> Vec<String> {
    stacks.iter().map(|s| format!("{verb} {s}")).collect()
}

impl AppStreamSync {
    pub fn new(
        service: Arc<dyn AppStreamUsers>,
        ledger: Arc<dyn Ledger>,
        rules: StackRules,
        welcome: WelcomeEmail,
    ) -> Self {
        Self { service, ledger, rules, welcome }
    }

    /// Makes the user's stacks exactly `desired`. The inner `Err` is BatchAssociateUserStack's
    /// errors when it answered USER_NAME_NOT_FOUND: the user is not (or not yet) in the pool, and
    /// the caller decides (create it again, or `check_batch`: retried).
    async fn reconcile_stacks(
        &self,
        name: &str,
        desired: &BTreeSet<String>,
        dry_run: bool,
    ) -> Result<Result<Vec<String>, Vec<StackAssociationError>>, SyncError> {
        let current: BTreeSet<String> = self.service.stacks(name).await?.into_iter().collect();
        let (remove, add) = plan_stacks(desired, &current);
        if !dry_run {
            if !remove.is_empty() {
                check_batch(op::BATCH_DISASSOCIATE_USER_STACK, &self.service.disassociate(name, &remove).await?)?;
            }
            if !add.is_empty() {
                let errors = self.service.associate(name, &add).await?;
                if errors.iter().any(|e| e.code == USER_NAME_NOT_FOUND) {
                    return Ok(Err(errors));
                }
                check_batch(op::BATCH_ASSOCIATE_USER_STACK, &errors)?;
            }
        }
        let mut actions = stack_actions("BatchDisassociateUserStack", &remove);
        actions.extend(stack_actions("BatchAssociateUserStack", &add));
        Ok(Ok(actions))
    }

    /// A leaver's removal: every stack, DisableUser (sign-in stops even if what follows fails),
    /// then DeleteUser, so that no password the person ever had can work again: AppStream's
    /// EnableUser would restore it, and a user pool user has no call to reset it. A user already
    /// gone is success.
    async fn release(&self, name: &str, dry_run: bool, notes: &mut Vec<String>) -> Result<Vec<String>, SyncError> {
        let mut actions = self.reconcile_stacks(name, &BTreeSet::new(), dry_run).await?.or_else(user_not_found)?;
        if !(dry_run || self.service.disable_user(name).await?) {
            notes.push("DisableUser: the user no longer exists (ResourceNotFoundException); nothing to disable".into());
            return Ok(actions);
        }
        actions.push("DisableUser".to_string());
        if dry_run || self.service.delete_user(name).await? {
            actions.push("DeleteUser".to_string());
        }
        Ok(actions)
    }

    /// CreateUser for an address that is not (or no longer) the person's current user: a joiner,
    /// a rehire, a new or earlier e-mail address. When the user already exists (ours by the
    /// claim), it was either created by an earlier attempt of this change that did not commit
    /// (enabled: kept, a second welcome e-mail would only confuse) or it is a user from before
    /// (disabled by a leaver or a move; jml-sync before DeleteUser only disabled): its old
    /// password must not come back, so it is deleted and created again. A rehire always starts
    /// afresh, enabled or not: the person left, and an enabled user from before means a lost
    /// leaver. Actions and notes are appended; `Ok(true)`: a user was created.
    async fn create_fresh(
        &self,
        name: &str,
        profile: &Profile,
        rehire: bool,
        dry_run: bool,
        notes: &mut Vec<String>,
        actions: &mut Vec<String>,
    ) -> Result<bool, SyncError> {
        if self.create(name, profile, dry_run, notes).await? {
            actions.push("CreateUser".into());
            return Ok(true);
        }
        let enabled = if rehire {
            None
        } else {
            self.service.users().await?.into_iter().find(|u| u.user_name == name).map(|u| u.enabled)
        };
        if enabled == Some(true) {
            notes.push("CreateUser: ResourceAlreadyExistsException; the user is ours by the ledger claim and enabled: an earlier attempt of this change created it".into());
            return Ok(false);
        }
        notes.push("CreateUser: ResourceAlreadyExistsException; the user is ours by the ledger claim but from before: deleted and created again, so no earlier password works".into());
        if self.service.delete_user(name).await? {
            actions.push("DeleteUser".into());
        }
        if self.create(name, profile, dry_run, notes).await? {
            actions.push("CreateUser".into());
            return Ok(true);
        }
        // Created again by someone else between the two calls: retried, never taken over blind.
        Err(SyncError::Service(ServiceError::Unavailable {
            op: op::CREATE_USER,
            message: "the user exists again right after DeleteUser".into(),
        }))
    }

    /// The name is this person's, or becomes it: refuses another person's.
    async fn claim(&self, event: &HrEvent, name: &str, dry_run: bool) -> Result<(), SyncError> {
        if dry_run {
            return Ok(());
        }
        let me = event.external_id.key();
        let owner = self.ledger.claim(APPSTREAM_TARGET, name, &me).await?;
        if owner != me {
            return Err(SyncError::permanent(
                "AppStreamUserOwnedByAnother",
                "person.email: the AppStream user with this e-mail address belongs to another person (ledger claim); refusing to take it over",
            ));
        }
        Ok(())
    }

    async fn converge_profile(
        &self,
        event: &HrEvent,
        profile: &Profile,
        record: Option<&PersonRecord>,
        addresses: &BTreeSet<String>,
        dry_run: bool,
    ) -> Result<Outcome, SyncError> {
        let kind = event.kind();
        let name = user_name(profile.email.as_str()).map_err(|rule| SyncError::permanent("AppStreamUserName", rule))?;
        let mut notes = Vec::new();
        let known = record.filter(|r| r.status != PersonStatus::Deleted).and_then(|r| r.user_name.as_deref());
        if matches!(kind, EventKind::Joiner | EventKind::Mover)
            && record.is_some_and(|r| r.status == PersonStatus::Disabled)
        {
            return Ok(outcome(Decision::IgnoredForDisabledUser, vec![], known.map(str::to_string), dry_run, notes));
        }
        let mut actions = Vec::new();
        // A new e-mail address is a new AppStream user (names cannot change): every other address
        // the person was ever given is released (no stack, disabled, deleted). Not only the
        // record's: an address whose joiner or mover was parked after CreateUser never reached
        // the record, but its claim put it in the write-ahead inventory before the create.
        let mut released = false;
        for old in addresses.iter().filter(|old| **old != name) {
            let mut scratch = Vec::new();
            let done = self.release(old, dry_run, &mut scratch).await?;
            released |= !done.is_empty();
            actions.extend(done);
        }
        if released {
            notes.push(
                "the e-mail address changed: every previous AppStream user of the person was released and deleted"
                    .into(),
            );
        }
        let ours = known == Some(name.as_str());
        if !ours {
            // First time this person meets this name: the claim makes it theirs (or refuses).
            self.claim(event, &name, dry_run).await?;
        }
        let mut created = false;
        if kind == EventKind::Rehire || !ours {
            // A rehire always starts from a user created now; so does an address this person
            // meets again (see `create_fresh`).
            created =
                self.create_fresh(&name, profile, kind == EventKind::Rehire, dry_run, &mut notes, &mut actions).await?;
        }
        if ours && names_changed(profile, record) {
            notes.push(
                "AppStream has no call to rename a user pool user: first/last names are set at creation only".into(),
            );
        }
        let desired = self.rules.desired(profile);
        match self.reconcile_stacks(&name, &desired, dry_run).await? {
            Ok(done) => actions.extend(done),
            Err(_) if ours && !created => {
                // The ledger's user was deleted outside jml-sync: the event is the desired state.
                notes.push("the AppStream user had been deleted outside jml-sync: created again".into());
                created = self.create_fresh(&name, profile, false, dry_run, &mut notes, &mut actions).await?;
                actions.extend(self.reconcile_stacks(&name, &desired, dry_run).await?.or_else(user_not_found)?);
            }
            // Just created and still propagating: retried.
            Err(errors) => user_not_found(errors).map(|_| ())?,
        }
        let decision = match (kind, created, actions.is_empty()) {
            (EventKind::Rehire, _, _) => Decision::Rehire,
            (_, true, _) => Decision::Create,
            (_, false, true) => Decision::NoChange,
            (_, false, false) => Decision::Update,
        };
        Ok(outcome(decision, actions, Some(name), dry_run, notes))
    }

    /// CreateUser; `Ok(false)`: it already exists (ResourceAlreadyExistsException).
    async fn create(
        &self,
        name: &str,
        profile: &Profile,
        dry_run: bool,
        notes: &mut Vec<String>,
    ) -> Result<bool, SyncError> {
        let user = AppStreamNewUser {
            user_name: name.to_string(),
            first_name: pool_name(profile.name.given_name.as_str()),
            last_name: pool_name(profile.name.family_name.as_str()),
            welcome: self.welcome,
        };
        if user.first_name.is_none() || user.last_name.is_none() {
            notes.push("a name has no character AppStream accepts after transliteration: omitted".into());
        }
        let created = if dry_run {
            true
        } else {
            self.service.create_user(&user).await.map_err(|e| match e {
                ServiceError::QuotaExceeded { .. } => SyncError::permanent(
                    "AppStreamUserPoolLimit",
                    "CreateUser: LimitExceededException: the AppStream user pool is at its user quota (small by default); raise the quota, then redrive",
                ),
                other => SyncError::Service(other),
            })?
        };
        Ok(created)
    }
}

/// USER_NAME_NOT_FOUND that creating the user cannot (or did not yet) fix: `check_batch`'s answer.
fn user_not_found(errors: Vec<StackAssociationError>) -> Result<Vec<String>, SyncError> {
    check_batch(op::BATCH_ASSOCIATE_USER_STACK, &errors).map(|()| Vec::new())
}

/// Did HR change the person's given or family name since the last applied event?
fn names_changed(profile: &Profile, record: Option<&PersonRecord>) -> bool {
    let Some(last) = record.and_then(|r| r.last_event.as_deref()).and_then(|b| jml_core::contract::parse_event(b).ok())
    else {
        return false;
    };
    last.profile()
        .is_some_and(|p| p.name.given_name != profile.name.given_name || p.name.family_name != profile.name.family_name)
}

fn outcome(
    decision: Decision,
    actions: Vec<String>,
    user_name: Option<String>,
    dry_run: bool,
    notes: Vec<String>,
) -> Outcome {
    Outcome { decision, actions, user_id: None, user_name, resolved_by: "ledger-claim", dry_run, notes }
}

#[async_trait]
impl Target for AppStreamSync {
    fn name(&self) -> &'static str {
        APPSTREAM_TARGET
    }

    async fn converge(&self, event: &HrEvent, ctx: &Ctx<'_>) -> Result<Outcome, SyncError> {
        let (record, dry_run) = (ctx.record, ctx.dry_run);
        match &event.change {
            Change::Joiner(p) | Change::Mover(p) | Change::Rehire(p) => {
                // Every address of the inventory and the record, read afresh on each converge
                // step: after a lost race too (`ctx.sweep`), an address a concurrent delivery
                // created is in it, and every address but the current one is released.
                let addresses = ctx.known_accounts().await?;
                self.converge_profile(event, p, record, &addresses, dry_run).await
            }
            Change::Leaver { .. } => {
                // Only the ledger knows the person's AppStream users (they carry no ExternalId):
                // every address of the write-ahead inventory, and the record's.
                let names = ctx.known_accounts().await?;
                if names.is_empty() {
                    return Ok(outcome(Decision::LeaverWithoutAccount, vec![], None, dry_run, vec![]));
                }
                let mut notes = Vec::new();
                let mut actions = Vec::new();
                for name in &names {
                    actions.extend(self.release(name, dry_run, &mut notes).await?);
                }
                let last = record.and_then(|r| r.user_name.clone()).or_else(|| names.iter().next_back().cloned());
                Ok(outcome(Decision::Disable, actions, last, dry_run, notes))
            }
        }
    }

    /// Every address of the inventory and the record: no stack left. (AppStream has no per-user
    /// read of the Enabled flag, only DescribeUsers over the whole pool; DisableUser answered
    /// success or ResourceNotFound for each address in the converge step.)
    async fn verify_revoked(&self, _leaver: &HrEvent, ctx: &Ctx<'_>) -> Result<Vec<String>, SyncError> {
        let mut left = Vec::new();
        for (n, name) in ctx.known_accounts().await?.iter().enumerate() {
            let stacks = self.service.stacks(name).await?;
            if !stacks.is_empty() {
                left.push(format!("AppStream user #{}: {} stack(s): {}", n + 1, stacks.len(), stacks.join(",")));
            }
        }
        Ok(left)
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
    fn stacks_plan_is_a_set_difference() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let (remove, add) = plan_stacks(&set(&["a", "b"]), &set(&["b", "c"]));
        assert_eq!((remove, add), (vec!["c".to_string()], vec!["a".to_string()]));
        assert_eq!(plan_stacks(&set(&["a"]), &set(&["a"])), (vec![], vec![]));
    }

    #[test]
    fn batch_errors_park_missing_stacks_and_retry_the_rest() {
        let e = |code: &str| vec![StackAssociationError { stack: "s1".into(), code: code.into() }];
        let op = op::BATCH_ASSOCIATE_USER_STACK;
        assert!(check_batch(op, &[]).is_ok());
        let missing = check_batch(op, &e("STACK_NOT_FOUND")).unwrap_err();
        assert_eq!((missing.code(), missing.is_retryable()), ("StackNotFound", false));
        assert!(check_batch(op, &e("USER_NAME_NOT_FOUND")).unwrap_err().is_retryable());
        assert!(check_batch(op, &e("INTERNAL_ERROR")).unwrap_err().is_retryable());
        assert!(!check_batch(op, &e("DIRECTORY_NOT_FOUND")).unwrap_err().is_retryable());
        // Every error is read: a missing stack behind a transient error still parks, naming all.
        let mixed = [
            StackAssociationError { stack: "s1".into(), code: "INTERNAL_ERROR".into() },
            StackAssociationError { stack: "s2".into(), code: "STACK_NOT_FOUND".into() },
            StackAssociationError { stack: "s3".into(), code: "STACK_NOT_FOUND".into() },
        ];
        let parked = check_batch(op, &mixed).unwrap_err();
        assert_eq!((parked.code(), parked.is_retryable()), ("StackNotFound", false));
        assert!(parked.to_string().contains("s2, s3"), "{parked}");
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
