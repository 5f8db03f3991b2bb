//! An event's position in the live stream: which loop and which row of the index, tagged
//! with the dataset, so that a reconnecting client can say where it stopped.
//!
//! Text form `{dataset tag}-{loop}-{row}`, e.g. `23a9f17e-0-51234`: the tag is the first 8
//! hex digits of the dataset's fingerprint, so a position from another dataset is
//! recognised and refused instead of silently resuming somewhere else.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    pub loop_index: u32,
    pub row: u32,
}

impl Position {
    /// Writes the text form with `tag`.
    pub fn write(&self, tag: &str, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "{tag}-{}-{}", self.loop_index, self.row);
    }

    pub fn to_text(&self, tag: &str) -> String {
        format!("{tag}-{}-{}", self.loop_index, self.row)
    }

    /// Parses the text form, checking the tag.
    pub fn parse(text: &str, tag: &str) -> Result<Position, PositionError> {
        let mut parts = text.trim().splitn(3, '-');
        let (t, l, r) = (parts.next(), parts.next(), parts.next());
        let (Some(t), Some(l), Some(r)) = (t, l, r) else {
            return Err(PositionError::Malformed(text.into()));
        };
        let (Ok(loop_index), Ok(row)) = (l.parse(), r.parse()) else {
            return Err(PositionError::Malformed(text.into()));
        };
        if t != tag {
            return Err(PositionError::OtherDataset(text.into()));
        }
        Ok(Position { loop_index, row })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PositionError {
    Malformed(String),
    OtherDataset(String),
    OutOfRange(String),
}

impl fmt::Display for PositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PositionError::Malformed(p) => {
                write!(
                    f,
                    "'{p}' is not a position of this stream (expected TAG-LOOP-ROW)"
                )
            }
            PositionError::OtherDataset(p) => {
                write!(f, "position '{p}' belongs to another dataset")
            }
            PositionError::OutOfRange(p) => {
                write!(f, "position '{p}' has not been sent by this server")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = Position {
            loop_index: 2,
            row: 51234,
        };
        assert_eq!(p.to_text("23a9f17e"), "23a9f17e-2-51234");
        assert_eq!(Position::parse("23a9f17e-2-51234", "23a9f17e"), Ok(p));
        assert!(matches!(
            Position::parse("deadbeef-2-51234", "23a9f17e"),
            Err(PositionError::OtherDataset(_))
        ));
        for bad in ["", "abc", "23a9f17e-x-1", "23a9f17e-1", "23a9f17e-1--2"] {
            assert!(
                matches!(
                    Position::parse(bad, "23a9f17e"),
                    Err(PositionError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
