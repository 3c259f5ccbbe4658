//! Python config files (`gunicorn.conf.py`, `python:pkg.module`), read as
//! Gunicorn reads them, but never in this process: the rwsgi binary is
//! started again as the config evaluator (`crate::evaluator`), a
//! short-lived child with its own CPython, and this side reads the TOML it
//! prints. A file that raises, hangs or crashes costs that child only: the
//! caller gets one error (with the file's traceback) and carries on.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
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
/// given, and read its settings. No thread is started (the master forks
/// after this), and nothing waits on a pipe that a process the file
/// started could hold open: the evaluator writes to unlinked files, and
/// its whole process group goes if it outlasts [`EVALUATION_TIME`].
pub fn evaluate(target: &str, virtualenv: Option<&str>) -> Result<PythonConfig, ConfigError> {
    let fail = |why: String| ConfigError(format!("config file {target}: {why}"));
    let (mut out, mut err) = (scratch_file().map_err(&fail)?, scratch_file().map_err(&fail)?);
    let mut child = crate::sys::own_binary()
        .map_err(|e| fail(format!("cannot find the rwsgi binary to evaluate it: {e}")))?
        .arg(EVALUATE_FLAG)
        .arg(target)
        .args(virtualenv)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| fail(e.to_string()))?)
        .stderr(err.try_clone().map_err(|e| fail(e.to_string()))?)
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot start the config evaluator: {e}")))?;
    // The evaluator's process group: it and whatever the file started.
    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| fail(e.to_string()))? {
            break status;
        }
        if started.elapsed() > EVALUATION_TIME {
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            return Err(fail(format!("still running after {} s; stopped", EVALUATION_TIME.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A process the file started has nothing left to do: reading a config
    // must not leave processes behind.
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    let (printed, output) = (read_back(&mut out), read_back(&mut err));
    if !status.success() {
        return Err(fail(format!("it failed:\n{}", output.trim_end())));
    }
    let mut config = read_output(&printed).map_err(fail)?;
    config.output = output;
    Ok(config)
}

/// An unnamed file for the evaluator's output: created and unlinked at
/// once in the temporary directory.
fn scratch_file() -> Result<File, String> {
    let dir = std::env::temp_dir();
    for n in 0..100u32 {
        let path = dir.join(format!("rwsgi-config-{}-{n}", std::process::id()));
        match File::options().read(true).write(true).create_new(true).open(&path) {
            Ok(file) => {
                let _ = std::fs::remove_file(&path);
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot make a file in {}: {e}", dir.display())),
        }
    }
    Err(format!("cannot make a file in {}", dir.display()))
}

/// What the evaluator wrote to `file`.
fn read_back(file: &mut File) -> String {
    let mut bytes = Vec::new();
    let _ = file.rewind().and_then(|()| file.read_to_end(&mut bytes));
    String::from_utf8_lossy(&bytes).into_owned()
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
        } else if name == "__skipped__" {
            // Values the evaluator could not print: an error for a setting
            // of rwsgi's, a note for one of Gunicorn's only.
            for skipped in value.as_array().into_iter().flatten().filter_map(toml::Value::as_str) {
                match SETTINGS.iter().find(|s| s.name == skipped) {
                    Some(s) if s.kind == Kind::Table => {
                        return Err(format!(
                            "'{skipped}' holds a value that is not data (a class, a function, None): \
                             name classes and functions by their dotted path, as a string"
                        ))
                    }
                    Some(_) => return Err(format!("'{skipped}' has a value of the wrong type")),
                    None => {}
                }
                if gunicorn::is_setting(skipped) {
                    config.unsupported.push(skipped.to_string());
                }
            }
        } else if let Some(s) = SETTINGS.iter().find(|s| s.name == name) {
            let v = python_value(s.kind, value).ok_or_else(|| format!("'{name}' has a value of the wrong type"))?;
            config.values.insert(s.name, v);
        } else if gunicorn::is_setting(&name) {
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
        (Kind::Table, T::Table(t)) => Value::Table(t),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_leniently_and_others_sorted_out() {
        let printed = "\"workers\" = \"4\"\n\"bind\" = \"0.0.0.0:80\"\n\"daemon\" = true\n\"umask\" = 18\n\
                       \"keyfile\" = \"k.pem\"\n\"cpus\" = 8\n__hooks__ = [\"post_fork\", \"when_ready\"]\n";
        let c = read_output(printed).unwrap();
        assert_eq!(c.values.get("workers"), Some(&Value::Text("4".into())));
        assert_eq!(c.values.get("bind"), Some(&Value::List(vec!["0.0.0.0:80".into()])));
        assert_eq!(c.values.get("daemon"), Some(&Value::Bool(true)));
        assert_eq!(c.values.get("umask"), Some(&Value::Text("18".into())));
        assert_eq!(c.unsupported, vec!["keyfile".to_string()], "a Gunicorn setting rwsgi lacks");
        assert!(!c.values.contains_key("cpus"), "a variable of the file");
        assert_eq!(c.hooks, vec!["post_fork".to_string(), "when_ready".to_string()]);
        assert!(read_output("\"workers\" = [1]\n").is_err());
        let c = read_output("__skipped__ = [\"certfile\", \"CACHE\"]\n").unwrap();
        assert_eq!(c.unsupported, vec!["certfile".to_string()]);
        assert!(read_output("__skipped__ = [\"bind\"]\n").is_err(), "a setting of rwsgi's, unreadable");
        let e = read_output("__skipped__ = [\"logconfig_dict\"]\n").unwrap_err();
        assert!(e.contains("by their dotted path"), "{e}");
        let c = read_output("secure_scheme_headers = {\"X-PROTO\" = \"https\"}\n").unwrap();
        let Some(Value::Table(t)) = c.values.get("secure_scheme_headers") else { panic!("{:?}", c.values) };
        assert_eq!(t.get("X-PROTO").and_then(toml::Value::as_str), Some("https"));
    }

    #[test]
    fn toml_files_stay_toml() {
        assert!(is_python("gunicorn.conf.py") && is_python("python:app.conf") && is_python("conf"));
        assert!(!is_python("/etc/rwsgi/app.toml"));
    }
}
