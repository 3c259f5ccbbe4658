//! The Python objects rwsgi hands an application: `wsgi.input`,
//! `wsgi.errors`, `wsgi.file_wrapper`, `start_response` and its `write()`.
//!
//! Shared state sits behind `Arc<Mutex<_>>` so the objects are `Send` and
//! `Sync` (pyo3's rule for classes) and stay valid if an app keeps a
//! reference past its request. Socket I/O happens detached from Python.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyAssertionError, PyOSError, PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::response::ResponseState;
use crate::http::body::{BodyError, BodyReader};
use crate::http::BodyFraming;
use crate::net::{DeadlineIo, Stream};

/// Where a request's `Expect: 100-continue` stands. Shared by
/// `wsgi.input` (which sends the interim response on the first read that
/// needs the body) and the response (whose head forfeits it).
pub struct Continue(AtomicU8);

const NOT_EXPECTED: u8 = 0;
const PENDING: u8 = 1;
const SENT: u8 = 2;
const FORFEITED: u8 = 3;

impl Continue {
    /// The state of a request that sent `Expect: 100-continue` (`expected`) or not.
    pub fn new(expected: bool) -> Self {
        Continue(AtomicU8::new(if expected { PENDING } else { NOT_EXPECTED }))
    }

    /// True (once) when `100 Continue` is due now.
    fn claim(&self) -> bool {
        self.0.compare_exchange(PENDING, SENT, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The final response head is going out: no `100 Continue` after it.
    pub fn forfeit(&self) {
        let _ = self.0.compare_exchange(PENDING, FORFEITED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The client expected `100 Continue` and never got it: it may not
    /// send its body at all.
    pub fn unsent(&self) -> bool {
        matches!(self.0.load(Ordering::Acquire), PENDING | FORFEITED)
    }
}

/// What `wsgi.input` reads from: the body framing state and the socket.
pub struct InputState {
    /// The body's framing and what is buffered of it.
    pub body: BodyReader,
    /// `None` once the request is over: a `wsgi.input` the app kept reads
    /// nothing more from the connection.
    pub stream: Option<Arc<Stream>>,
    /// The longest wait for each read.
    pub timeout: Option<std::time::Duration>,
    /// Whether `100 Continue` is due before the first read.
    pub expect: Arc<Continue>,
}

impl InputState {
    /// Take the body reader back after the app is done (an app may keep
    /// `wsgi.input` alive; it then reads an empty body).
    pub fn take_body(&mut self) -> BodyReader {
        std::mem::replace(&mut self.body, BodyReader::new(BodyFraming::Empty, Vec::new()))
    }

    /// Send `100 Continue` if it is due (RFC 9110 §10.1.1: the client
    /// waits for it before sending the body).
    fn send_continue(&mut self, stream: &Stream) -> Result<(), BodyError> {
        use std::io::Write;
        if self.body.needs_input() && self.expect.claim() {
            let mut io = DeadlineIo { stream, timeout: self.timeout };
            io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(|e| BodyError::Io(e.kind()))?;
        }
        Ok(())
    }
}

fn body_error(e: BodyError) -> PyErr {
    match e {
        BodyError::Http(h) => PyOSError::new_err(format!("request body: {}", h.describe())),
        BodyError::Io(kind) => PyOSError::new_err(format!("request body: {kind}")),
    }
}

fn size_arg(size: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    match size {
        None => Ok(None),
        Some(s) if s.is_none() => Ok(None),
        Some(s) => {
            let n: i64 = s.extract()?;
            Ok(usize::try_from(n).ok())
        }
    }
}

/// `wsgi.input`.
#[pyclass(module = "rwsgi", name = "Input")]
pub struct Input {
    /// Shared with the request, which takes the body back at its end.
    pub state: Arc<Mutex<InputState>>,
}

impl Input {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut BodyReader, &mut dyn std::io::Read) -> Result<T, BodyError> + Send,
    ) -> PyResult<T> {
        let state = self.state.clone();
        py.detach(move || {
            let mut guard = lock(&state);
            let st = &mut *guard;
            let Some(stream) = st.stream.clone() else {
                return Err(BodyError::Io(std::io::ErrorKind::NotConnected));
            };
            st.send_continue(&stream)?;
            let mut io = DeadlineIo { stream: &stream, timeout: st.timeout };
            f(&mut st.body, &mut io)
        })
        .map_err(body_error)
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_arg(size)?;
        let data = self.with(py, move |body, io| body.read(io, size))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_arg(size)?;
        let data = self.with(py, move |body, io| body.read_line(io, size))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint)?.filter(|h| *h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.with(py, |body, io| body.read_line(io, None))?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.with(py, |body, io| body.read_line(io, None))?;
        if line.is_empty() {
            return Err(PyStopIteration::new_err(()));
        }
        Ok(PyBytes::new(py, &line))
    }
}

/// `wsgi.errors`: text written here goes to the error log as is.
#[pyclass(module = "rwsgi", name = "Errors")]
pub struct Errors;

#[pymethods]
impl Errors {
    fn write(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<()> {
        let s: String = if let Ok(s) = text.cast::<PyString>() {
            s.to_string_lossy().into_owned()
        } else {
            return Err(PyTypeError::new_err("wsgi.errors.write() takes a str"));
        };
        py.detach(|| crate::logging::write_raw(s.as_bytes()));
        Ok(())
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?)?;
        }
        Ok(())
    }

    fn flush(&self) {}
}

/// `wsgi.file_wrapper`: iterates a file in blocks; rwsgi sends it with
/// sendfile(2) when the file has a real descriptor.
#[pyclass(module = "rwsgi", name = "FileWrapper")]
pub struct FileWrapper {
    #[pyo3(get)]
    /// The file-like object the app gave.
    pub filelike: Py<PyAny>,
    #[pyo3(get)]
    /// The block size when iterated rather than sent with sendfile.
    pub blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper { filelike, blksize: blksize.max(1) }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.filelike.bind(py).call_method1("read", (self.blksize,))?;
        if data.is_truthy()? {
            Ok(data)
        } else {
            Err(PyStopIteration::new_err(()))
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}

/// `start_response`.
#[pyclass(module = "rwsgi", name = "StartResponse")]
pub struct StartResponse {
    /// The response it sets up.
    pub state: Arc<Mutex<ResponseState>>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Write>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let state = lock(&self.state);
            if state.app_head().is_some() {
                match exc_info {
                    None => return Err(PyAssertionError::new_err("start_response() called twice without exc_info")),
                    // PEP 3333: with the head already sent, re-raise.
                    Some(info) if state.head_sent() => {
                        let value = info.cast::<PyTuple>()?.get_item(1)?;
                        return Err(PyErr::from_value(value));
                    }
                    Some(_) => {}
                }
            }
        }
        let status: String = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("status must be a str"))?
            .to_str()?
            .to_string();
        let code = super::response::parse_status(&status).map_err(PyValueError::new_err)?;
        let mut list = Vec::new();
        for item in headers.try_iter()? {
            let item = item?;
            let pair = item.cast::<PyTuple>().map_err(|_| PyTypeError::new_err("each header must be a (name, value) tuple"))?;
            if pair.len() != 2 {
                return Err(PyTypeError::new_err("each header must be a (name, value) tuple"));
            }
            let name = pair.get_item(0)?;
            let value = pair.get_item(1)?;
            let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
                return Err(PyTypeError::new_err("header names and values must be str"));
            };
            list.push((name.to_str()?.to_string(), value.to_str()?.to_string()));
        }
        lock(&self.state).set_response(status, code, list).map_err(PyValueError::new_err)?;
        Py::new(py, Write { state: self.state.clone() })
    }
}

/// The `write()` callable `start_response` returns (PEP 3333's imperative
/// output, for legacy apps).
#[pyclass(module = "rwsgi", name = "Write")]
pub struct Write {
    /// The response it writes to.
    pub state: Arc<Mutex<ResponseState>>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        let data = bytes.as_bytes();
        let state = self.state.clone();
        py.detach(|| lock(&state).send(data)).map_err(|e| PyOSError::new_err(format!("write(): {e}")))
    }
}

/// Lock a mutex, recovering the data if a panic poisoned it (the state is
/// plain data; a poisoned lock must not take the worker down).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
