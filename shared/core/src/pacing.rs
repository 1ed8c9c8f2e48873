//! Pacing: a service quota such as 20 requests/s per account, shared by
//! every caller, is a limit on bursts. A [`SlidingWindow`] lets at most `limit` requests start
//! in any trailing window (one second) of one instance: a lone event runs at full speed, and a
//! bulk load is held at the quota. It counts HTTP requests when it sits in the SDK's HTTP client
//! (`jml_aws::paced_http_client`: every page and every SDK retry takes its share), or port calls
//! in front of a simulator. A ThrottlingException's RetryAfterSeconds pauses it, capped at
//! [`MAX_PAUSE`] so a batch never waits past the function timeout (the throttled record goes
//! back to its queue instead).
//!
//! Time is tokio's clock, so tests and the benchmark can run on paused (virtual) time.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The longest a RetryAfterSeconds pauses the pacer (the rest of the wait is the queue's).
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Window {
    /// When each request of the trailing window started, oldest first.
    started: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// At most `limit` acquisitions in any trailing `window`: an acquisition at `t` is admitted
/// only if fewer than `limit` were admitted in `(t - window, t]`, so every half-open interval
/// of one window's length holds at most `limit` (no burst-plus-refill doubling).
#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    state: Mutex<Window>,
}

impl SlidingWindow {
    /// `limit` requests per `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self { limit: limit.max(1), window, state: Mutex::new(Window { started: VecDeque::new(), paused_until: None }) }
    }

    /// At most `rate` requests in any trailing second (rounded down, at least 1).
    pub fn per_second(rate: f64) -> Self {
        // The configured rate is validated (0 < rate <= 20); truncation is the safe side.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let limit = rate.floor().max(1.0) as usize;
        Self::new(limit, Duration::from_secs(1))
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Waits until a request may start, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut w = self.state.lock().await;
                let now = Instant::now();
                while w.started.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                    w.started.pop_front();
                }
                match (w.paused_until, w.started.front()) {
                    (Some(until), _) if until > now => until - now,
                    (_, oldest) if w.started.len() >= self.limit => {
                        // Full: the oldest leaves the window at `oldest + window`.
                        oldest.map_or(self.window, |t| (*t + self.window).saturating_duration_since(now))
                    }
                    _ => {
                        w.paused_until = None;
                        w.started.push_back(now);
                        return;
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The service said "retry after": nothing starts before then (at most [`MAX_PAUSE`]).
    pub async fn pause_for(&self, pause: Duration) {
        let mut w = self.state.lock().await;
        let until = Instant::now() + pause.min(MAX_PAUSE);
        w.paused_until = Some(w.paused_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lone_burst_under_the_limit_never_waits() {
        let w = SlidingWindow::per_second(10.0);
        let start = Instant::now();
        for _ in 0..10 {
            w.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "ten requests of one event start at once");
    }

    #[tokio::test(start_paused = true)]
    async fn the_eleventh_waits_for_the_first_to_leave_the_window() {
        let w = SlidingWindow::per_second(10.0);
        let start = Instant::now();
        for _ in 0..11 {
            w.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_caller_and_is_capped() {
        let w = SlidingWindow::per_second(10.0);
        w.pause_for(Duration::from_secs(3)).await;
        let start = Instant::now();
        w.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        w.pause_for(Duration::from_secs(3_600)).await;
        let start = Instant::now();
        w.acquire().await;
        assert_eq!(start.elapsed(), MAX_PAUSE, "a huge RetryAfterSeconds is capped");
    }

    /// Every admitted start, on virtual time, from concurrent callers arriving at random times.
    fn starts(limit: usize, arrivals: Vec<(u64, u8)>) -> Vec<Instant> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
        let Ok(rt) = rt else { return Vec::new() };
        rt.block_on(async move {
            let w = Arc::new(SlidingWindow::new(limit, Duration::from_secs(1)));
            let log = Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            let origin = Instant::now();
            for (at_ms, n) in arrivals {
                let (w, log) = (w.clone(), log.clone());
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep_until(origin + Duration::from_millis(at_ms)).await;
                    for _ in 0..n {
                        w.acquire().await;
                        log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Instant::now());
                    }
                }));
            }
            for t in tasks {
                assert!(t.await.is_ok(), "a caller panicked");
            }
            let mut started = Vec::new();
            started.extend(log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().copied());
            started
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// No trailing second ever holds more than the limit, whatever the arrival pattern, and
        /// a request waits only when the window is full.
        #[test]
        fn no_second_ever_holds_more_than_the_limit(
            limit in 1usize..12,
            arrivals in proptest::collection::vec((0u64..3_000, 1u8..8), 1..12),
        ) {
            let total: usize = arrivals.iter().map(|(_, n)| usize::from(*n)).sum();
            let mut s = starts(limit, arrivals);
            prop_assert_eq!(s.len(), total, "every request started");
            s.sort();
            for (i, t) in s.iter().enumerate() {
                let in_window = s[..=i].iter().filter(|u| t.duration_since(**u) < Duration::from_secs(1)).count();
                prop_assert!(in_window <= limit, "{} starts in the second before {:?}", in_window, t);
            }
        }
    }
}
