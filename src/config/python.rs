//! Python config files (`gunicorn.conf.py`, `python:pkg.module`), read as
//! Gunicorn reads them, but never in this process: the rwsgi binary is
//! started again as the config evaluator (`crate::evaluator`), a
//! short-lived child with its own CPython, and this side reads the TOML it
//! prints. A file that raises, hangs or crashes costs that child only: the
//! caller gets one error (with the file's traceback) and carries on.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::gunicorn;
use super::settings::{Kind, SETTINGS};
use super::{ConfigError, Value};

/// What a Python config file sets.
#[derive(Debug, Default)]
pub struct PythonConfig {
    /// The settings rwsgi has, as raw values.
    pub values: BTreeMap<&'static str, Value>,
    /// The server hooks the file defines.
    pub hooks: Vec<String>,
    /// Gunicorn settings the file sets that rwsgi does not have.
    pub unsupported: Vec<String>,
    /// What the file printed while it ran.
    pub output: String,
}

/// The first argument that runs the rwsgi binary as the evaluator.
pub const EVALUATE_FLAG: &str = "--rwsgi-evaluate-config";

/// The longest a config file may take to run.
const EVALUATION_TIME: Duration = Duration::from_secs(30);

/// Whether `target` (a `-c` value) names a Python config: `python:NAME`, or
/// any file but a `.toml` one (Gunicorn reads any file as Python).
pub fn is_python(target: &str) -> bool {
    target.starts_with("python:") || !target.ends_with(".toml")
}

/// Run `target` in the evaluator, with the packages of `virtualenv` when
/// given, and read its settings.
pub fn evaluate(target: &str, virtualenv: Option<&str>) -> Result<PythonConfig, ConfigError> {
    let fail = |why: String| ConfigError(format!("config file {target}: {why}"));
    // This very binary, even once its file is replaced on disk (a package
    // upgrade before a HUP): /proc/self/exe still opens it.
    let exe = Some(std::path::PathBuf::from("/proc/self/exe"))
        .filter(|p| p.exists())
        .map_or_else(std::env::current_exe, Ok)
        .map_err(|e| fail(format!("cannot find the rwsgi binary to evaluate it: {e}")))?;
    let mut command = Command::new(exe);
    command.arg(EVALUATE_FLAG).arg(target).args(virtualenv);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start the config evaluator: {e}")))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let readers = [stdout.map(read_all), stderr.map(read_all)];
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| fail(e.to_string()))? {
            break status;
        }
        if started.elapsed() > EVALUATION_TIME {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("still running after {} s; stopped", EVALUATION_TIME.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let [out, err] = readers.map(|r| r.and_then(|h| h.join().ok()).unwrap_or_default());
    if !status.success() {
        return Err(fail(format!("it failed:\n{}", err.trim_end())));
    }
    let mut config = read_output(&out).map_err(fail)?;
    config.output = err;
    Ok(config)
}

/// Read a pipe to its end on a thread of its own (so that neither pipe can
/// fill while the other is waited on).
fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The evaluator's TOML: rwsgi's settings become raw values, read with
/// Gunicorn's leniency (a number given as a string, a string for a list);
/// Gunicorn's other settings are noted; any other name is a variable of
/// the file, ignored as Gunicorn ignores it.
fn read_output(text: &str) -> Result<PythonConfig, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| format!("unreadable settings: {e}"))?;
    let mut config = PythonConfig::default();
    for (name, value) in table {
        if name == "__hooks__" {
            let hooks = value.as_array().into_iter().flatten().filter_map(|h| h.as_str().map(String::from));
            config.hooks.extend(hooks);
        } else if let Some(s) = SETTINGS.iter().find(|s| s.name == name) {
            let v = python_value(s.kind, value).ok_or_else(|| format!("'{name}' has a value of the wrong type"))?;
            config.values.insert(s.name, v);
        } else if gunicorn::SETTINGS.contains(&name.as_str()) {
            config.unsupported.push(name);
        }
    }
    Ok(config)
}

/// A Python value (as the evaluator printed it) as a setting of `kind`
/// takes it; `None` for a type the setting cannot take.
fn python_value(kind: Kind, value: toml::Value) -> Option<Value> {
    use toml::Value as T;
    Some(match (kind, value) {
        (Kind::Flag | Kind::NoFlag, T::Boolean(b)) => Value::Bool(b),
        (Kind::Flag | Kind::NoFlag, T::String(s)) => Value::Bool(matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1")),
        (Kind::List, T::String(s)) => Value::List(vec![s]),
        (Kind::List, T::Array(items)) => {
            Value::List(items.into_iter().map(|i| i.as_str().map(String::from)).collect::<Option<_>>()?)
        }
        (Kind::Uint | Kind::Text | Kind::Choice(_), T::Integer(n)) => Value::Text(n.to_string()),
        (Kind::Uint | Kind::Text | Kind::Choice(_), T::String(s)) => Value::Text(s),
        (Kind::Text | Kind::Choice(_), T::Boolean(b)) => Value::Text(b.to_string()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_leniently_and_others_sorted_out() {
        let printed = "\"workers\" = \"4\"\n\"bind\" = \"0.0.0.0:80\"\n\"daemon\" = true\n\"umask\" = 18\n\
                       \"preload_app\" = true\n\"cpus\" = 8\n__hooks__ = [\"post_fork\", \"when_ready\"]\n";
        let c = read_output(printed).unwrap();
        assert_eq!(c.values.get("workers"), Some(&Value::Text("4".into())));
        assert_eq!(c.values.get("bind"), Some(&Value::List(vec!["0.0.0.0:80".into()])));
        assert_eq!(c.values.get("daemon"), Some(&Value::Bool(true)));
        assert_eq!(c.values.get("umask"), Some(&Value::Text("18".into())));
        assert_eq!(c.unsupported, vec!["preload_app".to_string()], "a Gunicorn setting rwsgi lacks");
        assert!(!c.values.contains_key("cpus"), "a variable of the file");
        assert_eq!(c.hooks, vec!["post_fork".to_string(), "when_ready".to_string()]);
        assert!(read_output("\"workers\" = [1]\n").is_err());
    }

    #[test]
    fn toml_files_stay_toml() {
        assert!(is_python("gunicorn.conf.py") && is_python("python:app.conf") && is_python("conf"));
        assert!(!is_python("/etc/rwsgi/app.toml"));
    }
}
