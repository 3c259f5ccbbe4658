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
    py.run(&crate::hooks::runtime_code(), Some(&scope), None)?;
    py.run(EVALUATOR, Some(&scope), None)?;
    let evaluate = scope.get_item("evaluate")?.ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("evaluator missing"))?;
    evaluate.call1((target, HOOKS.to_vec()))?.extract()
}

/// Gunicorn's way to read a config (the runtime's `load_module`): a file
/// is executed as the module `__config__` (whatever its extension),
/// `python:NAME` is imported; every public module-level name whose value
/// is a bool, a number, a string, or a list or a dict (string keys) of
/// those, is printed as a TOML line; the server hooks (functions, or
/// dotted paths to them) are checked as Gunicorn checks them, for their
/// number of arguments, and listed under `__hooks__`; the names of other
/// values (a set, a dict holding a class) go under `__skipped__`; `None`,
/// modules, classes and other functions are the file's own business. The
/// cwd comes first on sys.path, as it does for the app.
const EVALUATOR: &std::ffi::CStr = c"
import json, types

def _text(value):
    # Any str, as a TOML string (lone surrogates replaced).
    return json.dumps(value.encode('utf-8', 'replace').decode('utf-8'), ensure_ascii=False)

def _toml(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(int(value)) if -2**63 <= value < 2**63 else _text(str(int(value)))
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else _text(str(value))
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (set, frozenset)):
        # Gunicorn takes any iterable for a list setting.
        value = sorted(value, key=str)
    if isinstance(value, (list, tuple)):
        items = [_toml(v) for v in value]
        return None if None in items else '[' + ', '.join(items) + ']'
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return None
        items = [(_text(k), _toml(v)) for k, v in value.items()]
        return None if any(v is None for _, v in items) else '{' + ', '.join('%s = %s' % kv for kv in items) + '}'
    return None

def _quiet(value):
    # Names a config file has besides settings: imports, helpers, classes.
    return value is None or isinstance(value, (type, types.ModuleType)) or callable(value)

def evaluate(target, hooks):
    sys.path.insert(0, os.getcwd())
    out, sys.stdout = sys.stdout, sys.stderr
    try:
        names = load_module(target)
    except BaseException as e:
        # The traceback from the file's own frames on, not the evaluator's.
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename.startswith('<'):
            tb = tb.tb_next
        sys.stderr.write(''.join(traceback.format_exception(type(e), e, tb)))
        return False
    finally:
        sys.stdout = out
    lines, found, skipped = [], [], []
    for name, value in names.items():
        if name.startswith('_'):
            continue
        if name in hooks and (callable(value) or isinstance(value, str)):
            try:
                resolve_hook(name, value)
            except Exception as e:
                # Gunicorn's words, and like Gunicorn the file is refused.
                sys.stderr.write('Invalid value for %s: %r\\n%s\\n' % (name, value, e))
                return False
            found.append(name)
            continue
        try:
            text = _toml(value)
        except RecursionError:
            # A structure that holds itself: no setting's value.
            text = None
        if text is not None:
            lines.append('%s = %s' % (_text(name), text))
        elif not _quiet(value):
            skipped.append(name)
    lines.append('__hooks__ = ' + json.dumps(sorted(found)))
    lines.append('__skipped__ = ' + json.dumps(sorted(skipped)))
    out.write('\\n'.join(lines) + '\\n')
    out.flush()
    return True
";
