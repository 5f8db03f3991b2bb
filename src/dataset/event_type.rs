//! The eight event types of `events.parquet` (its `event_type_id` column) and their names.

/// The eight event types, numbered as `event_type_id` in `events.parquet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventType {
    OrderCreated = 1,
    GkStarted = 2,
    GkFinished = 3,
    GkReady = 4,
    DriverArrived = 5,
    DriverPickedUp = 6,
    DriverPing = 7,
    Delivered = 8,
}

impl EventType {
    /// Every type, in id order.
    pub const ALL: [EventType; 8] = [
        EventType::OrderCreated,
        EventType::GkStarted,
        EventType::GkFinished,
        EventType::GkReady,
        EventType::DriverArrived,
        EventType::DriverPickedUp,
        EventType::DriverPing,
        EventType::Delivered,
    ];

    /// The type of an `event_type_id`, or `None` outside 1..=8.
    pub fn from_id(id: i64) -> Option<EventType> {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The `event_type_id` of this type.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The `event_type` text of the expanded event.
    pub fn name(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order_created",
            EventType::GkStarted => "gk_started",
            EventType::GkFinished => "gk_finished",
            EventType::GkReady => "gk_ready",
            EventType::DriverArrived => "driver_arrived",
            EventType::DriverPickedUp => "driver_picked_up",
            EventType::DriverPing => "driver_ping",
            EventType::Delivered => "delivered",
        }
    }

    /// The type named `name` (as in [`EventType::name`]).
    pub fn from_name(name: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_id(i64::from(t.id())), Some(t));
            assert_eq!(EventType::from_name(t.name()), Some(t));
        }
        assert_eq!(EventType::from_id(0), None);
        assert_eq!(EventType::from_id(9), None);
        assert_eq!(EventType::from_name("pickup"), None);
    }
}
