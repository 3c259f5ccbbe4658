//! rwsgi: a pre-fork WSGI HTTP server.
//!
//! The modules, in the order calls flow (⇢ is the fork: a worker runs in
//! a child of the master):
//!
//! ```text
//! main → config → master → sys::fork ⇢ worker → net → wire (proxy, http | uwsgi) → wsgi
//! ```
//!
//! `main.rs` resolves the settings and hands them to [`master::start`]. A
//! worker accepts and reads through `net`; `wire` takes a PROXY header off
//! the connection and decodes the request with `http` or `uwsgi` into one
//! value that says all the rest needs to know of the protocol; the worker
//! calls the application through `wsgi`, which frames the response with
//! `http` and writes it through `net`. In brackets, the modules each one
//! uses (its `use crate::` lines); they form no cycle, and `config` and
//! `sys` use none.
//!
//! - [`config`] (none): the settings table, layers (defaults, file, env,
//!   CLI) and the validated `Config`; renders `--help` and the man page. A
//!   Python config file is read by starting the binary again as the
//!   `evaluator`, a child process.
//! - [`evaluator`] (hooks, sys, wsgi, config): the rwsgi binary run as a
//!   short-lived child that executes a Python config file and prints its
//!   settings; `config` starts it, so the master never runs Python.
//! - [`ctl`] (none): `rwsgi ctl`, the control socket's client.
//! - [`hooks`] (sys, wsgi, config): Gunicorn's server hooks: the objects they
//!   receive (`runtime.py`, from JSON pictures of the master and a worker),
//!   and the hook process, the binary run again with its own CPython, in
//!   which the master-side hooks run.
//! - [`master`] (hooks, worker, net, sys, logging, config): start-up in a
//!   fixed order, then binding listeners, forking and supervising workers,
//!   and driving the hook process; no Python.
//! - [`sys`] (none): every `unsafe` (fork, signal dispositions, the shared
//!   scoreboard, fd adoption, CPython start-up).
//! - [`worker`] (hooks, wire, wsgi, http, net, sys, logging, config): a worker's
//!   boot order, its serve loop, its connections and request threads.
//! - [`net`] (sys, config): listening sockets, connections, reads and
//!   writes with deadlines.
//! - [`proxy`] (http, config): the PROXY protocol header (v1, v2) over
//!   bytes.
//! - [`http`] (net, config): pure HTTP/1.x parsing and framing over bytes;
//!   `net` only to write a framed response in one vectored write.
//! - [`uwsgi`] (http, config): the uwsgi binary protocol over bytes, into
//!   `http`'s request.
//! - [`wire`] (proxy, http, uwsgi, net, config): the one seam between
//!   protocols: a connection's bytes (PROXY header, then HTTP or uwsgi)
//!   into an `Incoming` request with its client, scheme and framing.
//! - [`wsgi`] (wire, http, net, sys, logging, config): PEP 3333 — the environ,
//!   `start_response`, `wsgi.input`, calling the app and iterating its
//!   response.
//! - [`logging`] (http, net, config): the error log, which every module
//!   writes through the `log` macros, and the access log.

// `unsafe` lives in sys/, but for the forks the master and the zygote make
// (each allowed where it stands); the compiler holds everything else to it.
#![deny(unsafe_code, missing_docs, clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod config;
pub mod ctl;
pub mod entry;
pub mod evaluator;
pub mod hooks;
pub mod http;
pub mod logging;
pub mod master;
pub mod net;
pub mod proxy;
#[allow(unsafe_code)]
pub mod sys;
pub mod uwsgi;
pub mod wire;
pub mod worker;
pub mod wsgi;
