//! An in-memory AppStream 2.0 user pool with the service's rules for what jml-sync uses:
//! case-sensitive e-mail user names (`Username` pattern, at most 128), FirstName/LastName only
//! `^[A-Za-z0-9_\-\s]+$`, ResourceAlreadyExists on a second create, a small user pool quota (LimitExceeded), stacks that
//! must exist (STACK_NOT_FOUND per association), at most 25 associations per batch; call counting.
//!
//! Each created user gets a new `password` generation (the temporary password of its welcome
//! e-mail, and whatever the person sets after it): DisableUser keeps it (AppStream's EnableUser
//! would restore it), DeleteUser ends it. A rehire test compares generations.

use crate::port::op;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::port::{AppStreamNewUser, AppStreamUsers, Op, PoolEntry, ServiceError, StackAssociationError, WelcomeEmail};
use jml_core::sim::{CallCounts, Calls};

/// The stacks the sample events and the demo department rule use.
pub const DEMO_STACKS: &[&str] = &["engineering-desktop", "office-apps", "finance-desktop", "data-science"];
/// The demo deployment's `APPSTREAM_STACKS_BY_DEPARTMENT`.
pub const DEMO_STACK_RULES: &str = r#"{"Platform Engineering": ["engineering-desktop", "office-apps"], "Finance": ["finance-desktop", "office-apps"], "*": ["office-apps"]}"#;
/// AppStream's default quota of users in a user pool is small; the simulator's default.
pub const DEFAULT_POOL_QUOTA: usize = 50;

/// A simulated user pool user, for assertions and the CLI's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUser {
    pub enabled: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Welcome e-mails sent (creation without SUPPRESS).
    pub welcome_emails: usize,
    /// The password generation: new on every CreateUser, unique in the pool's lifetime.
    pub password: u64,
}

#[derive(Debug)]
struct State {
    users: BTreeMap<String, PoolUser>,
    stacks: BTreeSet<String>,
    associations: BTreeSet<(String, String)>,
    quota: usize,
    passwords: u64,
    calls: Calls,
}

#[derive(Debug)]
pub struct SimAppStream {
    state: Mutex<State>,
    /// Latency, quota and pacing of the list calls, for benchmarks (off by default).
    pub quota: jml_core::sim::Quota,
}

/// DescribeUserStackAssociations' page (MaxResults 500, as the adapter asks; the model's maximum).
pub const STACK_ASSOCIATIONS_PAGE: usize = 500;
/// DescribeUsers' page: the adapter sends no MaxResults and the service's default is not
/// documented; the simulator assumes 50.
pub const DESCRIBE_USERS_PAGE: usize = 50;

impl Default for SimAppStream {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                users: BTreeMap::new(),
                stacks: BTreeSet::new(),
                associations: BTreeSet::new(),
                quota: DEFAULT_POOL_QUOTA,
                passwords: 0,
                calls: Calls::default(),
            }),
            quota: jml_core::sim::Quota::default(),
        }
    }
}

fn invalid(op: Op, m: &str) -> ServiceError {
    ServiceError::Validation { op, message: m.to_string() }
}

fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 2048
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c.is_whitespace())
}

impl SimAppStream {
    /// A pool with `DEMO_STACKS`.
    pub fn demo() -> Self {
        let sim = Self::default();
        for s in DEMO_STACKS {
            sim.add_stack(s);
        }
        sim
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add_stack(&self, name: &str) {
        self.lock().stacks.insert(name.to_string());
    }

    /// A user created outside jml-sync (or by a version of it that only disabled leavers):
    /// enabled or not, with a password of its own.
    pub fn seed_user(&self, user_name: &str, enabled: bool) {
        let mut s = self.lock();
        s.passwords += 1;
        let user = PoolUser { enabled, first_name: None, last_name: None, welcome_emails: 0, password: s.passwords };
        s.users.insert(user_name.to_string(), user);
    }

    /// DeleteUser, as an administrator might call it outside jml-sync.
    pub fn delete_by_hand(&self, user_name: &str) {
        let mut s = self.lock();
        s.users.remove(user_name);
        s.associations.retain(|(u, _)| u != user_name);
    }

    /// EnableUser, as an administrator might call it outside jml-sync.
    pub fn enable_by_hand(&self, user_name: &str) {
        if let Some(u) = self.lock().users.get_mut(user_name) {
            u.enabled = true;
        }
    }

    /// DisableUser, as an administrator might call it outside jml-sync.
    pub fn disable_by_hand(&self, user_name: &str) {
        if let Some(u) = self.lock().users.get_mut(user_name) {
            u.enabled = false;
        }
    }

    /// A stack association (or its removal) made outside jml-sync.
    pub fn associate_by_hand(&self, user_name: &str, stack: &str, associated: bool) {
        let key = (user_name.to_string(), stack.to_string());
        let mut s = self.lock();
        if associated {
            s.associations.insert(key);
        } else {
            s.associations.remove(&key);
        }
    }

    pub fn set_quota(&self, users: usize) {
        self.lock().quota = users;
    }

    pub fn fail_next(&self, op: Op, error: ServiceError) {
        self.lock().calls.fail_next(op, error);
    }

    pub fn calls(&self) -> CallCounts {
        self.lock().calls.counts()
    }

    pub fn reset_calls(&self) {
        self.lock().calls.reset();
    }

    pub fn user(&self, user_name: &str) -> Option<PoolUser> {
        self.lock().users.get(user_name).cloned()
    }

    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }

    /// Every user with its stacks.
    pub fn all(&self) -> BTreeMap<String, (PoolUser, Vec<String>)> {
        let s = self.lock();
        s.users
            .iter()
            .map(|(n, u)| {
                let stacks = s.associations.iter().filter(|(u2, _)| u2 == n).map(|(_, st)| st.clone()).collect();
                (n.clone(), (u.clone(), stacks))
            })
            .collect()
    }

    fn enter(&self, op: Op) -> Result<std::sync::MutexGuard<'_, State>, ServiceError> {
        let mut s = self.lock();
        s.calls.enter(op)?;
        Ok(s)
    }

    fn batch(
        &self,
        op: Op,
        user_name: &str,
        stacks: &[String],
        add: bool,
    ) -> Result<Vec<StackAssociationError>, ServiceError> {
        let mut s = self.enter(op)?;
        if stacks.is_empty() || stacks.len() > 25 {
            return Err(invalid(op, "UserStackAssociations: 1 to 25 entries"));
        }
        let mut errors = Vec::new();
        for stack in stacks {
            let code = if !s.stacks.contains(stack) {
                Some("STACK_NOT_FOUND")
            } else if !s.users.contains_key(user_name) {
                Some("USER_NAME_NOT_FOUND")
            } else {
                None
            };
            match code {
                Some(code) => errors.push(StackAssociationError { stack: stack.clone(), code: code.to_string() }),
                None if add => {
                    s.associations.insert((user_name.to_string(), stack.clone()));
                }
                None => {
                    s.associations.remove(&(user_name.to_string(), stack.clone()));
                }
            }
        }
        Ok(errors)
    }
}

#[async_trait]
impl AppStreamUsers for SimAppStream {
    async fn create_user(&self, user: &AppStreamNewUser) -> Result<bool, ServiceError> {
        let op = op::CREATE_USER;
        let mut s = self.enter(op)?;
        let n = &user.user_name;
        if n.is_empty() || n.encode_utf16().count() > 128 || n.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(op, "UserName: 1 to 128 of [\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+"));
        }
        if user.first_name.iter().chain(user.last_name.iter()).any(|x| !name_ok(x)) {
            return Err(invalid(op, "FirstName/LastName: ^[A-Za-z0-9_\\-\\s]+$, at most 2048"));
        }
        if s.users.contains_key(n) {
            return Ok(false);
        }
        if s.users.len() >= s.quota {
            return Err(ServiceError::QuotaExceeded { op });
        }
        let welcome_emails = usize::from(user.welcome == WelcomeEmail::Send);
        s.passwords += 1;
        let password = s.passwords;
        s.users.insert(
            n.clone(),
            PoolUser {
                enabled: true,
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
                welcome_emails,
                password,
            },
        );
        Ok(true)
    }

    async fn disable_user(&self, user_name: &str) -> Result<bool, ServiceError> {
        let mut s = self.enter(op::DISABLE_USER)?;
        Ok(s.users.get_mut(user_name).map(|u| u.enabled = false).is_some())
    }

    async fn delete_user(&self, user_name: &str) -> Result<bool, ServiceError> {
        let mut s = self.enter(op::DELETE_USER)?;
        // The user's stack associations go with it (DescribeUserStackAssociations lists none).
        s.associations.retain(|(u, _)| u != user_name);
        Ok(s.users.remove(user_name).is_some())
    }

    async fn users(&self) -> Result<Vec<PoolEntry>, ServiceError> {
        let op = op::DESCRIBE_USERS;
        let out: Vec<PoolEntry> = {
            let mut s = self.enter(op)?;
            let out: Vec<_> =
                s.users.iter().map(|(n, u)| PoolEntry { user_name: n.clone(), enabled: u.enabled }).collect();
            s.calls.further_pages(op, out.len(), DESCRIBE_USERS_PAGE);
            out
        };
        self.quota.pages(op, out.len(), DESCRIBE_USERS_PAGE).await?;
        Ok(out)
    }

    async fn stack_exists(&self, stack: &str) -> Result<bool, ServiceError> {
        Ok(self.enter(op::DESCRIBE_STACKS)?.stacks.contains(stack))
    }

    async fn stacks(&self, user_name: &str) -> Result<Vec<String>, ServiceError> {
        let s = self.enter(op::DESCRIBE_USER_STACK_ASSOCIATIONS)?;
        Ok(s.associations.iter().filter(|(u, _)| u == user_name).map(|(_, st)| st.clone()).collect())
    }

    async fn stack_users(&self, stack: &str) -> Result<Vec<String>, ServiceError> {
        let op = op::DESCRIBE_USER_STACK_ASSOCIATIONS;
        let out: Vec<String> = {
            let mut s = self.enter(op)?;
            let out: Vec<_> = s.associations.iter().filter(|(_, st)| st == stack).map(|(u, _)| u.clone()).collect();
            s.calls.further_pages(op, out.len(), STACK_ASSOCIATIONS_PAGE);
            out
        };
        self.quota.pages(op, out.len(), STACK_ASSOCIATIONS_PAGE).await?;
        Ok(out)
    }

    async fn associate(&self, user_name: &str, stacks: &[String]) -> Result<Vec<StackAssociationError>, ServiceError> {
        self.batch(op::BATCH_ASSOCIATE_USER_STACK, user_name, stacks, true)
    }

    async fn disassociate(
        &self,
        user_name: &str,
        stacks: &[String],
    ) -> Result<Vec<StackAssociationError>, ServiceError> {
        self.batch(op::BATCH_DISASSOCIATE_USER_STACK, user_name, stacks, false)
    }
}
