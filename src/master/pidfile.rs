//! The pidfile: written atomically (a temporary file renamed into place),
//! refused while a running process holds it, removed on exit if it is
//! still ours.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// A pidfile this master wrote.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    pid: i32,
}

impl Pidfile {
    /// Write `path` with this process's pid, unless another running process
    /// holds it.
    pub fn create(path: &Path) -> Result<Pidfile, String> {
        let pid = std::process::id() as i32;
        if let Some(other) = read_pid(path) {
            // kill(pid, 0) tests for existence without sending anything.
            // EPERM: it runs, as another user.
            let running = !matches!(kill(Pid::from_raw(other), None), Err(nix::errno::Errno::ESRCH));
            if other != pid && running {
                return Err(format!("pidfile {} holds pid {other}, which is running", path.display()));
            }
        }
        let tmp = path.with_file_name(format!(
            ".{}.{pid}.tmp",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ));
        // A fresh file, never through a symlink someone planted there.
        let _ = std::fs::remove_file(&tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .and_then(|mut f| f.write_all(format!("{pid}\n").as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("cannot write pidfile {}: {e}", path.display()));
        }
        Ok(Pidfile { path: path.to_path_buf(), pid })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where a master started by USR2 writes its pid while the old one runs.
pub fn upgrade_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".2");
    PathBuf::from(name)
}

impl Pidfile {
    /// Move this pidfile to `path` (the old master's, once it is gone).
    pub fn move_to(&mut self, path: &Path) -> Result<(), String> {
        std::fs::rename(&self.path, path).map_err(|e| format!("cannot move pidfile to {}: {e}", path.display()))?;
        self.path = path.to_path_buf();
        Ok(())
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_refuse_remove() {
        let path = std::env::temp_dir().join(format!("rwsgi-pidfile-{}", std::process::id()));
        // A stale pidfile (no such process) is replaced.
        std::fs::write(&path, "999999999\n").unwrap();
        let p = Pidfile::create(&path).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id() as i32));
        // A pidfile held by a running process (pid 1) is refused.
        let other = path.with_extension("held");
        std::fs::write(&other, "1\n").unwrap();
        assert!(Pidfile::create(&other).unwrap_err().contains("which is running"));
        std::fs::remove_file(&other).unwrap();
        drop(p);
        assert!(!path.exists());
    }
}
