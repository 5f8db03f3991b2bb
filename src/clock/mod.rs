//! Simulation time: how it maps onto the dataset (timeline, loops), how it advances live
//! (the clock and its task), and where an event sits in the live stream (positions).

pub mod actor;
mod position;
mod sim_clock;
mod timeline;

pub use position::{Position, PositionError};
pub use sim_clock::SimClock;
pub use timeline::{Segment, Timeline};
