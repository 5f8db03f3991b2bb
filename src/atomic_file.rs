//! Files that appear whole or not at all.
//!
//! A file is written under a hidden temporary name (a leading `.`: Spark, Auto Loader and
//! most tools skip such files), flushed, fsynced, renamed into place, and its directory
//! fsynced, so a reader never sees a partial file and a crash leaves either the old state
//! or the new one. The JSON lines output, the checkpoint and the index cache all use it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Prefix of every temporary file this module makes.
pub const TEMP_PREFIX: &str = ".caspers-tmp-";

/// A file being written; it becomes visible under its final name only at [`commit`].
/// Dropped without a commit, it removes its temporary file.
///
/// [`commit`]: AtomicFile::commit
pub struct AtomicFile {
    writer: Option<BufWriter<File>>,
    temp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing what will become `path`.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let dir = parent(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let temp = dir.join(format!("{TEMP_PREFIX}{name}"));
        let file = File::create(&temp)?;
        Ok(AtomicFile {
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            temp,
            path: path.to_path_buf(),
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("not committed yet")
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the file durable under its temporary name, without publishing it yet.
    pub fn sync(&mut self) -> io::Result<()> {
        let w = self.writer();
        w.flush()?;
        w.get_ref().sync_all()
    }

    /// Syncs, renames into place and syncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        self.sync()?;
        drop(self.writer.take());
        fs::rename(&self.temp, &self.path)?;
        sync_dir(parent(&self.path))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.writer().write_all(bytes)?;
    file.commit()
}

/// Removes temporary files a crashed run left in `dir`; returns how many.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Why [`lock_beside`] did not get its lock.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Busy,
    /// The lock file could not be made or locked (the message says which).
    Io(String),
}

/// Takes `<path>.lock`, so that two processes never own `path` at once; held until the
/// returned file is dropped, and released by the system if the process dies.
pub fn lock_beside(path: &Path) -> Result<File, LockError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .map_err(|e| LockError::Io(format!("cannot create its directory: {e}")))?;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| LockError::Io(format!("cannot open its lock file: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(LockError::Busy),
        Err(fs::TryLockError::Error(e)) => Err(LockError::Io(format!("cannot lock it: {e}"))),
    }
}

/// fsyncs a directory, so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appears_only_on_commit_and_cleans_up_when_dropped() {
        let dir = std::env::temp_dir().join(format!("caspers-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.json");
        let mut f = AtomicFile::create(&path).unwrap();
        f.writer().write_all(b"hello\n").unwrap();
        assert!(!path.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello\n");

        let mut g = AtomicFile::create(&dir.join("other.json")).unwrap();
        g.writer().write_all(b"partial").unwrap();
        drop(g);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
