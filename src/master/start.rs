//! Start-up: the fixed order in which resolved settings become a running
//! master. Each step goes on, or ends rwsgi with an exit status once it
//! has said why.

use std::ops::ControlFlow;
use std::path::PathBuf;

use super::{Master, Reloader};
use crate::config::Config;
use crate::{logging, sys, worker};

/// Run rwsgi with resolved settings; `reloader` reads them again on HUP.
/// Returns the process exit status.
pub fn start(cfg: Config, argv: Vec<String>, reloader: Reloader) -> i32 {
    let start_dir = match prepare(&cfg) {
        ControlFlow::Continue(dir) => dir,
        ControlFlow::Break(status) => return status,
    };
    match Master::new(cfg, argv, reloader, start_dir) {
        Ok(master) => master.run(),
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

/// Every step before the master exists, in order. Continues with the
/// directory rwsgi started in, from which a reload applies `--chdir`
/// again.
fn prepare(cfg: &Config) -> ControlFlow<i32, PathBuf> {
    print_config(cfg)?;
    let start_dir = std::env::current_dir().unwrap_or_else(|_| "/".into());
    change_directory(cfg)?;
    set_umask(cfg);
    open_error_log(cfg)?;
    log_notices(cfg);
    require_app(cfg)?;
    check_config(cfg)?;
    daemonize(cfg)?;
    sys::raise_fd_limit();
    ControlFlow::Continue(start_dir)
}

/// What reading the settings had to say (see `Config::notices`), once the
/// error log is open: each said once.
pub(super) fn log_notices(cfg: &Config) {
    for (level, text) in &cfg.notices {
        log::log!(*level, "{text}");
    }
}

/// `--print-config`: the resolved settings as TOML, and nothing else.
fn print_config(cfg: &Config) -> ControlFlow<i32> {
    if cfg.print_config {
        print!("{}", cfg.to_toml());
        return ControlFlow::Break(0);
    }
    ControlFlow::Continue(())
}

/// `--chdir`, before any relative path (the error log, the pidfile, a
/// unix socket) is opened.
fn change_directory(cfg: &Config) -> ControlFlow<i32> {
    if let Some(dir) = &cfg.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("Error: cannot change directory to {}: {e}", dir.display());
            return ControlFlow::Break(1);
        }
    }
    ControlFlow::Continue(())
}

/// `--umask`, before the first file or socket is created, so every one
/// gets it.
fn set_umask(cfg: &Config) {
    if let Some(mask) = cfg.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
}

/// The error log, before the first line worth logging; until it is open,
/// errors go to stderr.
fn open_error_log(cfg: &Config) -> ControlFlow<i32> {
    if let Err(e) = logging::configure(cfg) {
        eprintln!("Error: {e}");
        return ControlFlow::Break(1);
    }
    ControlFlow::Continue(())
}

fn require_app(cfg: &Config) -> ControlFlow<i32> {
    if cfg.app.is_none() {
        eprintln!("Error: no application given. Usage: rwsgi [OPTIONS] MODULE:CALLABLE (see rwsgi --help)");
        return ControlFlow::Break(1);
    }
    ControlFlow::Continue(())
}

/// `--check-config`: import the app once and report. Python starts in
/// this process, so it ends here: a master never runs Python.
fn check_config(cfg: &Config) -> ControlFlow<i32> {
    if !cfg.check_config {
        return ControlFlow::Continue(());
    }
    ControlFlow::Break(match worker::check_app(cfg) {
        Ok(()) => {
            println!("Configuration OK: {} loads", cfg.app.as_ref().map(ToString::to_string).unwrap_or_default());
            if !cfg.hooks.is_empty() {
                println!("Server hooks: {}", cfg.hooks.join(", "));
            }
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    })
}

/// `--daemon`: into the background before the pidfile is written (it
/// must hold the daemon's pid) and before any worker exists (they are the
/// daemon's children).
fn daemonize(cfg: &Config) -> ControlFlow<i32> {
    // A master started by USR2 stays the old master's child, so the old
    // one can tell when it is gone; it is already in the background.
    if cfg.daemon && std::env::var_os("RWSGI_UPGRADE_FROM").is_none() {
        if let Err(e) = sys::daemonize(cfg.enable_stdio_inheritance) {
            log::error!("cannot daemonize: {e}");
            return ControlFlow::Break(1);
        }
    }
    ControlFlow::Continue(())
}
