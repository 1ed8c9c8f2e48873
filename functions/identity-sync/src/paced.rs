//! The Identity Store behind the pacer (the simulators' calls are its requests; on AWS every HTTP
//! request is paced in the client instead, and this wrapper only honours RetryAfterSeconds).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jml_core::contract::{ExternalId, GroupName, UserName};
use jml_core::pacing::SlidingWindow;

use crate::port::{
    AttributeChange, GroupId, IdentityStore, Membership, ServiceError, UserAttributes, UserId, UserRecord, UserStatus,
};

/// An Identity Store behind the pacer. `counts_calls`: each call is one request (the
/// simulators); otherwise the requests are paced in the HTTP client and this wrapper only
/// pauses the pacer on a ThrottlingException's RetryAfterSeconds.
pub struct Paced {
    inner: Arc<dyn IdentityStore>,
    window: Arc<SlidingWindow>,
    counts_calls: bool,
}

impl std::fmt::Debug for Paced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced")
            .field("limit", &self.window.limit())
            .field("counts_calls", &self.counts_calls)
            .finish_non_exhaustive()
    }
}

impl Paced {
    /// Every call takes a slot of `window` (one call, one request).
    pub fn calls(inner: Arc<dyn IdentityStore>, window: Arc<SlidingWindow>) -> Self {
        Self { inner, window, counts_calls: true }
    }

    /// The calls' HTTP requests are paced by the client; this only honours RetryAfterSeconds.
    pub fn retry_after_only(inner: Arc<dyn IdentityStore>, window: Arc<SlidingWindow>) -> Self {
        Self { inner, window, counts_calls: false }
    }

    async fn observe<T>(&self, result: Result<T, ServiceError>) -> Result<T, ServiceError> {
        if let Err(ServiceError::Throttled { retry_after_seconds: Some(s), .. }) = &result
            && *s > 0
        {
            self.window.pause_for(Duration::from_secs(u64::from(s.unsigned_abs()))).await;
        }
        result
    }
}

macro_rules! paced {
    ($self:ident, $call:expr) => {{
        if $self.counts_calls {
            $self.window.acquire().await;
        }
        let result = $call.await;
        $self.observe(result).await
    }};
}

#[async_trait]
impl IdentityStore for Paced {
    async fn find_user_by_user_name(&self, user_name: &UserName) -> Result<Option<UserId>, ServiceError> {
        paced!(self, self.inner.find_user_by_user_name(user_name))
    }
    async fn find_user_by_external_id(&self, external_id: &ExternalId) -> Result<Option<UserId>, ServiceError> {
        paced!(self, self.inner.find_user_by_external_id(external_id))
    }
    async fn find_user_by_marker(&self, marker: &str) -> Result<Option<UserId>, ServiceError> {
        // The simulator's scan is one call; on AWS each page is an HTTP request of its own.
        paced!(self, self.inner.find_user_by_marker(marker))
    }
    async fn describe_user(&self, user_id: &str) -> Result<Option<UserRecord>, ServiceError> {
        paced!(self, self.inner.describe_user(user_id))
    }
    async fn create_user(&self, attributes: &UserAttributes) -> Result<UserId, ServiceError> {
        paced!(self, self.inner.create_user(attributes))
    }
    async fn update_user(&self, user_id: &str, changes: &[AttributeChange]) -> Result<(), ServiceError> {
        paced!(self, self.inner.update_user(user_id, changes))
    }
    async fn set_user_status(&self, user_id: &str, status: UserStatus) -> Result<(), ServiceError> {
        paced!(self, self.inner.set_user_status(user_id, status))
    }
    async fn find_group_by_name(&self, name: &GroupName) -> Result<Option<GroupId>, ServiceError> {
        paced!(self, self.inner.find_group_by_name(name))
    }
    async fn group_name(&self, group_id: &str) -> Result<Option<String>, ServiceError> {
        paced!(self, self.inner.group_name(group_id))
    }
    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, ServiceError> {
        paced!(self, self.inner.memberships(user_id))
    }
    async fn add_membership(&self, group_id: &str, user_id: &str) -> Result<(), ServiceError> {
        paced!(self, self.inner.add_membership(group_id, user_id))
    }
    async fn remove_membership(&self, membership_id: &str) -> Result<(), ServiceError> {
        paced!(self, self.inner.remove_membership(membership_id))
    }
    async fn delete_user(&self, user_id: &str) -> Result<bool, ServiceError> {
        paced!(self, self.inner.delete_user(user_id))
    }
    async fn groups(&self) -> Result<Vec<(GroupId, String)>, ServiceError> {
        paced!(self, self.inner.groups())
    }
    async fn list_users(&self) -> Result<Vec<UserRecord>, ServiceError> {
        paced!(self, self.inner.list_users())
    }
    async fn group_members(&self, group_id: &str) -> Result<Vec<UserId>, ServiceError> {
        paced!(self, self.inner.group_members(group_id))
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::port::op;
    use crate::sim::{Fault, SimIdentityStore};

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_caller() {
        let sim = Arc::new(SimIdentityStore::new());
        sim.inject(Fault::next(
            op::GET_GROUP_ID,
            ServiceError::Throttled { op: op::GET_GROUP_ID, retry_after_seconds: Some(3) },
            1,
        ));
        let paced = Paced::calls(sim.clone(), Arc::new(SlidingWindow::per_second(10.0)));
        let g = GroupName::parse("jml-x").unwrap();
        let start = Instant::now();
        assert!(paced.find_group_by_name(&g).await.is_err());
        assert!(paced.find_group_by_name(&g).await.is_ok());
        assert!(start.elapsed() >= Duration::from_secs(3), "the second call waited for RetryAfterSeconds");
        assert_eq!(sim.calls().get(op::GET_GROUP_ID), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_event_is_not_delayed_and_retry_after_only_takes_no_slot() {
        let sim = Arc::new(SimIdentityStore::new());
        let window = Arc::new(SlidingWindow::per_second(2.0));
        let paced = Paced::retry_after_only(sim.clone(), window.clone());
        let g = GroupName::parse("jml-x").unwrap();
        let start = Instant::now();
        for _ in 0..5 {
            assert!(paced.find_group_by_name(&g).await.is_ok());
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the client paces HTTP requests, not this wrapper");
        let paced = Paced::calls(sim, window);
        for _ in 0..3 {
            assert!(paced.find_group_by_name(&g).await.is_ok());
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1), "the third call in a second waits (limit 2)");
    }
}
