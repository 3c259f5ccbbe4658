//! PEP 3333: loading the application (`load`), building the environ,
//! calling the app and iterating its response into the socket.
//!
//! Python is attached only around Python calls; socket reads and writes
//! run detached. The response iterable's `close()` is called on every
//! path. Framing bytes come from `http`; this module never writes them
//! itself. A worker whose config file defines pre_request or post_request
//! calls them around the app (`hooked`).

mod hooked;
mod load;
pub mod objects;
pub mod response;

pub use hooked::HookedRequest;
pub use load::{app_dirs_on_path, load_app, LoadError};

use std::borrow::Cow;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{intern, PyTypeInfo};

use crate::config::Config;
use crate::http::body::{BodyError, BodyReader};
use crate::http::{Request, Version};
use crate::net::{Peer, Stream};
use crate::wire::Incoming;
use objects::{lock, Continue, Errors, FileWrapper, Input, InputState, StartResponse};
use response::{RequestTerms, ResponseState};

/// The loaded application and the per-worker constants of its environ.
pub struct App {
    callable: Py<PyAny>,
    /// One prepared environ per listener (SERVER_NAME/PORT differ); each
    /// request copies one.
    base_environs: Vec<Py<PyDict>>,
    /// `SCRIPT_NAME` from the environment, without a trailing slash.
    script_name: String,
    /// `wsgi.file_wrapper` responses go out with sendfile(2).
    sendfile: bool,
    /// The worker's server hooks (`runtime.py`'s `WorkerHooks`), when the
    /// config file defines pre_request or post_request.
    hooks: Option<Py<PyAny>>,
}

/// A Python exception with its traceback, as Python prints it.
pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let lines = tb.call_method1("format_exception", (err.clone_ref(py).into_value(py),))?;
        let joined = PyString::new(py, "").call_method1("join", (lines,))?;
        joined.extract::<String>()
    });
    formatted.unwrap_or_else(|_| err.to_string()).trim_end().to_string()
}

/// Log a Python exception with its traceback at error level.
pub fn log_py_err(py: Python<'_>, context: &str, err: &PyErr) {
    log::error!("{context}\n{}", format_traceback(py, err));
}

/// Per-listener facts the environ needs.
pub struct ListenerInfo {
    /// `SERVER_NAME`: the bound address, or the socket path.
    pub server_name: String,
    /// `SERVER_PORT`: the bound port, or empty on a unix socket.
    pub server_port: String,
}

impl App {
    /// Wrap a loaded callable and prepare the constant environ keys.
    pub fn new(py: Python<'_>, callable: Py<PyAny>, listeners: &[ListenerInfo], cfg: &Config) -> PyResult<App> {
        let errors = Py::new(py, Errors)?;
        // A trailing slash belongs to PATH_INFO: /app/ mounts at /app.
        let script_name = std::env::var("SCRIPT_NAME").unwrap_or_default().trim_end_matches('/').to_string();
        let mut base_environs = Vec::new();
        for l in listeners {
            let env = PyDict::new(py);
            env.set_item("wsgi.version", (1, 0))?;
            env.set_item("wsgi.url_scheme", "http")?;
            env.set_item("wsgi.errors", errors.clone_ref(py))?;
            env.set_item("wsgi.multithread", cfg.threads > 1)?;
            env.set_item("wsgi.multiprocess", cfg.workers > 1)?;
            env.set_item("wsgi.run_once", false)?;
            env.set_item("wsgi.file_wrapper", FileWrapper::type_object(py))?;
            env.set_item("wsgi.input_terminated", true)?;
            env.set_item("SERVER_SOFTWARE", concat!("rwsgi/", env!("CARGO_PKG_VERSION")))?;
            env.set_item("SERVER_NAME", l.server_name.as_str())?;
            env.set_item("SERVER_PORT", l.server_port.as_str())?;
            env.set_item("SCRIPT_NAME", script_name.as_str())?;
            base_environs.push(env.unbind());
        }
        Ok(App { callable, base_environs, script_name, sendfile: cfg.sendfile, hooks: None })
    }

    /// The application callable.
    pub fn callable(&self) -> &Py<PyAny> {
        &self.callable
    }

    /// Call `hooks`' pre_request and post_request around every request.
    pub fn with_request_hooks(self, hooks: Option<Py<PyAny>>) -> App {
        App { hooks, ..self }
    }

    /// Whether requests go through server hooks.
    pub fn has_request_hooks(&self) -> bool {
        self.hooks.is_some()
    }

    /// post_request for a request [`handle`] served, once it is logged.
    pub fn finish_request(&self, py: Python<'_>, outcome: &mut Outcome) {
        if let (Some(hooks), Some(hooked)) = (&self.hooks, outcome.hooked.take()) {
            hooked.finish(py, hooks, outcome);
        }
    }
}

/// Everything about one request the handler needs.
pub struct Exchange<'a> {
    /// The request, and what the protocol that carried it says of it.
    pub incoming: &'a Incoming,
    /// Which listener accepted the connection (for SERVER_NAME/PORT).
    pub listener: usize,
    /// The connection.
    pub stream: &'a Arc<Stream>,
    /// What was read from the connection: the head, then (from the head's
    /// length on) the start of the body and anything after it.
    pub leftover: Vec<u8>,
    /// The longest wait for each socket read or write.
    pub timeout: Option<Duration>,
    /// The server allows keep-alive for this request (not stopping,
    /// keep-alive enabled, the client asked for it).
    pub keep_alive: bool,
    /// The most body bytes the app may read (`--limit-request-body`).
    pub body_limit: Option<u64>,
    /// The `Date` header value (shared: it changes once a second).
    pub date: Arc<str>,
    /// The connection's REMOTE_ADDR and REMOTE_PORT strings, kept for its
    /// next requests.
    pub remote_cache: &'a mut RemoteCache,
    /// Hold the response back (when small and whole) for the caller to
    /// send, in this buffer (passed in to reuse its allocation).
    pub hold: Option<Vec<u8>>,
}

/// A client address as environ strings, made once per connection.
pub type RemoteCache = Option<(Peer, Py<PyString>, Py<PyString>)>;

/// REMOTE_ADDR and REMOTE_PORT for `peer`, from `cache` when it is the same
/// peer as last time.
fn remote_strings<'py>(py: Python<'py>, peer: &Peer, cache: &mut RemoteCache) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
    if let Some((cached, addr, port)) = cache {
        if cached == peer {
            return (addr.bind(py).clone(), port.bind(py).clone());
        }
    }
    let (addr, port) = match peer {
        Peer::Tcp(a) => (PyString::new(py, &a.ip().to_string()), PyString::new(py, &a.port().to_string())),
        Peer::Unix => (intern!(py, "").clone(), intern!(py, "").clone()),
    };
    *cache = Some((*peer, addr.clone().unbind(), port.clone().unbind()));
    (addr, port)
}

/// What became of a request.
pub struct Outcome {
    /// The status line sent, `500 Internal Server Error` when the app failed.
    pub status: String,
    /// Its code (0: no response was made).
    pub code: u16,
    /// The response headers the app gave.
    pub headers: Vec<(String, String)>,
    /// Body bytes sent.
    pub body_bytes: u64,
    /// Head and body bytes sent (the head counted once it is made).
    pub bytes_out: u64,
    /// The connection can carry another request (response whole, body read).
    pub reusable: bool,
    /// The request body reader, to drain and to recover pipelined bytes.
    pub body: BodyReader,
    /// The body was still unread and the client was never told to send it.
    pub continue_unsent: bool,
    /// The whole response, held back for the caller to send (empty when it
    /// went out already).
    pub held: Vec<u8>,
    /// The request as the server hooks saw it, for post_request.
    pub hooked: Option<HookedRequest>,
}

/// Call the app for one request and write its response.
pub fn handle(py: Python<'_>, app: &App, mut ex: Exchange<'_>) -> Outcome {
    let req = &ex.incoming.request;
    let expect = Arc::new(Continue::new(req.expect_continue));
    let input = Arc::new(Mutex::new(InputState {
        body: BodyReader::new(req.framing, std::mem::take(&mut ex.leftover))
            .starting_at(req.head_len)
            .limited_to(ex.body_limit),
        stream: Some(ex.stream.clone()),
        timeout: ex.timeout,
        expect: expect.clone(),
    }));
    let terms = RequestTerms {
        version: req.version,
        is_head: req.method == "HEAD",
        chunked_allowed: req.version == Version::Http11 && !ex.incoming.one_shot,
    };
    let response =
        ResponseState::new(ex.stream.clone(), expect.clone(), ex.timeout, terms, ex.keep_alive, ex.date.clone(), ex.hold.take());
    let state = Arc::new(Mutex::new(response));

    let remote = remote_strings(py, &ex.incoming.client, ex.remote_cache);
    let (mut hooked, ran) = match &app.hooks {
        None => (None, run_app(py, app, &ex, &input, &state, remote, None)),
        Some(hooks) => match HookedRequest::begin(py, hooks, ex.incoming) {
            (mut hooked, Ok(())) => {
                let environ = hooked.as_mut().map(|h| &mut h.environ);
                let ran = run_app(py, app, &ex, &input, &state, remote, environ);
                (hooked, ran)
            }
            // pre_request raised: answered as an app error, app not called.
            (hooked, Err(e)) => (hooked, Err(Failure::App(e))),
        },
    };
    if let Err(failure) = ran {
        answer_failure(py, req, &ex.incoming.client, failure, &input, &state);
    }
    let mut st = lock(&state);
    // Objects the app kept (wsgi.input, write) lose the connection now.
    st.stream = None;
    let mut input = lock(&input);
    input.stream = None;
    let body = input.take_body();
    let (status, code, headers) = st.take_app_head().map_or_else(Default::default, |h| (h.status, h.code, h.headers));
    Outcome {
        status,
        code,
        headers,
        body_bytes: st.body_bytes(),
        bytes_out: st.head_bytes() + st.body_bytes(),
        reusable: st.connection_reusable() && body.error().is_none(),
        continue_unsent: expect.unsent() && !body.is_complete(),
        held: st.take_held(),
        body,
        hooked: hooked.take(),
    }
}

/// After the app or the client failed a request: log it, and answer with
/// a status while the head is not out yet, or cut the body short.
fn answer_failure(
    py: Python<'_>,
    req: &Request,
    client: &Peer,
    failure: Failure,
    input: &Mutex<InputState>,
    state: &Mutex<ResponseState>,
) {
    let body_error = lock(input).body.error();
    let head_sent = lock(state).head_sent();
    if let (Failure::App(err), None | Some(BodyError::Io(_))) = (&failure, body_error) {
        let started = if head_sent { " (response already started)" } else { "" };
        log_py_err(py, &format!("Error handling request {} {}{started}", req.method, req.target), err);
    }
    match (head_sent, body_error) {
        (false, Some(BodyError::Http(e))) => {
            // The client broke the body framing: its fault, its status.
            log::debug!("bad request body from {client:?}: {}", e.describe());
            let (code, reason) = e.status();
            py.detach(|| lock(state).respond_plain(code, reason, e.describe()));
        }
        (false, _) => py.detach(|| lock(state).respond_plain(500, "Internal Server Error", "Internal Server Error")),
        // The head is out: all that is left is to cut the body short so
        // the client sees it is incomplete.
        (true, _) => lock(state).break_off(),
    }
}

/// How a request failed.
enum Failure {
    /// The app (or its iterable) raised, or broke the WSGI contract.
    App(PyErr),
    /// The client went away or stalled while we wrote.
    Client,
}

fn run_app(
    py: Python<'_>,
    app: &App,
    ex: &Exchange<'_>,
    input: &Arc<Mutex<InputState>>,
    state: &Arc<Mutex<ResponseState>>,
    remote: (Bound<'_, PyString>, Bound<'_, PyString>),
    keep_environ: Option<&mut Option<Py<PyDict>>>,
) -> Result<(), Failure> {
    let environ = build_environ(py, app, ex, input, remote).map_err(Failure::App)?;
    if let Some(kept) = keep_environ {
        *kept = Some(environ.clone().unbind());
    }
    let start_response = Py::new(py, StartResponse { state: state.clone() }).map_err(Failure::App)?;
    let iterable = app.callable.bind(py).call1((environ, start_response)).map_err(Failure::App)?;
    let result = write_iterable(py, &iterable, state, app.sendfile);
    // PEP 3333: close() is called on every path, even when iteration
    // failed. A plain list or tuple has none (and asking would build an
    // AttributeError per request).
    let plain = iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>();
    if !plain {
        if let Ok(close) = iterable.getattr(intern!(py, "close")) {
            if let Err(e) = close.call0() {
                log_py_err(py, "Error closing the response iterable", &e);
            }
        }
    }
    result
}

/// The largest response piece offered to the socket with the GIL held
/// (what the socket cannot take is copied aside, so this bounds the copy).
const SEND_HOLDING_GIL_MAX: usize = 64 * 1024;

fn write_iterable(
    py: Python<'_>,
    iterable: &Bound<'_, PyAny>,
    state: &Arc<Mutex<ResponseState>>,
    sendfile: bool,
) -> Result<(), Failure> {
    let not_started = || Failure::App(pyo3::exceptions::PyAssertionError::new_err("the application returned without calling start_response()"));
    // A file wrapper over a real file goes out with sendfile.
    let wrapper = iterable.cast::<FileWrapper>().ok().filter(|_| sendfile);
    if let Some(wrapper) = wrapper {
        if let Some(sent) = try_sendfile(py, &wrapper.borrow(), state)? {
            return sent;
        }
    }
    // A one-item list or tuple is the whole body: announce its length.
    let single = if let Ok(list) = iterable.cast::<PyList>() {
        (list.len() <= 1).then(|| list.iter().next())
    } else if let Ok(tuple) = iterable.cast::<PyTuple>() {
        (tuple.len() <= 1).then(|| tuple.iter().next())
    } else {
        None
    };
    if let Some(item) = single {
        let len = match &item {
            Some(i) => i.cast::<PyBytes>().map_err(|_| body_type_error(i))?.as_bytes().len(),
            None => 0,
        };
        let mut st = lock(state);
        if st.app_head().is_none() {
            return Err(not_started());
        }
        st.set_known_length(len as u64);
    }
    for item in iterable.try_iter().map_err(Failure::App)? {
        let item = item.map_err(Failure::App)?;
        let bytes = item.cast::<PyBytes>().map_err(|_| body_type_error(&item))?;
        let data = bytes.as_bytes();
        if data.is_empty() {
            continue;
        }
        let mut st = lock(state);
        if st.app_head().is_none() {
            return Err(not_started());
        }
        // A small piece is offered to the socket without releasing the
        // GIL: it almost always fits, and another request thread then does
        // not take the GIL for the time of one system call. Whatever does
        // not fit is sent below with the GIL released.
        if data.len() <= SEND_HOLDING_GIL_MAX {
            if !st.send_without_waiting(data).map_err(|e| client_gone(&e))? {
                drop(st);
                py.detach(|| lock(state).flush()).map_err(|e| client_gone(&e))?;
            }
            continue;
        }
        drop(st);
        py.detach(|| lock(state).send(data)).map_err(|e| client_gone(&e))?;
    }
    {
        let mut st = lock(state);
        if st.app_head().is_none() {
            return Err(not_started());
        }
        if st.finish_without_write() {
            return Ok(());
        }
    }
    py.detach(|| lock(state).finish()).map_err(|e| client_gone(&e))
}

/// Serve a `FileWrapper` with sendfile when its file has a descriptor and
/// the framing allows; `None` to fall back to iterating it.
fn try_sendfile(py: Python<'_>, wrapper: &FileWrapper, state: &Arc<Mutex<ResponseState>>) -> Result<Option<Result<(), Failure>>, Failure> {
    use crate::http::response::ResponseFraming;
    let file = wrapper.filelike.bind(py);
    let fileno = match file.call_method0("fileno").and_then(|n| n.extract::<i32>()) {
        Ok(fd) if fd >= 0 => fd,
        _ => return Ok(None),
    };
    let Ok(offset) = file.call_method0("tell").and_then(|n| n.extract::<i64>()) else { return Ok(None) };
    // A descriptor of rwsgi's own: the app's file object may be closed
    // by another thread while the response goes out.
    let Ok(fd) = crate::sys::duplicate_fd(fileno) else { return Ok(None) };
    let Ok(meta) = nix::sys::stat::fstat(&fd) else { return Ok(None) };
    if meta.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    let size = (meta.st_size - offset).max(0) as u64;
    let mut st = lock(state);
    if st.app_head().is_none() {
        return Ok(None);
    }
    if st.content_length().is_none() {
        // The file's size is the body's length: a regular file, read to its end.
        st.set_known_length(size);
    }
    if st.planned_framing() == ResponseFraming::Chunked {
        return Ok(None);
    }
    drop(st);
    let result = py.detach(|| {
        let mut st = lock(state);
        st.send_file(fd.as_fd(), offset, size)?;
        st.finish()
    });
    Ok(Some(result.map_err(|e| client_gone(&e))))
}

fn body_type_error(item: &Bound<'_, PyAny>) -> Failure {
    let kind = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    Failure::App(pyo3::exceptions::PyTypeError::new_err(format!(
        "the response iterable must yield bytes, not {kind}"
    )))
}

fn client_gone(e: &std::io::Error) -> Failure {
    log::debug!("client went away while writing the response: {e}");
    Failure::Client
}

/// The environ of one request: a copy of the listener's constant keys,
/// then the request's own.
fn build_environ<'py>(
    py: Python<'py>,
    app: &App,
    ex: &Exchange<'_>,
    input: &Arc<Mutex<InputState>>,
    remote: (Bound<'py, PyString>, Bound<'py, PyString>),
) -> PyResult<Bound<'py, PyDict>> {
    let req = &ex.incoming.request;
    let base = app.base_environs[ex.listener.min(app.base_environs.len() - 1)].bind(py);
    let env = base.copy()?;
    set_path_vars(py, &env, req, &app.script_name)?;
    env.set_item(intern!(py, "REQUEST_METHOD"), method_str(py, &req.method))?;
    env.set_item(intern!(py, "RAW_URI"), latin1(req.target.as_bytes()).as_ref())?;
    let protocol = match req.version {
        Version::Http11 => intern!(py, "HTTP/1.1"),
        Version::Http10 => intern!(py, "HTTP/1.0"),
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
    let (addr, port) = remote;
    env.set_item(intern!(py, "REMOTE_ADDR"), addr)?;
    env.set_item(intern!(py, "REMOTE_PORT"), port)?;
    set_front_end_vars(py, &env, req)?;
    set_header_vars(py, &env, req)?;
    if ex.incoming.https {
        env.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
    }
    env.set_item(intern!(py, "wsgi.input"), Py::new(py, Input { state: input.clone() })?)?;
    Ok(env)
}

/// SCRIPT_NAME, PATH_INFO and QUERY_STRING. A uwsgi front end sends them
/// (PATH_INFO already decoded, after its rewrites); HTTP derives them from
/// the target, and a trusted proxy may send SCRIPT_NAME as a header
/// (`--forwarder-headers`). `script_name` is the one from rwsgi's
/// environment.
fn set_path_vars(py: Python<'_>, env: &Bound<'_, PyDict>, req: &Request, script_name: &str) -> PyResult<()> {
    let (path, query) = req.path_and_query();
    let mut path_info: Cow<'_, str> = match req.param("PATH_INFO") {
        Some(p) => latin1(p),
        None if !path.contains('%') => Cow::Borrowed(path),
        None => Cow::Owned(latin1(&percent_decode(path.as_bytes())).into_owned()),
    };
    // A SCRIPT_NAME header is still here only if --header-map let it through.
    let forwarded = || req.headers.iter().rev().find(|h| h.name.eq_ignore_ascii_case("script_name")).map(|h| h.value.as_slice());
    let script_name: Cow<'_, str> = match req.param("SCRIPT_NAME").or_else(forwarded) {
        Some(s) => {
            let s = latin1(s).trim_end_matches('/').to_string();
            env.set_item(intern!(py, "SCRIPT_NAME"), s.as_str())?;
            Cow::Owned(s)
        }
        None => Cow::Borrowed(script_name),
    };
    let query = req.param("QUERY_STRING").map_or_else(|| latin1(query.as_bytes()), latin1);
    // Strip SCRIPT_NAME only at a segment boundary: /app is a prefix of
    // /app/x, not of /application.
    if !script_name.is_empty() && path_info.starts_with(script_name.as_ref()) {
        let rest = &path_info[script_name.len()..];
        if rest.is_empty() || rest.starts_with('/') {
            path_info = Cow::Owned(rest.to_string());
        }
    }
    env.set_item(intern!(py, "PATH_INFO"), path_info.as_ref())?;
    if query.is_empty() {
        env.set_item(intern!(py, "QUERY_STRING"), intern!(py, ""))
    } else {
        env.set_item(intern!(py, "QUERY_STRING"), query.as_ref())
    }
}

/// The rest of a uwsgi front end's variables, as given (REMOTE_ADDR,
/// SERVER_NAME, SERVER_PROTOCOL, DOCUMENT_ROOT, HTTPS, ...); never a
/// `wsgi.` key, which holds the server's own objects. None for HTTP.
fn set_front_end_vars(py: Python<'_>, env: &Bound<'_, PyDict>, req: &Request) -> PyResult<()> {
    if req.param("REMOTE_ADDR").is_some() && req.param("REMOTE_PORT").is_none() {
        // The client's address without a port: not the front end's port.
        env.set_item(intern!(py, "REMOTE_PORT"), "")?;
    }
    for (key, value) in &req.params {
        if !matches!(key.as_str(), "PATH_INFO" | "SCRIPT_NAME" | "QUERY_STRING") && !key.starts_with("wsgi.") {
            env.set_item(key.as_str(), latin1(value).as_ref())?;
        }
    }
    Ok(())
}

/// CONTENT_TYPE, CONTENT_LENGTH and an `HTTP_*` key per request header
/// (those `--header-map` let through); repeated headers are joined with
/// commas.
fn set_header_vars(py: Python<'_>, env: &Bound<'_, PyDict>, req: &Request) -> PyResult<()> {
    for h in &req.headers {
        let key = if h.name.eq_ignore_ascii_case("content-type") {
            intern!(py, "CONTENT_TYPE").clone()
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // The parsed length, not the header text (`007` is 7).
            let n = match req.framing {
                crate::http::BodyFraming::Length(n) => n,
                _ => 0,
            };
            env.set_item(intern!(py, "CONTENT_LENGTH"), n.to_string())?;
            continue;
        } else {
            header_key(py, &h.name)
        };
        let value = latin1(&h.value);
        match env.get_item(&key)? {
            Some(prev) if key.to_str()?.starts_with("HTTP_") => {
                let joined = format!("{},{}", prev.extract::<String>()?, value);
                env.set_item(key, joined)?;
            }
            _ => env.set_item(key, value.as_ref())?,
        }
    }
    Ok(())
}

/// The method as a Python string; the common ones are interned.
fn method_str<'py>(py: Python<'py>, method: &str) -> Bound<'py, PyString> {
    match method {
        "GET" => intern!(py, "GET").clone(),
        "POST" => intern!(py, "POST").clone(),
        "HEAD" => intern!(py, "HEAD").clone(),
        "PUT" => intern!(py, "PUT").clone(),
        "DELETE" => intern!(py, "DELETE").clone(),
        "PATCH" => intern!(py, "PATCH").clone(),
        "OPTIONS" => intern!(py, "OPTIONS").clone(),
        other => PyString::new(py, other),
    }
}

/// The environ key of a request header: `HTTP_` and the name upper-cased
/// with `-` as `_`; the keys of common headers are interned.
fn header_key<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyString> {
    macro_rules! known {
        ($($header:literal => $key:literal),* $(,)?) => {
            $(if name.eq_ignore_ascii_case($header) {
                return intern!(py, $key).clone();
            })*
        };
    }
    known! {
        "host" => "HTTP_HOST",
        "user-agent" => "HTTP_USER_AGENT",
        "accept" => "HTTP_ACCEPT",
        "accept-encoding" => "HTTP_ACCEPT_ENCODING",
        "accept-language" => "HTTP_ACCEPT_LANGUAGE",
        "connection" => "HTTP_CONNECTION",
        "cookie" => "HTTP_COOKIE",
        "referer" => "HTTP_REFERER",
        "cache-control" => "HTTP_CACHE_CONTROL",
        "authorization" => "HTTP_AUTHORIZATION",
        "origin" => "HTTP_ORIGIN",
        "x-forwarded-for" => "HTTP_X_FORWARDED_FOR",
        "x-forwarded-proto" => "HTTP_X_FORWARDED_PROTO",
        "x-real-ip" => "HTTP_X_REAL_IP",
        "x-request-id" => "HTTP_X_REQUEST_ID",
    }
    let mut k = String::with_capacity(5 + name.len());
    k.push_str("HTTP_");
    k.extend(name.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }));
    PyString::new(py, &k)
}

/// Bytes read as latin-1 (PEP 3333 native strings); ASCII is borrowed.
fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.is_ascii() {
        Cow::Borrowed(std::str::from_utf8(bytes).expect("ASCII is UTF-8"))
    } else {
        Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
    }
}

/// Decode `%XX` escapes; a malformed escape stays as it is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"/caf%C3%A9"), "/café".as_bytes());
        assert_eq!(percent_decode(b"/a%2Fb%"), b"/a/b%");
        assert_eq!(percent_decode(b"/%zz%4"), b"/%zz%4");
        assert_eq!(percent_decode(b"%41"), b"A");
        assert_eq!(latin1("/café".as_bytes()), "/cafÃ©");
    }
}
