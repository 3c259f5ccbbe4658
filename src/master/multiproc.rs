//! prometheus_client's multiprocess mode without a hook: when the workers
//! have `PROMETHEUS_MULTIPROC_DIR` (from `-e` or rwsgi's environment), the
//! master empties that directory of metric files at start, and removes a
//! dead process's `live*` gauge files when it reaps it, whatever ended it,
//! as `multiprocess.mark_process_dead(pid)` would in a `child_exit` hook
//! (which keeps working: it then finds nothing left to remove). Files only:
//! no Python here.

use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::config::Config;

/// The metrics directory the workers of `cfg` use, if any: `-e` wins over
/// rwsgi's own environment, and prometheus_client's older lowercase name
/// counts too.
pub fn directory(cfg: &Config) -> Option<PathBuf> {
    let names = ["PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"];
    let given = names.iter().find_map(|name| cfg.raw_env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
    let value = given.or_else(|| names.iter().find_map(|name| std::env::var(name).ok()))?;
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// At start: the metric files of an earlier run would be counted too.
pub fn clear(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut removed = 0;
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_some_and(|e| e == "db") && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        log::info!("Removed {removed} metric files of an earlier run from {} (prometheus_client)", dir.display());
    }
}

/// A process is gone: its live gauges must stop counting.
pub fn forget(dir: &Path, pid: Pid) {
    let suffix = format!("_{pid}.db");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("gauge_live") && name.ends_with(&suffix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
