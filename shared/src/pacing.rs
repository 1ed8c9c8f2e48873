//! Pacing: IAM Identity Center allows 20 requests/s per account across every caller. A token
//! bucket in front of every Identity Store call keeps one function instance under its share
//! (`IDENTITY_STORE_RPS`, sized with the event source's MaximumConcurrency), on top of the SDK's
//! adaptive retry; a ThrottlingException's RetryAfterSeconds pauses the bucket.
//!
//! Time is tokio's clock, so tests and the benchmark can run on paused (virtual) time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::contract::{ExternalId, GroupName, UserName};
use crate::ports::{
    AttributeChange, GroupId, IdentityStore, Membership, ServiceError, UserAttributes, UserId, UserRecord, UserStatus,
};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

impl TokenBucket {
    pub fn new(rate_per_second: f64, burst: f64) -> Self {
        let rate = rate_per_second.max(0.001);
        let burst = burst.max(1.0);
        Self { rate, burst, state: Mutex::new(Bucket { tokens: burst, last: Instant::now(), paused_until: None }) }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.state.lock().await;
                let now = Instant::now();
                match b.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        b.paused_until = None;
                        let refill = now.duration_since(b.last).as_secs_f64() * self.rate;
                        b.tokens = (b.tokens + refill).min(self.burst);
                        b.last = now;
                        if b.tokens >= 1.0 {
                            b.tokens -= 1.0;
                            return;
                        }
                        Duration::from_secs_f64((1.0 - b.tokens) / self.rate)
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The service said "retry after": nothing is sent before then.
    pub async fn pause_for(&self, pause: Duration) {
        let mut b = self.state.lock().await;
        let until = Instant::now() + pause;
        b.paused_until = Some(b.paused_until.map_or(until, |u| u.max(until)));
        b.tokens = 0.0;
    }
}

/// An Identity Store behind a token bucket.
pub struct Paced {
    inner: Arc<dyn IdentityStore>,
    bucket: Arc<TokenBucket>,
}

impl std::fmt::Debug for Paced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced").field("rate", &self.bucket.rate()).finish_non_exhaustive()
    }
}

impl Paced {
    pub fn new(inner: Arc<dyn IdentityStore>, bucket: Arc<TokenBucket>) -> Self {
        Self { inner, bucket }
    }

    async fn observe<T>(&self, result: Result<T, ServiceError>) -> Result<T, ServiceError> {
        if let Err(ServiceError::Throttled { retry_after_seconds: Some(s), .. }) = &result
            && *s > 0
        {
            self.bucket.pause_for(Duration::from_secs(u64::from(s.unsigned_abs()))).await;
        }
        result
    }
}

macro_rules! paced {
    ($self:ident, $call:expr) => {{
        $self.bucket.acquire().await;
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
        // One token for the scan: its pages are paced by the SDK's own retry on throttling.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Op;
    use crate::sim::{Fault, SimIdentityStore};

    #[tokio::test(start_paused = true)]
    async fn the_bucket_holds_the_rate_after_its_burst() {
        let bucket = TokenBucket::new(20.0, 5.0);
        let start = Instant::now();
        for _ in 0..45 {
            bucket.acquire().await;
        }
        // 5 from the burst, then 40 at 20/s: 2 s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.95..=2.05).contains(&elapsed), "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_caller() {
        let sim = Arc::new(SimIdentityStore::new());
        sim.inject(Fault::next(
            Op::GetGroupId,
            ServiceError::Throttled { op: Op::GetGroupId, retry_after_seconds: Some(3) },
            1,
        ));
        let paced = Paced::new(sim.clone(), Arc::new(TokenBucket::new(100.0, 10.0)));
        let g = GroupName::parse("jml-x").unwrap();
        let start = Instant::now();
        assert!(paced.find_group_by_name(&g).await.is_err());
        assert!(paced.find_group_by_name(&g).await.is_ok());
        assert!(start.elapsed() >= Duration::from_secs(3), "the second call waited for RetryAfterSeconds");
        assert_eq!(sim.calls().get(Op::GetGroupId), 2);
    }
}
