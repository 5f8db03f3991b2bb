//! The repository stands alone: nothing in it reads, names or needs a folder beside it.

use std::path::{Path, PathBuf};

/// The repository's files: what git tracks, or, outside a git checkout, every file but
/// the build's and the installed packages'.
fn repository_files(root: &Path) -> Vec<PathBuf> {
    let git = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output();
    if let Ok(out) = git
        && out.status.success()
    {
        return out
            .stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .collect();
    }
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if ![".git", "target", "node_modules", ".venv", "data"].contains(&name.as_ref()) {
                    dirs.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn no_file_names_a_folder_beside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Spelled in two parts, so that this file does not name it either.
    let beside = format!("../{}", "shared");
    let files = repository_files(root);
    assert!(files.len() > 50, "the repository's files ({})", files.len());
    let naming: Vec<String> = files
        .iter()
        .filter(|f| {
            std::fs::read(f)
                .is_ok_and(|bytes| bytes.windows(beside.len()).any(|w| w == beside.as_bytes()))
        })
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(naming.is_empty(), "these files name {beside}: {naming:?}");
}
