//! Stable event ids: a UUIDv5 (RFC 9562) of the event's identity.
//!
//! The seed drew a random UUIDv4 per replay, so consumers could not de-duplicate a replayed
//! event. Here the id is `uuid5(NAMESPACE, "{order_id}/{sequence}")`, where `order_id` is the
//! emitted one (with its `-Lk` suffix on loop k), so the same event has the same id in every
//! run, file and stream. Any language can recompute it.

use sha1::{Digest, Sha1};
use uuid::Uuid;

/// `uuid5(NAMESPACE_DNS, "events.caspers-replay")`.
pub const NAMESPACE: Uuid = uuid::uuid!("63c5c29f-7dfa-5fc2-a0cf-d03d7c34fa6c");

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
    // What `Uuid::new_v5` computes, with the `sha1` crate's SHA-1 (hardware SHA where the
    // CPU has it) in place of uuid's portable one: expansion went from 4.16 M to 4.74-4.78 M
    // events/s (`cargo bench --bench dataset`, the 2-core VM, 2026-11-25).
    let mut hash = Sha1::new();
    hash.update(NAMESPACE.as_bytes());
    hash.update(&name[..len]);
    let digest = hash.finalize();
    let bytes: [u8; 16] = digest[..16].try_into().expect("a SHA-1 has 20 bytes");
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(out);
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
    fn the_namespace_is_the_uuid5_of_its_name() {
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"events.caspers-replay");
        assert_eq!(ns, NAMESPACE);
    }

    #[test]
    fn matches_python_uuid5() {
        // python3 -c "import uuid; ns=uuid.uuid5(uuid.NAMESPACE_DNS,'events.caspers-replay');
        //             print(uuid.uuid5(ns,'A7K2M9/7'), uuid.uuid5(ns,'A7K2M9-L2/0'))"
        assert_eq!(id("A7K2M9", 0, 7), "be88266e-e264-5f40-9b32-3128e026aafe");
        assert_eq!(id("A7K2M9", 2, 0), "e3942a88-90cc-5178-aaa6-697128528161");
    }
}
