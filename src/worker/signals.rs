//! TERM as the application's Python sees it.
//!
//! Apps and libraries (Celery, Sentry, database drivers) install their own
//! SIGTERM handler and chain to the one they found, as they do under
//! Gunicorn, whose worker installs a Python handler. So a worker gives
//! Python a real handler to find: [`graceful_stop`], a Python callable that
//! asks the worker to stop. Whatever Python handler is in place when TERM
//! comes runs on the main thread, between requests, and the worker stops
//! promptly whether or not that handler chains to rwsgi's:
//!
//! - After the app is loaded, rwsgi's own C handler takes SIGTERM back
//!   from CPython's (`sys::take_over_term`): it sets the stop flag at once
//!   and writes [`sys::OWN_TERM_BYTE`] to the signal pipe; the serve loop
//!   then calls the Python-level handler itself, between requests, so a
//!   handler that raises `SystemExit` never lands inside a request.
//! - A handler the app installs later puts CPython's C handler back, which
//!   runs the Python handler on the main thread between bytecodes and
//!   writes the signal's number to the same pipe (CPython's wakeup fd): a
//!   TERM there stops the worker too.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::sys;
use crate::wsgi::log_py_err;

/// The signal pipe: written by CPython (signal numbers) and by rwsgi's
/// TERM handler, read by the serve loop.
pub(super) struct SignalPipe {
    read: OwnedFd,
    /// Kept open for as long as a handler may write to it.
    write: OwnedFd,
}

/// The worker's own Python-level SIGTERM handler: stop after the requests
/// in hand (what an app's handler chains to).
#[pyfunction]
fn graceful_stop(_signum: i32, _frame: &Bound<'_, PyAny>) {
    sys::request_stop();
}

impl SignalPipe {
    /// Install [`graceful_stop`] as Python's SIGTERM handler and make the
    /// pipe CPython's wakeup fd. On the main thread, with Python started,
    /// before the app is loaded (so it finds the handler).
    pub fn install() -> Result<SignalPipe, String> {
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(|e| format!("cannot make a pipe: {e}"))?;
        Python::attach(|py| -> PyResult<()> {
            // `_signal`, not `signal`: the same handler table, without the
            // enum module `signal` imports (about 0.8 MB a worker).
            let signal = py.import("_signal")?;
            signal.call_method1("signal", (libc::SIGTERM, wrap_pyfunction!(graceful_stop, py)?))?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("warn_on_full_buffer", false)?;
            signal.call_method("set_wakeup_fd", (write.as_raw_fd(),), Some(&kwargs))?;
            Ok(())
        })
        .map_err(|e| {
            // CPython's C handler may be in place already, with no pipe to
            // report through: rwsgi's own handler takes TERM back.
            let _ = sys::take_over_term(-1);
            format!("cannot install the Python SIGTERM handler: {e}")
        })?;
        Ok(SignalPipe { read, write })
    }

    /// Once the app is loaded: rwsgi's own C handler takes SIGTERM back,
    /// so Python-level handlers installed so far run between requests.
    pub fn take_over_term(&self) -> Result<(), String> {
        sys::take_over_term(self.write.as_raw_fd()).map_err(|e| format!("cannot take SIGTERM back: {e}"))
    }

    /// What the serve loop polls.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Act on the signals reported: a TERM is a stop request. Then run the
    /// Python-level handlers due, on this (the main) thread: the TERM
    /// handler when rwsgi's C handler caught the signal, the others that
    /// CPython's caught. A handler that raises `SystemExit` asks for a stop.
    pub fn dispatch(&self) {
        let mut bytes = [0u8; 64];
        let (mut any, mut own_term) = (false, false);
        while let Ok(n @ 1..) = nix::unistd::read(&self.read, &mut bytes) {
            any = true;
            for &b in &bytes[..n] {
                if b == sys::OWN_TERM_BYTE || i32::from(b) == libc::SIGTERM {
                    sys::request_stop();
                }
                own_term |= b == sys::OWN_TERM_BYTE;
            }
        }
        if !any {
            return;
        }
        Python::attach(|py| {
            if own_term {
                note_handler_result(py, call_term_handler(py));
            }
            note_handler_result(py, py.check_signals());
        });
    }
}

/// Call Python's SIGTERM handler as CPython would have (the frame is
/// `None`: no Python code was running).
fn call_term_handler(py: Python<'_>) -> PyResult<()> {
    let handler = py.import("_signal")?.call_method1("getsignal", (libc::SIGTERM,))?;
    if handler.is_callable() {
        handler.call1((libc::SIGTERM, py.None()))?;
    }
    Ok(())
}

fn note_handler_result(py: Python<'_>, result: PyResult<()>) {
    let Err(e) = result else { return };
    if e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
        log::info!("The application's signal handler raised SystemExit; stopping gracefully");
        sys::request_stop();
    } else {
        log_py_err(py, "The application's signal handler raised", &e);
    }
}
