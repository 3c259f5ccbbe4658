//! Gunicorn's `pre_request` and `post_request` server hooks around a
//! request, for a worker whose config file defines them: the `req` object
//! they receive, built from the parsed head, and the `resp` post_request
//! gets once the response is out (both made by the hooks' runtime).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::{log_py_err, Outcome};
use crate::http::Version;
use crate::net::Peer;
use crate::wire::Incoming;

/// A request the server hooks see: Gunicorn's `req`, and the environ
/// once built (`None` when pre_request raised).
pub struct HookedRequest {
    req: Py<PyAny>,
    pub(super) environ: Option<Py<PyDict>>,
}

impl HookedRequest {
    /// Gunicorn's `req` for `incoming`, then pre_request(worker, req).
    pub(super) fn begin(py: Python<'_>, hooks: &Py<PyAny>, incoming: &Incoming) -> (Option<HookedRequest>, PyResult<()>) {
        let r = &incoming.request;
        let (path, query) = r.path_and_query();
        let version = match r.version {
            Version::Http10 => (1, 0),
            Version::Http11 => (1, 1),
        };
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_uppercase(), String::from_utf8_lossy(&h.value).into_owned()))
            .collect();
        let peer = match incoming.client {
            Peer::Tcp(a) => (a.ip().to_string(), a.port()).into_pyobject(py).map(|t| t.into_any().unbind()),
            Peer::Unix => Ok(PyString::new(py, "").into_any().unbind()),
        };
        let scheme = if incoming.https { "https" } else { "http" };
        let hooks = hooks.bind(py);
        let head = peer.and_then(|peer| hooks.call_method1("request", (&r.method, &r.target, path, query, version, headers, scheme, peer)));
        match head {
            Ok(req) => {
                let ran = hooks.call_method1(intern!(py, "pre_request"), (&req,)).map(drop);
                (Some(HookedRequest { req: req.unbind(), environ: None }), ran)
            }
            Err(e) => (None, Err(e)),
        }
    }

    /// post_request(worker, req, environ, resp) with what `outcome` says
    /// was sent; what it raises is logged.
    pub(super) fn finish(self, py: Python<'_>, hooks: &Py<PyAny>, outcome: &Outcome) {
        let status = (!outcome.status.is_empty()).then_some(outcome.status.as_str());
        let args = (self.req, self.environ, status, outcome.headers.clone(), outcome.body_bytes);
        if let Err(e) = hooks.bind(py).call_method1(intern!(py, "post_request"), args) {
            log_py_err(py, "Exception in post_request hook", &e);
        }
    }
}
