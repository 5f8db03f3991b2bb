//! caspers-replay: replays the Casper's Kitchens canonical dataset as batch files and as a
//! live feed.
//!
//! The parts, each standing on the ones before it and never reaching up:
//! - [`dataset`]: load, validate and index `events.parquet`; generate one.
//! - [`events`]: the one expansion of an event to its canonical JSON; the event filter.
//! - [`timeline`]: simulation time over the dataset (loops) and stream positions.
//! - [`replay`]: the scheduled batch replay with its crash-safe checkpoint, and its outputs
//!   (JSON lines files, Arrow IPC for Spark).
//! - [`clock`]: the live clock, its durable record (state file or NATS) and its task.
//! - [`fanout`]: the delivery engine (hub, client queues, framing, writer threads).
//! - [`http`]: actix handlers only (streams, clock control, the page, the documents).
//! - [`sessions`]: replay sessions, each a clock and a hub of its own beside the shared
//!   ones, over the same dataset and writer threads.
//! - [`serve`]: the live service wired together (hub, clock, sessions, writers, HTTP) and
//!   its shutdown.
//! - Beneath them all: [`time`] (the one time conversion), [`json`] (JSON text writers),
//!   [`atomic_file`] (files that appear whole), [`checksum`], [`progress`],
//!   [`secret`] (random tokens).

pub mod atomic_file;
pub mod checksum;
pub mod clock;
pub mod dataset;
pub mod events;
pub mod fanout;
pub mod http;
pub mod json;
pub mod progress;
pub mod replay;
pub mod secret;
pub mod serve;
pub mod sessions;
pub mod time;
pub mod timeline;
