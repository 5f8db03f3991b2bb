//! Stable event ids: a UUIDv5 (RFC 9562) of the event's identity.
//!
//! The seed drew a random UUIDv4 per replay, so consumers could not de-duplicate a replayed
//! event. Here the id is `uuid5(NAMESPACE, "{order_id}/{sequence}")`, where `order_id` is the
//! emitted one (with its `-Lk` suffix on loop k), so the same event has the same id in every
//! run, file and stream. Any language can recompute it.

use sha1::{Digest, Sha1};

/// `uuid5(NAMESPACE_DNS, "events.caspers-replay")` = 63c5c29f-7dfa-5fc2-a0cf-d03d7c34fa6c.
const NAMESPACE: [u8; 16] = [
    99, 197, 194, 159, 125, 250, 95, 194, 160, 207, 208, 61, 124, 52, 250, 108,
];

/// Length of the hyphenated text form.
pub const EVENT_ID_LEN: usize = 36;

/// Writes the id of event `sequence` of order `order_id` on loop `loop_index` (0: no suffix).
pub fn write_event_id(order_id: &[u8], loop_index: u32, sequence: u16, out: &mut [u8; 36]) {
    let mut name = [0u8; 96];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(name.len() - len);
        name[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(order_id);
    let mut num = itoa::Buffer::new();
    if loop_index > 0 {
        put(b"-L");
        put(num.format(loop_index).as_bytes());
    }
    put(b"/");
    put(num.format(sequence).as_bytes());

    let mut hasher = Sha1::new();
    hasher.update(NAMESPACE);
    hasher.update(&name[..len]);
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;

    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pos = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[pos] = b'-';
            pos += 1;
        }
        out[pos] = HEX[usize::from(b >> 4)];
        out[pos + 1] = HEX[usize::from(b & 15)];
        pos += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(order: &str, lp: u32, seq: u16) -> String {
        let mut out = [0u8; 36];
        write_event_id(order.as_bytes(), lp, seq, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn matches_python_uuid5() {
        // python3 -c "import uuid; ns=uuid.uuid5(uuid.NAMESPACE_DNS,'events.caspers-replay');
        //             print(uuid.uuid5(ns,'A7K2M9/7'), uuid.uuid5(ns,'A7K2M9-L2/0'))"
        assert_eq!(id("A7K2M9", 0, 7), "be88266e-e264-5f40-9b32-3128e026aafe");
        assert_eq!(id("A7K2M9", 2, 0), "e3942a88-90cc-5178-aaa6-697128528161");
    }
}
