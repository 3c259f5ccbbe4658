//! The `rwsgi` command: resolve settings, then hand over to the library.
//! One function, so the two programs that are rwsgi (`src/main.rs`, and the
//! wheel's `rwsgi-server`, packaging/wheel/) are the same.

use crate::config::{self, Outcome};

/// Run the command line this process was started with; the exit status.
pub fn run() -> i32 {
    // Before anything else (one thread; no child started yet).
    crate::sys::forget_launcher_library_path();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    if args.get(1).map(String::as_str) == Some(config::python::EVALUATE_FLAG) {
        // A child started to evaluate a Python config file.
        return crate::evaluator::run(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some(crate::ctl::TOP) {
        // The live view of a server's workers.
        return crate::ctl::top(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some(crate::ctl::WORD) {
        // The control socket's client.
        return crate::ctl::run(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some(crate::hooks::process::FLAG) {
        // A child the master started to run its server hooks.
        return crate::hooks::process::run(&args[2..]);
    }
    let env = |key: &str| std::env::var(key).ok();
    match config::load(args.clone(), &env) {
        Ok(Outcome::Print(text)) => {
            print!("{text}");
            0
        }
        Ok(Outcome::Run(cfg)) => {
            // HUP reads the settings again: the same command line, the
            // config file and the environment as they are then.
            let argv = args.clone();
            let reloader = Box::new(move || match config::load(args.clone(), &env)? {
                Outcome::Run(cfg) => Ok(*cfg),
                Outcome::Print(_) => Err(config::ConfigError("unexpected --help or --version".into())),
            });
            crate::master::start(*cfg, argv, reloader)
        }
        Err(e) => {
            // A command line clap cannot read exits 2, as argparse's does in
            // Gunicorn; settings that do not hold (a value, a config file)
            // exit 1, as in Gunicorn.
            let text = e.to_string();
            if text.starts_with("error:") {
                eprintln!("{text}");
                2
            } else {
                eprintln!("Error: {text}");
                1
            }
        }
    }
}
