//! The config evaluator: the rwsgi binary run as a short-lived child
//! (`rwsgi --rwsgi-evaluate-config TARGET [VIRTUALENV]`) that starts its
//! embedded CPython, executes a Python config file (`gunicorn.conf.py`) or
//! imports `python:pkg.module` as Gunicorn does, and prints the module's
//! settings as TOML on stdout for the process that started it
//! (`config::python`). The master never runs Python: it only reads what
//! this process prints. What the file itself prints goes to stderr; a file
//! that raises leaves its traceback on stderr and the evaluator exits 1.

use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::gunicorn::HOOKS;
use crate::config::python::EVALUATE_FLAG;
use crate::sys;

/// Evaluate `args[0]` (a path or `python:module`), with `args[1]` as the
/// virtualenv whose packages it may import; returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let Some(target) = args.first() else {
        eprintln!("{EVALUATE_FLAG}: no config file given");
        return 2;
    };
    let program = args.get(1).map(|venv| Path::new(venv).join("bin").join("python"));
    if let Err(e) = sys::init_python(program.as_deref()) {
        eprintln!("{e}");
        return 1;
    }
    Python::attach(|py| match evaluate(py, target) {
        Ok(true) => 0,
        // The file's own traceback is on stderr already.
        Ok(false) => 1,
        Err(e) => {
            eprintln!("{}", crate::wsgi::format_traceback(py, &e));
            1
        }
    })
}

/// Run the evaluator on `target`: whether the file ran.
fn evaluate(py: Python<'_>, target: &str) -> PyResult<bool> {
    let scope = PyDict::new(py);
    py.run(EVALUATOR, Some(&scope), None)?;
    let evaluate = scope.get_item("evaluate")?.ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("evaluator missing"))?;
    evaluate.call1((target, HOOKS.to_vec()))?.extract()
}

/// Gunicorn's way to read a config: a file is executed as the module
/// `__config__` (whatever its extension), `python:NAME` is imported; every
/// public module-level name whose value is a bool, a number, a string or
/// a list of strings is printed as a TOML line, and the functions named
/// after server hooks are listed under `__hooks__`. The cwd comes first on
/// sys.path, as it does for the app.
const EVALUATOR: &std::ffi::CStr = c"
import importlib.machinery, importlib.util, json, os, sys, traceback

def _load(target):
    if target.startswith('python:'):
        return vars(importlib.import_module(target[len('python:'):]))
    loader = importlib.machinery.SourceFileLoader('__config__', target)
    spec = importlib.util.spec_from_file_location('__config__', target, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules['__config__'] = module
    spec.loader.exec_module(module)
    return vars(module)

def _toml(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return '[' + ', '.join(json.dumps(v) for v in value) + ']'
    return None

def evaluate(target, hooks):
    sys.path.insert(0, os.getcwd())
    out, sys.stdout = sys.stdout, sys.stderr
    try:
        names = _load(target)
    except BaseException as e:
        # The traceback from the file's own frames on, not the evaluator's.
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename.startswith('<'):
            tb = tb.tb_next
        sys.stderr.write(''.join(traceback.format_exception(type(e), e, tb)))
        return False
    finally:
        sys.stdout = out
    lines, found = [], []
    for name, value in names.items():
        if name.startswith('_'):
            continue
        if name in hooks and callable(value):
            found.append(name)
            continue
        text = _toml(value)
        if text is not None:
            lines.append('%s = %s' % (json.dumps(name), text))
    lines.append('__hooks__ = ' + json.dumps(sorted(found)))
    out.write('\\n'.join(lines) + '\\n')
    out.flush()
    return True
";
