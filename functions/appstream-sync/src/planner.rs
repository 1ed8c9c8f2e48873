//! The AppStream planner, pure: given what the plan read (the person's users and their stacks) and
//! the desired state, the typed steps; what a batch call's errors mean; the decision and the
//! status an applied plan leaves. No I/O: `target.rs` reads, calls these, and executes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use jml_core::contract::Profile;
use jml_core::engine::{Decision, SyncError};
use jml_core::ledger::{PersonRecord, PersonStatus};

use crate::codes::Code;
use crate::port::{AppStreamNewUser, Op, ServiceError, StackAssociationError};

/// What the plan read: each user name it resolved, with the stacks it had
/// (DescribeUserStackAssociations).
pub type Read = BTreeMap<String, BTreeSet<String>>;

/// What CreateUser does when the user already exists (it is the person's by the ledger claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfExists {
    /// A rehire starts afresh: DeleteUser, then CreateUser (no password of before survives).
    Recreate,
    /// Read the pool (DescribeUsers): enabled is an earlier attempt of this same change (kept, no
    /// second welcome e-mail); disabled is a user from before (deleted and created again).
    KeepIfEnabled,
}

/// One write of appstream-sync. A batch call takes every stack of one user: consecutive
/// `Associate` (or `Disassociate`) steps of one user are sent as one call.
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    /// CreateUser; with `claim`, the name is first claimed for the person in the ledger (another
    /// person's claim parks `AppStreamUserOwnedByAnother`).
    CreateUser { user: AppStreamNewUser, claim: bool, if_exists: IfExists },
    /// One association of a BatchAssociateUserStack.
    Associate { user: String, stack: String },
    /// One association of a BatchDisassociateUserStack.
    Disassociate { user: String, stack: String },
    /// DisableUser: sign-in stops (ResourceNotFound: the user is gone, what follows is skipped).
    DisableUser { user: String },
    /// DeleteUser: no password the person ever had can work again.
    DeleteUser { user: String },
}

impl Step {
    /// The user name the step writes to.
    pub fn user(&self) -> &str {
        match self {
            Self::CreateUser { user, .. } => &user.user_name,
            Self::Associate { user, .. }
            | Self::Disassociate { user, .. }
            | Self::DisableUser { user }
            | Self::DeleteUser { user } => user,
        }
    }
}

impl jml_core::target::Step for Step {
    /// The action as reported (no user name: only the call and, for a batch, the stack).
    fn describe(&self) -> String {
        match self {
            Self::CreateUser { .. } => "CreateUser".into(),
            Self::Associate { stack, .. } => format!("BatchAssociateUserStack {stack}"),
            Self::Disassociate { stack, .. } => format!("BatchDisassociateUserStack {stack}"),
            Self::DisableUser { .. } => "DisableUser".into(),
            Self::DeleteUser { .. } => "DeleteUser".into(),
        }
    }

    fn revokes(&self) -> bool {
        matches!(self, Self::Disassociate { .. } | Self::DisableUser { .. } | Self::DeleteUser { .. })
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the user name (an e-mail address).
        f.write_str(&jml_core::target::Step::describe(self))
    }
}

/// A profile plan's user: as CreateUser creates it (should it have to, even when the plan did not
/// expect it), and the stacks it should have.
#[derive(Clone, PartialEq, Eq)]
pub struct Wanted {
    pub user: AppStreamNewUser,
    pub stacks: BTreeSet<String>,
}

/// The accounts a plan resolved: what `apply` writes to and a leaver's read-back reads.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    /// Every user the plan resolved, with its stacks as read: a leaver's every address (the
    /// write-ahead inventory and the record's); a profile's previous addresses (released) and
    /// its current one.
    pub read: Read,
    /// A profile plan's user (`None`: a leaver, or a plan that resolved nothing).
    pub wanted: Option<Wanted>,
}

impl fmt::Debug for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wanted").field("stacks", &self.stacks).finish_non_exhaustive()
    }
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("users", &self.read.len())
            .field("wanted", &self.wanted.is_some())
            .finish_non_exhaustive()
    }
}

/// What a profile plan (joiner, mover or rehire) is decided from.
pub struct ProfileState<'a> {
    /// A rehire always starts from a user created now.
    pub rehire: bool,
    /// The person's address, as CreateUser would create it.
    pub user: &'a AppStreamNewUser,
    /// The address the ledger's record gives the person (a user not deleted).
    pub known: Option<&'a str>,
    /// The stacks the person should have.
    pub desired: &'a BTreeSet<String>,
    /// Every address of the person (inventory, record and the current one) with its stacks.
    pub read: &'a Read,
    /// HR changed the given or family name since the last applied event.
    pub renamed: bool,
}

impl fmt::Debug for ProfileState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileState").field("rehire", &self.rehire).finish_non_exhaustive()
    }
}

/// A CreateUser whose first or last name had nothing the pool accepts (see `naming::pool_name`).
pub const NAME_OMITTED: &str = "a name has no character AppStream accepts after transliteration: omitted";
/// A name change, which AppStream cannot apply.
pub const NO_RENAME: &str =
    "AppStream has no call to rename a user pool user: first/last names are set at creation only";

/// Stack changes: (disassociate, associate), each sorted.
pub fn plan_stacks(desired: &BTreeSet<String>, current: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    (current.difference(desired).cloned().collect(), desired.difference(current).cloned().collect())
}

/// The steps that make `user`'s stacks exactly `desired`: every disassociation, then every
/// association.
pub fn stack_steps(user: &str, desired: &BTreeSet<String>, current: &BTreeSet<String>) -> Vec<Step> {
    let (remove, add) = plan_stacks(desired, current);
    let remove = remove.into_iter().map(|stack| Step::Disassociate { user: user.to_string(), stack });
    let add = add.into_iter().map(|stack| Step::Associate { user: user.to_string(), stack });
    remove.chain(add).collect()
}

/// A user's release: every stack, DisableUser (sign-in stops even if what follows fails), then
/// DeleteUser, so that no password the person ever had can work again: AppStream's EnableUser
/// would restore it, and a user pool user has no call to reset it.
pub fn release(user: &str, stacks: &BTreeSet<String>) -> Vec<Step> {
    let mut steps = stack_steps(user, &BTreeSet::new(), stacks);
    steps.push(Step::DisableUser { user: user.to_string() });
    steps.push(Step::DeleteUser { user: user.to_string() });
    steps
}

/// A leaver: every user read is released.
pub fn leaver_steps(read: &Read) -> Vec<Step> {
    read.iter().flat_map(|(user, stacks)| release(user, stacks)).collect()
}

/// A joiner, mover or rehire: the steps, and the notes that hold whatever the calls answer.
///
/// A new e-mail address is a new AppStream user (names cannot change): every other address the
/// person was ever given is released first. Not only the record's: an address whose joiner or
/// mover was parked after CreateUser never reached the record, but its claim put it in the
/// write-ahead inventory before the create. An address the person does not hold yet (by the
/// record) is claimed and created; so is every rehire's (it starts afresh). Then the current
/// user's stacks are made exactly the desired ones.
pub fn profile(s: &ProfileState<'_>) -> (Vec<Step>, Vec<String>) {
    let name = s.user.user_name.as_str();
    let mut steps: Vec<Step> =
        s.read.iter().filter(|(old, _)| old.as_str() != name).flat_map(|(old, stacks)| release(old, stacks)).collect();
    let mut notes = Vec::new();
    let ours = s.known == Some(name);
    if s.rehire || !ours {
        let if_exists = if s.rehire { IfExists::Recreate } else { IfExists::KeepIfEnabled };
        steps.push(Step::CreateUser { user: s.user.clone(), claim: !ours, if_exists });
        if names_omitted(s.user) {
            notes.push(NAME_OMITTED.to_string());
        }
    }
    if ours && s.renamed {
        notes.push(NO_RENAME.to_string());
    }
    steps.extend(stack_steps(name, s.desired, s.read.get(name).unwrap_or(&BTreeSet::new())));
    (steps, notes)
}

/// The stacks of `first` (an `Associate` or `Disassociate` step) and of every step right after
/// it of the same kind and user, taken from `rest`: what one batch call sends.
pub fn batch(first: &Step, rest: &mut VecDeque<Step>) -> Vec<String> {
    let same = |s: &Step| match (first, s) {
        (Step::Associate { user, .. }, Step::Associate { user: u, stack })
        | (Step::Disassociate { user, .. }, Step::Disassociate { user: u, stack })
            if u == user =>
        {
            Some(stack.clone())
        }
        _ => None,
    };
    let mut stacks: Vec<String> = same(first).into_iter().collect();
    while let Some(stack) = rest.front().and_then(same) {
        stacks.push(stack);
        rest.pop_front();
    }
    stacks
}

/// Whether CreateUser will omit a name (see `naming::pool_name`).
pub fn names_omitted(user: &AppStreamNewUser) -> bool {
    user.first_name.is_none() || user.last_name.is_none()
}

/// A profile's decision: a rehire is a rehire; else created, changed or not.
pub fn profile_decision(rehire: bool, created: bool, acted: bool) -> Decision {
    match (rehire, created, acted) {
        (true, _, _) => Decision::Rehire,
        (false, true, _) => Decision::Create,
        (false, false, true) => Decision::Update,
        (false, false, false) => Decision::NoChange,
    }
}

/// The decision of an applied plan: a profile's from what was done (CreateUser may find its user
/// already there and keep it; a released address may already be gone), any other as planned.
pub fn applied_decision(planned: Decision, created: bool, acted: bool) -> Decision {
    match planned {
        Decision::Create | Decision::Update | Decision::NoChange => profile_decision(false, created, acted),
        other => other,
    }
}

/// The person's status on the target after an applied plan: no user is deleted; a leaver (or a
/// joiner or mover ignored for a person who left) disabled; anyone else active.
pub fn status(decision: Decision, user_name: Option<&str>) -> PersonStatus {
    match (decision, user_name) {
        (_, None) => PersonStatus::Deleted,
        (Decision::Disable | Decision::IgnoredForDisabledUser, Some(_)) => PersonStatus::Disabled,
        _ => PersonStatus::Active,
    }
}

/// Did HR change the person's given or family name since the last applied event?
pub fn names_changed(profile: &Profile, record: Option<&PersonRecord>) -> bool {
    let Some(last) = record.and_then(|r| r.last_event.as_deref()).and_then(|b| jml_core::contract::parse_event(b).ok())
    else {
        return false;
    };
    last.profile()
        .is_some_and(|p| p.name.given_name != profile.name.given_name || p.name.family_name != profile.name.family_name)
}

/// The per-association error of a user that is not (or not yet) in the pool.
pub const USER_NAME_NOT_FOUND: &str = "USER_NAME_NOT_FOUND";

/// What a batch call's per-association errors mean, read in full (not only the first): none is
/// success; stacks or a directory that do not exist can never succeed (parked, naming every
/// missing stack); anything else (USER_NAME_NOT_FOUND right after CreateUser is eventual
/// consistency, INTERNAL_ERROR is theirs) is retried.
pub fn check_batch(op: Op, errors: &[StackAssociationError]) -> Result<(), SyncError> {
    if errors.is_empty() {
        return Ok(());
    }
    let with = |code: &str| errors.iter().filter(|e| e.code == code).map(|e| e.stack.as_str()).collect::<Vec<_>>();
    let missing = with("STACK_NOT_FOUND");
    if !missing.is_empty() {
        return Err(Code::StackNotFound
            .error(format!("appstreamStacks: stack(s) {} do not exist ({op}: STACK_NOT_FOUND)", missing.join(", "))));
    }
    let directory = with("DIRECTORY_NOT_FOUND");
    if !directory.is_empty() {
        return Err(
            Code::DirectoryNotFound.error(format!("{op}: DIRECTORY_NOT_FOUND for stack(s) {}", directory.join(", ")))
        );
    }
    let mut codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    Err(SyncError::Service(ServiceError::Unavailable {
        op,
        message: format!("{} for {} association(s)", codes.join(", "), errors.len()),
    }))
}

#[cfg(test)]
mod tests {
    use jml_core::target::Step as _;
    use proptest::prelude::*;

    use super::*;
    use crate::port::{WelcomeEmail, op};

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn new_user(name: &str) -> AppStreamNewUser {
        AppStreamNewUser {
            user_name: name.into(),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            welcome: WelcomeEmail::Send,
        }
    }

    /// The stacks each user has once `steps` are applied to `read` (a deleted user has none).
    fn after(read: &Read, steps: &[Step]) -> Read {
        let mut out = read.clone();
        for step in steps {
            let stacks = out.entry(step.user().to_string()).or_default();
            match step {
                Step::Associate { stack, .. } => {
                    stacks.insert(stack.clone());
                }
                Step::Disassociate { stack, .. } => {
                    stacks.remove(stack);
                }
                Step::DeleteUser { .. } => stacks.clear(),
                Step::CreateUser { .. } | Step::DisableUser { .. } => {}
            }
        }
        out
    }

    #[test]
    fn stacks_plan_is_a_set_difference() {
        let (remove, add) = plan_stacks(&set(&["a", "b"]), &set(&["b", "c"]));
        assert_eq!((remove, add), (vec!["c".to_string()], vec!["a".to_string()]));
        assert_eq!(plan_stacks(&set(&["a"]), &set(&["a"])), (vec![], vec![]));
    }

    #[test]
    fn steps_describe_the_actions_as_reported_and_revoking_ones_say_so() {
        let steps = release("ada@example.com", &set(&["s2", "s1"]));
        let actions: Vec<String> = steps.iter().map(Step::describe).collect();
        assert_eq!(
            actions,
            ["BatchDisassociateUserStack s1", "BatchDisassociateUserStack s2", "DisableUser", "DeleteUser"]
        );
        assert!(steps.iter().all(Step::revokes));
        let create = Step::CreateUser { user: new_user("a@example.com"), claim: true, if_exists: IfExists::Recreate };
        let add = Step::Associate { user: "a@example.com".into(), stack: "s1".into() };
        assert!(!create.revokes() && !add.revokes());
        assert_eq!(add.describe(), "BatchAssociateUserStack s1");
        assert!(!format!("{create:?}{add:?}").contains("example.com"), "no user name in Debug");
    }

    #[test]
    fn consecutive_stacks_of_one_user_and_kind_are_one_batch() {
        let d = |user: &str, stack: &str| Step::Disassociate { user: user.into(), stack: stack.into() };
        let a = |user: &str, stack: &str| Step::Associate { user: user.into(), stack: stack.into() };
        let mut rest: VecDeque<Step> = [d("u", "s2"), d("v", "s1"), a("v", "s2")].into();
        assert_eq!(batch(&d("u", "s1"), &mut rest), ["s1", "s2"]);
        assert_eq!(rest.len(), 2, "another user's stacks are another call");
        let first = rest.pop_front().unwrap();
        assert_eq!(batch(&first, &mut rest), ["s1"]);
        assert_eq!(rest, [a("v", "s2")], "an association is another call");
        assert!(batch(&Step::DisableUser { user: "v".into() }, &mut rest).is_empty());
    }

    #[test]
    fn a_joiner_claims_and_creates_a_known_user_is_not_created_and_a_rehire_always_is() {
        let user = new_user("ada@example.com");
        let desired = set(&["office-apps"]);
        let read: Read = BTreeMap::from([("ada@example.com".to_string(), BTreeSet::new())]);
        let state =
            |rehire, known| ProfileState { rehire, user: &user, known, desired: &desired, read: &read, renamed: true };
        let (steps, notes) = profile(&state(false, None));
        assert_eq!(
            steps,
            [
                Step::CreateUser { user: user.clone(), claim: true, if_exists: IfExists::KeepIfEnabled },
                Step::Associate { user: "ada@example.com".into(), stack: "office-apps".into() },
            ]
        );
        assert!(notes.is_empty(), "a name change is noted only for a user that exists: {notes:?}");
        let (steps, notes) = profile(&state(false, Some("ada@example.com")));
        assert_eq!(steps.len(), 1);
        assert_eq!(notes, [NO_RENAME]);
        let (steps, _) = profile(&state(true, Some("ada@example.com")));
        assert_eq!(steps[0], Step::CreateUser { user: user.clone(), claim: false, if_exists: IfExists::Recreate });
    }

    #[test]
    fn decisions_and_statuses() {
        assert_eq!(profile_decision(true, false, false), Decision::Rehire);
        assert_eq!(profile_decision(false, true, true), Decision::Create);
        assert_eq!(applied_decision(Decision::Create, false, false), Decision::NoChange);
        assert_eq!(applied_decision(Decision::Update, false, true), Decision::Update);
        assert_eq!(applied_decision(Decision::Disable, false, false), Decision::Disable);
        assert_eq!(status(Decision::Disable, Some("a")), PersonStatus::Disabled);
        assert_eq!(status(Decision::LeaverWithoutAccount, None), PersonStatus::Deleted);
        assert_eq!(status(Decision::IgnoredForDisabledUser, None), PersonStatus::Deleted);
        assert_eq!(status(Decision::NoChange, Some("a")), PersonStatus::Active);
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
        let directory = check_batch(op, &e("DIRECTORY_NOT_FOUND")).unwrap_err();
        assert_eq!((directory.code(), directory.is_retryable()), ("DirectoryNotFound", false));
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

    fn stacks() -> impl Strategy<Value = BTreeSet<String>> {
        proptest::collection::btree_set(prop_oneof![Just("s1"), Just("s2"), Just("s3"), Just("s4")], 0..4)
            .prop_map(|s| s.into_iter().map(str::to_string).collect())
    }

    fn address() -> impl Strategy<Value = String> {
        (0usize..4).prop_map(|n| format!("ada.{n}@example.com"))
    }

    proptest! {
        /// Stack steps turn the current stacks into the desired ones, touch nothing else, and
        /// remove before they add.
        #[test]
        fn stack_steps_reach_the_desired_set(desired in stacks(), current in stacks()) {
            let steps = stack_steps("u", &desired, &current);
            let read: Read = BTreeMap::from([("u".to_string(), current.clone())]);
            prop_assert_eq!(after(&read, &steps).remove("u").unwrap_or_default(), desired.clone());
            prop_assert_eq!(steps.len(), desired.symmetric_difference(&current).count());
            let first_add = steps.iter().position(|s| matches!(s, Step::Associate { .. })).unwrap_or(steps.len());
            let adds_last = steps[first_add..].iter().all(|s| matches!(s, Step::Associate { .. }));
            prop_assert!(adds_last, "{:?}", steps);
        }

        /// After a profile plan, only the current address holds stacks (exactly the desired
        /// ones); every other address is disabled and deleted; CreateUser (with the claim) comes
        /// exactly when the record does not give the person the address, or for a rehire.
        #[test]
        fn a_profile_plan_leaves_only_the_current_address_with_access(
            read in proptest::collection::btree_map(address(), stacks(), 0..4),
            name in address(),
            known in proptest::option::of(address()),
            desired in stacks(),
            rehire in any::<bool>(),
        ) {
            let user = new_user(&name);
            let mut read = read;
            read.entry(name.clone()).or_default();
            let state = ProfileState { rehire, user: &user, known: known.as_deref(), desired: &desired, read: &read, renamed: false };
            let (steps, _) = profile(&state);
            let left = after(&read, &steps);
            for (user, stacks) in &left {
                if *user == name {
                    prop_assert_eq!(stacks, &desired);
                } else {
                    prop_assert!(stacks.is_empty());
                    let disabled = steps.contains(&Step::DisableUser { user: user.clone() });
                    let deleted = steps.contains(&Step::DeleteUser { user: user.clone() });
                    prop_assert!(disabled && deleted, "{:?}", steps);
                }
            }
            let ours = known.as_deref() == Some(name.as_str());
            let creates: Vec<&Step> = steps.iter().filter(|s| matches!(s, Step::CreateUser { .. })).collect();
            prop_assert_eq!(creates.len(), usize::from(rehire || !ours));
            if let Some(Step::CreateUser { claim, .. }) = creates.first() {
                prop_assert_eq!(*claim, !ours);
            }
            // Nothing of the current user is revoked unless it holds a stack it should not.
            let revokes_current = steps.iter().any(|s| s.user() == name && s.revokes());
            prop_assert_eq!(revokes_current, !read[&name].is_subset(&desired));
        }

        /// A leaver's plan leaves no stack on any user and disables and deletes each; it revokes
        /// whenever it resolved a user.
        #[test]
        fn a_leaver_plan_revokes_every_user(read in proptest::collection::btree_map(address(), stacks(), 0..4)) {
            let steps = leaver_steps(&read);
            prop_assert!(after(&read, &steps).values().all(BTreeSet::is_empty));
            prop_assert_eq!(steps.iter().filter(|s| matches!(s, Step::DeleteUser { .. })).count(), read.len());
            prop_assert_eq!(steps.iter().any(Step::revokes), !read.is_empty());
        }
    }
}
