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
