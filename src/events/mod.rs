//! Events: the one expansion of an indexed event to JSON, its stable id, and the filter
//! (kitchens and event types) that every output that selects events uses.

mod event_id;
mod expand;
mod filter;

pub use event_id::{EVENT_ID_LEN, write_event_id};
pub use expand::{EventFields, EventShift, expand_event, write_body_text};
pub use filter::Filter;
