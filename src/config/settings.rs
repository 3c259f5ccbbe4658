//! The settings table: every setting rwsgi knows, as data.
//!
//! One row drives the command-line flag, the config-file key, the
//! environment variable that feeds its default, `--help`, `--print-config`
//! and the man page, and carries its own `apply`: the function that
//! validates the row's merged raw value and writes the typed field(s) of
//! [`Config`]. A new setting is one row here and one field in `Config`.
//! Names follow Gunicorn: the file key is Gunicorn's setting name
//! (`keepalive`, `loglevel`, `proc_name`), the flag is its flag.
//!
//! A row's `apply` reads only its own value and writes only its own
//! fields; rules that read several settings live in `Config::from_values`.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::types::{
    lookup_group, lookup_user, parse_env_pair, parse_networks, parse_paste_global, parse_umask, Choice, Facility, SyslogAddr,
    Words,
};
use super::{
    AllowList, AppSource, AppSpec, BindAddr, Config, ConfigError, HeaderMap, LogLevel, LogTarget, Protocol, ProxyProtocol,
    ReloadEngine, Value, WorkerClass,
};

/// What kind of value a setting holds; decides the clap action and how a
/// config-file value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A switch: present means true.
    Flag,
    /// A switch that turns off what is on by default (`--no-sendfile`):
    /// present means false.
    NoFlag,
    /// A non-negative integer.
    Uint,
    /// Free text (validated by the row's `apply`).
    Text,
    /// One of a fixed set of words, owned by the setting's enum.
    Choice(Words),
    /// Repeatable on the command line; an array in the config file.
    List,
    /// A table in the config file (a Python dict); its default is written
    /// as a TOML inline table.
    Table,
}

/// Where the command line gives a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cli {
    /// As this long flag (without the dashes).
    Flag(&'static str),
    /// As the positional argument (the app).
    Positional,
    /// Nowhere: a config file only, as in Gunicorn (its dict settings and
    /// the names it sets itself).
    FileOnly,
}

/// One row of the table.
#[derive(Debug)]
pub struct Setting {
    /// Config-file key and `--print-config` name (Gunicorn's setting name).
    pub name: &'static str,
    /// Short flag, if any.
    pub short: Option<char>,
    /// Where the command line gives it.
    pub cli: Cli,
    /// What the value is: decides the clap action and the config-file type.
    pub kind: Kind,
    /// Default as text; list settings use "" for empty.
    pub default: &'static str,
    /// Environment variable that, when set, replaces the default.
    pub env: Option<Env>,
    /// Placeholder shown in `--help`.
    pub meta: &'static str,
    /// Heading under which `--help` and the man page group the setting.
    pub section: &'static str,
    /// The paragraph `--help`, the man page and the example config show.
    pub help: &'static str,
    /// Shown in the example config file instead of the default, where the
    /// default (nothing) would not make a useful example.
    pub example: Option<&'static str>,
    /// The word the long flag means when no word of the setting follows it
    /// (Gunicorn's `--proxy-protocol` takes no value; rwsgi's takes a mode).
    pub bare: Option<&'static str>,
    /// Whether `--print-config` and the example config file write the
    /// setting out: not for actions and the config file's own name, which a
    /// printed config fed back to `-c` must not repeat.
    pub printed: bool,
    /// A second long flag Gunicorn also takes (`--log-file`, `--paster`).
    pub alias: Option<&'static str>,
    /// Validates the merged raw value and writes the typed field(s) of
    /// `Config`; the error is the sentence the user sees.
    pub apply: fn(Raw<'_>, &mut Config) -> Result<(), ConfigError>,
}

/// An environment variable that, when set and not empty, replaces a
/// setting's default with `prefix` followed by the variable's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    /// The variable's name.
    pub var: &'static str,
    /// Put before the variable's value: `PORT=9001` binds `0.0.0.0:9001`.
    pub prefix: &'static str,
}

impl Env {
    /// The variable `var`, whose value is the default as it stands.
    pub const fn var(var: &'static str) -> Env {
        Env { var, prefix: "" }
    }

    /// The variable `var`, whose value is the default after `prefix`.
    pub const fn prefixed(var: &'static str, prefix: &'static str) -> Env {
        Env { var, prefix }
    }
}

impl Kind {
    /// A switch (`--daemon`, `--no-sendfile`): a flag that takes no value.
    pub fn is_switch(self) -> bool {
        matches!(self, Kind::Flag | Kind::NoFlag)
    }
}

impl Setting {
    /// The long flag, when the command line has one.
    pub fn long(&self) -> Option<&'static str> {
        match self.cli {
            Cli::Flag(long) => Some(long),
            Cli::Positional | Cli::FileOnly => None,
        }
    }

    /// A value written as text (a default, an environment variable) as
    /// this row's kind holds it.
    pub fn value_from_text(&self, text: String) -> Value {
        match self.kind {
            Kind::Flag | Kind::NoFlag => Value::Bool(text == "true"),
            Kind::List => Value::List(if text.is_empty() { vec![] } else { vec![text] }),
            // Defaults are the table's own text, checked by a test.
            Kind::Table => Value::Table(format!("t = {text}").parse::<toml::Table>().ok()
                .and_then(|mut t| t.remove("t")).and_then(|t| t.as_table().cloned()).unwrap_or_default()),
            _ => Value::Text(text),
        }
    }
}

/// A setting's merged raw value as its row's `apply` reads it, with the
/// setting's name for error messages. A setting missing from the merged
/// values reads as empty text: no flag, no list items.
#[derive(Clone, Copy, Debug)]
pub struct Raw<'a> {
    name: &'static str,
    value: &'a Value,
}

/// What a setting absent from the merged values reads as.
static ABSENT: Value = Value::Text(String::new());

impl<'a> Raw<'a> {
    /// The value of `setting` in `values`.
    pub fn of(setting: &Setting, values: &'a BTreeMap<&'static str, Value>) -> Raw<'a> {
        Raw { name: setting.name, value: values.get(setting.name).unwrap_or(&ABSENT) }
    }

    /// The text; "" for a value that is not text.
    pub fn text(self) -> &'a str {
        match self.value {
            Value::Text(t) => t,
            _ => "",
        }
    }

    /// The text, unless it is empty.
    pub fn nonempty(self) -> Option<&'a str> {
        Some(self.text()).filter(|t| !t.is_empty())
    }

    /// The text as a path, unless it is empty.
    pub fn path(self) -> Option<PathBuf> {
        self.nonempty().map(PathBuf::from)
    }

    /// Whether a switch is on.
    pub fn flag(self) -> bool {
        matches!(self.value, Value::Bool(true))
    }

    /// The items of a list; non-empty text counts as one item.
    pub fn list(self) -> &'a [String] {
        match self.value {
            Value::List(items) => items,
            Value::Text(t) if !t.is_empty() => std::slice::from_ref(t),
            _ => &[],
        }
    }

    /// A non-negative integer.
    pub fn uint(self) -> Result<u64, ConfigError> {
        let t = self.text();
        t.trim()
            .parse::<u64>()
            .map_err(|_| ConfigError(format!("{}: '{t}' is not a non-negative integer", self.name)))
    }

    /// A non-negative integer within `bounds` (an end of `u64::MAX` means
    /// no upper bound), as a `usize`.
    pub fn usize_in(self, bounds: RangeInclusive<u64>) -> Result<usize, ConfigError> {
        let n = self.uint()?;
        if bounds.contains(&n) {
            return Ok(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Err(ConfigError(match *bounds.end() {
            u64::MAX => format!("{}: must be at least {}", self.name, bounds.start()),
            end => format!("{}: must be between {} and {end}", self.name, bounds.start()),
        }))
    }

    /// A limit with Gunicorn's reading: 0 means `zero`, and a value over
    /// `max` is `clamped_to` with a warning (kept in `c.notices` for the
    /// log) rather than an error, so a Gunicorn config starts.
    pub fn clamped(self, zero: usize, max: u64, clamped_to: usize, c: &mut Config) -> Result<usize, ConfigError> {
        match self.uint()? {
            0 => Ok(zero),
            n if n > max => {
                c.notices.push((log::Level::Warn, format!("{}: {n} is over the maximum, {max}; using {clamped_to}", self.name)));
                Ok(clamped_to)
            }
            n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    /// Whole seconds, where 0 means none (no limit, or off).
    pub fn seconds(self) -> Result<Option<Duration>, ConfigError> {
        Ok(Some(self.uint()?).filter(|n| *n > 0).map(Duration::from_secs))
    }

    /// The value `T` the text names, in any case; `unknown` words the
    /// error for any other (lower-cased) word.
    pub fn choice<T: Choice>(self, unknown: impl FnOnce(&str) -> String) -> Result<T, ConfigError> {
        let word = self.text().to_ascii_lowercase();
        T::from_word(&word).ok_or_else(|| ConfigError(unknown(&word)))
    }

    /// The table; empty for a value that is not one.
    pub fn table(self) -> &'a toml::Table {
        static EMPTY: OnceLock<toml::Table> = OnceLock::new();
        match self.value {
            Value::Table(t) => t,
            _ => EMPTY.get_or_init(toml::Table::new),
        }
    }

    /// The table as names and string values, in order.
    pub fn string_table(self) -> Result<Vec<(String, String)>, ConfigError> {
        let table = self.table();
        table
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => Ok((k.clone(), s.to_string())),
                None => Err(ConfigError(format!("{}: the value of '{k}' must be a string", self.name))),
            })
            .collect()
    }

    /// `*`, or comma-separated addresses and CIDR networks.
    pub fn networks(self) -> Result<AllowList, ConfigError> {
        parse_networks(self.name, self.text())
    }
}

/// Gunicorn's default access log format.
pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// The first of its arguments: a row's own optional value where it gives
/// one, else the fallback after it.
macro_rules! first {
    ($x:expr $(, $rest:expr)*) => {
        $x
    };
}

/// One row: the columns every setting has, then, in this order, any of
/// `example:`, `bare:`, `printed:`, `alias:` the row needs, then `apply:`.
macro_rules! setting {
    ($name:literal, $short:expr, $cli:expr, $kind:expr, $default:literal, $env:expr,
     $meta:literal, $section:literal, $help:literal,
     $(example: $example:literal,)? $(bare: $bare:literal,)? $(printed: $printed:literal,)?
     $(alias: $alias:literal,)?
     apply: $apply:expr $(,)?) => {
        Setting {
            name: $name,
            short: $short,
            cli: $cli,
            kind: $kind,
            default: $default,
            env: $env,
            meta: $meta,
            section: $section,
            help: $help,
            example: first!($(Some($example),)? None),
            bare: first!($(Some($bare),)? None),
            printed: first!($($printed,)? true),
            alias: first!($(Some($alias),)? None),
            apply: $apply,
        }
    };
}

/// Every setting, in the order `--help` and the man page list them.
pub static SETTINGS: &[Setting] = &[
    setting!("wsgi_app", None, Cli::Positional, Kind::Text, "", None, "APP", "Application",
        "The WSGI application, as MODULE:CALLABLE, or MODULE:FACTORY() / MODULE:FACTORY(ARGS) \
         to call a factory with literal arguments. MODULE is a dotted import path.",
        example: "myproject.wsgi:application",
        apply: |v, c| {
            c.app = v.nonempty().map(|t| AppSpec::parse(t).map(AppSource::Import)).transpose()?;
            Ok(())
        }),
    setting!("paste", None, Cli::Flag("paste"), Kind::Text, "", None, "FILE[#NAME]", "Application",
        "Load the application with PasteDeploy from this ini file (its [app:main] section, or \
         [app:NAME] after '#'), as Gunicorn's --paste does; PasteDeploy must be installed where \
         the application is. An ini file with a [loggers] section also configures Python's \
         logging, as --log-config would. A MODULE:CALLABLE given as well is not used.",
        alias: "paster",
        apply: |v, c| {
            c.paste = v.nonempty().map(str::to_string);
            Ok(())
        }),
    setting!("raw_paste_global_conf", None, Cli::Flag("paste-global"), Kind::List, "", None, "KEY=VALUE", "Application",
        "A global configuration value for the --paste ini file (its [DEFAULT] section sees it), \
         e.g. --paste-global FOO=1; write \\= for an '=' that is part of the key. Repeatable.",
        apply: |v, c| {
            c.paste_global_conf = v.list().iter().map(|kv| parse_paste_global(kv)).collect::<Result<_, _>>()?;
            Ok(())
        }),
    setting!("config", Some('c'), Cli::Flag("config"), Kind::Text, "", None, "FILE", "Config File",
        "Read settings from this file: a Python file as Gunicorn reads it (gunicorn.conf.py: \
         module-level names are the settings; imports, environment look-ups and any code \
         allowed), or python:MODULE, or a TOML file (ending in .toml; keys as --print-config \
         shows them). A Python file runs in a short-lived process of its own, never in the \
         master, at start and at every HUP. Without -c, ./gunicorn.conf.py is read when it \
         exists, as in Gunicorn. Precedence: defaults < config file < GUNICORN_CMD_ARGS < \
         RWSGI_CMD_ARGS < command line.",
        printed: false,
        apply: |v, c| {
            // Absolute: the hook process and the workers load the file
            // again from the --chdir directory.
            c.config_file = v.path().map(|p| match p.to_str() {
                Some(text) if !text.starts_with("python:") => absolute_from_start(text),
                _ => p,
            });
            Ok(())
        }),
    setting!("check_config", None, Cli::Flag("check-config"), Kind::Flag, "false", None, "", "Config File",
        "Check the configuration and import the application once, then exit: 0 when it loads, \
         1 with the reason when it does not.",
        printed: false,
        apply: |v, c| {
            c.check_config = v.flag();
            Ok(())
        }),
    setting!("print_config", None, Cli::Flag("print-config"), Kind::Flag, "false", None, "", "Config File",
        "Print the resolved settings as TOML (usable as a config file) and exit.",
        printed: false,
        apply: |v, c| {
            c.print_config = v.flag();
            Ok(())
        }),
    setting!("hook_timeout", None, Cli::Flag("hook-timeout"), Kind::Uint, "30", None, "INT", "Server Hooks",
        "The longest a master-side server hook (on_starting, when_ready, pre_fork, child_exit, \
         nworkers_changed, on_reload, pre_exec, on_exit) may run. Those hooks run in a Python \
         process of their own, never in the master; one that runs longer is logged and its \
         process killed, and the server goes on (a fork waiting for pre_fork happens). \
         Worker-side hooks are bounded by --boot-timeout (post_fork, post_worker_init) and \
         --timeout (pre_request, post_request). rwsgi's own: Gunicorn's hooks have no limit.",
        apply: |v, c| {
            c.hook_timeout = Duration::from_secs(v.uint()?.max(1));
            Ok(())
        }),
    setting!("bind", Some('b'), Cli::Flag("bind"), Kind::List, "127.0.0.1:8000", Some(Env::prefixed("PORT", "0.0.0.0:")), "ADDRESS", "Server Socket",
        "The socket to bind: HOST, HOST:PORT, [IPV6]:PORT, unix:PATH or fd://FD. Repeat to bind \
         several. Defaults to 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set.",
        apply: |v, c| {
            c.binds = v.list().iter().map(|b| BindAddr::parse(b)).collect::<Result<_, _>>()?;
            if c.binds.is_empty() {
                return Err(ConfigError("bind: at least one address is needed".into()));
            }
            Ok(())
        }),
    setting!("backlog", None, Cli::Flag("backlog"), Kind::Uint, "2048", None, "INT", "Server Socket",
        "The maximum number of pending connections on each listening socket.",
        apply: |v, c| {
            c.backlog = i32::try_from(v.uint()?.max(1)).unwrap_or(i32::MAX);
            Ok(())
        }),
    setting!("reuse_port", None, Cli::Flag("reuse-port"), Kind::Flag, "false", None, "", "Server Socket",
        "Set SO_REUSEPORT on the TCP sockets rwsgi binds, as Gunicorn does: other processes (another \
         rwsgi, a new deployment) may then bind the same address, and the kernel spreads new \
         connections over all of them.",
        apply: |v, c| {
            c.reuse_port = v.flag();
            Ok(())
        }),
    setting!("workers", Some('w'), Cli::Flag("workers"), Kind::Uint, "1", Some(Env::var("WEB_CONCURRENCY")), "INT", "Worker Processes",
        "The number of worker processes. Defaults to $WEB_CONCURRENCY, or 1.",
        apply: |v, c| {
            c.workers = v.usize_in(1..=u64::MAX)?;
            Ok(())
        }),
    setting!("worker_class", Some('k'), Cli::Flag("worker-class"), Kind::Text, "sync", None, "CLASS", "Worker Processes",
        "Gunicorn's worker class: sync or gthread (also as gunicorn.workers.sync.SyncWorker, \
         gunicorn.workers.gthread.ThreadWorker or egg:gunicorn#sync). rwsgi's one worker \
         serves both: --threads sets how many requests run at once (sync with --threads over 1 \
         is gthread, as in Gunicorn). Other classes (gevent, eventlet, tornado, ASGI workers) \
         are refused: for a WSGI app that waits on the network, use gthread with --threads N.",
        apply: |v, c| {
            let word = v.text().trim();
            c.worker_class = WorkerClass::from_word(word).ok_or_else(|| {
                ConfigError(format!(
                    "worker_class: rwsgi does not run '{word}' workers: it runs sync and gthread (for an \
                     application that waits on the network, -k gthread --threads N)"
                ))
            })?;
            Ok(())
        }),
    setting!("threads", None, Cli::Flag("threads"), Kind::Uint, "1", None, "INT", "Worker Processes",
        "Requests each worker serves at once, on this many threads sharing its interpreter \
         (wsgi.multithread is then true), for applications that wait on databases and APIs. \
         Python's GIL is released around every socket wait. 1 serves requests one at a time \
         on the worker's main thread, and sends the small responses of requests that were \
         ready together after the last of them (within about 2 ms).",
        apply: |v, c| {
            c.threads = v.usize_in(1..=1024)?;
            Ok(())
        }),
    setting!("worker_connections", None, Cli::Flag("worker-connections"), Kind::Uint, "1000", None, "INT", "Worker Processes",
        "Most connections one worker holds, requests in progress and idle keep-alive ones \
         together; past it the worker stops accepting until one closes, so other workers take \
         the load.",
        apply: |v, c| {
            c.worker_connections = v.usize_in(1..=u64::MAX)?;
            Ok(())
        }),
    setting!("timeout", Some('t'), Cli::Flag("timeout"), Kind::Uint, "30", None, "INT", "Worker Processes",
        "Heartbeat: a worker that makes no progress for this many seconds (stuck in \
         application code) is killed, after logging the Python stack of every thread, and \
         replaced. Also the longest wait for a request head and for each read or write of a \
         request in progress. 0 means no limit.",
        apply: |v, c| {
            c.timeout = v.seconds()?;
            Ok(())
        }),
    setting!("boot_timeout", None, Cli::Flag("boot-timeout"), Kind::Uint, "120", None, "INT", "Worker Processes",
        "Seconds a worker may take to start and import the application before it is killed \
         and replaced. 0 means no limit.",
        apply: |v, c| {
            c.boot_timeout = v.seconds()?;
            Ok(())
        }),
    setting!("request_timeout", None, Cli::Flag("request-timeout"), Kind::Uint, "0", None, "INT", "Worker Processes",
        "Seconds one request may take in all, however much progress it makes, before its \
         worker is killed (stack logged) and replaced. 0 (the default) means no limit.",
        apply: |v, c| {
            c.request_timeout = v.seconds()?;
            Ok(())
        }),
    setting!("graceful_timeout", None, Cli::Flag("graceful-timeout"), Kind::Uint, "30", None, "INT", "Worker Processes",
        "Seconds workers get to finish their requests after TERM before they are killed.",
        apply: |v, c| {
            c.graceful_timeout = Duration::from_secs(v.uint()?);
            Ok(())
        }),
    setting!("keepalive", None, Cli::Flag("keep-alive"), Kind::Uint, "2", None, "INT", "Worker Processes",
        "Seconds an idle keep-alive connection is kept open waiting for the next request. \
         0 disables keep-alive.",
        apply: |v, c| {
            c.keepalive = v.seconds()?;
            Ok(())
        }),
    setting!("max_requests", None, Cli::Flag("max-requests"), Kind::Uint, "0", None, "INT", "Worker Processes",
        "Restart a worker (gracefully) after it has served this many requests, to bound the \
         damage of memory leaks. 0 disables it.",
        apply: |v, c| {
            c.max_requests = Some(v.uint()?).filter(|n| *n > 0);
            Ok(())
        }),
    setting!("max_requests_jitter", None, Cli::Flag("max-requests-jitter"), Kind::Uint, "0", None, "INT", "Worker Processes",
        "Add a random number between 0 and this to each worker's --max-requests, so the workers \
         do not all restart at once.",
        apply: |v, c| {
            c.max_requests_jitter = v.uint()?;
            Ok(())
        }),
    setting!("max_worker_memory", None, Cli::Flag("max-worker-memory"), Kind::Uint, "0", None, "MB", "Worker Processes",
        "Restart a worker (gracefully, after the request in hand) once its resident memory \
         passes this many MiB. 0 disables it.",
        apply: |v, c| {
            c.max_worker_memory = Some(v.uint()?).filter(|n| *n > 0).map(|mb| mb.saturating_mul(1 << 20));
            Ok(())
        }),
    setting!("handoff_after", None, Cli::Flag("handoff-after"), Kind::Uint, "10", None, "MS", "Worker Processes",
        "Once a worker has been busy this many milliseconds (its one thread in the app, or every \
         request thread), it hands its idle keep-alive connections, and requests waiting for a \
         thread, to the other workers (when one is free), so that no request waits behind another client's slow one \
         while a worker is free. 0 turns it off: a connection stays with the worker that \
         accepted it. rwsgi's own (Gunicorn's sync worker holds one connection at a time).",
        apply: |v, c| {
            c.handoff_after = Some(v.uint()?).filter(|ms| *ms > 0).map(std::time::Duration::from_millis);
            Ok(())
        }),
    setting!("limit_request_line", None, Cli::Flag("limit-request-line"), Kind::Uint, "4094", None, "INT", "Security",
        "The maximum size of the HTTP request line in bytes, its CRLF not counted; longer lines get \
         414. 0 means no limit of its own (the head is still bounded). Above 8190, Gunicorn's \
         maximum, it is 8190 (with a warning), as in Gunicorn.",
        apply: |v, c| {
            c.limits.request_line = v.clamped(0, 8190, 8190, c)?;
            Ok(())
        }),
    setting!("limit_request_fields", None, Cli::Flag("limit-request-fields"), Kind::Uint, "100", None, "INT", "Security",
        "The maximum number of header fields in a request; more get 431. 0 means 32768, the \
         maximum (above it, 32768 with a warning), as in Gunicorn.",
        apply: |v, c| {
            // The worker buffers a whole head in memory: Gunicorn's bound.
            c.limits.fields = v.clamped(32768, 32768, 32768, c)?;
            Ok(())
        }),
    setting!("limit_request_field_size", None, Cli::Flag("limit-request-field_size"), Kind::Uint, "8190", None, "INT", "Security",
        "The maximum size of one request header field in bytes, counted as Gunicorn counts it: \
         the field line with its CRLF (and any obs-fold continuation lines with theirs); larger \
         get 431. 0 means 8190, as in Gunicorn (whose documentation calls it unlimited, but \
         whose parser uses 8190). Above 1048576 it is 1048576 (with a warning): the worker \
         buffers a whole head in memory.",
        apply: |v, c| {
            c.limits.field_size = v.clamped(8190, 1024 * 1024, 1024 * 1024, c)?;
            Ok(())
        }),
    setting!("permit_unconventional_http_method", None, Cli::Flag("permit-unconventional-http-method"), Kind::Flag, "false", None, "", "Security",
        "Accept request methods outside the conventional shape: lowercase letters or '#' in the \
         method, or fewer than 3 or more than 20 characters (any token is then accepted, as \
         RFC 9110 allows). Without it such requests get 400, as in Gunicorn: two parsers may \
         not agree on what 'get' means.",
        apply: |v, c| {
            c.limits.permit_unconventional_method = v.flag();
            Ok(())
        }),
    setting!("casefold_http_method", None, Cli::Flag("casefold-http-method"), Kind::Flag, "false", None, "", "Security",
        "Upper-case the method of a request before the application sees it ('get' becomes \
         'GET'), as Gunicorn's option does; only methods accepted at all are folded, so it needs \
         --permit-unconventional-http-method for lowercase ones. Dangerous behind a front end \
         that does not fold them too.",
        apply: |v, c| {
            c.limits.casefold_method = v.flag();
            Ok(())
        }),
    setting!("permit_unconventional_http_version", None, Cli::Flag("permit-unconventional-http-version"), Kind::Flag, "false", None, "", "Security",
        "Accepted for Gunicorn configs, with no effect: rwsgi speaks HTTP/1.0 and HTTP/1.1 only, and \
         answers other versions with 505 (400 when not a version at all) whatever this says.",
        apply: |v, c| {
            if v.flag() {
                let why = "rwsgi speaks HTTP/1.0 and 1.1 only; other versions get 505";
                c.notices.push((log::Level::Warn, format!("permit_unconventional_http_version: no effect ({why})")));
            }
            Ok(())
        }),
    setting!("limit_request_body", None, Cli::Flag("limit-request-body"), Kind::Uint, "0", None, "BYTES", "Security",
        "The largest request body, in bytes, that rwsgi passes to the application; 0 (the \
         default) means no limit. A request whose Content-Length says more gets 413 before the \
         application is called; a chunked body that runs past it is cut off, and the \
         application's read fails (413 unless its response has started). rwsgi's own, like \
         nginx's client_max_body_size: Gunicorn has no such setting.",
        apply: |v, c| {
            c.limit_request_body = Some(v.uint()?).filter(|n| *n > 0);
            Ok(())
        }),
    setting!("header_map", None, Cli::Flag("header-map"), Kind::Choice(HeaderMap::WORDS), "drop", None, "MODE", "Security",
        "Request header names with an underscore, which would collide with dashed names in the \
         environ (X_Forwarded_For and X-Forwarded-For are both HTTP_X_FORWARDED_FOR): drop \
         them, refuse the request (400), or, dangerously, pass them on.",
        apply: |v, c| {
            c.header_map = v.choice(|w| format!("header_map: unknown mode '{w}'"))?;
            Ok(())
        }),
    setting!("permit_obsolete_folding", None, Cli::Flag("permit-obsolete-folding"), Kind::Flag, "false", None, "", "Security",
        "Accept header values continued on the next line (obs-fold, deprecated by RFC 9112 \
         §5.2), joining the lines with a space, instead of answering 400. Safe only when every \
         front end also unfolds or refuses obs-fold: one that read a folded line as a header of \
         its own would disagree with rwsgi on the request.",
        apply: |v, c| {
            c.limits.permit_obsolete_folding = v.flag();
            Ok(())
        }),
    setting!("strip_header_spaces", None, Cli::Flag("strip-header-spaces"), Kind::Flag, "false", None, "", "Security",
        "Accept spaces and tabs between a header's name and its colon ('Host : x'), dropping \
         them, instead of answering 400 as RFC 9112 §5.1 requires. As in Gunicorn, where it is \
         deprecated: dangerous behind a front end that reads such a header differently.",
        apply: |v, c| {
            c.limits.strip_header_spaces = v.flag();
            Ok(())
        }),
    setting!("sendfile", None, Cli::Flag("no-sendfile"), Kind::NoFlag, "true", None, "", "Server Mechanics",
        "Do not send wsgi.file_wrapper responses with sendfile(2): read the file and write it, \
         as Gunicorn's --no-sendfile (for file systems where sendfile misbehaves). In a config \
         file: sendfile = false.",
        apply: |v, c| {
            c.sendfile = v.flag();
            Ok(())
        }),
    setting!("worker_tmp_dir", None, Cli::Flag("worker-tmp-dir"), Kind::Text, "", None, "DIR", "Server Mechanics",
        "Accepted for Gunicorn configs, and unused: Gunicorn's workers touch a file there as their \
         heartbeat; rwsgi's beat in shared memory, so no file is written and /dev/shm tricks are \
         not needed.",
        apply: |v, c| {
            if let Some(dir) = v.nonempty() {
                let why = "rwsgi's heartbeats are in shared memory: nothing is written there";
                c.notices.push((log::Level::Info, format!("worker_tmp_dir: {dir} is not used ({why})")));
            }
            Ok(())
        }),
    setting!("tmp_upload_dir", None, Cli::FileOnly, Kind::Text, "", None, "DIR", "Server Mechanics",
        "Accepted for Gunicorn configs, and unused, as in Gunicorn (whose code no longer reads \
         it): request bodies are streamed to the application, never written to disk.",
        apply: |_v, _c| Ok(())),
    setting!("daemon", Some('D'), Cli::Flag("daemon"), Kind::Flag, "false", None, "", "Server Mechanics",
        "Detach from the terminal and run in the background (log to --error-logfile, since \
         stderr goes to /dev/null unless -R). Under systemd, do not use it.",
        apply: |v, c| {
            c.daemon = v.flag();
            Ok(())
        }),
    setting!("pidfile", Some('p'), Cli::Flag("pid"), Kind::Text, "", None, "FILE", "Server Mechanics",
        "Write the master's pid to this file (atomically), refuse to start while a running \
         process holds it, and remove it on exit.",
        apply: |v, c| {
            c.pidfile = v.path();
            Ok(())
        }),
    setting!("user", Some('u'), Cli::Flag("user"), Kind::Text, "", None, "USER", "Server Mechanics",
        "Run the workers as this user (name or uid). The master binds the sockets first, so \
         ports below 1024 work.",
        apply: |v, c| {
            let found = v.nonempty().map(lookup_user).transpose()?;
            c.user = found.map(|(uid, _)| uid);
            c.user_group = found.map(|(_, gid)| gid);
            Ok(())
        }),
    setting!("group", Some('g'), Cli::Flag("group"), Kind::Text, "", None, "GROUP", "Server Mechanics",
        "Run the workers as this group (name or gid). Defaults to the user's group when --user \
         is given.",
        apply: |v, c| {
            c.group = v.nonempty().map(lookup_group).transpose()?;
            Ok(())
        }),
    setting!("initgroups", None, Cli::Flag("initgroups"), Kind::Flag, "false", None, "", "Server Mechanics",
        "With --user, give the workers every supplementary group the user belongs to (in \
         /etc/group), as initgroups(3) does; without it they keep only --group.",
        apply: |v, c| {
            c.initgroups = v.flag();
            Ok(())
        }),
    setting!("umask", Some('m'), Cli::Flag("umask"), Kind::Text, "", None, "INT", "Server Mechanics",
        "Set the umask of rwsgi's processes, e.g. 0o022 or 022 (octal); it applies to unix \
         socket files too. Unset, the umask rwsgi was started with is kept.",
        apply: |v, c| {
            c.umask = v.nonempty().map(parse_umask).transpose()?;
            Ok(())
        }),
    setting!("forwarded_allow_ips", None, Cli::Flag("forwarded-allow-ips"), Kind::Text, "127.0.0.1,::1", Some(Env::var("FORWARDED_ALLOW_IPS")), "ADDRS", "Server Mechanics",
        "Front-end proxies trusted to set the scheme headers (X-Forwarded-Proto: https, \
         X-Forwarded-Ssl: on, X-Forwarded-Protocol: ssl, which make wsgi.url_scheme https): \
         comma-separated IPs or CIDR networks, or '*' for any. Clients on unix sockets are \
         always trusted. Contradicting scheme headers from a trusted proxy get 400. Under \
         --protocol uwsgi the scheme comes from nginx's HTTPS variable instead.",
        apply: |v, c| {
            c.forwarded_allow = v.networks()?;
            Ok(())
        }),
    setting!("secure_scheme_headers", None, Cli::FileOnly, Kind::Table,
        r#"{ X-FORWARDED-PROTOCOL = "ssl", X-FORWARDED-PROTO = "https", X-FORWARDED-SSL = "on" }"#, None, "", "Server Mechanics",
        "The headers (and the values meaning https) by which a --forwarded-allow-ips proxy \
         says the client came over https, as a table (a dict in a Python config). A request \
         from such a proxy with one of these headers has wsgi.url_scheme https when the value \
         matches exactly, http when it does not; headers that disagree get 400. Names match in \
         any case. An empty table turns the headers off.",
        apply: |v, c| {
            c.secure_scheme_headers = v.string_table()?.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect();
            Ok(())
        }),
    setting!("forwarder_headers", None, Cli::Flag("forwarder-headers"), Kind::Text, "SCRIPT_NAME,PATH_INFO", None, "NAMES", "Server Mechanics",
        "Header names with an underscore that a --forwarded-allow-ips proxy may send, \
         comma-separated ('*' for all): they reach the environ (HTTP_SCRIPT_NAME) whatever \
         --header-map says, and a SCRIPT_NAME header sets SCRIPT_NAME (PATH_INFO is then the \
         path after it), as in Gunicorn.",
        apply: |v, c| {
            c.forwarder_headers = v.text().split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_ascii_uppercase).collect();
            Ok(())
        }),
    setting!("proxy_protocol", None, Cli::Flag("proxy-protocol"), Kind::Choice(ProxyProtocol::WORDS), "off", None, "MODE", "Server Mechanics",
        "Expect a PROXY protocol header (HAProxy, AWS NLB) at the start of every connection \
         from the --proxy-allow-from peers: v1 (text), v2 (binary) or auto (either); the flag \
         alone means auto. REMOTE_ADDR and REMOTE_PORT then name the client the proxy saw. A \
         connection from an allowed peer without a valid header is closed; other peers are \
         served as they are.",
        bare: "auto",
        apply: |v, c| {
            let modes = ProxyProtocol::WORDS.listed();
            c.proxy_protocol = v.choice(|w| format!("proxy_protocol: unknown mode '{w}' ({modes})"))?;
            Ok(())
        }),
    setting!("proxy_allow_ips", None, Cli::Flag("proxy-allow-from"), Kind::Text, "127.0.0.1,::1", None, "ADDRS", "Server Mechanics",
        "Peers whose PROXY protocol header is believed: comma-separated IPs or CIDR networks, or \
         '*' for any. Clients on unix sockets are always allowed.",
        apply: |v, c| {
            c.proxy_allow = v.networks()?;
            Ok(())
        }),
    setting!("protocol", None, Cli::Flag("protocol"), Kind::Choice(Protocol::WORDS), "http", None, "PROTOCOL", "Server Mechanics",
        "What the listeners speak: http, or uwsgi, the binary protocol of nginx's uwsgi_pass \
         (with 'include uwsgi_params;'). Under uwsgi the environ is built from the variables \
         nginx sends, and each connection carries one request.",
        apply: |v, c| {
            let protocols = Protocol::WORDS.listed();
            c.protocol = v.choice(|w| format!("protocol: unknown protocol '{w}' ({protocols})"))?;
            Ok(())
        }),
    setting!("uwsgi_allow_ips", None, Cli::Flag("uwsgi-allow-from"), Kind::Text, "127.0.0.1,::1", None, "ADDRS", "Server Mechanics",
        "Peers allowed to send uwsgi protocol requests: comma-separated IPs or CIDR networks, or \
         '*' for any; others get 403. Clients on unix sockets are always allowed.",
        apply: |v, c| {
            c.uwsgi_allow = v.networks()?;
            Ok(())
        }),
    setting!("chdir", None, Cli::Flag("chdir"), Kind::Text, "", None, "DIR", "Server Mechanics",
        "Change to this directory before binding sockets and loading the application.",
        apply: |v, c| {
            c.chdir = v.path();
            Ok(())
        }),
    setting!("pythonpath", None, Cli::Flag("pythonpath"), Kind::Text, "", None, "DIRS", "Server Mechanics",
        "Comma-separated directories to put in front of sys.path, e.g. '/home/app,/home/lib'.",
        apply: |v, c| {
            c.pythonpath = v.text().split(',').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect();
            Ok(())
        }),
    setting!("virtualenv", None, Cli::Flag("virtualenv"), Kind::Text, "", Some(Env::var("VIRTUAL_ENV")), "DIR", "Server Mechanics",
        "Load the application with this virtualenv's packages, as its own python would. \
         Defaults to $VIRTUAL_ENV (set by an activated virtualenv).",
        apply: |v, c| {
            c.virtualenv = v.path();
            Ok(())
        }),
    setting!("preload_app", None, Cli::Flag("preload"), Kind::Flag, "false", None, "", "Server Mechanics",
        "Import the application once, in the zygote each generation of workers is forked from, \
         so the workers share its memory (copy-on-write). Unlike Gunicorn's, the master never \
         imports it: HUP starts a new zygote on the new code, so code reloads keep working. \
         Threads the application starts on import do not run in the workers (a warning names \
         them): start them in a post_fork hook.",
        apply: |v, c| {
            c.preload_app = v.flag();
            Ok(())
        }),
    setting!("raw_env", Some('e'), Cli::Flag("env"), Kind::List, "", None, "KEY=VALUE", "Server Mechanics",
        "Set an environment variable in the workers, e.g. -e DJANGO_SETTINGS_MODULE=myproject.settings. Repeatable.",
        apply: |v, c| {
            c.raw_env = v.list().iter().map(|kv| parse_env_pair(kv)).collect::<Result<_, _>>()?;
            Ok(())
        }),
    setting!("proc_name", Some('n'), Cli::Flag("name"), Kind::Text, "", None, "STRING", "Process Naming",
        "A name for this server, shown in the start-up log line. Defaults to the application.",
        apply: |v, c| {
            // Empty until `Config::from_values` puts the application there.
            c.proc_name = v.text().to_string();
            Ok(())
        }),
    setting!("default_proc_name", None, Cli::FileOnly, Kind::Text, "", None, "STRING", "Process Naming",
        "The name used when --name is not given; Gunicorn sets it to the application itself, \
         which is the default here too.",
        apply: |v, c| {
            c.default_proc_name = v.text().to_string();
            Ok(())
        }),
    setting!("errorlog", None, Cli::Flag("error-logfile"), Kind::Text, "-", None, "FILE", "Logging",
        "Where the error log goes; '-' is stderr.",
        alias: "log-file",
        apply: |v, c| {
            c.errorlog = LogTarget::parse(v.text(), false);
            Ok(())
        }),
    setting!("enable_stdio_inheritance", Some('R'), Cli::Flag("enable-stdio-inheritance"), Kind::Flag, "false", None, "", "Logging",
        "With --daemon, keep stdin, stdout and stderr as they were (instead of /dev/null), as \
         Gunicorn's -R does: the error log, when it is stderr, and the app's prints still reach \
         them.",
        apply: |v, c| {
            c.enable_stdio_inheritance = v.flag();
            Ok(())
        }),
    setting!("logger_class", None, Cli::Flag("logger-class"), Kind::Text, "gunicorn.glogging.Logger", None, "STRING", "Logging",
        "Gunicorn's default, gunicorn.glogging.Logger, is accepted (rwsgi logs in its layout); \
         any other class is refused: rwsgi's logs are not Python's, so a Python logger class \
         cannot replace them (use --access-logformat and --error-logfile).",
        apply: |v, _c| {
            match v.text().trim() {
                "" | "gunicorn.glogging.Logger" | "simple" => Ok(()),
                other => Err(ConfigError(format!(
                    "logger_class: rwsgi cannot use '{other}': its logs are not Python's (use \
                     --access-logformat and --error-logfile)"
                ))),
            }
        }),
    setting!("http_parser", None, Cli::Flag("http-parser"), Kind::Text, "auto", None, "PARSER", "Logging",
        "Accepted for Gunicorn configs (auto, python or fast), with no effect: rwsgi has one HTTP \
         parser of its own, strict by default (see the HTTP rules in the README).",
        apply: |v, c| {
            match v.text().trim() {
                "" | "auto" => {}
                "python" | "fast" => {
                    c.notices.push((log::Level::Info, "http_parser: no effect (rwsgi has one parser)".to_string()));
                }
                other => return Err(ConfigError(format!("http_parser: unknown parser '{other}' (auto, python or fast)"))),
            }
            Ok(())
        }),
    setting!("capture_output", None, Cli::Flag("capture-output"), Kind::Flag, "false", None, "", "Logging",
        "Send what the application writes to its stdout and stderr (print, a library that logs \
         to stderr) to the error log file, as Gunicorn does; reopened with it on USR1.",
        apply: |v, c| {
            c.capture_output = v.flag();
            Ok(())
        }),
    setting!("loglevel", None, Cli::Flag("log-level"), Kind::Choice(LogLevel::WORDS), "info", None, "LEVEL", "Logging",
        "The least severe error log level written: debug, info, warning, error or critical.",
        apply: |v, c| {
            c.loglevel = v.choice(|w| format!("loglevel: unknown level '{w}'")).map(LogLevel::filter)?;
            Ok(())
        }),
    setting!("statsd_host", None, Cli::Flag("statsd-host"), Kind::Text, "", None, "STATSD_ADDR", "Logging",
        "Send Gunicorn's statsd metrics (request duration, count and status, log-line counts, \
         workers, with --enable-backlog-metric the listen backlog) to HOST[:PORT] (port 8125) \
         or unix:PATH, over datagrams that never make a worker wait.",
        apply: |v, c| {
            c.statsd_host = v.nonempty().map(str::to_string);
            Ok(())
        }),
    setting!("statsd_prefix", None, Cli::Flag("statsd-prefix"), Kind::Text, "", None, "STATSD_PREFIX", "Logging",
        "A prefix for every statsd metric name (a dot is added after it).",
        apply: |v, c| {
            c.statsd_prefix = v.text().to_string();
            Ok(())
        }),
    setting!("dogstatsd_tags", None, Cli::Flag("dogstatsd-tags"), Kind::Text, "", None, "DOGSTATSD_TAGS", "Logging",
        "Tags added to every statsd metric, DogStatsD's way: a comma-separated list of tags \
         (name or name:value).",
        apply: |v, c| {
            c.dogstatsd_tags = v.text().to_string();
            Ok(())
        }),
    setting!("enable_backlog_metric", None, Cli::Flag("enable-backlog-metric"), Kind::Flag, "false", None, "", "Logging",
        "With --statsd-host, send gunicorn.backlog, the connections waiting to be accepted on \
         the TCP listeners, once a second.",
        apply: |v, c| {
            c.enable_backlog_metric = v.flag();
            Ok(())
        }),
    setting!("accesslog", None, Cli::Flag("access-logfile"), Kind::Text, "", None, "FILE", "Logging",
        "Write an access log line per request to this file; '-' is stdout. Off by default.",
        apply: |v, c| {
            c.accesslog = v.nonempty().map(|t| LogTarget::parse(t, true));
            Ok(())
        }),
    setting!("access_log_format", None, Cli::Flag("access-logformat"), Kind::Text,
        r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#, None, "FORMAT", "Logging",
        "The access log format, with Gunicorn's atoms: h remote address, l '-', u user, t date, \
         r request line, m method, U path, q query, H protocol, s status, B/b response length, \
         f referer, a user agent, T/M/D/L request time in s/ms/us/decimal s, p pid, \
         {name}i request header, {name}o response header, {name}e environment variable.",
        apply: |v, c| {
            c.access_log_format = v.text().to_string();
            Ok(())
        }),
    setting!("logconfig", None, Cli::Flag("log-config"), Kind::Text, "", None, "FILE", "Logging",
        "Configure Python's logging in each worker from this ini file (logging.config.fileConfig, \
         existing loggers kept; %(here)s is the file's directory), before the application is \
         imported: the application's loggers, and the gunicorn.error and gunicorn.access \
         loggers it may use. rwsgi's own error and access logs are not Python's and stay as \
         --error-logfile and --access-logfile say.",
        apply: |v, c| {
            c.python_logging.ini = v.path();
            Ok(())
        }),
    setting!("logconfig_dict", None, Cli::FileOnly, Kind::Table, "{}", None, "", "Logging",
        "As --log-config, from a dict in logging.config.dictConfig's layout (a table in TOML), \
         merged over Gunicorn's defaults as Gunicorn merges it (each top-level key replaces the \
         default's). Its values are data: name a class or function by its dotted path ('()': \
         'pythonjsonlogger.jsonlogger.JsonFormatter'). Wins over --log-config-json and \
         --log-config.",
        apply: |v, c| {
            c.python_logging.dict = v.table().clone();
            Ok(())
        }),
    setting!("logconfig_json", None, Cli::Flag("log-config-json"), Kind::Text, "", None, "FILE", "Logging",
        "As logconfig_dict, from this JSON file. Wins over --log-config.",
        apply: |v, c| {
            c.python_logging.json = v.path();
            Ok(())
        }),
    setting!("syslog", None, Cli::Flag("log-syslog"), Kind::Flag, "false", None, "", "Logging",
        "Send the error log, and the access log, to syslog as well, as Gunicorn does: each line \
         as '<PRI>gunicorn.NAME.error: [PID] message' (.access for access lines), NAME being \
         --log-syslog-prefix or the process name.",
        apply: |v, c| {
            c.syslog.enabled = v.flag();
            Ok(())
        }),
    setting!("syslog_addr", None, Cli::Flag("log-syslog-to"), Kind::Text, "udp://localhost:514", None, "ADDR", "Logging",
        "Where syslog messages go: udp://HOST[:PORT], tcp://HOST[:PORT] or unix://PATH (a \
         datagram socket, or a stream one if the daemon listens so; unix://PATH#dgram insists on \
         datagrams), e.g. unix:///dev/log.",
        apply: |v, c| {
            c.syslog.addr = SyslogAddr::parse(v.text())?;
            Ok(())
        }),
    setting!("syslog_prefix", None, Cli::Flag("log-syslog-prefix"), Kind::Text, "", None, "NAME", "Logging",
        "The NAME in the syslog tag gunicorn.NAME.error; the process name (':' becoming '.') when \
         unset.",
        apply: |v, c| {
            c.syslog.prefix = v.nonempty().map(str::to_string);
            Ok(())
        }),
    setting!("syslog_facility", None, Cli::Flag("log-syslog-facility"), Kind::Choice(Facility::WORDS), "user", None, "FACILITY", "Logging",
        "The syslog facility: user, daemon, local0 to local7, auth, authpriv, cron, ftp, kern, \
         lpr, mail, news, syslog or uucp.",
        apply: |v, c| {
            c.syslog.facility = v.choice(|w| format!("syslog_facility: unknown facility '{w}'"))?;
            Ok(())
        }),
    setting!("disable_redirect_access_to_syslog", None, Cli::Flag("disable-redirect-access-to-syslog"), Kind::Flag, "false", None, "", "Logging",
        "With --log-syslog, keep access log lines out of syslog.",
        apply: |v, c| {
            c.syslog.access = !v.flag();
            Ok(())
        }),
    setting!("reload", None, Cli::Flag("reload"), Kind::Flag, "false", None, "", "Debugging",
        "Reload gracefully, as HUP does, when a source file the application imported or a \
         --reload-extra-file changes: for development. The master watches the files the workers \
         report (they never restart themselves); a change that breaks the import keeps the old \
         workers serving, its traceback logged, until the next change.",
        apply: |v, c| {
            c.reload = v.flag();
            Ok(())
        }),
    setting!("reload_engine", None, Cli::Flag("reload-engine"), Kind::Choice(ReloadEngine::WORDS), "auto", None, "ENGINE", "Debugging",
        "How --reload notices a change: inotify (the kernel says), poll (every file's time of \
         change, once a second), or auto (inotify, else poll).",
        apply: |v, c| {
            c.reload_engine = v.choice(|w| format!("reload_engine: unknown engine '{w}' (auto, poll or inotify)"))?;
            Ok(())
        }),
    setting!("reload_extra_files", None, Cli::Flag("reload-extra-file"), Kind::List, "", None, "FILES", "Debugging",
        "Another file for --reload to watch (templates, configuration); repeatable. An entry \
         with *, ? or [ is a glob pattern (** recurses, * skips dotfiles), expanded again every \
         second, so a file created later is watched from then on (its first edit reloads). \
         Relative paths are from the directory rwsgi starts in, not --chdir, as in Gunicorn.",
        apply: |v, c| {
            c.reload_extra_files = v.list().iter().map(|p| absolute_from_start(p)).collect();
            Ok(())
        }),
    setting!("spew", None, Cli::Flag("spew"), Kind::Flag, "false", None, "", "Debugging",
        "Print every line of Python each worker's main thread runs, as 'module:line: source' on \
         stdout, as Gunicorn's --spew does: for debugging only, it is very slow.",
        apply: |v, c| {
            c.spew = v.flag();
            Ok(())
        }),
    setting!("metrics_bind", None, Cli::Flag("metrics-bind"), Kind::Text, "", None, "ADDRESS", "Metrics",
        "Serve, on HOST:PORT or unix:PATH, from the master, the Prometheus text format at \
         /metrics (workers by state, requests by status class, a request-duration histogram, \
         bytes in and out, connections, listen queues, the workers' memory and CPU time, worker \
         exits by cause, reloads: the README lists them), and the probes /ready (200 once a worker of \
         the current generation serves, 503 while booting or stopping) and /live. Off by \
         default. rwsgi's own.",
        apply: |v, c| {
            // A socket path is from the directory rwsgi starts in.
            c.metrics_bind = v.nonempty().map(|a| match a.strip_prefix("unix:") {
                Some(path) => format!("unix:{}", absolute_from_start(path).display()),
                None => a.to_string(),
            });
            Ok(())
        }),
    setting!("control_socket", None, Cli::Flag("control-socket"), Kind::Text, "", None, "PATH", "Control",
        "Answer Gunicorn's control protocol on this unix socket (Gunicorn's gunicornc, or rwsgi \
         ctl -s PATH COMMAND): show workers, stats, listeners, config; worker add, remove, \
         kill; reload, reopen, shutdown. rwsgi top -s PATH shows the server's rates and every \
         worker live. Off unless \
         given (Gunicorn makes one by default).",
        apply: |v, c| {
            c.control_socket = v.nonempty().map(absolute_from_start);
            Ok(())
        }),
    setting!("control_socket_mode", None, Cli::Flag("control-socket-mode"), Kind::Text, "0o600", None, "INT", "Control",
        "The control socket file's permissions (0o600: its user only); clients of another user \
         but root are refused anyway.",
        apply: |v, c| {
            c.control_socket_mode = parse_umask(v.text())
                .map_err(|_| ConfigError(format!("control_socket_mode: '{}' is not a mode between 0 and 0o777", v.text())))?;
            Ok(())
        }),
    setting!("control_socket_disable", None, Cli::Flag("no-control-socket"), Kind::Flag, "false", None, "", "Control",
        "Make no control socket, even when --control-socket is given.",
        apply: |v, c| {
            c.control_socket_disable = v.flag();
            Ok(())
        }),
];

/// `path` made absolute from the working directory, which is the one rwsgi
/// started in while settings are read (`--chdir` comes later).
fn absolute_from_start(path: &str) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.into())
}

/// The row named `name` (a config-file key the user wrote), if any.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The row named `name`, for rwsgi's own code; panics on a name not in the
/// table, which is a bug in rwsgi, not in the input, so a misspelt name
/// fails every test that reaches it instead of reading as empty.
pub fn setting(name: &str) -> &'static Setting {
    find(name).unwrap_or_else(|| panic!("no setting named {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flags_are_unique() {
        for (i, a) in SETTINGS.iter().enumerate() {
            for b in &SETTINGS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(a.long().is_none() || a.long() != b.long(), "{}", a.name);
                assert!(a.short.is_none() || a.short != b.short, "{}", a.name);
            }
        }
    }

    #[test]
    fn sections_are_contiguous() {
        // `--help`, the man page and the example config show one heading
        // per section: a section's settings must stand together.
        let mut seen: Vec<&str> = Vec::new();
        for s in SETTINGS {
            if seen.last() != Some(&s.section) {
                assert!(!seen.contains(&s.section), "section {} is split at {}", s.section, s.name);
                seen.push(s.section);
            }
        }
    }

    #[test]
    fn access_log_default_is_gunicorns() {
        assert_eq!(setting("access_log_format").default, DEFAULT_ACCESS_LOG_FORMAT);
    }

    /// Apply `s` to `text` as its default would be read, on a fresh config.
    fn apply_text(s: &Setting, text: &str) -> Result<Config, ConfigError> {
        let values = BTreeMap::from([(s.name, s.value_from_text(text.to_string()))]);
        let mut config = Config::unset();
        (s.apply)(Raw::of(s, &values), &mut config).map(|()| config)
    }

    #[test]
    fn every_default_applies_through_its_row() {
        for s in SETTINGS {
            if let Err(e) = apply_text(s, s.default) {
                panic!("{}: default '{}' fails: {e}", s.name, s.default);
            }
            if let Some(example) = s.example {
                assert!(apply_text(s, example).is_ok(), "{}: example '{example}'", s.name);
            }
        }
    }

    #[test]
    fn every_word_of_a_choice_applies_through_its_row() {
        // Catches a row whose `Kind::Choice` names one enum's words while
        // its `apply` reads another's.
        for s in SETTINGS {
            let Kind::Choice(words) = s.kind else { continue };
            for word in words.values.iter().chain(words.aliases) {
                assert!(apply_text(s, word).is_ok(), "{}: '{word}'", s.name);
                assert!(apply_text(s, &word.to_ascii_uppercase()).is_ok(), "{}: '{word}' upper-cased", s.name);
            }
            let e = apply_text(s, "No-Such-Word").unwrap_err();
            assert!(e.0.starts_with(&format!("{}: ", s.name)) && e.0.contains("'no-such-word'"), "{e}");
        }
    }

    #[test]
    fn bare_flags_mean_one_of_their_words() {
        for s in SETTINGS.iter().filter(|s| s.bare.is_some()) {
            let Kind::Choice(words) = s.kind else { panic!("{}: only a choice can be bare", s.name) };
            assert!(s.long().is_some() && words.values.contains(&s.bare.unwrap_or_default()), "{}", s.name);
        }
    }

    #[test]
    fn an_absent_setting_reads_as_empty_text() {
        let values = BTreeMap::from([("workers", Value::Text("7".into()))]);
        let mut config = Config::unset();
        (setting("workers").apply)(Raw::of(setting("workers"), &values), &mut config).unwrap();
        assert_eq!(config.workers, 7);
        let e = (setting("backlog").apply)(Raw::of(setting("backlog"), &values), &mut config).unwrap_err();
        assert_eq!(e.0, "backlog: '' is not a non-negative integer");
        let absent = Raw::of(setting("bind"), &values);
        assert_eq!((absent.text(), absent.flag(), absent.list().len(), absent.path()), ("", false, 0, None));
    }

    #[test]
    fn bounds_word_their_errors() {
        let values = BTreeMap::from([("threads", Value::Text("2000".into()))]);
        let raw = Raw::of(setting("threads"), &values);
        assert_eq!(raw.usize_in(1..=1024).unwrap_err().0, "threads: must be between 1 and 1024");
        assert_eq!(raw.usize_in(3000..=u64::MAX).unwrap_err().0, "threads: must be at least 3000");
        assert_eq!(raw.usize_in(0..=u64::MAX), Ok(2000));
    }

    #[test]
    fn names_are_looked_up_through_the_table() {
        assert_eq!(find("workers").map(Setting::long), Some(Some("workers")));
        assert!(find("wrokers").is_none());
    }

    #[test]
    #[should_panic(expected = "no setting named wrokers")]
    fn a_misspelt_name_is_not_read_silently() {
        setting("wrokers");
    }
}
