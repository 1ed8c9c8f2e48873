//! The one clock every decision reads: the engine (the `OccurredInFuture` guard, the breaker's
//! window, audit and record times), reconciliation and the CLI. On Lambda it is the system clock;
//! `jml replay --now T` and the tests set a virtual one, which never moves back.
//!
//! Leases are not on this clock: they bound how long a crashed process blocks a person, which is
//! wall-clock time whatever HR time the run pretends it is.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

/// How far ahead of the clock an event's `occurredAt` may be (HR's clock and ours drift; a
/// producer stamps an event a little before it reaches us). Anything further ahead is a typo or a
/// producer bug (`2207` for `2027`) and is parked as `OccurredInFuture`: it must never become a
/// person's newest event, which would make every later event of the person stale.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// The clock. Cheap to clone; clones share a virtual time.
#[derive(Clone, Default)]
pub struct Clock {
    virtual_now: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.virtual_now {
            None => f.write_str("Clock(system)"),
            Some(_) => write!(f, "Clock(virtual {})", self.now().to_rfc3339()),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A virtual clock standing at `now` until [`Clock::advance_to`] moves it.
    pub fn at(now: DateTime<Utc>) -> Self {
        Self { virtual_now: Some(Arc::new(Mutex::new(now))) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.virtual_now {
            None => Utc::now(),
            Some(t) => *t.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    pub fn is_virtual(&self) -> bool {
        self.virtual_now.is_some()
    }

    /// Moves a virtual clock forward to `t` (never back: an earlier `t` leaves it where it is).
    /// Returns the time after the call. The system clock is not moved.
    pub fn advance_to(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match &self.virtual_now {
            None => Utc::now(),
            Some(now) => {
                let mut now = now.lock().unwrap_or_else(PoisonError::into_inner);
                if t > *now {
                    *now = t;
                }
                *now
            }
        }
    }
}

/// Why an event's `occurredAt` is refused: it lies further ahead of the clock than
/// [`MAX_CLOCK_SKEW`]. `None`: accepted.
pub fn occurred_in_future(occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
    (occurred_at > now + MAX_CLOCK_SKEW).then(|| {
        format!(
            "occurredAt: {} is more than {} minutes ahead of the clock ({}); a mistyped date would make every later event of the person stale. Fix the date in HR and send the event again",
            occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            MAX_CLOCK_SKEW.num_minutes(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    })
}

/// Parses a `--now` value (RFC 3339 with offset).
pub fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("'{s}' is not an RFC 3339 date-time with offset (e.g. 2026-12-01T09:00:00Z): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_now(s).unwrap()
    }

    #[test]
    fn a_virtual_clock_never_moves_back_and_its_clones_share_it() {
        let c = Clock::at(t("2026-12-01T09:00:00Z"));
        let d = c.clone();
        assert_eq!(c.advance_to(t("2026-12-02T09:00:00Z")), t("2026-12-02T09:00:00Z"));
        assert_eq!(d.now(), t("2026-12-02T09:00:00Z"), "clones share the time");
        assert_eq!(c.advance_to(t("2026-11-01T00:00:00Z")), t("2026-12-02T09:00:00Z"), "never back");
        assert!(!Clock::system().is_virtual());
    }

    #[test]
    fn the_skew_bound_is_exclusive_and_the_reason_names_field_and_bound() {
        let now = t("2026-12-01T09:00:00Z");
        assert!(occurred_in_future(now + MAX_CLOCK_SKEW, now).is_none());
        assert!(occurred_in_future(now - Duration::days(400), now).is_none());
        let why = occurred_in_future(t("2207-12-01T09:00:00Z"), now).unwrap();
        assert!(why.starts_with("occurredAt: 2207-12-01T09:00:00Z") && why.contains("5 minutes"), "{why}");
        assert!(occurred_in_future(now + MAX_CLOCK_SKEW + Duration::seconds(1), now).is_some());
        assert!(parse_now("2026-12-01").is_err());
    }
}
