//! The index cache: a checked, sorted [`EventIndex`] saved beside the dataset.
//!
//! Decoding the parquet file, checking every row and JSON text and sorting take most of a
//! second for the full dataset; reading back the finished columns takes a tenth of that.
//! A cache file is named after the SHA-1 of the `events.parquet` it was built from and this
//! program's version, so a changed file or program never meets a stale cache; it is
//! written atomically, only after the file passed every check, and ends with a CRC-32C of
//! all its bytes, verified at load (then checked for consistency too), so a damaged cache
//! is rebuilt with a warning, never trusted.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytemuck::Pod;

use super::EventType;
use super::index::{EventIndex, NO_TEXT, TextRef};
use crate::atomic_file::AtomicFile;
use crate::checksum::{HashingReader, HashingWriter};

/// Folder of the dataset directory that holds cache files.
pub const CACHE_DIR: &str = ".caspers-cache";

const MAGIC: &[u8; 8] = b"CASPIDX2";

/// The cache file for a dataset directory and events file fingerprint.
pub fn cache_path(dataset_dir: &Path, fingerprint: &str) -> PathBuf {
    dataset_dir.join(CACHE_DIR).join(format!(
        "index-{}-{fingerprint}.bin",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Reads a cached index; `None` when it is missing, damaged or of another build.
pub fn read(path: &Path) -> Option<EventIndex> {
    let file = File::open(path).ok()?;
    let file_len = file.metadata().ok()?.len();
    let mut r = HashingReader::new(io::BufReader::with_capacity(1 << 16, file));
    match read_index(&mut r, file_len) {
        Ok(ix) => Some(ix),
        Err(e) => {
            log::warn!(
                "ignoring the index cache {} ({e}); rebuilding it",
                path.display()
            );
            None
        }
    }
}

/// Saves `ix` as the cache at `path`, removing the directory's older cache files.
pub fn write(path: &Path, ix: &EventIndex) -> io::Result<()> {
    let dir = path.parent().expect("cache path has a parent");
    fs::create_dir_all(dir)?;
    let mut file = AtomicFile::create(path)?;
    let mut w = HashingWriter::new(file.writer());
    write_index(&mut w, ix)?;
    let crc = w.crc;
    file.writer().write_all(&crc.to_le_bytes())?;
    file.commit()?;
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("index-") && entry.path() != path {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn write_index(w: &mut impl Write, ix: &EventIndex) -> io::Result<()> {
    w.write_all(MAGIC)?;
    let lens = [
        ix.ts.len(),
        ix.texts.len(),
        ix.order_ends.len(),
        ix.order_ids.len(),
        ix.arena.len(),
    ];
    for n in lens {
        w.write_all(&(n as u64).to_le_bytes())?;
    }
    let types: Vec<u8> = ix.event_type.iter().map(|t| t.id()).collect();
    let texts: Vec<[u32; 3]> = ix
        .texts
        .iter()
        .map(|t| [t.start, t.addr_len, t.end])
        .collect();
    w.write_all(bytemuck::cast_slice(&ix.ts))?;
    w.write_all(bytemuck::cast_slice(&ix.sequence))?;
    w.write_all(&ix.location)?;
    w.write_all(&types)?;
    w.write_all(bytemuck::cast_slice(&ix.order))?;
    w.write_all(bytemuck::cast_slice(&ix.lat))?;
    w.write_all(bytemuck::cast_slice(&ix.lon))?;
    w.write_all(bytemuck::cast_slice(&ix.progress))?;
    w.write_all(bytemuck::cast_slice(&ix.text))?;
    w.write_all(bytemuck::cast_slice(&texts))?;
    w.write_all(bytemuck::cast_slice(&ix.order_ends))?;
    w.write_all(&ix.order_ids)?;
    w.write_all(&ix.arena)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads `n` values straight into their vector (little-endian, as written).
fn column<T: Pod>(r: &mut impl Read, n: usize) -> io::Result<Vec<T>> {
    let mut v = vec![T::zeroed(); n];
    r.read_exact(bytemuck::cast_slice_mut(&mut v))?;
    Ok(v)
}

fn read_index<R: Read>(r: &mut HashingReader<R>, file_len: u64) -> io::Result<EventIndex> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad("not an index cache"));
    }
    let mut lens = [0usize; 5];
    for n in &mut lens {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        *n = usize::try_from(u64::from_le_bytes(b)).map_err(|_| bad("length"))?;
        if *n > 1 << 34 {
            return Err(bad("implausible length"));
        }
    }
    let [events, n_texts, n_orders, order_bytes, arena_bytes] = lens;
    // The lengths must add up to the file's size before anything is allocated for them.
    let expected = 8
        + 5 * 8
        + events as u64 * 32
        + n_texts as u64 * 12
        + n_orders as u64 * 4
        + order_bytes as u64
        + arena_bytes as u64
        + 4;
    if expected != file_len {
        return Err(bad("lengths do not match the file's size"));
    }
    let ts: Vec<i64> = column(r, events)?;
    let sequence: Vec<u16> = column(r, events)?;
    let location: Vec<u8> = column(r, events)?;
    let types: Vec<u8> = column(r, events)?;
    let order: Vec<u32> = column(r, events)?;
    let lat: Vec<f32> = column(r, events)?;
    let lon: Vec<f32> = column(r, events)?;
    let progress: Vec<f32> = column(r, events)?;
    let text: Vec<u32> = column(r, events)?;
    let texts: Vec<[u32; 3]> = column(r, n_texts)?;
    let order_ends: Vec<u32> = column(r, n_orders)?;
    let order_ids: Vec<u8> = column(r, order_bytes)?;
    let arena: Vec<u8> = column(r, arena_bytes)?;
    let crc = r.crc;
    let mut stored = [0u8; 4];
    r.inner.read_exact(&mut stored)?;
    if r.inner.read(&mut [0u8; 1])? != 0 {
        return Err(bad("trailing bytes"));
    }
    if u32::from_le_bytes(stored) != crc {
        return Err(bad("checksum mismatch: the file is damaged"));
    }

    // Everything the accessors index with must stay in bounds: a damaged cache is refused
    // here rather than panicking later.
    let event_type = types
        .iter()
        .map(|&t| EventType::from_id(i64::from(t)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("event type"))?;
    if !ts.is_sorted() {
        return Err(bad("times out of order"));
    }
    if order.iter().any(|&o| o as usize >= n_orders)
        || !order_ends.is_sorted()
        || order_ends
            .last()
            .is_some_and(|&e| e as usize != order_bytes)
    {
        return Err(bad("order ids"));
    }
    if text.iter().any(|&t| t != NO_TEXT && t as usize >= n_texts)
        || texts
            .iter()
            .any(|&[s, a, e]| s.checked_add(a).is_none_or(|m| m > e) || e as usize > arena_bytes)
    {
        return Err(bad("text references"));
    }
    Ok(EventIndex {
        ts,
        sequence,
        location,
        event_type,
        order,
        lat,
        lon,
        progress,
        text,
        texts: texts
            .into_iter()
            .map(|[start, addr_len, end]| TextRef {
                start,
                addr_len,
                end,
            })
            .collect(),
        order_ids,
        order_ends,
        arena,
    })
}
