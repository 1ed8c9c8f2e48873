//! The parking codes every target shares: the engine's and the contract's (each slice adds its
//! own, see [`crate::parking`]).

crate::parking_codes! {
    /// Why the engine parks a record, whatever the target.
    pub enum EngineCode("engine") {
        /// The event does not validate against the HR event contract v1; the reason names every
        /// broken field's JSON path and rule, never its value. A leaver with a valid eventId,
        /// occurredAt and ExternalId is never parked for an optional field (applied bare).
        /// Do: fix the HR record (or the producer's mapping), then send the event again.
        InvalidEvent,
        /// `occurredAt` is more than 5 minutes (`MAX_CLOCK_SKEW`) ahead of the clock: a mistyped
        /// year would otherwise become the person's newest event and make every later leaver stale.
        /// Do: fix the date in HR and send the event again (a redrive of the same body is parked again).
        OccurredInFuture,
        /// The eventId is one the ledger already holds for another event of the person (another
        /// type, time or content); never settled as a duplicate, since a leaver would be dropped.
        /// Do: give the change an eventId of its own in HR (or the producer), then send it.
        EventIdReused,
        /// The ledger's stored event that decides the person's state no longer validates (a
        /// stricter contract than the one that accepted it); nothing converges on what cannot be
        /// read. A stored leaver is always read as a bare leaver and never blocks.
        /// Do: HR sends a newer event for the person (it supersedes the stored one), or correct the record.
        StoredEventUnreadable,
        /// A leaver names an ExternalId the ledger never saw that is the same as a known person's
        /// after case folding and Unicode normalisation (issuer `Workday` for `workday`, full-width
        /// digits): HR most likely meant that person, who keeps every access until a leaver names
        /// them exactly.
        /// Do: correct the ExternalId in HR and send the leaver again; if they really are two people, apply the leaver by hand.
        ExternalIdVariant,
        /// An alarm: after revoking (twice), the leaver's read-back still finds access; the message
        /// names what. The leaver is recorded (no later event grants again) and marked active, so a
        /// redrive converges and verifies again.
        /// Do: fix the cause (a permission, a hand-made re-grant), then redrive.
        LeaverIncomplete,
        /// The service refused a write as a uniqueness conflict (ConflictException with reason
        /// UniquenessConstraintViolation) the target could not attribute.
        /// Do: find the account holding the unique value (a name, an e-mail), resolve it by hand, then redrive.
        Conflict,
        /// The service answered ResourceNotFoundException for something the event needs (a
        /// directory, a stack, an instance) outside the cases a target handles itself.
        /// Do: check the deployment's settings (ids, ARNs) against the account, then redrive.
        ResourceNotFound,
        /// The service refused the request as invalid (ValidationException): a value it does not
        /// accept that the contract let through.
        /// Do: read the reason (the field and the service's rule), fix the HR value, then send the event again.
        ServiceValidation,
        /// A service quota is reached (ServiceQuotaExceededException: users per directory, groups
        /// per user).
        /// Do: raise the quota or free capacity, then redrive.
        ServiceQuotaExceeded,
        /// `effectiveAt` or `effectiveDate` is more than `MAX_EFFECTIVE_AHEAD_DAYS` (400) days ahead
        /// of the clock: most likely a mistyped year; a change is never scheduled that far out.
        /// Do: fix the date in HR and send the event again.
        EffectiveTooFarAhead,
        /// A rescind recorded (`occurredAt`) at or after the event it names took effect, or naming
        /// a change that took effect when HR recorded it, or a rescind: decided from the events, so
        /// delivery order cannot change it; nothing was changed.
        /// Do: the change stands; HR sends a rehire (for a leaver) or a new event that undoes it.
        RescindTooLate,
        /// The change is dated ahead, and this deployment has nothing that fires a pending change
        /// on its date (on AWS the `SCHEDULE_*` variables are unset; the simulator's replay and a
        /// function with EventBridge Scheduler do): accepting it would leave it unapplied, a
        /// leaver above all.
        /// Do: send the event on its effective date, or a leaver as `immediate`; then redrive.
        DatedEventNotSchedulable,
        /// Recording the change would keep more than 100 events (or 200 KiB of event bodies) for
        /// the person on one target: changes dated ahead that never settle, most likely a feed
        /// re-sending the same future change under new eventIds (or rescinds of eventIds never
        /// received). Nothing was recorded; a leaver, a change that decides the state now and a
        /// rescind of a change the ledger holds are never refused for this.
        /// Do: rescind the duplicates in HR (or fix the producer's eventIds), then redrive.
        TooManyPendingChanges,
        /// A defect: the engine and a target disagreed about a plan or a lease; nothing was
        /// written after it.
        /// Do: report it with the message; redrive once fixed.
        InternalError,
    }
}
