//! Settings: the table in `settings`, the layers that fill it, and the
//! validated [`Config`] the rest of rwsgi reads.
//!
//! Layers, lowest first, as in Gunicorn: table defaults (some fed by an
//! environment variable such as `WEB_CONCURRENCY`), the TOML config file,
//! `RWSGI_CMD_ARGS`, the command line. Every layer produces the same
//! untyped [`Value`]s keyed by setting name; one function turns the merged
//! map into a typed `Config`, so every layer is validated the same way.
//! This module touches no socket and no Python.

pub mod docs;
pub mod settings;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};

pub use settings::{Kind, Setting, SETTINGS};
pub use types::{
    AllowList, AppSpec, BindAddr, Choice, HeaderMap, LogLevel, LogTarget, Protocol, ProxyProtocol, RequestLimits, Words,
};
use types::{lookup_group, lookup_user, parse_env_pair, parse_networks, parse_umask};

/// A setting's value before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Text(String),
    List(Vec<String>),
}

/// The validated settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub app: Option<AppSpec>,
    pub config_file: Option<PathBuf>,
    pub check_config: bool,
    pub print_config: bool,
    pub binds: Vec<BindAddr>,
    pub backlog: i32,
    pub workers: usize,
    /// Request threads per worker (1: requests run on the main thread).
    pub threads: usize,
    /// Most connections a worker holds, active and idle.
    pub worker_connections: usize,
    pub timeout: Option<Duration>,
    pub boot_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub graceful_timeout: Duration,
    pub keepalive: Option<Duration>,
    /// Requests a worker serves before it restarts; `None` for no limit.
    pub max_requests: Option<u64>,
    pub max_requests_jitter: u64,
    /// Resident memory (bytes) past which a worker restarts.
    pub max_worker_memory: Option<u64>,
    pub limits: RequestLimits,
    pub chdir: Option<PathBuf>,
    pub pythonpath: Vec<PathBuf>,
    pub virtualenv: Option<PathBuf>,
    pub raw_env: Vec<(String, String)>,
    pub proc_name: String,
    pub pidfile: Option<PathBuf>,
    pub header_map: HeaderMap,
    /// Peers whose scheme headers count.
    pub forwarded_allow: AllowList,
    /// What the listeners speak.
    pub protocol: Protocol,
    /// Peers that may speak the uwsgi protocol (`--protocol uwsgi`).
    pub uwsgi_allow: AllowList,
    /// Which PROXY protocol header to expect at the start of a connection.
    pub proxy_protocol: ProxyProtocol,
    /// Peers whose PROXY protocol header is believed.
    pub proxy_allow: AllowList,
    pub daemon: bool,
    /// Uid and gid the workers switch to.
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub umask: Option<u32>,
    pub errorlog: LogTarget,
    pub loglevel: log::LevelFilter,
    pub accesslog: Option<LogTarget>,
    pub access_log_format: String,
    /// The merged raw values, kept for `--print-config`.
    values: BTreeMap<&'static str, Value>,
}

/// A configuration error: one readable sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the command line asked for.
pub enum Outcome {
    Run(Box<Config>),
    /// `--help` or `--version`: print this and exit 0.
    Print(String),
}

/// Where environment lookups come from; a function so tests need not touch
/// the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Resolve the settings from the command line, `RWSGI_CMD_ARGS`, the config
/// file and the environment.
pub fn load(args: Vec<String>, env: EnvLookup<'_>) -> Result<Outcome, ConfigError> {
    let command = command();
    let cli = match command.clone().try_get_matches_from(proxy_mode_explicit(args)) {
        Ok(m) => m,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Ok(Outcome::Print(e.render().to_string()))
                }
                _ => Err(ConfigError(e.render().to_string().trim_end().to_string())),
            };
        }
    };
    let cli = values_from_matches(&cli);
    let env_args = match env("RWSGI_CMD_ARGS") {
        Some(text) if !text.trim().is_empty() => {
            let mut words = shlex::split(&text)
                .ok_or_else(|| ConfigError("RWSGI_CMD_ARGS: unbalanced quotes".into()))?;
            words.insert(0, "rwsgi".into());
            let m = command
                .try_get_matches_from(proxy_mode_explicit(words))
                .map_err(|e| ConfigError(format!("RWSGI_CMD_ARGS: {}", e.render().to_string().trim_end())))?;
            values_from_matches(&m)
        }
        _ => BTreeMap::new(),
    };

    let mut merged = defaults(env);
    let config_path = cli
        .get("config")
        .or_else(|| env_args.get("config"))
        .and_then(|v| match v {
            Value::Text(p) if !p.is_empty() => Some(p.clone()),
            _ => None,
        });
    if let Some(path) = &config_path {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {path}: {e}")))?;
        merged.extend(values_from_toml(&text).map_err(|e| ConfigError(format!("{path}: {e}")))?);
    }
    merged.extend(env_args);
    merged.extend(cli);
    Config::from_values(merged).map(|c| Outcome::Run(Box::new(c)))
}

/// The clap command built from the table.
pub fn command() -> Command {
    let mut cmd = Command::new("rwsgi")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A pre-fork WSGI HTTP server for Python web applications")
        .override_usage("rwsgi [OPTIONS] [APP]")
        .after_help(
            "Examples:\n  rwsgi -w 4 get_started:hello_world\n  \
             rwsgi -w 8 -b 0.0.0.0:8000 -b unix:/run/app.sock myproject.wsgi:application\n\n\
             Environment: RWSGI_CMD_ARGS (extra arguments), WEB_CONCURRENCY (default workers),\n\
             PORT (default bind 0.0.0.0:$PORT), VIRTUAL_ENV, SCRIPT_NAME.\n\n\
             Signals to the master:\n  \
             TERM        graceful stop (requests in hand finish; --graceful-timeout)\n  \
             INT, QUIT   fast stop\n  \
             HUP         reload: new workers boot, then the old ones stop; a failed reload keeps the old\n  \
             TTIN, TTOU  one worker more, one fewer\n  \
             USR1        reopen log files\n  \
             USR2        binary upgrade: a new master on the same sockets; then TERM the old one\n  \
             WINCH       when daemonized: stop all workers, keep the master",
        )
        .next_line_help(false);
    for s in SETTINGS {
        let mut arg = Arg::new(s.name).help(s.help).help_heading(s.section);
        arg = match s.long {
            Some(long) => arg.long(long).value_name(s.meta),
            None => arg.value_name(s.meta).required(false),
        };
        if let Some(short) = s.short {
            arg = arg.short(short);
        }
        arg = match s.kind {
            Kind::Flag => arg.action(ArgAction::SetTrue),
            Kind::List => arg.action(ArgAction::Append),
            Kind::Uint => arg.action(ArgAction::Set).value_parser(clap::value_parser!(u64)),
            Kind::Choice(words) => arg.action(ArgAction::Set).value_parser(words.values.to_vec()).ignore_case(true),
            Kind::Text => arg.action(ArgAction::Set),
        };
        if s.long.is_some() && s.kind != Kind::Flag && !s.default.is_empty() {
            arg = arg.hide_default_value(false).default_value(s.default);
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Gunicorn's `--proxy-protocol` takes no value; rwsgi's takes a mode.
/// Where no mode follows the flag (`--proxy-protocol app:app`), it means
/// `auto`: say so before clap reads the words.
fn proxy_mode_explicit(mut args: Vec<String>) -> Vec<String> {
    let modes = ProxyProtocol::WORDS.values;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--" {
            break;
        }
        let mode_follows = args.get(i + 1).is_some_and(|next| modes.iter().any(|m| next.eq_ignore_ascii_case(m)));
        if args[i] == "--proxy-protocol" && !mode_follows {
            args.insert(i + 1, "auto".into());
        }
        i += 1;
    }
    args
}

/// Values given explicitly on a command line (defaults shown in `--help`
/// are not "given" and must not override the config file).
fn values_from_matches(m: &clap::ArgMatches) -> BTreeMap<&'static str, Value> {
    let mut out = BTreeMap::new();
    for s in SETTINGS {
        if m.value_source(s.name) != Some(ValueSource::CommandLine) {
            continue;
        }
        let value = match s.kind {
            Kind::Flag => Value::Bool(m.get_flag(s.name)),
            Kind::List => Value::List(m.get_many::<String>(s.name).into_iter().flatten().cloned().collect()),
            Kind::Uint => Value::Text(m.get_one::<u64>(s.name).map(u64::to_string).unwrap_or_default()),
            Kind::Text | Kind::Choice(_) => Value::Text(m.get_one::<String>(s.name).cloned().unwrap_or_default()),
        };
        out.insert(s.name, value);
    }
    out
}

/// The table's defaults, with environment overrides (`WEB_CONCURRENCY`,
/// `PORT`, `VIRTUAL_ENV`) applied.
fn defaults(env: EnvLookup<'_>) -> BTreeMap<&'static str, Value> {
    let mut out = BTreeMap::new();
    for s in SETTINGS {
        let from_env = s.env.and_then(env).filter(|v| !v.is_empty());
        let text = from_env.unwrap_or_else(|| s.default.to_string());
        let value = match s.kind {
            Kind::Flag => Value::Bool(text == "true"),
            Kind::List => Value::List(if text.is_empty() { vec![] } else { vec![text] }),
            _ => Value::Text(text),
        };
        out.insert(s.name, value);
    }
    if let Some(port) = env("PORT").filter(|p| !p.is_empty()) {
        out.insert("bind", Value::List(vec![format!("0.0.0.0:{port}")]));
    }
    out
}

/// Parse a TOML config file into values; unknown keys are an error so a
/// typo does not pass silently.
fn values_from_toml(text: &str) -> Result<BTreeMap<&'static str, Value>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())?;
    let mut out = BTreeMap::new();
    for (key, raw) in table {
        let s = SETTINGS
            .iter()
            .find(|s| s.name == key)
            .ok_or_else(|| format!("unknown setting '{key}'"))?;
        let wrong = |want: &str| format!("'{key}' must be {want}");
        let value = match (s.kind, raw) {
            (Kind::Flag, toml::Value::Boolean(b)) => Value::Bool(b),
            (Kind::Flag, _) => return Err(wrong("true or false")),
            (Kind::Uint, toml::Value::Integer(i)) if i >= 0 => Value::Text(i.to_string()),
            (Kind::Uint, _) => return Err(wrong("a non-negative integer")),
            (Kind::List, toml::Value::String(v)) => Value::List(vec![v]),
            (Kind::List, toml::Value::Array(items)) => Value::List(
                items
                    .into_iter()
                    .map(|i| match i {
                        toml::Value::String(v) => Ok(v),
                        _ => Err(wrong("a list of strings")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (Kind::List, _) => return Err(wrong("a string or a list of strings")),
            (Kind::Text | Kind::Choice(_), toml::Value::String(v)) => Value::Text(v),
            // A boolean is a word where the setting's enum has it as one:
            // `proxy_protocol = true`, Gunicorn's older boolean form.
            (Kind::Choice(words), toml::Value::Boolean(b)) if words.accepts(&b.to_string()) => Value::Text(b.to_string()),
            (Kind::Text | Kind::Choice(_), _) => return Err(wrong("a string")),
        };
        out.insert(s.name, value);
    }
    Ok(out)
}

impl Config {
    /// Validate merged values into a typed `Config`.
    pub fn from_values(values: BTreeMap<&'static str, Value>) -> Result<Config, ConfigError> {
        let text = |name: &str| -> String {
            match values.get(name) {
                Some(Value::Text(t)) => t.clone(),
                _ => String::new(),
            }
        };
        let list = |name: &str| -> Vec<String> {
            match values.get(name) {
                Some(Value::List(l)) => l.clone(),
                Some(Value::Text(t)) if !t.is_empty() => vec![t.clone()],
                _ => vec![],
            }
        };
        let flag = |name: &str| matches!(values.get(name), Some(Value::Bool(true)));
        let uint = |name: &str| -> Result<u64, ConfigError> {
            let t = text(name);
            t.trim()
                .parse::<u64>()
                .map_err(|_| ConfigError(format!("{name}: '{t}' is not a non-negative integer")))
        };
        let optional_path = |name: &str| Some(text(name)).filter(|t| !t.is_empty()).map(PathBuf::from);
        let seconds = |n: u64| (n > 0).then(|| Duration::from_secs(n));

        let app = Some(text("wsgi_app"))
            .filter(|t| !t.is_empty())
            .map(|t| AppSpec::parse(&t))
            .transpose()?;
        let binds = list("bind").iter().map(|b| BindAddr::parse(b)).collect::<Result<Vec<_>, _>>()?;
        if binds.is_empty() {
            return Err(ConfigError("bind: at least one address is needed".into()));
        }
        let workers = uint("workers")?;
        if workers == 0 {
            return Err(ConfigError("workers: must be at least 1".into()));
        }
        let threads = usize::try_from(uint("threads")?).unwrap_or(usize::MAX);
        if threads == 0 || threads > 1024 {
            return Err(ConfigError("threads: must be between 1 and 1024".into()));
        }
        let worker_connections = usize::try_from(uint("worker_connections")?).unwrap_or(usize::MAX);
        if worker_connections == 0 {
            return Err(ConfigError("worker_connections: must be at least 1".into()));
        }
        let fields = uint("limit_request_fields")?;
        if fields == 0 || fields > 32768 {
            return Err(ConfigError("limit_request_fields: must be between 1 and 32768".into()));
        }
        let raw_env = list("raw_env").iter().map(|kv| parse_env_pair(kv)).collect::<Result<Vec<_>, _>>()?;
        let word = |name: &str| text(name).to_ascii_lowercase();
        let loglevel = LogLevel::from_word(&word("loglevel"))
            .ok_or_else(|| ConfigError(format!("loglevel: unknown level '{}'", word("loglevel"))))?
            .filter();
        let accesslog = Some(text("accesslog")).filter(|t| !t.is_empty()).map(|t| LogTarget::parse(&t, true));
        let backlog = uint("backlog")?;
        let user = Some(text("user")).filter(|t| !t.is_empty()).map(|u| lookup_user(&u)).transpose()?;
        let group = match Some(text("group")).filter(|t| !t.is_empty()) {
            Some(g) => Some(lookup_group(&g)?),
            None => user.map(|(_, gid)| gid),
        };
        let forwarded_allow = parse_networks("forwarded_allow_ips", &text("forwarded_allow_ips"))?;
        let protocol = Protocol::from_word(&word("protocol")).ok_or_else(|| {
            ConfigError(format!("protocol: unknown protocol '{}' ({})", word("protocol"), Protocol::WORDS.listed()))
        })?;
        let proxy_protocol = ProxyProtocol::from_word(&word("proxy_protocol")).ok_or_else(|| {
            let modes = ProxyProtocol::WORDS.listed();
            ConfigError(format!("proxy_protocol: unknown mode '{}' ({modes})", word("proxy_protocol")))
        })?;
        let header_map = HeaderMap::from_word(&word("header_map"))
            .ok_or_else(|| ConfigError(format!("header_map: unknown mode '{}'", word("header_map"))))?;
        let umask = Some(text("umask")).filter(|t| !t.is_empty()).map(|t| parse_umask(&t)).transpose()?;
        // Gunicorn's bound for the request line; a sane one for fields (the
        // worker buffers a whole head in memory).
        let request_line = uint("limit_request_line")?;
        if request_line > 8190 {
            return Err(ConfigError("limit_request_line: must be between 0 and 8190".into()));
        }
        let field_size = uint("limit_request_field_size")?;
        if field_size > 1024 * 1024 {
            return Err(ConfigError("limit_request_field_size: must be between 0 and 1048576".into()));
        }
        Ok(Config {
            app,
            config_file: optional_path("config"),
            check_config: flag("check_config"),
            print_config: flag("print_config"),
            binds,
            backlog: i32::try_from(backlog.max(1)).unwrap_or(i32::MAX),
            workers: usize::try_from(workers).unwrap_or(usize::MAX),
            threads,
            worker_connections,
            timeout: seconds(uint("timeout")?),
            boot_timeout: seconds(uint("boot_timeout")?),
            request_timeout: seconds(uint("request_timeout")?),
            graceful_timeout: Duration::from_secs(uint("graceful_timeout")?),
            keepalive: seconds(uint("keepalive")?),
            max_requests: Some(uint("max_requests")?).filter(|n| *n > 0),
            max_requests_jitter: uint("max_requests_jitter")?,
            max_worker_memory: Some(uint("max_worker_memory")?).filter(|n| *n > 0).map(|mb| mb.saturating_mul(1 << 20)),
            limits: RequestLimits {
                request_line: request_line as usize,
                fields: fields as usize,
                field_size: field_size as usize,
                permit_obsolete_folding: flag("permit_obsolete_folding"),
            },
            chdir: optional_path("chdir"),
            pythonpath: text("pythonpath")
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
            virtualenv: optional_path("virtualenv"),
            raw_env,
            proc_name: Some(text("proc_name")).filter(|t| !t.is_empty()).unwrap_or_else(|| {
                values
                    .get("wsgi_app")
                    .and_then(|v| match v {
                        Value::Text(t) if !t.is_empty() => Some(t.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "rwsgi".into())
            }),
            errorlog: LogTarget::parse(&text("errorlog"), false),
            pidfile: optional_path("pidfile"),
            forwarded_allow,
            protocol,
            uwsgi_allow: parse_networks("uwsgi_allow_ips", &text("uwsgi_allow_ips"))?,
            proxy_protocol,
            proxy_allow: parse_networks("proxy_allow_ips", &text("proxy_allow_ips"))?,
            header_map,
            daemon: flag("daemon"),
            user: user.map(|(uid, _)| uid),
            group,
            umask,
            loglevel,
            accesslog,
            access_log_format: text("access_log_format"),
            values,
        })
    }

    /// The resolved settings as a TOML document that `-c` accepts back.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        // Actions and the file's own name are not settings to write back:
        // a printed config fed to `-c` must start the same server.
        for s in SETTINGS.iter().filter(|s| !matches!(s.name, "config" | "check_config" | "print_config")) {
            let Some(v) = self.values.get(s.name) else { continue };
            let rendered = match v {
                Value::Bool(b) => b.to_string(),
                Value::Text(t) if s.kind == Kind::Uint => t.clone(),
                Value::Text(t) => toml::Value::String(t.clone()).to_string(),
                Value::List(l) => {
                    toml::Value::Array(l.iter().cloned().map(toml::Value::String).collect()).to_string()
                }
            };
            out.push_str(&format!("{} = {}\n", s.name, rendered));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut argv = vec!["rwsgi".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        match load(argv, &lookup)? {
            Outcome::Run(c) => Ok(*c),
            Outcome::Print(_) => panic!("unexpected print"),
        }
    }

    fn temp_file(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("rwsgi-test-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn defaults_match_gunicorn() {
        let c = load_with(&["app:x"], &[]).unwrap();
        assert_eq!(c.workers, 1);
        assert_eq!(c.binds, vec![BindAddr::Tcp("127.0.0.1:8000".parse().unwrap())]);
        assert_eq!(c.backlog, 2048);
        assert_eq!(c.timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.keepalive, Some(Duration::from_secs(2)));
        assert_eq!(c.limits, RequestLimits { request_line: 4094, fields: 100, field_size: 8190, permit_obsolete_folding: false });
        assert_eq!(c.errorlog, LogTarget::Stderr);
        assert_eq!(c.accesslog, None);
        assert_eq!(c.access_log_format, settings::DEFAULT_ACCESS_LOG_FORMAT);
    }

    #[test]
    fn environment_feeds_defaults() {
        let c = load_with(&["app:x"], &[("WEB_CONCURRENCY", "3"), ("PORT", "9001")]).unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.binds, vec![BindAddr::Tcp("0.0.0.0:9001".parse().unwrap())]);
    }

    #[test]
    fn precedence_is_defaults_file_env_args_cli() {
        let file = temp_file("prec.toml", "workers = 2\nkeepalive = 7\ntimeout = 9\nbind = [\"127.0.0.1:7001\"]\n");
        let env = [("WEB_CONCURRENCY", "5"), ("RWSGI_CMD_ARGS", "--keep-alive 8 -t 11")];
        let c = load_with(&["-c", &file, "-t", "12", "app:x"], &env).unwrap();
        assert_eq!(c.workers, 2, "file beats the WEB_CONCURRENCY default");
        assert_eq!(c.keepalive, Some(Duration::from_secs(8)), "RWSGI_CMD_ARGS beats the file");
        assert_eq!(c.timeout, Some(Duration::from_secs(12)), "the command line beats RWSGI_CMD_ARGS");
        assert_eq!(c.binds, vec![BindAddr::Tcp("127.0.0.1:7001".parse().unwrap())]);
        // The config file may be named in RWSGI_CMD_ARGS too.
        let env = [("RWSGI_CMD_ARGS", format!("-c {file}"))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(load_with(&["app:x"], &env).unwrap().workers, 2);
    }

    #[test]
    fn print_config_round_trips() {
        let c = load_with(&["-w", "3", "-b", "unix:/tmp/a.sock", "-b", "[::1]:9000", "-e", "A=b c", "app:x"], &[]).unwrap();
        let file = temp_file("round.toml", &c.to_toml());
        let again = load_with(&["-c", &file], &[]).unwrap();
        assert_eq!(again.workers, 3);
        assert_eq!(again.binds, c.binds);
        assert_eq!(again.raw_env, vec![("A".into(), "b c".into())]);
        assert_eq!(again.app, c.app);
    }

    #[test]
    fn bad_values_are_readable_errors() {
        for (args, needle) in [
            (vec!["-w", "0", "a:b"], "workers"),
            (vec!["-w", "many", "a:b"], "many"),
            (vec!["-b", "1.2.3.4:99999", "a:b"], "port"),
            (vec!["-e", "NOEQUALS", "a:b"], "KEY=VALUE"),
            (vec!["--log-level", "loud", "a:b"], "loud"),
            (vec!["--no-such-flag", "a:b"], "no-such-flag"),
            (vec!["a b:c"], "dotted"),
            (vec!["-c", "/nonexistent/rwsgi.toml", "a:b"], "cannot read"),
        ] {
            let err = load_with(&args, &[]).unwrap_err();
            assert!(err.0.contains(needle), "{args:?}: {err}");
        }
        let file = temp_file("typo.toml", "wrokers = 2\n");
        assert!(load_with(&["-c", &file], &[]).unwrap_err().0.contains("unknown setting 'wrokers'"));
    }

    #[test]
    fn forwarded_allow_ips() {
        let c = load_with(&["a:b"], &[]).unwrap();
        assert!(c.forwarded_allow.allows(Some("127.0.0.1".parse().unwrap())));
        assert!(c.forwarded_allow.allows(Some("::1".parse().unwrap())));
        assert!(!c.forwarded_allow.allows(Some("10.0.0.1".parse().unwrap())));
        assert!(c.forwarded_allow.allows(None), "unix socket peers are trusted");
        let c = load_with(&["--forwarded-allow-ips", "10.0.0.0/8, 192.168.1.1", "a:b"], &[]).unwrap();
        assert!(c.forwarded_allow.allows(Some("10.2.3.4".parse().unwrap())));
        assert!(c.forwarded_allow.allows(Some("::ffff:10.2.3.4".parse().unwrap())));
        assert!(c.forwarded_allow.allows(Some("192.168.1.1".parse().unwrap())));
        assert!(!c.forwarded_allow.allows(Some("192.168.1.2".parse().unwrap())));
        let c = load_with(&["--forwarded-allow-ips", "*", "a:b"], &[]).unwrap();
        assert!(c.forwarded_allow.allows(Some("8.8.8.8".parse().unwrap())));
        assert!(load_with(&["--forwarded-allow-ips", "10.0.0.0/33", "a:b"], &[]).is_err());
    }

    #[test]
    fn protocols_and_proxy_headers() {
        let c = load_with(&["a:b"], &[]).unwrap();
        assert_eq!((c.protocol, c.proxy_protocol), (Protocol::Http, ProxyProtocol::Off));
        assert!(!c.limits.permit_obsolete_folding);
        // The flag alone is Gunicorn's `--proxy-protocol`: auto.
        let c = load_with(&["--proxy-protocol", "--protocol", "uwsgi", "--permit-obsolete-folding", "a:b"], &[]).unwrap();
        assert_eq!((c.protocol, c.proxy_protocol), (Protocol::Uwsgi, ProxyProtocol::Auto));
        assert!(c.limits.permit_obsolete_folding);
        let c = load_with(&["--proxy-protocol", "v2", "a:b"], &[]).unwrap();
        assert_eq!(c.proxy_protocol, ProxyProtocol::V2);
        let c = load_with(&["--proxy-protocol=v1", "a:b"], &[]).unwrap();
        assert_eq!(c.proxy_protocol, ProxyProtocol::V1);
        // Gunicorn's form: the flag, then the app.
        let c = load_with(&["--proxy-protocol", "a:b"], &[]).unwrap();
        assert_eq!(c.proxy_protocol, ProxyProtocol::Auto);
        assert_eq!(c.app.map(|a| a.to_string()), Some("a:b".into()));
        let c = load_with(&["a:b"], &[("RWSGI_CMD_ARGS", "--proxy-protocol")]).unwrap();
        assert_eq!(c.proxy_protocol, ProxyProtocol::Auto);
        assert!(load_with(&["--proxy-protocol", "v3", "a:b"], &[]).is_err());
        assert!(load_with(&["--protocol", "fastcgi", "a:b"], &[]).is_err());
        let file = temp_file("proxy.toml", "proxy_protocol = true\nproxy_allow_ips = '10.0.0.0/8'\nuwsgi_allow_ips = '*'\n");
        let c = load_with(&["-c", &file, "a:b"], &[]).unwrap();
        assert_eq!(c.proxy_protocol, ProxyProtocol::Auto);
        assert!(c.proxy_allow.allows(Some("10.1.1.1".parse().unwrap())));
        assert!(!c.proxy_allow.allows(Some("127.0.0.1".parse().unwrap())));
        assert!(c.uwsgi_allow.allows(Some("8.8.8.8".parse().unwrap())));
        let e = load_with(&["--uwsgi-allow-from", "nowhere", "a:b"], &[]).unwrap_err();
        assert!(e.0.starts_with("uwsgi_allow_ips:"), "{}", e.0);
    }

    #[test]
    fn users_and_groups() {
        let c = load_with(&["-u", "root", "a:b"], &[]).unwrap();
        assert_eq!((c.user, c.group), (Some(0), Some(0)));
        let c = load_with(&["-u", "0", "-g", "0", "a:b"], &[]).unwrap();
        assert_eq!((c.user, c.group), (Some(0), Some(0)));
        assert!(load_with(&["-u", "no-such-user-rwsgi", "a:b"], &[]).unwrap_err().0.contains("no user"));
        assert!(load_with(&["-g", "no-such-group-rwsgi", "a:b"], &[]).unwrap_err().0.contains("no group"));
    }
}
