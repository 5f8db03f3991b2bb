//! The live simulation clock: `sim = anchor_sim + (wall - anchor_wall) × speed` while
//! running, frozen while paused. Every change re-anchors at the current simulation time, so
//! a speed change or a pause never makes time jump; only a seek does.
//!
//! Pure arithmetic over wall instants the caller passes in, so it is tested without
//! sleeping.

use std::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    anchor_sim: f64,
    anchor_wall: Instant,
    speed: f64,
    paused: bool,
}

impl SimClock {
    pub fn new(sim: f64, wall: Instant, speed: f64, paused: bool) -> SimClock {
        SimClock {
            anchor_sim: sim,
            anchor_wall: wall,
            speed,
            paused,
        }
    }

    /// Simulation time (Unix seconds, fractional) at `wall`.
    pub fn sim_at(&self, wall: Instant) -> f64 {
        if self.paused {
            return self.anchor_sim;
        }
        let elapsed = wall
            .saturating_duration_since(self.anchor_wall)
            .as_secs_f64();
        self.anchor_sim + elapsed * self.speed
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    fn reanchor(&mut self, wall: Instant) {
        self.anchor_sim = self.sim_at(wall);
        self.anchor_wall = wall;
    }

    pub fn set_speed(&mut self, wall: Instant, speed: f64) {
        self.reanchor(wall);
        self.speed = speed;
    }

    pub fn set_paused(&mut self, wall: Instant, paused: bool) {
        self.reanchor(wall);
        self.paused = paused;
    }

    /// Jumps to `sim`.
    pub fn seek(&mut self, wall: Instant, sim: f64) {
        self.anchor_sim = sim;
        self.anchor_wall = wall;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn speed_changes_and_pauses_keep_the_position() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
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
    }
}
