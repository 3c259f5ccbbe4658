//! The settings table: every setting rwsgi knows, as data.
//!
//! One row drives the command-line flag, the config-file key, the
//! environment variable that feeds its default, `--help`, `--print-config`
//! and the man page. Names follow Gunicorn: the file key is Gunicorn's
//! setting name (`keepalive`, `loglevel`, `proc_name`), the flag is its flag.

use super::types::Words;
use super::{Choice, HeaderMap, LogLevel, Protocol, ProxyProtocol};

/// What kind of value a setting holds; decides the clap action and how a
/// config-file value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A switch: present means true.
    Flag,
    /// A non-negative integer.
    Uint,
    /// Free text (validated later by the typed `Config` builder).
    Text,
    /// One of a fixed set of words, owned by the setting's enum.
    Choice(Words),
    /// Repeatable on the command line; an array in the config file.
    List,
}

/// One row of the table.
#[derive(Debug)]
pub struct Setting {
    /// Config-file key and `--print-config` name (Gunicorn's setting name).
    pub name: &'static str,
    /// Short flag, if any.
    pub short: Option<char>,
    /// Long flag without the dashes; `None` for the positional app.
    pub long: Option<&'static str>,
    pub kind: Kind,
    /// Default as text; list settings use "" for empty.
    pub default: &'static str,
    /// Environment variable that, when set, replaces the default.
    pub env: Option<&'static str>,
    /// Placeholder shown in `--help`.
    pub meta: &'static str,
    /// Heading under which `--help` and the man page group the setting.
    pub section: &'static str,
    pub help: &'static str,
}

/// Gunicorn's default access log format.
pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

macro_rules! setting {
    ($name:literal, $short:expr, $long:expr, $kind:expr, $default:literal, $env:expr,
     $meta:literal, $section:literal, $help:literal) => {
        Setting {
            name: $name,
            short: $short,
            long: $long,
            kind: $kind,
            default: $default,
            env: $env,
            meta: $meta,
            section: $section,
            help: $help,
        }
    };
}

/// Every setting, in the order `--help` and the man page list them.
pub static SETTINGS: &[Setting] = &[
    setting!("wsgi_app", None, None, Kind::Text, "", None, "APP", "Application",
        "The WSGI application, as MODULE:CALLABLE, or MODULE:FACTORY() / MODULE:FACTORY(ARGS) \
         to call a factory with literal arguments. MODULE is a dotted import path."),
    setting!("config", Some('c'), Some("config"), Kind::Text, "", None, "FILE", "Config File",
        "Read settings from this TOML file. Keys are the setting names shown by --print-config. \
         Precedence: defaults < config file < RWSGI_CMD_ARGS < command line."),
    setting!("check_config", None, Some("check-config"), Kind::Flag, "false", None, "", "Config File",
        "Check the configuration and import the application once, then exit: 0 when it loads, \
         1 with the reason when it does not."),
    setting!("print_config", None, Some("print-config"), Kind::Flag, "false", None, "", "Config File",
        "Print the resolved settings as TOML (usable as a config file) and exit."),
    setting!("bind", Some('b'), Some("bind"), Kind::List, "127.0.0.1:8000", None, "ADDRESS", "Server Socket",
        "The socket to bind: HOST, HOST:PORT, [IPV6]:PORT, unix:PATH or fd://FD. Repeat to bind \
         several. Defaults to 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set."),
    setting!("backlog", None, Some("backlog"), Kind::Uint, "2048", None, "INT", "Server Socket",
        "The maximum number of pending connections on each listening socket."),
    setting!("workers", Some('w'), Some("workers"), Kind::Uint, "1", Some("WEB_CONCURRENCY"), "INT", "Worker Processes",
        "The number of worker processes. Defaults to $WEB_CONCURRENCY, or 1."),
    setting!("threads", None, Some("threads"), Kind::Uint, "1", None, "INT", "Worker Processes",
        "Requests each worker serves at once, on this many threads sharing its interpreter \
         (wsgi.multithread is then true), for applications that wait on databases and APIs. \
         Python's GIL is released around every socket wait. 1 serves requests one at a time \
         on the worker's main thread, and sends the small responses of requests that were \
         ready together after the last of them (within about 2 ms)."),
    setting!("worker_connections", None, Some("worker-connections"), Kind::Uint, "1000", None, "INT", "Worker Processes",
        "Most connections one worker holds, requests in progress and idle keep-alive ones \
         together; past it the worker stops accepting until one closes, so other workers take \
         the load."),
    setting!("timeout", Some('t'), Some("timeout"), Kind::Uint, "30", None, "INT", "Worker Processes",
        "Heartbeat: a worker that makes no progress for this many seconds (stuck in \
         application code) is killed, after logging the Python stack of every thread, and \
         replaced. Also the longest wait for a request head and for each read or write of a \
         request in progress. 0 means no limit."),
    setting!("boot_timeout", None, Some("boot-timeout"), Kind::Uint, "120", None, "INT", "Worker Processes",
        "Seconds a worker may take to start and import the application before it is killed \
         and replaced. 0 means no limit."),
    setting!("request_timeout", None, Some("request-timeout"), Kind::Uint, "0", None, "INT", "Worker Processes",
        "Seconds one request may take in all, however much progress it makes, before its \
         worker is killed (stack logged) and replaced. 0 (the default) means no limit."),
    setting!("graceful_timeout", None, Some("graceful-timeout"), Kind::Uint, "30", None, "INT", "Worker Processes",
        "Seconds workers get to finish their requests after TERM before they are killed."),
    setting!("keepalive", None, Some("keep-alive"), Kind::Uint, "2", None, "INT", "Worker Processes",
        "Seconds an idle keep-alive connection is kept open waiting for the next request. \
         0 disables keep-alive."),
    setting!("max_requests", None, Some("max-requests"), Kind::Uint, "0", None, "INT", "Worker Processes",
        "Restart a worker (gracefully) after it has served this many requests, to bound the \
         damage of memory leaks. 0 disables it."),
    setting!("max_requests_jitter", None, Some("max-requests-jitter"), Kind::Uint, "0", None, "INT", "Worker Processes",
        "Add a random number between 0 and this to each worker's --max-requests, so the workers \
         do not all restart at once."),
    setting!("max_worker_memory", None, Some("max-worker-memory"), Kind::Uint, "0", None, "MB", "Worker Processes",
        "Restart a worker (gracefully, after the request in hand) once its resident memory \
         passes this many MiB. 0 disables it."),
    setting!("limit_request_line", None, Some("limit-request-line"), Kind::Uint, "4094", None, "INT", "Security",
        "The maximum size of the HTTP request line in bytes, from 0 (unlimited) to 8190. Longer lines get 414."),
    setting!("limit_request_fields", None, Some("limit-request-fields"), Kind::Uint, "100", None, "INT", "Security",
        "The maximum number of header fields in a request (at most 32768). More get 431."),
    setting!("limit_request_field_size", None, Some("limit-request-field_size"), Kind::Uint, "8190", None, "INT", "Security",
        "The maximum size of one request header field line in bytes, from 0 (no limit of its own) to 1048576. Larger get 431."),
    setting!("header_map", None, Some("header-map"), Kind::Choice(HeaderMap::WORDS), "drop", None, "MODE", "Security",
        "Request header names with an underscore, which would collide with dashed names in the \
         environ (X_Forwarded_For and X-Forwarded-For are both HTTP_X_FORWARDED_FOR): drop \
         them, refuse the request (400), or, dangerously, pass them on."),
    setting!("permit_obsolete_folding", None, Some("permit-obsolete-folding"), Kind::Flag, "false", None, "", "Security",
        "Accept header values continued on the next line (obs-fold, deprecated by RFC 9112 \
         §5.2), joining the lines with a space, instead of answering 400. Safe only when every \
         front end also unfolds or refuses obs-fold: one that read a folded line as a header of \
         its own would disagree with rwsgi on the request."),
    setting!("daemon", Some('D'), Some("daemon"), Kind::Flag, "false", None, "", "Server Mechanics",
        "Detach from the terminal and run in the background (log to --error-logfile, since \
         stderr goes to /dev/null). Under systemd, do not use it."),
    setting!("pidfile", Some('p'), Some("pid"), Kind::Text, "", None, "FILE", "Server Mechanics",
        "Write the master's pid to this file (atomically), refuse to start while a running \
         process holds it, and remove it on exit."),
    setting!("user", Some('u'), Some("user"), Kind::Text, "", None, "USER", "Server Mechanics",
        "Run the workers as this user (name or uid). The master binds the sockets first, so \
         ports below 1024 work."),
    setting!("group", Some('g'), Some("group"), Kind::Text, "", None, "GROUP", "Server Mechanics",
        "Run the workers as this group (name or gid). Defaults to the user's group when --user \
         is given."),
    setting!("umask", Some('m'), Some("umask"), Kind::Text, "", None, "INT", "Server Mechanics",
        "Set the umask of rwsgi's processes, e.g. 0o022 or 022 (octal); it applies to unix \
         socket files too. Unset, the umask rwsgi was started with is kept."),
    setting!("forwarded_allow_ips", None, Some("forwarded-allow-ips"), Kind::Text, "127.0.0.1,::1", None, "ADDRS", "Server Mechanics",
        "Front-end proxies trusted to set the scheme headers (X-Forwarded-Proto: https, \
         X-Forwarded-Ssl: on, X-Forwarded-Protocol: ssl, which make wsgi.url_scheme https): \
         comma-separated IPs or CIDR networks, or '*' for any. Clients on unix sockets are \
         always trusted. Contradicting scheme headers from a trusted proxy get 400. Under \
         --protocol uwsgi the scheme comes from nginx's HTTPS variable instead."),
    setting!("proxy_protocol", None, Some("proxy-protocol"), Kind::Choice(ProxyProtocol::WORDS), "off", None, "MODE", "Server Mechanics",
        "Expect a PROXY protocol header (HAProxy, AWS NLB) at the start of every connection \
         from the --proxy-allow-from peers: v1 (text), v2 (binary) or auto (either); the flag \
         alone means auto. REMOTE_ADDR and REMOTE_PORT then name the client the proxy saw. A \
         connection from an allowed peer without a valid header is closed; other peers are \
         served as they are."),
    setting!("proxy_allow_ips", None, Some("proxy-allow-from"), Kind::Text, "127.0.0.1,::1", None, "ADDRS", "Server Mechanics",
        "Peers whose PROXY protocol header is believed: comma-separated IPs or CIDR networks, or \
         '*' for any. Clients on unix sockets are always allowed."),
    setting!("protocol", None, Some("protocol"), Kind::Choice(Protocol::WORDS), "http", None, "PROTOCOL", "Server Mechanics",
        "What the listeners speak: http, or uwsgi, the binary protocol of nginx's uwsgi_pass \
         (with 'include uwsgi_params;'). Under uwsgi the environ is built from the variables \
         nginx sends, and each connection carries one request."),
    setting!("uwsgi_allow_ips", None, Some("uwsgi-allow-from"), Kind::Text, "127.0.0.1,::1", None, "ADDRS", "Server Mechanics",
        "Peers allowed to send uwsgi protocol requests: comma-separated IPs or CIDR networks, or \
         '*' for any; others get 403. Clients on unix sockets are always allowed."),
    setting!("chdir", None, Some("chdir"), Kind::Text, "", None, "DIR", "Server Mechanics",
        "Change to this directory before binding sockets and loading the application."),
    setting!("pythonpath", None, Some("pythonpath"), Kind::Text, "", None, "DIRS", "Server Mechanics",
        "Comma-separated directories to put in front of sys.path, e.g. '/home/app,/home/lib'."),
    setting!("virtualenv", None, Some("virtualenv"), Kind::Text, "", Some("VIRTUAL_ENV"), "DIR", "Server Mechanics",
        "Load the application with this virtualenv's packages, as its own python would. \
         Defaults to $VIRTUAL_ENV (set by an activated virtualenv)."),
    setting!("raw_env", Some('e'), Some("env"), Kind::List, "", None, "KEY=VALUE", "Server Mechanics",
        "Set an environment variable in the workers, e.g. -e DJANGO_SETTINGS_MODULE=myproject.settings. Repeatable."),
    setting!("proc_name", Some('n'), Some("name"), Kind::Text, "", None, "STRING", "Process Naming",
        "A name for this server, shown in the start-up log line. Defaults to the application."),
    setting!("errorlog", None, Some("error-logfile"), Kind::Text, "-", None, "FILE", "Logging",
        "Where the error log goes; '-' is stderr."),
    setting!("loglevel", None, Some("log-level"), Kind::Choice(LogLevel::WORDS), "info", None, "LEVEL", "Logging",
        "The least severe error log level written: debug, info, warning, error or critical."),
    setting!("accesslog", None, Some("access-logfile"), Kind::Text, "", None, "FILE", "Logging",
        "Write an access log line per request to this file; '-' is stdout. Off by default."),
    setting!("access_log_format", None, Some("access-logformat"), Kind::Text,
        r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#, None, "FORMAT", "Logging",
        "The access log format, with Gunicorn's atoms: h remote address, l '-', u user, t date, \
         r request line, m method, U path, q query, H protocol, s status, B/b response length, \
         f referer, a user agent, T/M/D/L request time in s/ms/us/decimal s, p pid, \
         {name}i request header, {name}o response header, {name}e environment variable."),
];

/// The row named `name`; panics on a name not in the table, which is a bug
/// in rwsgi, not in the input.
pub fn setting(name: &str) -> &'static Setting {
    SETTINGS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no setting named {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flags_are_unique() {
        for (i, a) in SETTINGS.iter().enumerate() {
            for b in &SETTINGS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(a.long.is_none() || a.long != b.long, "{}", a.name);
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
}
