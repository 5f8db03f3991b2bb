//! Simulation time: how it maps onto the dataset (timeline, loops), how it advances live
//! (the clock and its task), where its state is kept (a state file, or NATS for replicas),
//! and where an event sits in the live stream (positions).

pub mod actor;
mod position;
mod record;
pub mod shared;
mod sim_clock;
pub mod state_file;
mod timeline;

pub use position::{Position, PositionError};
pub use record::{ClockRecord, FORMAT as RECORD_FORMAT};
pub use sim_clock::SimClock;
pub use timeline::{Segment, Timeline};
