//! Where a live clock's windows of simulation time go. Defined here, below both the clock
//! and the delivery engine, so that neither knows the other: the clock says what time has
//! passed, and each emitter (the hub, the JetStream publisher) decides what becomes of it.

/// A receiver of a clock's windows and announcements. Every method has a default that
/// ignores it, so an emitter takes only what it needs (the publisher takes windows only).
pub trait Emitter: Send + Sync {
    /// The runs of simulation time emitted before this process (by the process it
    /// continues, or the other replicas), the seconds emitted in runs no longer kept
    /// before them, and where this one starts.
    fn set_history(&self, _runs: Vec<(i64, i64)>, _before: i64, _cursor: i64) {}
    /// A new run of emitted time starts at `sim` (the clock started, or was sought).
    fn start_run(&self, _sim: i64) {}
    /// The events of simulation time [a, b) are due.
    fn emit(&self, a: i64, b: i64);
    /// A control message of `kind` whose JSON is `json`, for every subscriber.
    fn announce(&self, _kind: &str, _json: &[u8]) {}
    /// The clock was sought to `sim` and the seek announced: what was shown before it (the
    /// orders in flight) is stale.
    fn sought(&self, _sim: i64) {}
}
