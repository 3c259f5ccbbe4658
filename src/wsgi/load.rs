//! Loading the application in a worker, in Gunicorn's order: `--chdir`
//! and `--pythonpath` on `sys.path`, Python's logging configured
//! (`--log-config*`), `--spew`'s tracer, then the application, imported
//! (`MODULE:CALLABLE`) or loaded by PasteDeploy (`--paste`).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::format_traceback;
use crate::config::{AppSource, AppSpec, Config, PasteApp, PythonLogging};

/// Why the application could not be loaded.
pub struct LoadError {
    /// One readable sentence.
    pub summary: String,
    /// The Python traceback, when there is one.
    pub traceback: Option<String>,
}

impl LoadError {
    /// The sentence, then the traceback if there is one.
    pub fn into_text(self) -> String {
        match self.traceback {
            Some(tb) => format!("{}\n{tb}", self.summary),
            None => self.summary,
        }
    }
}

/// Put `--chdir`/`--pythonpath` on `sys.path`, configure Python's
/// logging and `--spew`, then import or paste-load the app.
pub fn load_app(py: Python<'_>, cfg: &Config) -> Result<Py<PyAny>, LoadError> {
    let source = cfg.app.as_ref().ok_or_else(|| LoadError {
        summary: "no application given: rwsgi [OPTIONS] MODULE:CALLABLE".into(),
        traceback: None,
    })?;
    let with_tb = |e: PyErr| LoadError { summary: format!("cannot load {source}: {e}"), traceback: Some(format_traceback(py, &e)) };
    let path = app_dirs_on_path(py, &cfg.pythonpath).map_err(with_tb)?;
    if let Some(logging) = cfg.python_logging.chosen() {
        configure_logging(py, logging).map_err(|e| LoadError {
            summary: format!("cannot configure Python's logging: {e}"),
            traceback: Some(format_traceback(py, &e)),
        })?;
    }
    if cfg.spew {
        helper(py, "spew").and_then(|spew| spew.call0()).map_err(with_tb)?;
    }
    match source {
        AppSource::Import(spec) => import_app(py, spec).map_err(|e| import_error(py, spec, &path, e)),
        AppSource::Paste(paste) => paste_app(py, paste),
    }
}

/// Put `--pythonpath`, then the working directory (`--chdir`), first on
/// `sys.path`, where the app and a config file's hooks import from; once
/// (a second call finds them there). Returns `sys.path`.
pub fn app_dirs_on_path<'py>(py: Python<'py>, pythonpath: &[std::path::PathBuf]) -> PyResult<Bound<'py, PyAny>> {
    let path = py.import("sys")?.getattr("path")?;
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_else(|_| ".".into());
    let mut front: Vec<String> = pythonpath.iter().map(|p| p.display().to_string()).collect();
    front.push(cwd);
    for (i, dir) in front.iter().enumerate() {
        let there = path.get_item(i).ok().and_then(|d| d.extract::<String>().ok());
        if there.as_deref() != Some(dir.as_str()) {
            path.call_method1("insert", (i, dir))?;
        }
    }
    Ok(path)
}

/// The error for an app that did not import: a module that is not on
/// `sys.path` is said in a sentence; anything else comes with its
/// traceback.
fn import_error(py: Python<'_>, spec: &AppSpec, path: &Bound<'_, PyAny>, e: PyErr) -> LoadError {
    let not_found = e.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py)
        && e.value(py).getattr("name").ok().and_then(|n| n.extract::<String>().ok()).is_some_and(|n| {
            spec.module == n || spec.module.starts_with(&format!("{n}."))
        });
    if !not_found {
        return LoadError { summary: format!("cannot load {spec}: {e}"), traceback: Some(format_traceback(py, &e)) };
    }
    LoadError {
        summary: format!(
            "cannot load {spec}: no module named '{}' (searched {}; see --chdir and --pythonpath)",
            spec.module,
            path.str().map(|s| s.to_string()).unwrap_or_default()
        ),
        traceback: None,
    }
}

/// `--paste`: PasteDeploy's `loadapp`, as Gunicorn calls it.
fn paste_app(py: Python<'_>, paste: &PasteApp) -> Result<Py<PyAny>, LoadError> {
    let uri = paste.uri();
    let global_conf = PyDict::new(py);
    let loaded = paste
        .global_conf
        .iter()
        .try_for_each(|(k, v)| global_conf.set_item(k, v))
        .and_then(|()| helper(py, "paste")?.call1((uri.as_str(), global_conf)));
    let e = match loaded {
        Ok(app) => return Ok(app.unbind()),
        Err(e) => e,
    };
    let missing = e.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py)
        && e.value(py).getattr("name").ok().and_then(|n| n.extract::<String>().ok()).is_some_and(|n| n == "paste" || n == "paste.deploy");
    if missing {
        let summary = format!("cannot load {uri}: PasteDeploy is not installed (pip install PasteDeploy)");
        return Err(LoadError { summary, traceback: None });
    }
    Err(LoadError { summary: format!("cannot load {uri}: {e}"), traceback: Some(format_traceback(py, &e)) })
}

/// Configure Python's `logging` as Gunicorn's logger setup does.
fn configure_logging(py: Python<'_>, logging: PythonLogging<'_>) -> PyResult<()> {
    let configure = helper(py, "configure_logging")?;
    match logging {
        PythonLogging::Dict(table) => configure.call1(("dict", toml_to_py(py, &toml::Value::Table(table.clone()))?)),
        PythonLogging::Json(path) => configure.call1(("json", path.display().to_string())),
        PythonLogging::Ini(path) => configure.call1(("ini", path.display().to_string())),
    }
    .map(drop)
}

/// A TOML value as the Python value it was written from.
fn toml_to_py<'py>(py: Python<'py>, value: &toml::Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    match value {
        toml::Value::String(s) => s.into_bound_py_any(py),
        toml::Value::Integer(i) => i.into_bound_py_any(py),
        toml::Value::Float(f) => f.into_bound_py_any(py),
        toml::Value::Boolean(b) => b.into_bound_py_any(py),
        toml::Value::Datetime(d) => d.to_string().into_bound_py_any(py),
        toml::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(toml_to_py(py, item)?)?;
            }
            Ok(list.into_any())
        }
        toml::Value::Table(table) => {
            let dict = PyDict::new(py);
            for (k, v) in table {
                dict.set_item(k, toml_to_py(py, v)?)?;
            }
            Ok(dict.into_any())
        }
    }
}

/// The Python function `name` of [`HELPERS`].
fn helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let scope = PyDict::new(py);
    py.run(HELPERS, Some(&scope), None)?;
    scope.get_item(name)?.ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err(format!("rwsgi's helper {name} is missing")))
}

/// Gunicorn's ways to configure logging, trace lines and load a Paste
/// app, written for rwsgi. `DEFAULTS` is Gunicorn's logging
/// configuration, which a dict or JSON configuration is merged over (each
/// top-level key replaces the default's).
const HELPERS: &std::ffi::CStr = c"
import os, sys

DEFAULTS = {
    'version': 1,
    'disable_existing_loggers': False,
    'root': {'level': 'INFO', 'handlers': ['console']},
    'loggers': {
        'gunicorn.error': {'level': 'INFO', 'handlers': ['error_console'], 'propagate': True, 'qualname': 'gunicorn.error'},
        'gunicorn.access': {'level': 'INFO', 'handlers': ['console'], 'propagate': True, 'qualname': 'gunicorn.access'},
    },
    'handlers': {
        'console': {'class': 'logging.StreamHandler', 'formatter': 'generic', 'stream': 'ext://sys.stdout'},
        'error_console': {'class': 'logging.StreamHandler', 'formatter': 'generic', 'stream': 'ext://sys.stderr'},
    },
    'formatters': {
        'generic': {'format': '%(asctime)s [%(process)d] [%(levelname)s] %(message)s',
                    'datefmt': '[%Y-%m-%d %H:%M:%S %z]', 'class': 'logging.Formatter'},
    },
}

def configure_logging(kind, value):
    import logging.config
    if kind == 'ini':
        if not os.path.exists(value):
            raise RuntimeError('log config %s not found' % value)
        defaults = {'__file__': value, 'here': os.path.dirname(value)}
        logging.config.fileConfig(value, defaults=defaults, disable_existing_loggers=False)
        return
    if kind == 'json':
        import json
        with open(value) as f:
            value = json.load(f)
    config = dict(DEFAULTS)
    config.update(value)
    logging.config.dictConfig(config)

def spew():
    import inspect, linecache
    def trace(frame, event, arg):
        if event == 'line':
            lineno, glob = frame.f_lineno, frame.f_globals
            if '__file__' in glob:
                name, filename = glob.get('__name__', '?'), glob['__file__'] or ''
                if filename.endswith(('.pyc', '.pyo')):
                    filename = filename[:-1]
                line = linecache.getline(filename, lineno)
            else:
                name = '[unknown]'
                try:
                    lines, first = inspect.getsourcelines(frame)
                    line = lines[lineno - max(first, 1)]
                except (OSError, TypeError, IndexError):
                    line = 'Unknown code named [%s].  VM instruction #%d' % (frame.f_code.co_name, frame.f_lasti)
            print('%s:%s: %s' % (name, lineno, line.rstrip()))
        return trace
    sys.settrace(trace)

def paste(uri, global_conf):
    from paste.deploy import loadapp
    return loadapp(uri, relative_to=os.getcwd(), global_conf=global_conf)
";

fn import_app(py: Python<'_>, spec: &AppSpec) -> PyResult<Py<PyAny>> {
    let module = py.import(spec.module.as_str())?;
    let mut obj = module.into_any();
    for part in spec.attr.split('.') {
        obj = obj.getattr(part).map_err(|_| {
            pyo3::exceptions::PyAttributeError::new_err(format!(
                "module '{}' has no attribute '{}'",
                spec.module, spec.attr
            ))
        })?;
    }
    if let Some(args) = &spec.call {
        // Arguments are Python literals only, as in Gunicorn: evaluated by
        // ast.literal_eval, never executed.
        let code = c"def call(factory, text):\n    import ast\n    node = ast.parse('f(' + text + ')', mode='eval').body\n    if not isinstance(node, ast.Call):\n        raise ValueError('factory arguments must be a call')\n    args = [ast.literal_eval(a) for a in node.args]\n    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}\n    return factory(*args, **kwargs)\n";
        let scope = PyDict::new(py);
        py.run(code, Some(&scope), None)?;
        let call = scope.get_item("call")?.ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("factory helper missing"))?;
        obj = call.call1((obj, args.as_str()))?;
    }
    if !obj.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!("{spec} is not callable (a WSGI application must be)")));
    }
    Ok(obj.unbind())
}

