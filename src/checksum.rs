//! Checksums over everything the product reads back (the index cache, the batch checkpoint,
//! the live clock's state file), so that a flipped byte is noticed instead of trusted.
//!
//! CRC-32C (hardware-accelerated by the `crc32c` crate): hashing the 170 MB index cache
//! costs milliseconds, and a CRC catches every burst of up to 32 flipped bits.
//!
//! A JSON file stays human-readable: the checksum is its last member,
//! `"crc32c": "0a1b2c3d"`, over every byte before that member.

use std::io::{self, Read, Write};

/// The member that seals a JSON object, up to its value.
const MEMBER: &[u8] = b",\n  \"crc32c\": \"";

/// Appends the checksum member to a pretty-printed JSON object (`{\n  ...\n}`).
pub fn seal_json(pretty_object: &[u8]) -> Vec<u8> {
    let body = pretty_object.trim_ascii_end();
    let body = body.strip_suffix(b"}").expect("a JSON object");
    let body = body.trim_ascii_end();
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(MEMBER);
    out.extend_from_slice(format!("{crc:08x}\"\n}}\n").as_bytes());
    out
}

/// Why a sealed JSON file was not read.
#[derive(Debug)]
pub enum SealedError {
    /// It is not JSON of the expected shape (the parser's words).
    NotJson(String),
    /// It parses, but its checksum does not match: damaged (what is wrong).
    Damaged(String),
}

/// Reads a file written by [`seal_json`] into `T`, checking its checksum first.
pub fn read_sealed_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SealedError> {
    let parsed = serde_json::from_slice::<T>(bytes);
    match (open_sealed_json(bytes), parsed) {
        (_, Err(e)) => Err(SealedError::NotJson(e.to_string())),
        (Err(e), Ok(_)) => Err(SealedError::Damaged(e)),
        (Ok(_), Ok(value)) => Ok(value),
    }
}

/// Checks a file written by [`seal_json`]; returns it (a JSON object whose `crc32c` member
/// readers ignore) or what is wrong.
fn open_sealed_json(bytes: &[u8]) -> Result<&[u8], String> {
    let Some(at) = bytes.windows(MEMBER.len()).rposition(|w| w == MEMBER) else {
        return Err("it has no checksum (damaged, or written by hand)".into());
    };
    let tail = &bytes[at + MEMBER.len()..];
    let actual = format!("{:08x}", crc32c::crc32c(&bytes[..at]));
    if tail.get(8..) != Some(b"\"\n}\n".as_slice()) || tail.len() < 8 {
        return Err("its checksum member is damaged".into());
    }
    let stored = String::from_utf8_lossy(&tail[..8]);
    if actual != stored {
        return Err(format!(
            "its checksum does not match its content (crc32c {actual}, recorded {stored}): the file is damaged"
        ));
    }
    Ok(bytes)
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    pub inner: W,
    pub crc: u32,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, crc: 0 }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    pub inner: R,
    pub crc: u32,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, crc: 0 }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_json_object_reads_back_and_every_changed_byte_is_refused() {
        let value = serde_json::json!({"speed": 3600.0, "runs": [[1, 2]], "paused": false});
        let sealed = seal_json(&serde_json::to_vec_pretty(&value).unwrap());
        let back: serde_json::Value =
            serde_json::from_slice(open_sealed_json(&sealed).unwrap()).unwrap();
        assert_eq!(back["speed"], 3600.0);
        assert!(back["crc32c"].is_string());
        for i in 0..sealed.len() {
            for flip in [0x01u8, 0x20, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= flip;
                assert!(open_sealed_json(&bad).is_err(), "byte {i} ^ {flip:#x}");
            }
        }
        assert!(open_sealed_json(&sealed[..sealed.len() - 1]).is_err());
        assert!(open_sealed_json(b"{\"speed\": 1}\n").is_err());
    }
}
