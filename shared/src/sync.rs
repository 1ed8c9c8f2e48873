//! The identity sync engine: resolve the person, read current state, plan (pure), apply.
//!
//! All service access goes through the `IdentityStore` port; every decision is made by
//! `crate::planner`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::contract::{EventKind, HrEvent, InvalidEvent, UserName};
use crate::ledger::{self, AuditEntry, Guard, IDENTITY_TARGET, Ledger, PersonRecord, PersonStatus};
use crate::planner::{self, Action, CurrentUser, Decision, ManagedGroups, Ownership, Plan, Refusal};
use crate::ports::{GroupId, IdentityStore, ServiceError, UserId, UserRecord};

/// How long a manager's userName -> UserId mapping is trusted in a warm container.
const USER_CACHE_TTL: Duration = Duration::from_secs(15 * 60);
/// CreateUser conflicts (a concurrent delivery won) are resolved by re-reading; this bounds it.
const MAX_ATTEMPTS: usize = 3;

/// Name <-> id lookups that live across invocations of a warm container. Group ids never change
/// for a name while the group exists; a group deleted and re-created is caught by the service
/// answering ResourceNotFound, which evicts the entry.
#[derive(Debug, Default)]
pub struct DirectoryCache {
    groups_by_name: Mutex<HashMap<String, GroupId>>,
    group_names_by_id: Mutex<HashMap<GroupId, String>>,
    users_by_name: Mutex<HashMap<String, (UserId, Instant)>>,
}

impl DirectoryCache {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember_group(&self, name: &str, id: &str) {
        Self::lock(&self.groups_by_name).insert(name.to_string(), id.to_string());
        Self::lock(&self.group_names_by_id).insert(id.to_string(), name.to_string());
    }

    fn forget_group(&self, name: &str) {
        if let Some(id) = Self::lock(&self.groups_by_name).remove(name) {
            Self::lock(&self.group_names_by_id).remove(&id);
        }
    }
}

/// Settings of the engine.
#[derive(Clone, Debug, Default)]
pub struct SyncSettings {
    pub managed_groups: ManagedGroups,
    /// Plan and report without writing (to any service, the ledger included).
    pub dry_run: bool,
    /// How long audit entries are kept (DynamoDB TTL); `None` keeps them.
    pub audit_ttl: Option<chrono::Duration>,
}

/// The result of one applied (or dry-run) event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    pub actions: Vec<Action>,
    pub user_id: Option<UserId>,
    /// The account's userName after the event (for the ledger).
    pub user_name: Option<String>,
    /// How the user was found: `ledger`, `user-name`, `external-id`, `marker-scan`, `created`,
    /// `none`, or `-` when the ledger settled the event (duplicate, stale).
    pub resolved_by: &'static str,
    pub dry_run: bool,
    /// Non-fatal observations (e.g. manager not found), free of personal data.
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn writes(&self) -> usize {
        if self.dry_run { 0 } else { self.actions.len() }
    }
}

/// Why an event was not applied. `code()` is what the DLQ and the logs carry.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("person.userName: the userName is already used by {owner}; jml-sync never modifies, disables or adopts it")]
    UserNameTaken { owner: &'static str },
    #[error(
        "groups: group '{group}' does not exist in the identity store (GetGroupId found no group with this DisplayName)"
    )]
    GroupNotFound { group: String },
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("CreateUser kept conflicting with a concurrent writer after {MAX_ATTEMPTS} attempts")]
    ConflictPersisted,
}

impl SyncError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Service(e) => e.is_retryable(),
            Self::ConflictPersisted => true,
            Self::Invalid(_) | Self::Refused(_) | Self::UserNameTaken { .. } | Self::GroupNotFound { .. } => false,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "InvalidEvent",
            Self::Refused(Refusal::UnmanagedGroup { .. }) => "UnmanagedGroup",
            Self::UserNameTaken { .. } => "UserNameOwnedByAnother",
            Self::GroupNotFound { .. } => "GroupNotFound",
            Self::Service(ServiceError::Throttled { .. }) => "Throttled",
            Self::Service(ServiceError::Conflict { .. }) => "Conflict",
            Self::Service(ServiceError::NotFound { .. }) => "ResourceNotFound",
            Self::Service(ServiceError::Validation { .. }) => "ServiceValidation",
            Self::Service(ServiceError::AccessDenied { .. }) => "AccessDenied",
            Self::Service(ServiceError::QuotaExceeded { .. }) => "ServiceQuotaExceeded",
            Self::Service(ServiceError::Unavailable { .. }) => "ServiceUnavailable",
            Self::ConflictPersisted => "ConflictPersisted",
        }
    }
}

/// The engine. Cheap to clone; the cache is shared.
#[derive(Clone)]
pub struct IdentitySync {
    store: Arc<dyn IdentityStore>,
    ledger: Arc<dyn Ledger>,
    cache: Arc<DirectoryCache>,
    settings: SyncSettings,
}

impl std::fmt::Debug for IdentitySync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySync").field("settings", &self.settings).finish_non_exhaustive()
    }
}

struct Resolved {
    current: Option<CurrentUser>,
    by: &'static str,
}

impl IdentitySync {
    pub fn new(store: Arc<dyn IdentityStore>, ledger: Arc<dyn Ledger>, settings: SyncSettings) -> Self {
        Self { store, ledger, cache: Arc::default(), settings }
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// Every audit entry of a person (`issuer#id`), all targets, in HR time order.
    pub async fn audit_trail(&self, person: &str) -> Result<Vec<AuditEntry>, ServiceError> {
        self.ledger.audit_trail(person).await
    }

    /// Applies one validated event. Idempotent: the same event again finds equal state and
    /// makes no writes.
    /// Applies one validated event (`body` is the event as received, kept in the ledger).
    /// Idempotent: a duplicate eventId makes no writes at all; an older event is skipped and
    /// audited as stale; the same state again makes no Identity Store writes.
    pub async fn apply(&self, event: &HrEvent, body: &str) -> Result<Outcome, SyncError> {
        if let Some(profile) = event.profile() {
            planner::check_groups(profile, &self.settings.managed_groups)?;
        }
        let person = event.external_id.key();
        let mut raced = false;
        for _attempt in 0..MAX_ATTEMPTS {
            let record = self.ledger.get(&person, IDENTITY_TARGET).await?;
            match ledger::guard(event.event_id.as_str(), event.occurred_at, record.as_ref()) {
                Guard::Duplicate => return Ok(self.settled(Decision::Duplicate, record.as_ref())),
                Guard::Stale => {
                    if raced && !self.settings.dry_run {
                        // We lost a race to a newer event after writing: converge on the winner.
                        self.converge_on_winner(record.as_ref()).await?;
                    }
                    let outcome = self.settled(Decision::Stale, record.as_ref());
                    if !self.settings.dry_run {
                        self.ledger.append_audit(&self.audit(event, &outcome)).await?;
                    }
                    return Ok(outcome);
                }
                Guard::Apply => {}
            }
            let outcome = self.converge(event, record.as_ref()).await?;
            if self.settings.dry_run {
                return Ok(outcome);
            }
            let next = self.next_record(event, body, &outcome);
            let expected = record.as_ref().map(|r| r.last_event_id.as_str());
            if self.ledger.commit(&next, expected, &self.audit(event, &outcome)).await? {
                return Ok(outcome);
            }
            raced = true;
            tracing::info!(decision = "ledger-race", "a concurrent delivery committed first; re-reading the ledger");
        }
        Err(SyncError::ConflictPersisted)
    }

    /// An outcome decided by the ledger alone.
    fn settled(&self, decision: Decision, record: Option<&PersonRecord>) -> Outcome {
        Outcome {
            decision,
            actions: vec![],
            user_id: record.and_then(|r| r.user_id.clone()),
            user_name: record.and_then(|r| r.user_name.clone()),
            resolved_by: "-",
            dry_run: self.settings.dry_run,
            notes: vec![],
        }
    }

    /// Re-applies the event the ledger holds (the winner of a race) to the current state.
    async fn converge_on_winner(&self, record: Option<&PersonRecord>) -> Result<(), SyncError> {
        let Some(record) = record else { return Ok(()) };
        let Some(winner) = record.last_event.as_deref().and_then(|b| crate::contract::parse_event(b).ok()) else {
            return Ok(());
        };
        tracing::info!(decision = "converge-on-winner", winner_event_id = %winner.event_id, "re-applying the newer event");
        self.converge(&winner, Some(record)).await.map(|_| ())
    }

    fn next_record(&self, event: &HrEvent, body: &str, outcome: &Outcome) -> PersonRecord {
        let status = match (event.kind(), outcome.decision, &outcome.user_id) {
            (_, _, None) => PersonStatus::Deleted,
            (EventKind::Leaver, _, _) | (_, Decision::IgnoredForDisabledUser, _) => PersonStatus::Disabled,
            _ => PersonStatus::Active,
        };
        let now = Utc::now();
        PersonRecord {
            person: event.external_id.key(),
            target: IDENTITY_TARGET.to_string(),
            user_id: outcome.user_id.clone(),
            user_name: outcome.user_name.clone(),
            status,
            last_event_id: event.event_id.to_string(),
            last_occurred_at: event.occurred_at,
            last_event: Some(body.to_string()),
            updated_at: now,
        }
    }

    fn audit(&self, event: &HrEvent, outcome: &Outcome) -> AuditEntry {
        let now = Utc::now();
        AuditEntry {
            person: event.external_id.key(),
            target: IDENTITY_TARGET.to_string(),
            event_id: event.event_id.to_string(),
            event_type: event.kind().as_str().to_string(),
            occurred_at: event.occurred_at,
            decision: outcome.decision.as_str().to_string(),
            actions: outcome.actions.len(),
            writes: outcome.writes(),
            recorded_at: now,
            expires_at: self.settings.audit_ttl.map(|ttl| (now + ttl).timestamp()),
        }
    }

    /// Resolve, plan and execute against the Identity Store (no ledger writes).
    async fn converge(&self, event: &HrEvent, hint: Option<&PersonRecord>) -> Result<Outcome, SyncError> {
        let manager_id = match event.profile().and_then(|p| p.enterprise.manager.as_ref()) {
            Some(m) => self.manager_id(m).await?,
            None => None,
        };
        let mut notes = Vec::new();
        if event.profile().is_some_and(|p| p.enterprise.manager.is_some()) && manager_id.is_none() {
            notes.push(
                "person.enterprise.manager: no user with this userName; manager attribute left unset".to_string(),
            );
        }
        for _attempt in 0..MAX_ATTEMPTS {
            let resolved = self.resolve(event, hint).await?;
            let Plan { decision, actions } = planner::plan(event, resolved.current.as_ref(), manager_id.clone());
            let mut user_id = resolved.current.as_ref().map(|c| c.record.user_id.clone());
            let user_name = match event.profile() {
                Some(p) => Some(p.user_name.as_str().to_string()),
                None => resolved.current.as_ref().map(|c| c.record.attributes.user_name.clone()),
            };
            // Every group must exist before the first write: a missing group parks the event
            // with nothing half-applied.
            for action in &actions {
                if let Action::AddToGroup(group) = action {
                    self.group_id(group.as_str()).await?;
                }
            }
            let dry_run = self.settings.dry_run;
            if !dry_run {
                match self.execute(&actions, &mut user_id).await {
                    Ok(()) => {}
                    // A concurrent delivery created the user first: re-resolve and re-plan.
                    Err(SyncError::Service(ServiceError::Conflict { op: crate::ports::Op::CreateUser, .. })) => {
                        tracing::info!(decision = "create-conflict", "CreateUser conflicted; re-resolving");
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let resolved_by = if decision == Decision::Create && !dry_run { "created" } else { resolved.by };
            return Ok(Outcome { decision, actions, user_id, user_name, resolved_by, dry_run, notes });
        }
        Err(SyncError::ConflictPersisted)
    }

    async fn execute(&self, actions: &[Action], user_id: &mut Option<UserId>) -> Result<(), SyncError> {
        for action in actions {
            match action {
                Action::CreateUser(attrs) => {
                    *user_id = Some(self.store.create_user(attrs).await?);
                }
                Action::UpdateUser(changes) => {
                    let id = user_id.as_deref().ok_or(SyncError::ConflictPersisted)?;
                    match self.store.update_user(id, changes).await {
                        Err(ServiceError::Conflict {
                            reason: crate::ports::ConflictReason::UniquenessConstraintViolation,
                            ..
                        }) => {
                            return Err(SyncError::UserNameTaken { owner: "another user" });
                        }
                        other => other?,
                    }
                }
                Action::SetStatus(status) => {
                    let id = user_id.as_deref().ok_or(SyncError::ConflictPersisted)?;
                    self.store.set_user_status(id, *status).await?;
                }
                Action::RemoveFromGroup { membership_id, .. } => {
                    self.store.remove_membership(membership_id).await?;
                }
                Action::AddToGroup(group) => {
                    let id = user_id.as_deref().ok_or(SyncError::ConflictPersisted)?;
                    let group_id = self.group_id(group.as_str()).await?;
                    match self.store.add_membership(&group_id, id).await {
                        Err(ServiceError::NotFound { .. }) => {
                            // The cached group was deleted (and maybe re-created): look it up again once.
                            self.cache.forget_group(group.as_str());
                            let group_id = self.group_id(group.as_str()).await?;
                            self.store.add_membership(&group_id, id).await?;
                        }
                        other => other?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Group name -> id through the warm-container cache (GetGroupId on a miss).
    async fn group_id(&self, name: &str) -> Result<GroupId, SyncError> {
        if let Some(id) = DirectoryCache::lock(&self.cache.groups_by_name).get(name) {
            return Ok(id.clone());
        }
        let parsed = crate::contract::GroupName::parse(name)
            .map_err(|_| SyncError::GroupNotFound { group: name.to_string() })?;
        match self.store.find_group_by_name(&parsed).await? {
            Some(id) => {
                self.cache.remember_group(name, &id);
                Ok(id)
            }
            None => Err(SyncError::GroupNotFound { group: name.to_string() }),
        }
    }

    /// Group id -> name through the cache (DescribeGroup on a miss). `None`: group gone.
    async fn group_name(&self, id: &str) -> Result<Option<String>, SyncError> {
        if let Some(name) = DirectoryCache::lock(&self.cache.group_names_by_id).get(id) {
            return Ok(Some(name.clone()));
        }
        let name = self.store.group_name(id).await?;
        if let Some(n) = &name {
            self.cache.remember_group(n, id);
        }
        Ok(name)
    }

    async fn manager_id(&self, manager: &UserName) -> Result<Option<UserId>, SyncError> {
        if let Some((id, at)) = DirectoryCache::lock(&self.cache.users_by_name).get(manager.as_str())
            && at.elapsed() < USER_CACHE_TTL
        {
            return Ok(Some(id.clone()));
        }
        let id = self.store.find_user_by_user_name(manager).await?;
        if let Some(id) = &id {
            DirectoryCache::lock(&self.cache.users_by_name)
                .insert(manager.as_str().to_string(), (id.clone(), Instant::now()));
        }
        Ok(id)
    }

    /// The resolution chain. Order: the ledger's UserId (rename-safe), then userName (accepted only with this person's marker or
    /// ExternalId), then GetUserId(ExternalId) for SCIM-provisioned users, then, for a leaver still not found, a
    /// ListUsers scan for the marker (a missed leaver is a security incident; the scan's cost is
    /// paid only when every cheaper lookup failed).
    async fn resolve(&self, event: &HrEvent, hint: Option<&PersonRecord>) -> Result<Resolved, SyncError> {
        let person = &event.external_id;
        // The ledger knows the account even after a userName change.
        if let Some(id) = hint.and_then(|r| r.user_id.as_deref()) {
            match self.store.describe_user(id).await? {
                Some(record) if planner::ownership(&record, person) == Ownership::Ours => {
                    return self.current(record, "ledger").await;
                }
                Some(_) => {
                    tracing::warn!(decision = "ledger-repair", "ledger account no longer carries this person's marker")
                }
                None => tracing::info!(decision = "ledger-repair", "ledger account no longer exists; resolving again"),
            }
        }
        if let Some(user_name) = event.user_name()
            && let Some(id) = self.store.find_user_by_user_name(user_name).await?
            && let Some(record) = self.store.describe_user(&id).await?
        {
            match planner::ownership(&record, person) {
                Ownership::Ours => return self.current(record, "user-name").await,
                Ownership::OtherPerson => {
                    // Our person may still exist under another name (SCIM): a rename onto a taken
                    // name is refused either way, so stop here.
                    return Err(SyncError::UserNameTaken { owner: "another person" });
                }
                Ownership::Unmanaged => {
                    return Err(SyncError::UserNameTaken { owner: "a user not managed by jml-sync" });
                }
            }
        }
        if let Some(id) = self.store.find_user_by_external_id(person).await?
            && let Some(record) = self.store.describe_user(&id).await?
        {
            return self.current(record, "external-id").await;
        }
        if event.kind() == crate::contract::EventKind::Leaver
            && let Some(id) = self.store.find_user_by_marker(&person.marker()).await?
            && let Some(record) = self.store.describe_user(&id).await?
            && planner::ownership(&record, person) == Ownership::Ours
        {
            return self.current(record, "marker-scan").await;
        }
        Ok(Resolved { current: None, by: "none" })
    }

    async fn current(&self, record: UserRecord, by: &'static str) -> Result<Resolved, SyncError> {
        let mut managed = BTreeMap::new();
        for m in self.store.memberships(&record.user_id).await? {
            if let Some(name) = self.group_name(&m.group_id).await?
                && self.settings.managed_groups.contains(&name)
            {
                managed.insert(name, m.membership_id);
            }
        }
        Ok(Resolved { current: Some(CurrentUser { record, managed_memberships: managed }), by })
    }
}
