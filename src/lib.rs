//! caspers-replay: replays the Casper's Kitchens canonical dataset as batch files and as a
//! live feed.
//!
//! The parts, each standing on the one before:
//! - [`dataset`]: load, validate and index `events.parquet`; generate one.
//! - [`events`]: the one expansion of an event to its canonical JSON.
//! - [`clock`]: simulation time and how it maps onto the dataset (loops).
//! - [`sinks`]: where expanded events go (files that appear whole).
//! - [`replay`]: the scheduled batch replay with its crash-safe checkpoint.
//! - [`http`]: the live feed's server (SSE, WebSocket, clock control, map page).
//! - [`time`]: the one time conversion (Unix seconds, UTC); [`atomic_file`]: files that
//!   appear whole.

pub mod atomic_file;
pub mod checksum;
pub mod clock;
pub mod dataset;
pub mod events;
pub mod http;
pub mod progress;
pub mod replay;
pub mod sinks;
pub mod time;
