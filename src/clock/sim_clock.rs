//! The live simulation clock: `sim = anchor_sim + (wall - anchor_wall) × speed` while
//! running, frozen while paused. Every change re-anchors at the current simulation time, so
//! a speed change or a pause never makes time jump; only a seek does.
//!
//! Wall time is Unix seconds (not a process-local `Instant`), so anchors mean the same to
//! a restarted process and to every replica that shares them. Pure arithmetic over the
//! instants the caller passes in, so it is tested without sleeping.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimClock {
    /// Simulation time (Unix seconds) at `anchor_wall`.
    pub anchor_sim: f64,
    /// Wall time (Unix seconds) of the anchor.
    pub anchor_wall: f64,
    pub speed: f64,
    pub paused: bool,
}

impl SimClock {
    pub fn new(sim: f64, wall: f64, speed: f64, paused: bool) -> SimClock {
        SimClock {
            anchor_sim: sim,
            anchor_wall: wall,
            speed,
            paused,
        }
    }

    /// Simulation time (Unix seconds, fractional) at `wall`; never before the anchor.
    pub fn sim_at(&self, wall: f64) -> f64 {
        if self.paused {
            return self.anchor_sim;
        }
        self.anchor_sim + (wall - self.anchor_wall).max(0.0) * self.speed
    }

    fn reanchor(&mut self, wall: f64) {
        self.anchor_sim = self.sim_at(wall);
        self.anchor_wall = wall;
    }

    pub fn set_speed(&mut self, wall: f64, speed: f64) {
        self.reanchor(wall);
        self.speed = speed;
    }

    pub fn set_paused(&mut self, wall: f64, paused: bool) {
        self.reanchor(wall);
        self.paused = paused;
    }

    /// Jumps to `sim`.
    pub fn seek(&mut self, wall: f64, sim: f64) {
        self.anchor_sim = sim;
        self.anchor_wall = wall;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_changes_and_pauses_keep_the_position() {
        let t0 = 1_800_000_000.0;
        let at = |s: f64| t0 + s;
        let mut c = SimClock::new(1000.0, t0, 60.0, false);
        assert_eq!(c.sim_at(at(1.0)), 1060.0);
        c.set_speed(at(1.0), 3600.0);
        assert_eq!(c.sim_at(at(1.0)), 1060.0, "no jump on a speed change");
        assert_eq!(c.sim_at(at(2.0)), 4660.0);
        c.set_paused(at(2.0), true);
        assert_eq!(c.sim_at(at(50.0)), 4660.0, "paused");
        c.set_paused(at(50.0), false);
        assert_eq!(c.sim_at(at(51.0)), 8260.0);
        c.seek(at(51.0), 10.0);
        assert_eq!(c.sim_at(at(52.0)), 3610.0);
        assert_eq!(c.sim_at(at(40.0)), 10.0, "never before the anchor");
    }
}
