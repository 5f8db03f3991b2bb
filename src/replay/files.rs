//! The JSON lines file sink: one expanded event per line, in the canonical order.
//!
//! Expansion runs on a helper thread that fills 1 MiB buffers while this thread writes the
//! previous ones, so the CPU work of expansion and the kernel's copy into the page cache
//! overlap on the two cores. Buffers are handed back and reused: no allocation per chunk.

use std::io::{self, Write};
use std::sync::mpsc::sync_channel;

use crate::dataset::Dataset;
use crate::events::expand_event;
use crate::timeline::Timeline;

const CHUNK: usize = 1 << 20;

/// Writes the events with simulation time in [a, b) to `out` as JSON lines, `shift`
/// seconds added to their `ts`. `progress` hears the events written so far. Returns the
/// number of events written.
pub fn write_json_lines(
    ds: &Dataset,
    timeline: &Timeline,
    (a, b): (i64, i64),
    shift: i64,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, u64)>(2);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(4);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut buf = Vec::with_capacity(CHUNK + 64 * 1024);
            let mut events = 0u64;
            let mut stopped = false;
            timeline.for_each_event(ds, a, b, shift, |pos, event_shift| {
                if stopped {
                    return;
                }
                expand_event(&ds.events, pos, event_shift, &mut buf);
                buf.push(b'\n');
                events += 1;
                if buf.len() >= CHUNK {
                    let next = empty_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(CHUNK + 64 * 1024));
                    stopped = full_tx
                        .send((std::mem::replace(&mut buf, next), events))
                        .is_err();
                    events = 0;
                }
            });
            if !stopped && !buf.is_empty() {
                let _ = full_tx.send((buf, events));
            }
        });
        let mut written = 0u64;
        // An error returns at once: dropping the receiver stops the helper.
        for (mut buf, events) in full_rx {
            out.write_all(&buf)?;
            written += events;
            progress(written);
            buf.clear();
            let _ = empty_tx.try_send(buf);
        }
        Ok(written)
    })
}
