//! rwsgi: a pre-fork WSGI HTTP server.
//!
//! Layout (calls flow one way, top to bottom):
//! - [`config`]: the settings table, layers (defaults, file, env, CLI) and
//!   the validated `Config`; renders `--help` and the man page.
//! - [`master`]: binds listeners, forks and supervises workers; no Python.
//! - [`sys`]: every `unsafe` (fork, signal dispositions, the shared
//!   scoreboard, fd adoption, CPython start-up).
//! - [`worker`]: a worker's boot order and its serve loop.
//! - [`net`]: listening sockets, connections, reads and writes with deadlines.
//! - [`http`]: pure HTTP/1.x parsing and framing over bytes.
//! - [`uwsgi`]: the uwsgi binary protocol over bytes, into `http`'s request.
//! - [`proxy`]: the PROXY protocol header (v1, v2) over bytes.
//! - [`wsgi`]: PEP 3333 — the environ, `start_response`, `wsgi.input`,
//!   calling the app and iterating its response.
//! - [`logging`]: the error log and the access log.

// `unsafe` lives in sys/ only; the compiler holds everything else to it.
#![deny(unsafe_code)]

pub mod config;
pub mod http;
pub mod logging;
pub mod master;
pub mod net;
pub mod proxy;
#[allow(unsafe_code)]
pub mod sys;
pub mod uwsgi;
pub mod worker;
pub mod wsgi;

use config::Config;

/// Run rwsgi with resolved settings; `reloader` reads them again on HUP.
/// Returns the process exit status.
pub fn run(cfg: Config, argv: Vec<String>, reloader: master::Reloader) -> i32 {
    if cfg.print_config {
        print!("{}", cfg.to_toml());
        return 0;
    }
    let start_dir = std::env::current_dir().unwrap_or_else(|_| "/".into());
    if let Some(dir) = &cfg.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!("Error: cannot change directory to {}: {e}", dir.display());
            return 1;
        }
    }
    if let Some(mask) = cfg.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    if let Err(e) = logging::init_error_log(&cfg.errorlog, cfg.loglevel) {
        eprintln!("Error: {e}");
        return 1;
    }
    if cfg.app.is_none() {
        eprintln!("Error: no application given. Usage: rwsgi [OPTIONS] MODULE:CALLABLE (see rwsgi --help)");
        return 1;
    }
    if cfg.check_config {
        return match worker::check_app(&cfg) {
            Ok(()) => {
                println!("Configuration OK: {} loads", cfg.app.as_ref().map(ToString::to_string).unwrap_or_default());
                0
            }
            Err(e) => {
                eprintln!("Error: {e}");
                1
            }
        };
    }
    // A master started by USR2 stays the old master's child, so the old
    // one can tell when it is gone; it is already in the background.
    if cfg.daemon && std::env::var_os("RWSGI_UPGRADE_FROM").is_none() {
        if let Err(e) = sys::daemonize() {
            log::error!("cannot daemonize: {e}");
            return 1;
        }
    }
    sys::raise_fd_limit();
    match master::Master::new(cfg, argv, reloader, start_dir) {
        Ok(m) => m.run(),
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}
