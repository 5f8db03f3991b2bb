//! A presenter's change to the clock, as the control endpoint takes it (JSON): checked and
//! turned into the clock task's commands. Client input: it must refuse anything with a
//! message, never panic (fuzzed: fuzz/fuzz_targets/clock_change.rs).

use serde::Deserialize;

use super::actor::Command;
use crate::time::{DAY, parse_rfc3339};

/// A presenter's change: any of these, applied together.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    speed: Option<f64>,
    paused: Option<bool>,
    /// Simulation time to jump to: Unix seconds, RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC).
    seek: Option<serde_json::Value>,
    /// Day of the dataset to jump to (its midnight).
    seek_day: Option<i64>,
    /// Seconds of simulation time to emit on a paused clock, which stays paused.
    step: Option<f64>,
}

/// The commands a change asks for, in the order they apply (seeks first), given the
/// dataset's first instant (for `seek_day`); `Err` says what is wrong and how to write it.
pub fn parse_change(body: &[u8], dataset_start: i64) -> Result<Vec<Command>, String> {
    let expected = |e: &dyn std::fmt::Display| {
        format!(
            "expected JSON like {{\"speed\": 3600, \"paused\": false, \"seek\": \"2024-01-10 12:00:00\", \"seek_day\": 10}} or {{\"step\": 300}}: {e}"
        )
    };
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| expected(&e))?;
    // A field given as null is a mistake, not a field left out.
    if let Some((name, _)) = json
        .as_object()
        .and_then(|o| o.iter().find(|(_, v)| v.is_null()))
    {
        return Err(format!("{name} is null: give a value, or leave it out"));
    }
    let change: ClockChange = serde_json::from_value(json).map_err(|e| expected(&e))?;
    let mut commands = Vec::new();
    if let Some(day) = change.seek_day {
        let day_zero = dataset_start.div_euclid(DAY) * DAY;
        match day.checked_mul(DAY).and_then(|s| s.checked_add(day_zero)) {
            Some(t) => commands.push(Command::Seek(t as f64)),
            None => return Err(format!("seek_day {day} is not a day of the dataset")),
        }
    }
    if let Some(seek) = &change.seek {
        let t = match seek {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => parse_rfc3339(s).ok().map(|t| t as f64),
            _ => None,
        };
        match t {
            Some(t) => commands.push(Command::Seek(t)),
            None => {
                return Err(format!(
                    "seek {seek} is not a time (Unix seconds, or e.g. \"2024-01-10 12:00:00\")"
                ));
            }
        }
    }
    if let Some(speed) = change.speed {
        commands.push(Command::SetSpeed(speed));
    }
    if let Some(paused) = change.paused {
        commands.push(Command::SetPaused(paused));
    }
    if let Some(step) = change.step {
        commands.push(Command::Step(step));
    }
    if commands.is_empty() {
        return Err("nothing to change: give speed, paused, seek, seek_day or step".into());
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_their_mistakes() {
        assert_eq!(
            parse_change(
                br#"{"speed": 60, "paused": true, "seek_day": 1}"#,
                86_400 + 5
            ),
            Ok(vec![
                Command::Seek(2.0 * 86_400.0),
                Command::SetSpeed(60.0),
                Command::SetPaused(true)
            ])
        );
        for (body, says) in [
            (&br#"{"seek": null, "speed": 2}"#[..], "seek is null"),
            (br#"{"warp": 9}"#, "unknown field"),
            (br#"{}"#, "nothing to change"),
            (br#"{"seek": "yesterday"}"#, "not a time"),
            (br#"{"seek_day": 9223372036854775807}"#, "not a day"),
            (b"[", "expected JSON like"),
        ] {
            let e = parse_change(body, 0).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
