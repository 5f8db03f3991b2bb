//! The live clock: how simulation time advances (the clock and its task), where its state
//! is kept (a state file, or NATS for replicas), and where its windows of time go (an
//! [`crate::timeline::Emitter`]: the delivery engine's hub, the JetStream publisher).

pub mod actor;
pub mod change;
mod record;
pub mod shared;
pub mod shared_sessions;
pub mod shelf;
mod sim_clock;
pub mod start;
pub mod state_file;

pub use record::{ClockRecord, FORMAT as RECORD_FORMAT};
pub use sim_clock::SimClock;
