//! Simulation time over the dataset: the timeline of loops (which events fall in a window of
//! simulation time, shifted for their loop), and where an event sits in a stream (its
//! position), and the interface through which a live clock hands out its windows. The batch
//! replay and the live clock both stand on it.

mod emitter;
mod position;
#[allow(clippy::module_inception)]
mod timeline;

pub use emitter::Emitter;
pub use position::{Position, PositionError};
pub use timeline::{Segment, Timeline};
