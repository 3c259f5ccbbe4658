//! Settings: the table in `settings`, the layers that fill it, and the
//! validated [`Config`] the rest of rwsgi reads.
//!
//! Layers, lowest first, as in Gunicorn: table defaults (some fed by an
//! environment variable such as `WEB_CONCURRENCY`), the config file (TOML,
//! or Python, which `python` has evaluated in a child process),
//! `GUNICORN_CMD_ARGS`, `RWSGI_CMD_ARGS`, the command line. Every layer
//! produces the same untyped [`Value`]s keyed by setting name;
//! [`Config::from_values`] then runs each row's own `apply` over the merged
//! map, and the few rules that read several settings after that, so every
//! layer is validated the same way. This module touches no socket and runs
//! no Python itself.

#![deny(missing_docs)]

pub mod docs;
pub mod gunicorn;
pub mod python;
pub mod settings;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};

pub use settings::{Cli, Env, Kind, Raw, Setting, SETTINGS};
pub use types::{
    AllowList, AppSource, AppSpec, BindAddr, Choice, Facility, HeaderMap, LogLevel, LogTarget, PasteApp, Protocol, ProxyProtocol,
    PythonLogging, ReloadEngine, RequestLimits, Syslog, SyslogAddr, Words, WorkerClass,
};

/// A setting's value before validation.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A switch.
    Bool(bool),
    /// One value as written: numbers, words, paths and addresses alike.
    Text(String),
    /// The values of a repeatable setting, in order.
    List(Vec<String>),
    /// A dict of a config file (`secure_scheme_headers`, `logconfig_dict`).
    Table(toml::Table),
}

/// The validated settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The application to serve; `None` when only a config file names it
    /// later, or for `--print-config` without one.
    pub app: Option<AppSource>,
    /// `--paste`, as given; `app` once the settings are read.
    paste: Option<String>,
    /// `--paste-global` values, for `app`.
    paste_global_conf: Vec<(String, String)>,
    /// The TOML config file the settings were read from.
    pub config_file: Option<PathBuf>,
    /// Load the application once and exit (`--check-config`).
    pub check_config: bool,
    /// Print the settings as TOML and exit (`--print-config`).
    pub print_config: bool,
    /// The addresses to listen on, at least one.
    pub binds: Vec<BindAddr>,
    /// The listen(2) backlog of each socket.
    pub backlog: i32,
    /// How many worker processes to keep running.
    pub workers: usize,
    /// Gunicorn's worker class given (`-k`): it only names what `threads`
    /// decides.
    pub worker_class: WorkerClass,
    /// Request threads per worker (1: requests run on the main thread).
    pub threads: usize,
    /// Most connections a worker holds, active and idle.
    pub worker_connections: usize,
    /// A worker that makes no progress this long is killed; also the
    /// deadline of each read and write. `None` for no limit.
    pub timeout: Option<Duration>,
    /// Longest a worker may take to boot; `None` for no limit.
    pub boot_timeout: Option<Duration>,
    /// Longest one request may take in all; `None` for no limit.
    pub request_timeout: Option<Duration>,
    /// How long workers get to finish their requests after TERM.
    pub graceful_timeout: Duration,
    /// How long an idle keep-alive connection waits; `None` turns
    /// keep-alive off.
    pub keepalive: Option<Duration>,
    /// Requests a worker serves before it restarts; `None` for no limit.
    pub max_requests: Option<u64>,
    /// Most extra requests added at random to each worker's `max_requests`.
    pub max_requests_jitter: u64,
    /// Resident memory (bytes) past which a worker restarts.
    pub max_worker_memory: Option<u64>,
    /// How long a worker is busy before it hands its connections over;
    /// `None`: never.
    pub handoff_after: Option<std::time::Duration>,
    /// Bind TCP sockets with SO_REUSEPORT.
    pub reuse_port: bool,
    /// Send `wsgi.file_wrapper` files with sendfile(2) (`--no-sendfile`
    /// turns it off).
    pub sendfile: bool,
    /// The app's stdout and stderr go to the error log file.
    pub capture_output: bool,
    /// With `--daemon`, keep stdio as it was (`-R`).
    pub enable_stdio_inheritance: bool,
    /// The largest request body passed to the app (`--limit-request-body`);
    /// `None` for no limit.
    pub limit_request_body: Option<u64>,
    /// What reading the settings has to say (a limit over its maximum,
    /// clamped; a Gunicorn setting rwsgi does not have; what a Python
    /// config file printed), for the error log once it is open.
    pub notices: Vec<(log::Level, String)>,
    /// The server hooks the Python config file defines.
    pub hooks: Vec<String>,
    /// The longest a master-side hook may run.
    pub hook_timeout: Duration,
    /// Limits on the request head.
    pub limits: RequestLimits,
    /// Directory to change to before binding and loading the application.
    pub chdir: Option<PathBuf>,
    /// Directories put in front of `sys.path`.
    pub pythonpath: Vec<PathBuf>,
    /// The virtualenv whose packages the application loads with.
    pub virtualenv: Option<PathBuf>,
    /// Environment variables set in the workers.
    pub raw_env: Vec<(String, String)>,
    /// The server's name in the start-up log line.
    pub proc_name: String,
    /// The name when `proc_name` is not given (the app, by default).
    default_proc_name: String,
    /// Where the master writes its pid.
    pub pidfile: Option<PathBuf>,
    /// What to do with request header names that contain `_`.
    pub header_map: HeaderMap,
    /// Peers whose scheme headers count.
    pub forwarded_allow: AllowList,
    /// The scheme headers (lower-case names) and the values meaning https.
    pub secure_scheme_headers: Vec<(String, String)>,
    /// Header names (upper-case) with `_` a trusted proxy may send; `*`
    /// for any.
    pub forwarder_headers: Vec<String>,
    /// What the listeners speak.
    pub protocol: Protocol,
    /// Peers that may speak the uwsgi protocol (`--protocol uwsgi`).
    pub uwsgi_allow: AllowList,
    /// Which PROXY protocol header to expect at the start of a connection.
    pub proxy_protocol: ProxyProtocol,
    /// Peers whose PROXY protocol header is believed.
    pub proxy_allow: AllowList,
    /// Detach from the terminal and run in the background.
    pub daemon: bool,
    /// Uid the workers switch to.
    pub user: Option<u32>,
    /// Gid the workers switch to.
    pub group: Option<u32>,
    /// The workers get every group of `user` (initgroups(3)).
    pub initgroups: bool,
    /// The umask of rwsgi's processes; `None` keeps the inherited one.
    pub umask: Option<u32>,
    /// Where the error log goes.
    pub errorlog: LogTarget,
    /// The least severe error log level written.
    pub loglevel: log::LevelFilter,
    /// Where the access log goes; `None` for no access log.
    pub accesslog: Option<LogTarget>,
    /// The access log line, in Gunicorn's `%(atom)s` format.
    pub access_log_format: String,
    /// Python's logging configuration for the workers, as given.
    pub python_logging: LoggingFiles,
    /// Sending the logs to syslog too.
    pub syslog: Syslog,
    /// Trace every line of Python each worker's main thread runs.
    pub spew: bool,
    /// Import the app in the zygote, once for every worker.
    pub preload_app: bool,
    /// Where the master serves its metrics and probes.
    pub metrics_bind: Option<String>,
    /// Gunicorn's control socket, its mode, and whether it is turned off.
    pub control_socket: Option<PathBuf>,
    /// The control socket file's permissions.
    pub control_socket_mode: u32,
    /// `--no-control-socket`.
    pub control_socket_disable: bool,
    /// The statsd collector.
    pub statsd_host: Option<String>,
    /// What every statsd metric name starts with.
    pub statsd_prefix: String,
    /// DogStatsD tags added to every metric.
    pub dogstatsd_tags: String,
    /// Send the listen backlog to statsd.
    pub enable_backlog_metric: bool,
    /// Reload when a source file of the app or an extra file changes.
    pub reload: bool,
    /// How `reload` watches.
    pub reload_engine: ReloadEngine,
    /// More files (or glob patterns) `reload` watches, absolute.
    pub reload_extra_files: Vec<PathBuf>,
    /// The primary group of `user`, which `group` defaults to.
    user_group: Option<u32>,
    /// The merged raw values, kept for `--print-config`.
    values: BTreeMap<&'static str, Value>,
}

/// The Python logging configurations given; [`LoggingFiles::chosen`]
/// picks one as Gunicorn does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoggingFiles {
    /// `logconfig_dict` (empty when not given).
    pub dict: toml::Table,
    /// `--log-config-json`.
    pub json: Option<PathBuf>,
    /// `--log-config`.
    pub ini: Option<PathBuf>,
}

impl LoggingFiles {
    /// The one that applies: a dict, else a JSON file, else an ini file.
    pub fn chosen(&self) -> Option<PythonLogging<'_>> {
        if !self.dict.is_empty() {
            return Some(PythonLogging::Dict(&self.dict));
        }
        self.json.as_deref().map(PythonLogging::Json).or_else(|| self.ini.as_deref().map(PythonLogging::Ini))
    }
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
    /// Serve (or check, or print) with these settings.
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
    let cli = match command.clone().try_get_matches_from(bare_flags_explicit(args)) {
        Ok(m) => values_from_matches(&m),
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Ok(Outcome::Print(e.render().to_string()))
                }
                _ => Err(ConfigError(e.render().to_string().trim_end().to_string())),
            };
        }
    };
    // Gunicorn's variable, then rwsgi's, which wins: both as a command line
    // between the config file and the real one.
    let gunicorn_args = values_from_env_args(&command, "GUNICORN_CMD_ARGS", env)?;
    let rwsgi_args = values_from_env_args(&command, "RWSGI_CMD_ARGS", env)?;
    let mut merged = defaults(env);
    let layers = [&cli, &rwsgi_args, &gunicorn_args];
    let mut python = None;
    if let Some(path) = config_file_named(&layers).or_else(default_config_file) {
        if python::is_python(&path) {
            let py = python::evaluate(&path, virtualenv_named(&layers, &merged).as_deref())?;
            merged.extend(py.values.clone());
            python = Some(py);
        } else {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError(format!("cannot read config file {path}: {e}")))?;
            merged.extend(values_from_toml(&text).map_err(|e| ConfigError(format!("{path}: {e}")))?);
        }
        merged.insert(settings::setting("config").name, Value::Text(path));
    }
    merged.extend(gunicorn_args);
    merged.extend(rwsgi_args);
    merged.extend(cli);
    let mut config = Config::from_values(merged)?;
    if let Some(py) = python {
        config.note_python_config(py);
    }
    Ok(Outcome::Run(Box::new(config)))
}

/// `./gunicorn.conf.py` when it exists: Gunicorn reads it when no config
/// file is named.
fn default_config_file() -> Option<String> {
    let path = "gunicorn.conf.py";
    std::path::Path::new(path).is_file().then(|| path.to_string())
}

/// The virtualenv named before the config file is read (a Python config
/// may import the app's packages): the first layer that names one, or the
/// default (`VIRTUAL_ENV`).
fn virtualenv_named(layers: &[&BTreeMap<&'static str, Value>], defaults: &BTreeMap<&'static str, Value>) -> Option<String> {
    let name = settings::setting("virtualenv").name;
    match layers.iter().find_map(|layer| layer.get(name)).or_else(|| defaults.get(name))? {
        Value::Text(path) if !path.is_empty() => Some(path.clone()),
        _ => None,
    }
}

/// The values of the environment variable `name` (`RWSGI_CMD_ARGS`,
/// `GUNICORN_CMD_ARGS`), read as a command line.
fn values_from_env_args(command: &Command, name: &str, env: EnvLookup<'_>) -> Result<BTreeMap<&'static str, Value>, ConfigError> {
    let Some(text) = env(name).filter(|t| !t.trim().is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let mut words = shlex::split(&text).ok_or_else(|| ConfigError(format!("{name}: unbalanced quotes")))?;
    words.insert(0, "rwsgi".into());
    let m = command
        .clone()
        .try_get_matches_from(bare_flags_explicit(words))
        .map_err(|e| ConfigError(format!("{name}: {}", e.render().to_string().trim_end())))?;
    Ok(values_from_matches(&m))
}

/// The config file the first of `layers` that names one names.
fn config_file_named(layers: &[&BTreeMap<&'static str, Value>]) -> Option<String> {
    let config = settings::setting("config");
    match layers.iter().find_map(|layer| layer.get(config.name))? {
        Value::Text(path) if !path.is_empty() => Some(path.clone()),
        _ => None,
    }
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
             Environment: RWSGI_CMD_ARGS and GUNICORN_CMD_ARGS (extra arguments; RWSGI_CMD_ARGS wins),\n\
             WEB_CONCURRENCY (default workers), PORT (default bind 0.0.0.0:$PORT),\n\
             FORWARDED_ALLOW_IPS, VIRTUAL_ENV, SCRIPT_NAME.\n\n\
             Signals to the master:\n  \
             TERM        graceful stop (requests in hand finish; --graceful-timeout)\n  \
             INT, QUIT   fast stop\n  \
             HUP         reload: new workers boot, then the old ones stop; a failed reload keeps the old\n  \
             TTIN, TTOU  one worker more, one fewer\n  \
             USR1        reopen log files\n  \
             USR2        binary upgrade: a new master on the same sockets; then TERM the old one\n  \
             WINCH       when daemonized: stop all workers, keep the master",
        )
        .next_line_help(false)
        // An option given twice takes its last value, as Gunicorn's argparse
        // does (a wrapper script often appends to a base command); the
        // repeatable ones (`-b`, `-e`) still collect every value.
        .args_override_self(true);
    for s in SETTINGS.iter().filter(|s| s.cli != Cli::FileOnly) {
        cmd = cmd.arg(arg(s));
    }
    cmd
}

/// The clap argument of one row.
fn arg(s: &Setting) -> Arg {
    let mut arg = Arg::new(s.name).help(s.help).help_heading(s.section);
    arg = match s.long() {
        Some(long) => arg.long(long).value_name(s.meta),
        None => arg.value_name(s.meta).required(false),
    };
    if let Some(short) = s.short {
        arg = arg.short(short);
    }
    if let Some(alias) = s.alias {
        arg = arg.visible_alias(alias);
    }
    arg = match s.kind {
        Kind::Flag => arg.action(ArgAction::SetTrue),
        Kind::NoFlag => arg.action(ArgAction::SetFalse),
        Kind::List => arg.action(ArgAction::Append),
        Kind::Uint => arg.action(ArgAction::Set).value_parser(clap::value_parser!(u64)),
        Kind::Choice(words) => arg.action(ArgAction::Set).value_parser(words.values.to_vec()).ignore_case(true),
        Kind::Text | Kind::Table => arg.action(ArgAction::Set),
    };
    if s.long().is_some() && !s.kind.is_switch() && !s.default.is_empty() {
        arg = arg.hide_default_value(false).default_value(s.default);
    }
    arg
}

/// A row's long flag given without a value means its `bare` word
/// (Gunicorn's `--proxy-protocol` takes no value; rwsgi's takes a mode).
/// Where none of the row's words follows the flag (`--proxy-protocol
/// app:app`), insert the bare word before clap reads the words.
fn bare_flags_explicit(mut args: Vec<String>) -> Vec<String> {
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--" {
            break;
        }
        let flag = args[i].strip_prefix("--");
        let row = SETTINGS.iter().find(|s| s.bare.is_some() && flag.is_some() && s.long() == flag);
        if let Some(Setting { kind: Kind::Choice(words), bare: Some(bare), .. }) = row {
            let word_follows = args.get(i + 1).is_some_and(|next| words.values.iter().any(|w| next.eq_ignore_ascii_case(w)));
            if !word_follows {
                args.insert(i + 1, bare.to_string());
            }
        }
        i += 1;
    }
    args
}

/// Values given explicitly on a command line (defaults shown in `--help`
/// are not "given" and must not override the config file).
fn values_from_matches(m: &clap::ArgMatches) -> BTreeMap<&'static str, Value> {
    let mut out = BTreeMap::new();
    for s in SETTINGS.iter().filter(|s| s.cli != Cli::FileOnly) {
        if m.value_source(s.name) != Some(ValueSource::CommandLine) {
            continue;
        }
        let value = match s.kind {
            Kind::Flag | Kind::NoFlag => Value::Bool(m.get_flag(s.name)),
            Kind::List => Value::List(m.get_many::<String>(s.name).into_iter().flatten().cloned().collect()),
            Kind::Uint => Value::Text(m.get_one::<u64>(s.name).map(u64::to_string).unwrap_or_default()),
            Kind::Text | Kind::Choice(_) | Kind::Table => Value::Text(m.get_one::<String>(s.name).cloned().unwrap_or_default()),
        };
        out.insert(s.name, value);
    }
    out
}

/// The table's defaults, with the rows' environment overrides
/// (`WEB_CONCURRENCY`, `PORT`, `VIRTUAL_ENV`) applied.
fn defaults(env: EnvLookup<'_>) -> BTreeMap<&'static str, Value> {
    let mut out = BTreeMap::new();
    for s in SETTINGS {
        let from_env = s.env.and_then(|e| env(e.var).filter(|v| !v.is_empty()).map(|v| format!("{}{v}", e.prefix)));
        out.insert(s.name, s.value_from_text(from_env.unwrap_or_else(|| s.default.to_string())));
    }
    out
}

/// Parse a TOML config file into values; unknown keys are an error so a
/// typo does not pass silently.
fn values_from_toml(text: &str) -> Result<BTreeMap<&'static str, Value>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())?;
    let mut out = BTreeMap::new();
    for (key, raw) in table {
        let s = settings::find(&key).ok_or_else(|| format!("unknown setting '{key}'"))?;
        let wrong = |want: &str| format!("'{key}' must be {want}");
        let value = match (s.kind, raw) {
            (Kind::Flag | Kind::NoFlag, toml::Value::Boolean(b)) => Value::Bool(b),
            (Kind::Flag | Kind::NoFlag, _) => return Err(wrong("true or false")),
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
            (Kind::Table, toml::Value::Table(t)) => Value::Table(t),
            (Kind::Table, _) => return Err(wrong("a table")),
        };
        out.insert(s.name, value);
    }
    Ok(out)
}

impl Config {
    /// Validate merged values into a typed `Config`: every row's `apply`,
    /// in table order (the first setting in error is the one reported),
    /// then the rules that read several settings.
    pub fn from_values(values: BTreeMap<&'static str, Value>) -> Result<Config, ConfigError> {
        let mut config = Config::unset();
        for s in SETTINGS {
            (s.apply)(Raw::of(s, &values), &mut config)?;
        }
        config.values = values;
        config.choose_app()?;
        config.defaults_from_other_settings();
        Ok(config)
    }

    /// What a Python config file said beyond its settings: what it
    /// printed, the Gunicorn settings rwsgi does not have, its hooks.
    fn note_python_config(&mut self, py: python::PythonConfig) {
        let file = self.config_file.as_ref().map_or_else(String::new, |p| p.display().to_string());
        for line in py.output.lines().filter(|l| !l.trim().is_empty()) {
            self.notices.push((log::Level::Info, format!("{file}: {line}")));
        }
        if !py.unsupported.is_empty() {
            self.notices.push((
                log::Level::Warn,
                format!("{file}: Gunicorn settings rwsgi does not have, ignored: {}", py.unsupported.join(", ")),
            ));
        }
        self.hooks = py.hooks;
    }

    /// `--paste` over `MODULE:CALLABLE`, as in Gunicorn (which ignores
    /// the module then; here it is said).
    fn choose_app(&mut self) -> Result<(), ConfigError> {
        let Some(given) = self.paste.take() else { return Ok(()) };
        let (file, name) = match given.split_once('#') {
            Some((file, name)) => (file, Some(name.to_string())),
            None => (given.as_str(), None),
        };
        // Absolute before --chdir, as Gunicorn makes it.
        let file = std::path::absolute(file).map_err(|e| ConfigError(format!("paste: {file}: {e}")))?;
        if !file.is_file() {
            return Err(ConfigError(format!("paste: {} not found", file.display())));
        }
        if let Some(AppSource::Import(spec)) = &self.app {
            self.notices.push((log::Level::Warn, format!("{spec} is not used: --paste names the application")));
        }
        let paste = PasteApp { file, name, global_conf: std::mem::take(&mut self.paste_global_conf) };
        if self.python_logging.ini.is_none() && paste.has_logging_config() {
            self.python_logging.ini = Some(paste.file.clone());
        }
        self.app = Some(AppSource::Paste(paste));
        Ok(())
    }

    /// Defaults that come from other settings, once every row is applied.
    fn defaults_from_other_settings(&mut self) {
        // As in Gunicorn: the workers take the user's primary group unless
        // a group is named.
        self.group = self.group.or(self.user_group);
        if self.proc_name.is_empty() {
            // `default_proc_name`, else the application as written (not as
            // parsed), or the --paste ini file; else rwsgi.
            let app = Raw::of(settings::setting("wsgi_app"), &self.values);
            let paste = match &self.app {
                Some(AppSource::Paste(p)) => Some(p.file.display().to_string()),
                _ => None,
            };
            self.proc_name = Some(std::mem::take(&mut self.default_proc_name))
                .filter(|n| !n.is_empty())
                .or(paste)
                .or_else(|| app.nonempty().map(str::to_string))
                .unwrap_or_else(|| "rwsgi".to_string());
        }
    }

    /// Every field before the rows write theirs: placeholders, not
    /// defaults (the table holds those). Each row's `apply` overwrites the
    /// fields it owns.
    fn unset() -> Config {
        let nobody = || AllowList(Some(Vec::new()));
        Config {
            app: None,
            paste: None,
            paste_global_conf: Vec::new(),
            config_file: None,
            check_config: false,
            print_config: false,
            binds: Vec::new(),
            backlog: 0,
            workers: 0,
            worker_class: WorkerClass::Sync,
            threads: 0,
            worker_connections: 0,
            timeout: None,
            boot_timeout: None,
            request_timeout: None,
            graceful_timeout: Duration::ZERO,
            keepalive: None,
            max_requests: None,
            max_requests_jitter: 0,
            max_worker_memory: None,
            handoff_after: Some(std::time::Duration::from_millis(10)),
            limit_request_body: None,
            reuse_port: false,
            sendfile: true,
            capture_output: false,
            enable_stdio_inheritance: false,
            notices: Vec::new(),
            hooks: Vec::new(),
            hook_timeout: Duration::ZERO,
            limits: RequestLimits {
                request_line: 0,
                fields: 0,
                field_size: 0,
                permit_obsolete_folding: false,
                permit_unconventional_method: false,
                casefold_method: false,
                strip_header_spaces: false,
            },
            chdir: None,
            pythonpath: Vec::new(),
            virtualenv: None,
            raw_env: Vec::new(),
            proc_name: String::new(),
            default_proc_name: String::new(),
            pidfile: None,
            header_map: HeaderMap::Refuse,
            forwarded_allow: nobody(),
            secure_scheme_headers: Vec::new(),
            forwarder_headers: Vec::new(),
            protocol: Protocol::Http,
            uwsgi_allow: nobody(),
            proxy_protocol: ProxyProtocol::Off,
            proxy_allow: nobody(),
            daemon: false,
            user: None,
            group: None,
            initgroups: false,
            umask: None,
            errorlog: LogTarget::Stderr,
            loglevel: log::LevelFilter::Off,
            accesslog: None,
            access_log_format: String::new(),
            python_logging: LoggingFiles::default(),
            syslog: Syslog {
                enabled: false,
                addr: SyslogAddr::Unix(PathBuf::new(), false),
                facility: Facility::User,
                prefix: None,
                access: false,
            },
            spew: false,
            preload_app: false,
            metrics_bind: None,
            control_socket: None,
            control_socket_mode: 0o600,
            control_socket_disable: false,
            statsd_host: None,
            statsd_prefix: String::new(),
            dogstatsd_tags: String::new(),
            enable_backlog_metric: false,
            reload: false,
            reload_engine: ReloadEngine::Auto,
            reload_extra_files: Vec::new(),
            user_group: None,
            values: BTreeMap::new(),
        }
    }

    /// The settings as Gunicorn's `cfg` object shows them to server hooks:
    /// every Gunicorn setting by name (`None` for those rwsgi lacks), rwsgi's
    /// own too, numbers as numbers, unset text as `None`, and Gunicorn's
    /// derived values (`address`, `worker_class_str`, `env`, `uid`, `gid`).
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::{json, Value as J};
        let mut out: serde_json::Map<String, J> = gunicorn::SETTINGS.iter().map(|g| (g.name.to_string(), J::Null)).collect();
        for s in SETTINGS {
            let value = match (s.kind, self.values.get(s.name)) {
                (_, None) => J::Null,
                (_, Some(Value::Bool(b))) => J::Bool(*b),
                (Kind::Uint, Some(Value::Text(t))) => t.parse::<u64>().map_or(J::Null, J::from),
                (_, Some(Value::Text(t))) if t.is_empty() => J::Null,
                (_, Some(Value::Text(t))) => J::String(t.clone()),
                (_, Some(Value::List(items))) => json!(items),
                (_, Some(Value::Table(t))) => serde_json::to_value(t).unwrap_or(J::Null),
            };
            out.insert(s.name.to_string(), value);
        }
        let address: Vec<J> = self
            .binds
            .iter()
            .map(|b| match b {
                BindAddr::Tcp(a) => json!([a.ip().to_string(), a.port()]),
                BindAddr::Unix(p) => json!(p.display().to_string()),
                BindAddr::Fd(n) => json!(format!("fd://{n}")),
            })
            .collect();
        let worker_class = if self.threads > 1 || self.worker_class == WorkerClass::Gthread { "gthread" } else { "sync" };
        let env: serde_json::Map<String, J> = self.raw_env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let uid = self.user.unwrap_or_else(|| nix::unistd::geteuid().as_raw());
        let gid = self.group.unwrap_or_else(|| nix::unistd::getegid().as_raw());
        for (name, value) in [
            ("workers", json!(self.workers)),
            ("proc_name", json!(self.proc_name)),
            ("address", J::Array(address)),
            ("worker_class_str", json!(worker_class)),
            ("env", J::Object(env)),
            ("uid", json!(uid)),
            ("gid", json!(gid)),
            ("is_ssl", J::Bool(false)),
        ] {
            out.insert(name.to_string(), value);
        }
        out
    }

    /// The resolved settings as a TOML document that `-c` accepts back.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for s in SETTINGS.iter().filter(|s| s.printed) {
            let Some(v) = self.values.get(s.name) else { continue };
            let rendered = match v {
                Value::Bool(b) => b.to_string(),
                Value::Text(t) if s.kind == Kind::Uint => t.clone(),
                Value::Text(t) => toml::Value::String(t.clone()).to_string(),
                Value::List(l) => {
                    toml::Value::Array(l.iter().cloned().map(toml::Value::String).collect()).to_string()
                }
                Value::Table(t) => toml::Value::Table(t.clone()).to_string(),
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
        assert_eq!(
            c.limits,
            RequestLimits {
                request_line: 4094,
                fields: 100,
                field_size: 8190,
                permit_obsolete_folding: false,
                permit_unconventional_method: false,
                casefold_method: false,
                strip_header_spaces: false
            }
        );
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
    fn options_given_twice_take_the_last_value() {
        let c = load_with(&["-w", "2", "-w", "3", "-t", "5", "--timeout", "7", "-b", ":1", "-b", ":2", "a:b"], &[]).unwrap();
        assert_eq!((c.workers, c.timeout), (3, Some(Duration::from_secs(7))));
        assert_eq!(c.binds.len(), 2, "repeatable options collect every value");
    }

    #[test]
    fn worker_classes_by_name_path_and_egg() {
        for (word, class) in [
            ("sync", WorkerClass::Sync),
            ("gthread", WorkerClass::Gthread),
            ("gunicorn.workers.sync.SyncWorker", WorkerClass::Sync),
            ("gunicorn.workers.gthread.ThreadWorker", WorkerClass::Gthread),
            ("egg:gunicorn#gthread", WorkerClass::Gthread),
        ] {
            assert_eq!(load_with(&["-k", word, "a:b"], &[]).unwrap().worker_class, class, "{word}");
        }
        let e = load_with(&["-k", "gevent", "a:b"], &[]).unwrap_err();
        assert!(e.0.contains("'gevent'") && e.0.contains("gthread --threads N"), "{e}");
    }

    #[test]
    fn gunicorn_cmd_args_sit_below_rwsgi_cmd_args() {
        let env = [("GUNICORN_CMD_ARGS", "-w 4 -t 9 --keep-alive 3"), ("RWSGI_CMD_ARGS", "-t 11")];
        let c = load_with(&["--keep-alive", "5", "a:b"], &env).unwrap();
        assert_eq!(c.workers, 4);
        assert_eq!(c.timeout, Some(Duration::from_secs(11)), "RWSGI_CMD_ARGS wins");
        assert_eq!(c.keepalive, Some(Duration::from_secs(5)), "the command line wins");
        let c = load_with(&["a:b"], &[("FORWARDED_ALLOW_IPS", "10.0.0.0/8")]).unwrap();
        assert!(c.forwarded_allow.allows(Some("10.1.2.3".parse().unwrap())));
        assert!(!c.forwarded_allow.allows(Some("127.0.0.1".parse().unwrap())));
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

    #[test]
    fn proc_name_defaults_to_the_app_as_written() {
        assert_eq!(load_with(&["myproject.wsgi"], &[]).unwrap().proc_name, "myproject.wsgi");
        assert_eq!(load_with(&["-n", "shop", "a:b"], &[]).unwrap().proc_name, "shop");
        assert_eq!(load_with(&[], &[]).unwrap().proc_name, "rwsgi");
    }

    #[test]
    fn toml_booleans_only_where_a_choice_has_the_word() {
        let values = values_from_toml("proxy_protocol = false\n").unwrap();
        assert_eq!(values.get("proxy_protocol"), Some(&Value::Text("false".into())));
        assert_eq!(values_from_toml("loglevel = true\n").unwrap_err(), "'loglevel' must be a string");
        assert_eq!(values_from_toml("protocol = false\n").unwrap_err(), "'protocol' must be a string");
    }

    #[test]
    fn printed_config_leaves_out_actions_and_its_own_name() {
        let file = temp_file("own.toml", "workers = 2\n");
        let printed = load_with(&["-c", &file, "--check-config", "--print-config", "a:b"], &[]).unwrap().to_toml();
        assert!(printed.contains("workers = 2\n"), "{printed}");
        for name in ["config", "check_config", "print_config"] {
            assert!(!printed.lines().any(|l| l.starts_with(&format!("{name} ="))), "{printed}");
        }
    }

    #[test]
    fn a_bare_flag_takes_its_word_only_before_a_non_word() {
        assert_eq!(bare_flags_explicit(vec!["--proxy-protocol".into(), "V1".into()]), ["--proxy-protocol", "V1"]);
        assert_eq!(bare_flags_explicit(vec!["--proxy-protocol".into(), "a:b".into()]), ["--proxy-protocol", "auto", "a:b"]);
        assert_eq!(bare_flags_explicit(vec!["--proxy-protocol".into()]), ["--proxy-protocol", "auto"]);
        // `true` is a config-file alias, not a mode on the command line.
        assert_eq!(bare_flags_explicit(vec!["--proxy-protocol".into(), "true".into()]), ["--proxy-protocol", "auto", "true"]);
        assert_eq!(bare_flags_explicit(vec!["--".into(), "--proxy-protocol".into()]), ["--", "--proxy-protocol"]);
    }
}
