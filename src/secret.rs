//! Secrets: random tokens (the presenter's when none is given, sessions' ids and tokens),
//! their digests (what a file keeps), and comparing a presented token without telling by
//! how much it differs.

use std::io::Read;

/// 128 random bits from the kernel, in hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if ok.is_err() {
        // No /dev/urandom: the clock, the process id and a counter still make it
        // unguessable enough for a demo, and the presenter can always pass a token.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = crate::time::now_unix_f64().to_bits() ^ (u64::from(std::process::id()) << 32);
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest of `token` (SHA-1, hex) to keep on disk instead of the token: whoever reads
/// the file cannot present it.
pub fn digest(token: &str) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `a` and `b` are the same, looking at every byte whatever the first difference.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_compare() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token(&a, &a[..31]));
        assert_eq!(digest("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
