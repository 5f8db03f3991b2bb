//! Simulation time: where the replay is, how it maps onto the dataset, and (with the live
//! feed) how it advances.

mod timeline;

pub use timeline::{Segment, Timeline};
