//! `rwsgi` as the wheel installs it: a launcher that finds the libpython
//! of the CPython the wheel was built for, then runs `rwsgi-server` (the
//! server, installed beside it) in its place.
//!
//! The server links `libpython3.X.so.1.0` like any program that embeds
//! CPython, and the loader looks for it only in its default directories.
//! A pyenv or source-built interpreter keeps it in its own `lib/`, so
//! the launcher finds that directory and hands it to the loader through
//! `LD_LIBRARY_PATH`, naming it again in `RWSGI_LIBPYTHON_DIR` so the
//! server can take it out of the environment its application sees (and
//! put it back for the copies of itself it starts). Where to look, first
//! found wins:
//!
//! 1. the `lib/` beside the interpreter this installation belongs to: the
//!    virtualenv's base interpreter (`home` in `pyvenv.cfg`), else the
//!    `python3.X` beside the launcher;
//! 2. the loader's default path (Debian's interpreters): no
//!    change to the environment;
//! 3. the interpreter's own answer (`sysconfig`'s `LIBDIR`), for a layout
//!    the first two miss; it costs one interpreter start.
//!
//! It also sets `VIRTUAL_ENV` to the virtualenv it is installed in, as
//! running a virtualenv's `bin/python` uses that virtualenv: the server
//! then imports the application's packages from it (`--virtualenv` and the
//! config file still win). No Python runs in the server's master either
//! way: the launcher is gone once the server starts.

use std::ffi::{CString, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The CPython version the wheel was built for, as "3.11".
const PYTHON_VERSION: &str = env!("RWSGI_PYTHON_VERSION");

fn main() {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "rwsgi".into());
    let exe = std::fs::read_link("/proc/self/exe").or_else(|_| std::env::current_exe());
    let Some(bin_dir) = exe.ok().and_then(|e| e.parent().map(Path::to_path_buf)) else {
        fail("cannot tell where the rwsgi launcher is installed");
    };
    let server = bin_dir.join("rwsgi-server");
    let venv = bin_dir.parent().filter(|d| d.join("pyvenv.cfg").is_file()).map(Path::to_path_buf);
    let python = interpreter(&bin_dir, venv.as_deref());
    let mut command = Command::new(&server);
    // As typed: USR2 starts the new master from it, through this launcher
    // again, so an upgraded wheel is the one that runs.
    command.arg0(argv0).args(args);
    if let Some(dir) = libpython_dir(python.as_deref()) {
        let mut path = OsString::from(&dir);
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|p| !p.is_empty()) {
            path.push(":");
            path.push(old);
        }
        command.env("LD_LIBRARY_PATH", path).env("RWSGI_LIBPYTHON_DIR", &dir);
    }
    if let Some(venv) = venv {
        command.env("VIRTUAL_ENV", venv);
    }
    let error = command.exec();
    fail(&format!("cannot run {}: {error}", server.display()));
}

fn fail(why: &str) -> ! {
    eprintln!("rwsgi: {why}");
    std::process::exit(127)
}

fn library_name() -> String {
    format!("libpython{PYTHON_VERSION}.so.1.0")
}

/// The interpreter this installation belongs to: the virtualenv's base
/// interpreter, else the `python3.X` beside the launcher, else on PATH.
fn interpreter(bin_dir: &Path, venv: Option<&Path>) -> Option<PathBuf> {
    let name = format!("python{PYTHON_VERSION}");
    let mut dirs: Vec<PathBuf> = venv.and_then(|v| pyvenv_home(&v.join("pyvenv.cfg"))).into_iter().collect();
    dirs.push(bin_dir.to_path_buf());
    dirs.extend(std::env::var_os("PATH").iter().flat_map(std::env::split_paths));
    dirs.into_iter().map(|d| d.join(&name)).find(|p| p.is_file())
}

/// `home` in a `pyvenv.cfg`: the directory of the base interpreter.
fn pyvenv_home(cfg: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(cfg).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "home").then(|| PathBuf::from(value.trim()))
    })
}

/// The directory to add to the loader's path, if any (module docs).
fn libpython_dir(python: Option<&Path>) -> Option<PathBuf> {
    let name = library_name();
    let resolved = python.and_then(|p| std::fs::canonicalize(p).ok());
    let beside = resolved.as_deref().and_then(Path::parent).and_then(Path::parent).map(|prefix| prefix.join("lib"));
    if let Some(dir) = beside.filter(|d| d.join(&name).is_file()) {
        return Some(dir);
    }
    if loader_finds(&name) {
        return None;
    }
    let output = Command::new(python?)
        .args(["-I", "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')"])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    dir.join(&name).is_file().then_some(dir)
}

/// Whether the loader finds `name` on its own (its cache, default paths
/// and the current `LD_LIBRARY_PATH`).
fn loader_finds(name: &str) -> bool {
    let Ok(name) = CString::new(name) else { return false };
    // SAFETY: dlopen with a valid C string; the handle, if any, is closed
    // at once. Loading libpython runs no Python code.
    unsafe {
        let handle = libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if handle.is_null() {
            return false;
        }
        libc::dlclose(handle);
    }
    true
}
