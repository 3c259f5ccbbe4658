//! `--reload`: the master watches the source files the workers imported
//! and the `--reload-extra-file` ones, and reloads (as HUP does) when one
//! changes. The master runs no Python and starts no thread, so the workers
//! report their imported files: each writes the list to a file of its own
//! in a directory the master made (`<pid>.modules`, renamed into place
//! whole), which the master reads and removes. The master sees changes
//! through inotify on the files' directories, registered in its poll
//! (an editor that saves by renaming a new file into place is seen too),
//! or by the files' times of change, read once a second.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::config::{Config, ReloadEngine};

/// The poll token of the inotify descriptor.
pub const TOKEN: Token = Token(2);

/// How often reports, glob patterns and (polling) times of change are read.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A change waits this long for the ones an editor makes with it.
const SETTLE: Duration = Duration::from_millis(200);

/// How changes are seen.
enum Watch {
    /// inotify on the directories of the watched files.
    Inotify { inotify: Inotify, dirs: HashMap<WatchDescriptor, PathBuf>, watched: HashSet<PathBuf> },
    /// Times of change, compared once a second.
    Poll,
}

/// The files `--reload` watches, and a change waiting to act on.
pub struct CodeWatch {
    /// Where workers write their lists of imported files.
    dir: PathBuf,
    watch: Watch,
    /// Every watched file, with its time of change when last read.
    files: HashMap<PathBuf, Option<SystemTime>>,
    /// `--reload-extra-file` entries that are glob patterns.
    patterns: Vec<String>,
    next_check: Instant,
    /// The file that changed, and when the reload is due.
    changed: Option<(PathBuf, Instant)>,
}

impl CodeWatch {
    /// The watcher for `cfg`, registered in `registry`; `None` without
    /// `--reload`. The error is one sentence.
    pub fn new(cfg: &Config, registry: &Registry) -> Result<Option<CodeWatch>, String> {
        if !cfg.reload {
            return Ok(None);
        }
        let dir = report_dir(cfg)?;
        let watch = match (cfg.reload_engine, Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)) {
            (ReloadEngine::Poll, _) => Watch::Poll,
            (_, Ok(inotify)) => {
                registry
                    .register(&mut SourceFd(&inotify.as_fd().as_raw_fd()), TOKEN, Interest::READABLE)
                    .map_err(|e| format!("--reload: cannot watch inotify: {e}"))?;
                Watch::Inotify { inotify, dirs: HashMap::new(), watched: HashSet::new() }
            }
            (ReloadEngine::Inotify, Err(e)) => return Err(format!("--reload-engine inotify: {e}")),
            (ReloadEngine::Auto, Err(e)) => {
                log::info!("--reload: no inotify ({e}); polling instead");
                Watch::Poll
            }
        };
        let mut code_watch =
            CodeWatch { dir, watch, files: HashMap::new(), patterns: Vec::new(), next_check: Instant::now(), changed: None };
        code_watch.follow(cfg);
        log::info!("--reload: watching the application's files ({})", code_watch.engine());
        Ok(Some(code_watch))
    }

    /// The extra files of `cfg` (at start, and after HUP).
    pub fn follow(&mut self, cfg: &Config) {
        self.patterns.clear();
        for entry in &cfg.reload_extra_files {
            let text = entry.to_string_lossy();
            if text.contains(['*', '?', '[']) {
                self.patterns.push(text.into_owned());
            } else {
                self.add(entry.clone());
            }
        }
        self.expand_patterns();
    }

    /// Where the workers report what they imported.
    pub fn report_dir(&self) -> &Path {
        &self.dir
    }

    /// The inotify descriptor is readable: note the changes it reports.
    pub fn on_events(&mut self) {
        let Watch::Inotify { inotify, dirs, .. } = &self.watch else { return };
        let mut hits = Vec::new();
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                if let (Some(dir), Some(name)) = (dirs.get(&event.wd), &event.name) {
                    hits.push(dir.join(name));
                }
            }
        }
        let now = Instant::now();
        for path in hits {
            if self.files.contains_key(&path) || self.matches_pattern(&path) {
                self.note_change(path, now);
            }
        }
    }

    /// Called at each turn of the master's loop: the file whose change is
    /// due to reload the workers, if any.
    pub fn due(&mut self, now: Instant) -> Option<PathBuf> {
        if now >= self.next_check {
            self.next_check = now + CHECK_EVERY;
            self.read_reports();
            self.expand_patterns();
            if matches!(self.watch, Watch::Poll) {
                self.poll_times(now);
            }
        }
        match &self.changed {
            Some((_, at)) if now >= *at => self.changed.take().map(|(path, _)| path),
            _ => None,
        }
    }

    /// When the loop must wake next for a change waiting to settle.
    pub fn wake_within(&self, now: Instant) -> Duration {
        let next = self.changed.as_ref().map_or(self.next_check, |(_, at)| (*at).min(self.next_check));
        next.saturating_duration_since(now)
    }

    fn engine(&self) -> &'static str {
        match self.watch {
            Watch::Inotify { .. } => "inotify",
            Watch::Poll => "polling once a second",
        }
    }

    /// A change to `path`: the reload waits for the change to settle.
    fn note_change(&mut self, path: PathBuf, now: Instant) {
        // (Said when the reload starts.)
        self.changed = Some((path, now + SETTLE));
    }

    /// Watch `path` from now on (its first change after this counts).
    fn add(&mut self, path: PathBuf) {
        if self.files.contains_key(&path) {
            return;
        }
        let mtime = modified(&path);
        if let Watch::Inotify { inotify, dirs, watched } = &mut self.watch {
            if let Some(dir) = path.parent().filter(|d| !watched.contains(*d)) {
                let mask = AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_MODIFY
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_ATTRIB;
                match inotify.add_watch(dir, mask) {
                    Ok(wd) => {
                        dirs.insert(wd, dir.to_path_buf());
                    }
                    Err(e) => log::debug!("--reload: cannot watch {}: {e}", dir.display()),
                }
                watched.insert(dir.to_path_buf());
            }
        }
        self.files.insert(path, mtime);
    }

    /// Read and remove the lists the workers wrote.
    fn read_reports(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "modules") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let _ = std::fs::remove_file(&path);
            for line in text.lines().filter(|l| l.starts_with('/')) {
                self.add(PathBuf::from(line));
            }
        }
    }

    /// Files the patterns match now (a new one is watched from now on).
    fn expand_patterns(&mut self) {
        let found: Vec<PathBuf> = self
            .patterns
            .iter()
            .filter_map(|p| glob::glob(p).ok())
            .flat_map(|paths| paths.flatten())
            .filter(|p| p.is_file())
            .collect();
        for path in found {
            self.add(path);
        }
    }

    fn matches_pattern(&self, path: &Path) -> bool {
        self.patterns.iter().filter_map(|p| glob::Pattern::new(p).ok()).any(|p| p.matches_path(path))
    }

    /// Polling: a file whose time of change moved has changed.
    fn poll_times(&mut self, now: Instant) {
        let mut changed = None;
        for (path, seen) in self.files.iter_mut() {
            let mtime = modified(path);
            if mtime != *seen {
                *seen = mtime;
                changed.get_or_insert_with(|| path.clone());
            }
        }
        if let Some(path) = changed {
            self.note_change(path, now);
        }
    }
}

impl Drop for CodeWatch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A file's time of change, `None` while it does not exist.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A fresh directory of the master's own for the workers' reports,
/// writable by the workers' user.
fn report_dir(cfg: &Config) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("rwsgi-reload-{}", std::process::id()));
    // One left by an earlier process that had this pid.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("--reload: cannot make {}: {e}", dir.display()))?;
    if cfg.user.is_some() || cfg.group.is_some() {
        let (uid, gid) = (cfg.user.map(nix::unistd::Uid::from_raw), cfg.group.map(nix::unistd::Gid::from_raw));
        nix::unistd::chown(&dir, uid, gid).map_err(|e| format!("--reload: cannot give {} to the workers' user: {e}", dir.display()))?;
    }
    Ok(dir)
}

impl super::Master {
    /// HUP: `--reload` as the settings read again say.
    pub(super) fn code_watch_follow(&mut self, cfg: &Config) {
        match (&mut self.code_watch, cfg.reload) {
            (Some(watch), true) => watch.follow(cfg),
            (_, false) => self.code_watch = None,
            (None, true) => match CodeWatch::new(cfg, self.poll.registry()) {
                Ok(watch) => self.code_watch = watch,
                Err(e) => log::error!("{e}"),
            },
        }
    }
}
