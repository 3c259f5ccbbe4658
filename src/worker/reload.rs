//! `--reload`, the worker's part: tell the master which source files the
//! application imported, so that it watches them (see the master's
//! `reload`). The list is written to `<pid>.modules` in the master's
//! directory, whole (renamed into place), after boot and again whenever
//! more modules have been imported since; looked at once a second.

use std::path::Path;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Writes the list when `sys.modules` grew; returns its new size.
const REPORT: &std::ffi::CStr = c"
import os, sys

def report(path, known):
    modules = list(sys.modules.values())
    if len(modules) == known:
        return known
    files = set()
    for module in modules:
        name = getattr(module, '__file__', None)
        if isinstance(name, str) and os.path.isabs(name):
            files.add(name[:-1] if name.endswith(('.pyc', '.pyo')) else name)
    with open(path + '.tmp', 'w', encoding='utf-8', errors='surrogateescape') as out:
        out.write('\\n'.join(sorted(files)) + '\\n')
    os.replace(path + '.tmp', path)
    return len(modules)
";

/// How often the worker looks for newly imported modules.
const EVERY: Duration = Duration::from_secs(1);

/// The worker's report of its imported files.
pub(super) struct ModuleReport {
    path: String,
    report: Py<PyAny>,
    known: usize,
    next: Instant,
}

impl ModuleReport {
    /// For a worker of a master that watches (`--reload`): the first
    /// report is written now. With Python started.
    pub fn start(dir: &Path) -> Option<ModuleReport> {
        let path = dir.join(format!("{}.modules", std::process::id())).display().to_string();
        let report = Python::attach(|py| -> PyResult<Py<PyAny>> {
            let scope = PyDict::new(py);
            py.run(REPORT, Some(&scope), None)?;
            Ok(scope.get_item("report")?.ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("report"))?.unbind())
        });
        match report {
            Ok(report) => {
                let mut this = ModuleReport { path, report, known: 0, next: Instant::now() };
                this.tick();
                Some(this)
            }
            Err(e) => {
                log::warn!("--reload: cannot report the imported files: {e}");
                None
            }
        }
    }

    /// Report again if more modules were imported (at most once a second).
    pub fn tick(&mut self) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + EVERY;
        Python::attach(|py| match self.report.bind(py).call1((&self.path, self.known)).and_then(|n| n.extract()) {
            Ok(known) => self.known = known,
            Err(e) => log::warn!("--reload: cannot report the imported files: {e}"),
        });
    }
}

impl Drop for ModuleReport {
    fn drop(&mut self) {
        Python::attach(|py| drop(std::mem::replace(&mut self.report, py.None())));
    }
}
