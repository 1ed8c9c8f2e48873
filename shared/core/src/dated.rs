//! Dated HR truth (the pure part): when a change takes effect, and what holds at an instant.
//!
//! HR records a change at one time (`occurredAt`, the recorded time) for another (the effective
//! instant): a hire entered weeks before its start date, a resignation with a last working day a
//! month out, a termination rescinded before it takes effect. This module decides, from the
//! events alone and never from the order they were delivered in:
//!
//! - [`effective_instant`]: the one instant an event takes effect: `effectiveAt` as given; an
//!   `effectiveDate` (a local date in the person's time zone) at the first instant of that day,
//!   or, for a leaver (the date is the last working day), at the end of it (23:59:59 local
//!   unless the deployment sets another cut-off); `occurredAt` when neither is sent, and for a
//!   leaver marked `immediate` (for-cause) whatever its dates. Local times are resolved with the
//!   zone's own offset on that day (a last working day across a daylight-saving change ends at
//!   23:59:59 local, not an hour off); a day whose midnight the zone skips starts at the end of
//!   the gap, and a repeated local time is taken at its earlier occurrence (access ends sooner).
//! - [`rescinds`]: which rescinds hold. A rescind is too late when it was recorded at or after
//!   the effective instant of the event it rescinds, and refused when recorded before that
//!   event was (decided from the two events, so delivery order cannot change it); only a change dated ahead of its recording can be rescinded (one
//!   that took effect when recorded is corrected by a new event), and a rescind never.
//! - [`state_at`]: the person's state at an instant: of the events effective at or before it and
//!   not rescinded, the newest by (effective instant, recorded time, eventId) with a profile
//!   (joiner, mover, rehire) and the newest lifecycle event (leaver, rehire): the ledger's two
//!   slots, as undated events fill them today (an undated event's effective instant is its
//!   recorded time, so the order is today's).
//! - [`transitions`]: every instant after `now` at which that state changes: what a scheduler
//!   must fire, and what `--timeline` shows.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// How an event says when it takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Neither `effectiveAt` nor `effectiveDate`: at `occurredAt`.
    Recorded,
    /// `effectiveAt`: this instant.
    At(DateTime<Utc>),
    /// `effectiveDate`: this local date, in the person's time zone.
    Date(NaiveDate),
}

/// What an event does to the person's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A joiner or a mover: the person's desired profile.
    Profile,
    /// A rehire: a profile, and the lifecycle event that ends a leave.
    Rehire,
    /// A leaver.
    Leaver,
    /// Cancels the event of this eventId.
    Rescind(String),
}

/// The local time a leaver's last working day ends at by default (its last second).
pub fn default_cutoff() -> NaiveTime {
    NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN)
}

/// Why a local date could not be placed in time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("'{0}' is not a time zone of the IANA database")]
    Unknown(String),
    #[error("{0}: the date has no such local time in this zone")]
    NoSuchTime(NaiveDate),
}

/// A time zone of the IANA database, by name (`Europe/London`).
pub fn zone(name: &str) -> Result<jiff::tz::TimeZone, ZoneError> {
    jiff::tz::TimeZone::get(name).map_err(|_| ZoneError::Unknown(name.to_string()))
}

fn to_chrono(ts: jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(ts.as_second(), u32::try_from(ts.subsec_nanosecond()).unwrap_or(0)).unwrap_or_default()
}

fn civil(date: NaiveDate, time: NaiveTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    let (y, m, d) =
        (i16::try_from(date.year()).ok()?, i8::try_from(date.month()).ok()?, i8::try_from(date.day()).ok()?);
    let (h, mi, s) =
        (i8::try_from(time.hour()).ok()?, i8::try_from(time.minute()).ok()?, i8::try_from(time.second()).ok()?);
    jiff::civil::DateTime::new(y, m, d, h, mi, s, 0).ok()
}

/// The instant of a local date and time in `tz`, in the zone's offset on that day: a repeated
/// local time (a fold) at its earlier occurrence; a skipped one (a gap) moved forward by the
/// gap's length (the compatible rule of RFC 5545 and `java.time`).
pub fn local_instant(date: NaiveDate, time: NaiveTime, tz: &jiff::tz::TimeZone) -> Result<DateTime<Utc>, ZoneError> {
    let dt = civil(date, time).ok_or(ZoneError::NoSuchTime(date))?;
    let zoned = dt.to_zoned(tz.clone()).map_err(|_| ZoneError::NoSuchTime(date))?;
    Ok(to_chrono(zoned.timestamp()))
}

/// The first instant of a local date in `tz` (when midnight is skipped, the end of the gap).
pub fn start_of_day(date: NaiveDate, tz: &jiff::tz::TimeZone) -> Result<DateTime<Utc>, ZoneError> {
    let day = civil(date, NaiveTime::MIN).ok_or(ZoneError::NoSuchTime(date))?.date();
    let zoned = day.to_zoned(tz.clone()).and_then(|z| z.start_of_day()).map_err(|_| ZoneError::NoSuchTime(date))?;
    Ok(to_chrono(zoned.timestamp()))
}

/// The instant an event takes effect (see the module's documentation). `leaver`: the event is a
/// leaver (its date is the last working day); `immediate`: a for-cause leaver, effective when
/// recorded whatever its dates.
pub fn effective_instant(
    when: When,
    leaver: bool,
    immediate: bool,
    recorded: DateTime<Utc>,
    tz: &jiff::tz::TimeZone,
    cutoff: NaiveTime,
) -> Result<DateTime<Utc>, ZoneError> {
    if leaver && immediate {
        return Ok(recorded);
    }
    match when {
        When::Recorded => Ok(recorded),
        When::At(at) => Ok(at),
        When::Date(date) if leaver => local_instant(date, cutoff, tz),
        When::Date(date) => start_of_day(date, tz),
    }
}

/// Why an event is dated too far ahead (`MAX_EFFECTIVE_AHEAD_DAYS`: a year typed 2207 must never
/// be scheduled), or `None`. An immediate leaver takes effect when recorded: a date it ignores
/// never parks it.
pub fn too_far_ahead(event: &crate::contract::HrEvent, now: DateTime<Utc>, days: i64) -> Option<String> {
    if event.kind() == crate::contract::EventKind::Leaver && event.immediate {
        return None;
    }
    let bound = now + chrono::Duration::days(days);
    let (field, ahead) = match event.when {
        When::At(at) => ("effectiveAt", at > bound),
        // A local date: a day of slack for the zones ahead of UTC.
        When::Date(d) => ("effectiveDate", d > (bound + chrono::Duration::days(1)).date_naive()),
        When::Recorded => return None,
    };
    ahead.then(|| {
        format!(
            "{field}: more than {days} days ahead of the clock (MAX_EFFECTIVE_AHEAD_DAYS): most likely a mistyped year; never scheduled. Fix the date in HR and send the event again"
        )
    })
}

/// One event as the dated model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dated {
    pub event_id: String,
    pub role: Role,
    /// `occurredAt`: when HR recorded it.
    pub recorded: DateTime<Utc>,
    /// When it takes effect ([`effective_instant`]).
    pub effective: DateTime<Utc>,
    /// A leaver marked `immediate` (for-cause): it also cancels every change recorded before it
    /// that would take effect after it (a rehire planned before the termination never fires).
    pub immediate: bool,
}

impl Dated {
    /// The order of the fold: effective instant, then recorded time, then eventId.
    fn key(&self) -> (DateTime<Utc>, DateTime<Utc>, &str) {
        (self.effective, self.recorded, self.event_id.as_str())
    }
}

/// What the rescinds of a set of events decide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rescinds {
    /// The eventIds cancelled by a rescind that holds.
    pub cancelled: BTreeSet<String>,
    /// Rescinds that came too late (recorded at or after the effective instant of the event
    /// they name), were recorded before that event was, or name a rescind: each with why, for a
    /// human (`RescindTooLate`).
    pub refused: BTreeMap<String, String>,
}

/// Which rescinds hold, and what an immediate leaver voids, from the events alone. A rescind whose event is not (yet) known waits:
/// it neither cancels nor is refused until that event arrives.
pub fn rescinds(events: &[Dated]) -> Rescinds {
    let by_id: BTreeMap<&str, &Dated> = events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    let mut out = Rescinds::default();
    for r in events {
        let Role::Rescind(target) = &r.role else { continue };
        let Some(t) = by_id.get(target.as_str()) else { continue };
        if matches!(t.role, Role::Rescind(_)) {
            out.refused.insert(
                r.event_id.clone(),
                format!("rescinds: '{target}' is itself a rescind, which cannot be rescinded"),
            );
        } else if t.effective <= t.recorded {
            out.refused.insert(
                r.event_id.clone(),
                format!(
                    "rescinds: '{target}' took effect when HR recorded it (it is not dated ahead): nothing is pending to rescind; HR sends a new event instead"
                ),
            );
        } else if r.recorded < t.recorded {
            out.refused.insert(
                r.event_id.clone(),
                format!(
                    "rescinds: recorded at {} (occurredAt), before '{target}' was recorded ({}): a rescind cannot cancel a change HR had not made yet",
                    r.recorded.to_rfc3339(),
                    t.recorded.to_rfc3339()
                ),
            );
        } else if r.recorded >= t.effective {
            out.refused.insert(
                r.event_id.clone(),
                format!(
                    "rescinds: recorded at {} (occurredAt), at or after '{target}' took effect ({}): too late to rescind; HR sends a rehire (or a new event) instead",
                    r.recorded.to_rfc3339(),
                    t.effective.to_rfc3339()
                ),
            );
        } else {
            out.cancelled.insert(target.clone());
        }
    }
    // A for-cause termination voids what HR planned before it: every change recorded before an
    // immediate leaver and taking effect after it.
    for l in events.iter().filter(|e| e.immediate && e.role == Role::Leaver) {
        for e in events {
            if e.event_id != l.event_id
                && !matches!(e.role, Role::Rescind(_))
                && e.recorded < l.recorded
                && e.effective > l.effective
            {
                out.cancelled.insert(e.event_id.clone());
            }
        }
    }
    out
}

/// The person's state at an instant: the ledger's two slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The newest effective joiner, mover or rehire.
    pub profile: Option<String>,
    /// The newest effective leaver or rehire.
    pub lifecycle: Option<String>,
}

impl State {
    /// The newest lifecycle event is a leaver.
    pub fn left(&self, events: &[Dated]) -> bool {
        self.lifecycle.as_ref().is_some_and(|id| events.iter().any(|e| &e.event_id == id && e.role == Role::Leaver))
    }
}

/// The events that can no longer change the state at any instant from `now` on: each effective
/// by `now` and, in every slot it fills, superseded by a later one that is also in effect and can
/// never be cancelled (it took effect when recorded, or was dated back: only a change dated
/// ahead can be rescinded, and an immediate leaver voids only changes that take effect after
/// it); and the rescinds of those. An immediate leaver is never dropped (what it voids stays
/// void). Dropping them keeps a person's record bounded.
pub fn settled(events: &[Dated], now: DateTime<Utc>) -> BTreeSet<String> {
    let cancelled = rescinds(events).cancelled;
    let firm = |y: &&Dated| {
        y.effective <= now
            && y.effective <= y.recorded
            && !cancelled.contains(&y.event_id)
            && !matches!(y.role, Role::Rescind(_))
    };
    let in_profile = |e: &Dated| matches!(e.role, Role::Profile | Role::Rehire);
    let in_lifecycle = |e: &Dated| matches!(e.role, Role::Leaver | Role::Rehire);
    let mut out = BTreeSet::new();
    // An immediate leaver is kept: what it voids stays void.
    for x in events.iter().filter(|e| e.effective <= now && !e.immediate && !matches!(e.role, Role::Rescind(_))) {
        let superseded = |slot: &dyn Fn(&Dated) -> bool| {
            !slot(x) || events.iter().filter(firm).any(|y| slot(y) && y.key() > x.key())
        };
        if superseded(&in_profile) && superseded(&in_lifecycle) {
            out.insert(x.event_id.clone());
        }
    }
    for r in events {
        if let Role::Rescind(target) = &r.role
            && out.contains(target)
        {
            out.insert(r.event_id.clone());
        }
    }
    out
}

/// The state at `at` (see the module's documentation).
pub fn state_at(events: &[Dated], at: DateTime<Utc>) -> State {
    let cancelled = rescinds(events).cancelled;
    let live = events
        .iter()
        .filter(|e| e.effective <= at && !cancelled.contains(&e.event_id) && !matches!(e.role, Role::Rescind(_)));
    let mut profile: Option<&Dated> = None;
    let mut lifecycle: Option<&Dated> = None;
    for e in live {
        let newer = |slot: &Option<&Dated>| slot.is_none_or(|s| e.key() > s.key());
        if matches!(e.role, Role::Profile | Role::Rehire) && newer(&profile) {
            profile = Some(e);
        }
        if matches!(e.role, Role::Leaver | Role::Rehire) && newer(&lifecycle) {
            lifecycle = Some(e);
        }
    }
    State { profile: profile.map(|e| e.event_id.clone()), lifecycle: lifecycle.map(|e| e.event_id.clone()) }
}

/// Every instant after `now` at which the state changes, with the state from then on, in time
/// order: what is pending for the person.
pub fn transitions(events: &[Dated], now: DateTime<Utc>) -> Vec<(DateTime<Utc>, State)> {
    let mut instants: Vec<DateTime<Utc>> = events.iter().map(|e| e.effective).filter(|t| *t > now).collect();
    instants.sort();
    instants.dedup();
    let mut out = Vec::new();
    let mut current = state_at(events, now);
    for t in instants {
        let next = state_at(events, t);
        if next != current {
            out.push((t, next.clone()));
            current = next;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_last_working_day_ends_at_its_last_local_second_whatever_the_daylight_saving_offset() {
        let london = zone("Europe/London").unwrap();
        let leaver = |d| {
            effective_instant(When::Date(date(d)), true, false, at("2026-01-01T00:00:00Z"), &london, default_cutoff())
                .unwrap()
        };
        // Winter (GMT) and summer (BST): 23:59:59 local is 23:59:59Z and 22:59:59Z.
        assert_eq!(leaver("2026-12-18"), at("2026-12-18T23:59:59Z"));
        assert_eq!(leaver("2026-07-17"), at("2026-07-17T22:59:59Z"));
        // The days the clocks change (29 March and 25 October 2026): the day's own offset after
        // the change, not the previous day's.
        assert_eq!(leaver("2026-03-29"), at("2026-03-29T22:59:59Z"));
        assert_eq!(leaver("2026-10-25"), at("2026-10-25T23:59:59Z"));
        let new_york = zone("America/New_York").unwrap();
        let ny = effective_instant(
            When::Date(date("2026-03-08")),
            true,
            false,
            at("2026-01-01T00:00:00Z"),
            &new_york,
            default_cutoff(),
        );
        assert_eq!(ny.unwrap(), at("2026-03-09T03:59:59Z"), "EDT (UTC-4) from 8 March 2026");
    }

    #[test]
    fn a_start_date_begins_at_the_first_local_instant_and_a_skipped_midnight_at_the_end_of_the_gap() {
        let tokyo = zone("Asia/Tokyo").unwrap();
        let joiner = effective_instant(
            When::Date(date("2026-12-01")),
            false,
            false,
            at("2026-11-01T00:00:00Z"),
            &tokyo,
            default_cutoff(),
        );
        assert_eq!(joiner.unwrap(), at("2026-11-30T15:00:00Z"));
        // Santiago skips 00:00-01:00 on the first Sunday of September 2026 (to UTC-3): the day's
        // first instant is 01:00 local, 04:00Z.
        let santiago = zone("America/Santiago").unwrap();
        let start = effective_instant(
            When::Date(date("2026-09-06")),
            false,
            false,
            at("2026-08-01T00:00:00Z"),
            &santiago,
            default_cutoff(),
        );
        assert_eq!(start.unwrap(), at("2026-09-06T04:00:00Z"));
    }

    #[test]
    fn an_immediate_leaver_takes_effect_when_recorded_and_an_unknown_zone_is_refused_by_name() {
        let utc = zone("UTC").unwrap();
        let recorded = at("2026-12-03T10:00:00Z");
        let later = When::Date(date("2026-12-31"));
        assert_eq!(effective_instant(later, true, true, recorded, &utc, default_cutoff()).unwrap(), recorded);
        assert_eq!(
            effective_instant(When::At(at("2027-01-04T08:00:00Z")), false, false, recorded, &utc, default_cutoff())
                .unwrap(),
            at("2027-01-04T08:00:00Z")
        );
        assert_eq!(zone("Mars/Olympus_Mons").unwrap_err(), ZoneError::Unknown("Mars/Olympus_Mons".into()));
    }

    fn ev(id: &str, role: Role, recorded: &str, effective: &str) -> Dated {
        Dated { event_id: id.into(), role, recorded: at(recorded), effective: at(effective), immediate: false }
    }

    #[test]
    fn a_rescind_recorded_before_the_effective_instant_cancels_it_and_one_recorded_after_is_refused() {
        let leaver = ev("l", Role::Leaver, "2026-11-01T09:00:00Z", "2026-11-30T23:59:59Z");
        let in_time = ev("r1", Role::Rescind("l".into()), "2026-11-20T09:00:00Z", "2026-11-20T09:00:00Z");
        let too_late = ev("r2", Role::Rescind("l".into()), "2026-12-01T09:00:00Z", "2026-12-01T09:00:00Z");
        let joiner = ev("j", Role::Profile, "2026-10-01T09:00:00Z", "2026-10-01T09:00:00Z");
        let events = vec![joiner.clone(), leaver.clone(), in_time];
        assert_eq!(state_at(&events, at("2026-12-05T00:00:00Z")), State { profile: Some("j".into()), lifecycle: None });
        let events = vec![joiner, leaver, too_late];
        let r = rescinds(&events);
        assert!(r.cancelled.is_empty() && r.refused.contains_key("r2"));
        assert!(state_at(&events, at("2026-12-05T00:00:00Z")).left(&events));
        assert!(!state_at(&events, at("2026-11-30T23:59:58Z")).left(&events), "a leaver before its instant grants on");
    }

    #[test]
    fn a_mover_recorded_after_a_pending_leaver_but_effective_before_it_applies_now_and_the_leaver_still_fires() {
        let events = vec![
            ev("j", Role::Profile, "2026-10-01T09:00:00Z", "2026-10-01T09:00:00Z"),
            ev("l", Role::Leaver, "2026-11-01T09:00:00Z", "2026-11-30T23:59:59Z"),
            ev("m", Role::Profile, "2026-11-10T09:00:00Z", "2026-11-10T09:00:00Z"),
        ];
        let now = at("2026-11-10T10:00:00Z");
        assert_eq!(state_at(&events, now), State { profile: Some("m".into()), lifecycle: None });
        let pending = transitions(&events, now);
        assert_eq!(
            pending,
            vec![(at("2026-11-30T23:59:59Z"), State { profile: Some("m".into()), lifecycle: Some("l".into()) })]
        );
    }

    /// The oracle: what a person computes by hand. Walk the events in the order they take effect
    /// (ties: recorded first), skipping cancelled ones and rescinds, and keep the last of each kind.
    fn by_hand(events: &[Dated], at: DateTime<Utc>) -> State {
        let mut cancelled = BTreeSet::new();
        for r in events {
            if let Role::Rescind(t) = &r.role
                && let Some(target) = events.iter().find(|e| &e.event_id == t)
                && !matches!(target.role, Role::Rescind(_))
                && target.effective > target.recorded
                && r.recorded >= target.recorded
                && r.recorded < target.effective
            {
                cancelled.insert(t.clone());
            }
        }
        let mut sorted: Vec<&Dated> = events.iter().collect();
        sorted.sort_by(|a, b| (a.effective, a.recorded, &a.event_id).cmp(&(b.effective, b.recorded, &b.event_id)));
        let mut state = State::default();
        for e in sorted {
            if e.effective > at || cancelled.contains(&e.event_id) {
                continue;
            }
            match &e.role {
                Role::Profile => state.profile = Some(e.event_id.clone()),
                Role::Rehire => {
                    state.profile = Some(e.event_id.clone());
                    state.lifecycle = Some(e.event_id.clone());
                }
                Role::Leaver => state.lifecycle = Some(e.event_id.clone()),
                Role::Rescind(_) => {}
            }
        }
        state
    }

    fn history() -> impl proptest::strategy::Strategy<Value = Vec<Dated>> {
        use proptest::prelude::*;
        let event = (0..4u8, 0..40i64, -10..40i64, 0..12usize);
        proptest::collection::vec(event, 1..12).prop_map(|raw| {
            let base = at("2026-11-01T00:00:00Z");
            raw.iter()
                .enumerate()
                .map(|(i, (kind, rec, eff, target))| {
                    let recorded = base + chrono::Duration::hours(*rec);
                    // Dated into the past or the future of its recording; rescinds are undated.
                    let effective = if *kind == 3 { recorded } else { recorded + chrono::Duration::hours(*eff) };
                    let role = match kind {
                        0 => Role::Profile,
                        1 => Role::Leaver,
                        2 => Role::Rehire,
                        _ => Role::Rescind(format!("e{}", target % raw.len())),
                    };
                    Dated { event_id: format!("e{i}"), role, recorded, effective, immediate: false }
                })
                .collect()
        })
    }

    proptest::proptest! {
        /// The state at any instant is a function of the events and the instant: equal to the
        /// oracle's, whatever order the events are listed (delivered) in.
        #[test]
        fn the_state_at_an_instant_is_the_oracles_whatever_the_order(
            events in history(),
            seed in proptest::prelude::any::<u64>(),
            hours in 0..60i64,
        ) {
            let t = at("2026-11-01T00:00:00Z") + chrono::Duration::hours(hours);
            let mut shuffled = events.clone();
            // A deterministic shuffle of the delivery order.
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            proptest::prop_assert_eq!(state_at(&shuffled, t), by_hand(&events, t));
            // The pending transitions replay to the state at every later instant.
            let now = at("2026-11-01T00:00:00Z");
            let mut state = state_at(&shuffled, now);
            for (when, next) in transitions(&shuffled, now) {
                proptest::prop_assert!(when > now);
                proptest::prop_assert_ne!(&next, &state);
                proptest::prop_assert_eq!(&next, &by_hand(&events, when));
                state = next;
            }
            proptest::prop_assert_eq!(state, by_hand(&events, at("2030-01-01T00:00:00Z")));
        }
    }
}
