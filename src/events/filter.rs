//! The one subscriber filter: a set of location_ids and a set of event types (empty: all).

use crate::dataset::EventType;

/// Which events a subscriber wants. Small and hashable, so subscribers with the same filter
/// share one framed chunk per tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Bit i set: location_id i wanted. All zero: every location.
    locations: [u64; 4],
    /// Bit id set: event type id wanted. Zero: every type.
    types: u16,
}

impl Filter {
    /// A filter from lists (empty lists mean "all").
    pub fn new(locations: &[u8], types: &[EventType]) -> Filter {
        let mut f = Filter::default();
        for &l in locations {
            f.locations[usize::from(l / 64)] |= 1 << (l % 64);
        }
        for t in types {
            f.types |= 1 << t.id();
        }
        f
    }

    /// Parses the query forms `location_id=1,3` and `event_type=driver_ping,delivered`.
    pub fn parse(locations: Option<&str>, types: Option<&str>) -> Result<Filter, String> {
        let items = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
        };
        let locations = items(locations)
            .iter()
            .map(|p| {
                p.parse::<u8>()
                    .map_err(|_| format!("location_id '{p}' is not a number from 0 to 255"))
            })
            .collect::<Result<Vec<u8>, String>>()?;
        let types = items(types)
            .iter()
            .map(|p| {
                EventType::from_name(p).ok_or_else(|| {
                    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
                    format!("event_type '{p}' is not one of {}", names.join(", "))
                })
            })
            .collect::<Result<Vec<EventType>, String>>()?;
        Ok(Filter::new(&locations, &types))
    }

    pub fn matches(&self, location_id: u8, event_type: EventType) -> bool {
        let loc_ok = self.locations == [0; 4]
            || self.locations[usize::from(location_id / 64)] & (1 << (location_id % 64)) != 0;
        loc_ok && (self.types == 0 || self.types & (1 << event_type.id()) != 0)
    }

    /// Whether it lets every event through.
    pub fn is_all(&self) -> bool {
        *self == Filter::default()
    }

    /// The location_ids it names (empty: all).
    pub fn location_ids(&self) -> Vec<u8> {
        (0..=255u8)
            .filter(|&l| self.locations[usize::from(l / 64)] & (1 << (l % 64)) != 0)
            .collect()
    }

    /// The event types it names (empty: all).
    pub fn event_types(&self) -> Vec<EventType> {
        EventType::ALL
            .into_iter()
            .filter(|t| self.types & (1 << t.id()) != 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let f = Filter::parse(Some("1, 3"), Some("driver_ping,delivered")).unwrap();
        assert!(f.matches(1, EventType::DriverPing));
        assert!(f.matches(3, EventType::Delivered));
        assert!(!f.matches(2, EventType::DriverPing));
        assert!(!f.matches(1, EventType::OrderCreated));
        assert_eq!(f.location_ids(), [1, 3]);
        let all = Filter::parse(None, Some("")).unwrap();
        assert!(all.is_all() && all.matches(200, EventType::GkReady));
        assert!(
            Filter::parse(Some("x"), None)
                .unwrap_err()
                .contains("location_id 'x'")
        );
        assert!(Filter::parse(Some("256"), None).is_err());
        assert!(
            Filter::parse(None, Some("pickup"))
                .unwrap_err()
                .contains("driver_ping")
        );
    }
}
