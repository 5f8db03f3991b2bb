//! The snapshot: the orders in flight at an instant, so that a map is full the moment it
//! connects, and again after a seek.

use std::collections::HashMap;

use bytes::Bytes;

use super::framing::Transport;
use crate::dataset::{Dataset, EventType};
use crate::events::{EventShift, Filter, expand_event};
use crate::timeline::Timeline;

/// An in-flight order's events for a snapshot: order_created, driver_picked_up, last ping.
type OrderParts = [Option<(usize, EventShift)>; 3];

/// The orders in flight at `sim`: for each, its order_created, its driver_picked_up
/// and its latest driver_ping so far, so that a map is full the moment it connects.
pub(super) fn orders_in_flight(
    ds: &Dataset,
    timeline: &Timeline,
    sim: i64,
    filter: Filter,
    transport: Transport,
) -> Bytes {
    const LOOKBACK: i64 = 4 * 3600;
    // (loop, order) -> (created, picked_up, last ping)
    let mut orders: HashMap<(u32, u32), OrderParts> = HashMap::new();
    timeline.for_each_event(ds, sim - LOOKBACK, sim, 0, |pos, shift| {
        if !filter.matches(ds.events.location_id(pos), ds.events.event_type(pos)) {
            return;
        }
        let key = (shift.loop_index, ds.events.order_key(pos));
        let slot = match ds.events.event_type(pos) {
            EventType::OrderCreated => 0,
            EventType::DriverPickedUp => 1,
            EventType::DriverPing => 2,
            EventType::Delivered => {
                orders.remove(&key);
                return;
            }
            _ => return,
        };
        orders.entry(key).or_default()[slot] = Some((pos, shift));
    });
    let mut picked: Vec<(usize, EventShift)> = orders
        .values()
        .filter(|o| o[0].is_some())
        .flat_map(|o| o.iter().flatten().copied())
        .collect();
    picked.sort_by_key(|&(pos, s)| (ds.events.ts(pos) + s.seconds, ds.events.sequence(pos), pos));
    let mut json = Vec::with_capacity(256 * picked.len() + 64);
    json.extend_from_slice(b"{\"type\":\"snapshot\",\"sim_time\":");
    crate::json::push_int(&mut json, sim);
    json.extend_from_slice(b",\"orders\":");
    crate::json::push_int(
        &mut json,
        orders.values().filter(|o| o[0].is_some()).count(),
    );
    json.extend_from_slice(b",\"events\":[");
    for (i, &(pos, shift)) in picked.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        expand_event(&ds.events, pos, shift, &mut json);
    }
    json.extend_from_slice(b"]}");
    transport.control("snapshot", &json)
}
