//! The typed values settings become, and the parsers that read them from
//! text: the enums of the choice settings (each owning its words), request
//! limits, allow lists, log targets, bind addresses and the application
//! spec. Parsing here is pure, except that user and group names are looked
//! up in the system's user database; nothing here binds, opens or imports.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use super::ConfigError;

/// The words a choice setting accepts, as its enum names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words {
    /// One word per value, in the enum's order: what `--help` lists and
    /// the command line accepts.
    pub values: &'static [&'static str],
    /// Older spellings a config file may still use for some values
    /// (`proxy_protocol = true`); the command line does not take them.
    pub aliases: &'static [&'static str],
}

impl Words {
    /// Whether `word` names a value, in any case, aliases included.
    pub fn accepts(&self, word: &str) -> bool {
        self.values.iter().chain(self.aliases).any(|w| w.eq_ignore_ascii_case(word))
    }

    /// The values' words as a sentence lists them: `off, v1, v2 or auto`.
    pub fn listed(&self) -> String {
        match self.values.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// An enum whose values are named by words: the settings table, clap and
/// the config file all read a choice setting's words from its enum, so they
/// are written once.
pub trait Choice: Copy + Sized + 'static {
    /// The words of the values, and any aliases.
    const WORDS: Words;

    /// The value `word` names, in any case, aliases included.
    fn from_word(word: &str) -> Option<Self>;

    /// The word that names this value (never an alias).
    fn word(self) -> &'static str;
}

/// Define an enum and its [`Choice`] words together: `Variant = "word"`, or
/// `Variant = "word" | "alias"` for older spellings a config file may use.
macro_rules! choice_enum {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $word:literal $(| $alias:literal)*,)+
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl Choice for $name {
            const WORDS: Words = Words { values: &[$($word),+], aliases: &[$($($alias,)*)+] };

            fn from_word(word: &str) -> Option<Self> {
                $(
                    if word.eq_ignore_ascii_case($word) $(|| word.eq_ignore_ascii_case($alias))* {
                        return Some($name::$variant);
                    }
                )+
                None
            }

            fn word(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }
    };
}

choice_enum! {
    /// How `--reload` notices that a watched file changed.
    pub enum ReloadEngine {
        /// inotify where the kernel allows it, else polling.
        Auto = "auto",
        /// Every watched file's time of change, once a second.
        Poll = "poll",
        /// The kernel's inotify events.
        Inotify = "inotify",
    }
}

choice_enum! {
    /// The protocol the listeners speak.
    pub enum Protocol {
        /// HTTP/1.0 and HTTP/1.1.
        Http = "http",
        /// The uwsgi binary protocol of nginx's `uwsgi_pass`.
        Uwsgi = "uwsgi",
    }
}

choice_enum! {
    /// The PROXY protocol header rwsgi expects (HAProxy's v1 text, v2 binary).
    /// `false` and `true` are Gunicorn's older boolean form of the setting.
    pub enum ProxyProtocol {
        /// No header: connections start with the request.
        Off = "off" | "false",
        /// The v1 header, a line of text.
        V1 = "v1",
        /// The v2 header, binary.
        V2 = "v2",
        /// Either version, told apart by the first bytes.
        Auto = "auto" | "true",
    }
}

choice_enum! {
    /// Gunicorn's worker classes that rwsgi runs, by name, dotted path or
    /// egg URI: its one worker serves both (`--threads` sets the threads).
    pub enum WorkerClass {
        /// Requests one at a time (`--threads 1`), or on threads when
        /// `--threads` is more than 1, as Gunicorn's rule has it.
        Sync = "sync" | "gunicorn.workers.sync.SyncWorker" | "egg:gunicorn#sync",
        /// Requests on `--threads` threads.
        Gthread = "gthread" | "gunicorn.workers.gthread.ThreadWorker" | "egg:gunicorn#gthread",
    }
}

choice_enum! {
    /// What to do with request header names that contain `_`.
    pub enum HeaderMap {
        /// Leave such headers out of the environ.
        Drop = "drop",
        /// Answer the request with 400.
        Refuse = "refuse",
        /// Pass them on, colliding with dashed names in the environ.
        Dangerous = "dangerous",
    }
}

choice_enum! {
    /// The least severe error log level written, by Gunicorn's names.
    pub enum LogLevel {
        /// Everything, debugging detail included.
        Debug = "debug",
        /// What the server does in normal operation, and anything worse.
        Info = "info",
        /// Problems rwsgi works around, and errors.
        Warning = "warning",
        /// Errors only.
        Error = "error",
        /// Gunicorn's most severe level; `log` has none above errors, so
        /// errors only.
        Critical = "critical",
    }
}

impl LogLevel {
    /// The `log` filter that writes this level and more severe ones.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Warning => log::LevelFilter::Warn,
            // `critical` has no level of its own in `log`; errors are the
            // least that is written then.
            LogLevel::Error | LogLevel::Critical => log::LevelFilter::Error,
        }
    }
}

choice_enum! {
    /// A syslog facility, by the names Gunicorn accepts.
    pub enum Facility {
        /// Security and authorization messages.
        Auth = "auth" | "security",
        /// Private security and authorization messages.
        Authpriv = "authpriv",
        /// The clock daemon.
        Cron = "cron",
        /// System daemons.
        Daemon = "daemon",
        /// The FTP daemon.
        Ftp = "ftp",
        /// Kernel messages.
        Kern = "kern",
        /// The printing subsystem.
        Lpr = "lpr",
        /// The mail subsystem.
        Mail = "mail",
        /// Network news.
        News = "news",
        /// The syslog daemon itself.
        Syslog = "syslog",
        /// User-level messages: the default.
        User = "user",
        /// UUCP.
        Uucp = "uucp",
        /// Local use 0.
        Local0 = "local0",
        /// Local use 1.
        Local1 = "local1",
        /// Local use 2.
        Local2 = "local2",
        /// Local use 3.
        Local3 = "local3",
        /// Local use 4.
        Local4 = "local4",
        /// Local use 5.
        Local5 = "local5",
        /// Local use 6.
        Local6 = "local6",
        /// Local use 7.
        Local7 = "local7",
    }
}

impl Facility {
    /// The facility's number (RFC 5424 §6.2.1).
    pub fn code(self) -> u8 {
        use Facility::*;
        match self {
            Kern => 0,
            User => 1,
            Mail => 2,
            Daemon => 3,
            Auth => 4,
            Syslog => 5,
            Lpr => 6,
            News => 7,
            Uucp => 8,
            Cron => 9,
            Authpriv => 10,
            Ftp => 11,
            Local0 => 16,
            Local1 => 17,
            Local2 => 18,
            Local3 => 19,
            Local4 => 20,
            Local5 => 21,
            Local6 => 22,
            Local7 => 23,
        }
    }
}

/// Where syslog messages go (`--log-syslog-to`), as Gunicorn reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogAddr {
    /// `udp://HOST[:PORT]`, port 514 by default.
    Udp(String, u16),
    /// `tcp://HOST[:PORT]`, port 514 by default.
    Tcp(String, u16),
    /// `unix://PATH`: a datagram socket, or a stream one when the
    /// daemon's socket is a stream (`#dgram` insists on datagrams).
    Unix(PathBuf, bool),
}

impl SyslogAddr {
    /// `udp://HOST[:PORT]`, `tcp://HOST[:PORT]` or `unix://PATH[#dgram]`.
    pub fn parse(text: &str) -> Result<SyslogAddr, ConfigError> {
        let invalid = || ConfigError(format!("syslog_addr: '{text}' is not udp://HOST[:PORT], tcp://HOST[:PORT] or unix://PATH"));
        if let Some(path) = text.strip_prefix("unix://") {
            let (path, kind) = path.split_once('#').unwrap_or((path, ""));
            return if path.is_empty() { Err(invalid()) } else { Ok(SyslogAddr::Unix(PathBuf::from(path), kind == "dgram")) };
        }
        let (udp, rest) = match (text.strip_prefix("udp://"), text.strip_prefix("tcp://")) {
            (Some(rest), _) => (true, rest),
            (_, Some(rest)) => (false, rest),
            _ => return Err(invalid()),
        };
        // `[v6]:port`, `host:port`, `host`, or nothing (localhost).
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(invalid)?;
                (host, after.strip_prefix(':'))
            }
            None => match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        let port = match port {
            None => 514,
            Some(p) => p.parse().map_err(|_| ConfigError(format!("syslog_addr: '{p}' is not a valid port number")))?,
        };
        let host = if host.is_empty() { "localhost".to_string() } else { host.to_ascii_lowercase() };
        Ok(if udp { SyslogAddr::Udp(host, port) } else { SyslogAddr::Tcp(host, port) })
    }
}

/// `--log-syslog`: the error log (and the access log) also go to syslog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syslog {
    /// Whether the logs go to syslog at all.
    pub enabled: bool,
    /// Where the messages go.
    pub addr: SyslogAddr,
    /// The facility they are sent with.
    pub facility: Facility,
    /// The name in their tag (`gunicorn.NAME.error`); the process name
    /// when unset.
    pub prefix: Option<String>,
    /// Access log lines go to syslog too.
    pub access: bool,
}

/// A configuration for Python's `logging` in the workers, by Gunicorn's
/// precedence: a dict, else a JSON file, else an ini file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PythonLogging<'a> {
    /// `logconfig_dict`.
    Dict(&'a toml::Table),
    /// `--log-config-json FILE`.
    Json(&'a std::path::Path),
    /// `--log-config FILE` (or a `--paste` ini with a `[loggers]` section).
    Ini(&'a std::path::Path),
}

/// Limits on the request head, with Gunicorn's names; 0 means unlimited
/// where Gunicorn allows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest request line in bytes (0: no limit); longer gets 414.
    pub request_line: usize,
    /// Most header fields in one request; more get 431.
    pub fields: usize,
    /// Largest header field in bytes, its line or lines counted with their
    /// CRLF (0: no limit of its own); larger gets 431.
    pub field_size: usize,
    /// Accept obs-fold (RFC 9112 §5.2) and replace it with a space, rather
    /// than refuse the request.
    pub permit_obsolete_folding: bool,
    /// Accept any token as a method, not only the conventional ones
    /// (uppercase, no `#`, 3 to 20 characters).
    pub permit_unconventional_method: bool,
    /// Upper-case the method of an accepted request.
    pub casefold_method: bool,
    /// Accept spaces and tabs between a header's name and its colon, and
    /// drop them (`--strip-header-spaces`), rather than refuse the request.
    pub strip_header_spaces: bool,
}

/// Peers allowed by an address list: anyone (`*`), or IPs and networks.
/// A peer without an IP (a unix socket) is always allowed: only processes
/// on this machine can reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList(pub(super) Option<Vec<ipnet::IpNet>>);

impl AllowList {
    /// Whether `peer` (`None` for a unix socket peer) is on the list.
    pub fn allows(&self, peer: Option<IpAddr>) -> bool {
        match (&self.0, peer) {
            (None, _) | (_, None) => true,
            (Some(nets), Some(ip)) => {
                // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    v4 => v4,
                };
                nets.iter().any(|n| n.contains(&ip))
            }
        }
    }
}

/// Where a log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// A file, opened for appending and reopened on USR1.
    File(PathBuf),
}

/// One `--bind` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindAddr {
    /// A TCP address, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
    /// A listening socket inherited as this file descriptor.
    Fd(i32),
}

/// `module:callable` or `module:factory(args)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    /// Dotted import path of the module.
    pub module: String,
    /// Dotted attribute path inside the module.
    pub attr: String,
    /// `Some(args)` when the attribute is a factory to call; `args` is the
    /// text between the parentheses, evaluated as Python literals.
    pub call: Option<String>,
}

/// A user name or uid: (uid, primary gid).
pub(super) fn lookup_user(name: &str) -> Result<(u32, u32), ConfigError> {
    let found = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(name),
    };
    match found {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        // A uid without a passwd entry is allowed; its gid is the same number.
        Ok(None) => name.parse::<u32>().map(|id| (id, id)).map_err(|_| ConfigError(format!("user: no user named '{name}'"))),
        Err(e) => Err(ConfigError(format!("user: cannot look up '{name}': {e}"))),
    }
}

/// A group name or gid.
pub(super) fn lookup_group(name: &str) -> Result<u32, ConfigError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(ConfigError(format!("group: no group named '{name}'"))),
        Err(e) => Err(ConfigError(format!("group: cannot look up '{name}': {e}"))),
    }
}

/// `*`, or comma-separated addresses and CIDR networks, for setting `name`.
pub(super) fn parse_networks(name: &str, text: &str) -> Result<AllowList, ConfigError> {
    let items: Vec<&str> = text.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    if items.contains(&"*") {
        return Ok(AllowList(None));
    }
    items
        .iter()
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError(format!("{name}: '{item}' is not an address or network")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|nets| AllowList(Some(nets)))
}

/// `0o022`, `022` (octal, as umask(1) writes it), `0x12` or decimal.
pub(super) fn parse_umask(text: &str) -> Result<u32, ConfigError> {
    let t = text.trim();
    let parsed = if let Some(oct) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        u32::from_str_radix(oct, 8)
    } else if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        u32::from_str_radix(&t[1..], 8)
    } else {
        t.parse()
    };
    parsed
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| ConfigError(format!("umask: '{text}' is not a mode between 0 and 0o777")))
}

/// `KEY=VALUE` for `--env`: a non-empty key, and no NUL anywhere (the
/// pair goes into the C environment).
pub(super) fn parse_env_pair(kv: &str) -> Result<(String, String), ConfigError> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => Ok((k.to_string(), v.to_string())),
        _ => Err(ConfigError(format!("env: '{kv}' is not KEY=VALUE"))),
    }
}

impl LogTarget {
    /// A log setting's text: `-` (or nothing) is stdout for the access log,
    /// stderr for the error log; anything else is a file path.
    pub(super) fn parse(text: &str, dash_is_stdout: bool) -> LogTarget {
        match (text, dash_is_stdout) {
            ("-" | "", true) => LogTarget::Stdout,
            ("-" | "", false) => LogTarget::Stderr,
            (path, _) => LogTarget::File(PathBuf::from(path)),
        }
    }
}

impl BindAddr {
    /// Parse `HOST`, `HOST:PORT`, `[V6]:PORT`, `unix:PATH`, `fd://N`.
    pub fn parse(text: &str) -> Result<BindAddr, ConfigError> {
        let bad = |why: &str| ConfigError(format!("bind: '{text}' {why}"));
        if let Some(path) = text.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("has no socket path"));
            }
            return Ok(BindAddr::Unix(PathBuf::from(path)));
        }
        if let Some(fd) = text.strip_prefix("fd://") {
            return fd.parse::<i32>().ok().filter(|fd| *fd >= 0).map(BindAddr::Fd).ok_or_else(|| bad("is not fd://N"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("has no closing ']'"))?;
            match after {
                "" => (host, "8000"),
                _ => (host, after.strip_prefix(':').ok_or_else(|| bad("needs ':' before the port"))?),
            }
        } else {
            match text.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return Err(bad("is an IPv6 address: write it as [ADDR]:PORT")),
                Some((h, p)) => (h, p),
                None => (text, "8000"),
            }
        };
        let port: u16 = port.parse().map_err(|_| bad("has an invalid port"))?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot be resolved: {e}")))?
            .next()
            .ok_or_else(|| bad("resolves to no address"))?;
        Ok(BindAddr::Tcp(addr))
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::Tcp(a) => write!(f, "http://{a}"),
            BindAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            BindAddr::Fd(n) => write!(f, "fd://{n}"),
        }
    }
}

impl AppSpec {
    /// Parse `module:attr`, `module:factory()` or `module:factory(args)`.
    /// A bare `module` means `module:application`, as in Gunicorn.
    pub fn parse(text: &str) -> Result<AppSpec, ConfigError> {
        let bad = |why: &str| ConfigError(format!("application '{text}': {why}"));
        let (module, rest) = text.split_once(':').unwrap_or((text, "application"));
        let is_dotted_name = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|part| {
                    let mut chars = part.chars();
                    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
                        && chars.all(|c| c.is_alphanumeric() || c == '_')
                })
        };
        if !is_dotted_name(module) {
            return Err(bad("the module must be a dotted Python name"));
        }
        let rest = rest.trim();
        let (attr, call) = match rest.split_once('(') {
            Some((attr, args)) => {
                let args = args.strip_suffix(')').ok_or_else(|| bad("the factory call has no closing ')'"))?;
                (attr.trim(), Some(args.to_string()))
            }
            None => (rest, None),
        };
        if !is_dotted_name(attr) {
            return Err(bad("the callable must be a Python name"));
        }
        Ok(AppSpec { module: module.into(), attr: attr.into(), call })
    }
}

/// Where the application comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppSource {
    /// Imported from a module (`MODULE:CALLABLE`).
    Import(AppSpec),
    /// Loaded by PasteDeploy from an ini file (`--paste`).
    Paste(PasteApp),
}

/// `--paste FILE[#NAME]` and its `--paste-global` values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasteApp {
    /// The ini file, absolute (made so before `--chdir`, as in Gunicorn).
    pub file: PathBuf,
    /// The app section after `#`; PasteDeploy's `main` when `None`.
    pub name: Option<String>,
    /// `--paste-global KEY=VALUE`: the ini's global configuration.
    pub global_conf: Vec<(String, String)>,
}

impl PasteApp {
    /// PasteDeploy's URI for the app: `config:/abs/app.ini#name`.
    pub fn uri(&self) -> String {
        let name = self.name.as_deref().map(|n| format!("#{n}")).unwrap_or_default();
        format!("config:{}{name}", self.file.display())
    }

    /// Whether the ini file configures Python's logging (a `[loggers]`
    /// section): Gunicorn then reads it as `--log-config` too.
    pub fn has_logging_config(&self) -> bool {
        std::fs::read_to_string(&self.file).is_ok_and(|text| text.lines().any(|l| l.trim() == "[loggers]"))
    }
}

/// A `--paste-global` value: `KEY=VALUE`, where `\=` is an `=` of the key or
/// the value, as Gunicorn splits it (at the first unescaped `=`).
pub(super) fn parse_paste_global(kv: &str) -> Result<(String, String), ConfigError> {
    let split = (0..kv.len()).find(|&i| kv.as_bytes()[i] == b'=' && (i == 0 || kv.as_bytes()[i - 1] != b'\\'));
    match split {
        Some(i) => Ok((kv[..i].replace("\\=", "="), kv[i + 1..].replace("\\=", "="))),
        None => Err(ConfigError(format!("raw_paste_global_conf: '{kv}' is not KEY=VALUE"))),
    }
}

impl fmt::Display for AppSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppSource::Import(spec) => spec.fmt(f),
            AppSource::Paste(paste) => write!(f, "{}", paste.uri()),
        }
    }
}

impl fmt::Display for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.attr)?;
        if let Some(args) = &self.call {
            write!(f, "({args})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word of `T` names a distinct value whose word it is, in any
    /// case; aliases name values too; other words name none.
    fn words_round_trip<T: Choice + PartialEq + fmt::Debug>() {
        let values: Vec<T> = T::WORDS.values.iter().map(|w| T::from_word(w).expect(w)).collect();
        for (i, (word, value)) in T::WORDS.values.iter().zip(&values).enumerate() {
            assert_eq!(value.word(), *word);
            assert_eq!(T::from_word(&word.to_ascii_uppercase()), Some(*value));
            assert!(!values[..i].contains(value), "{word} names a value twice");
        }
        for alias in T::WORDS.aliases {
            let value = T::from_word(alias).expect(alias);
            assert!(values.contains(&value));
            assert_ne!(value.word(), *alias, "an alias is not a value's own word");
        }
        assert_eq!(T::from_word("no-such-word"), None);
        assert_eq!(T::from_word(""), None);
    }

    #[test]
    fn choice_words_round_trip() {
        words_round_trip::<Protocol>();
        words_round_trip::<ProxyProtocol>();
        words_round_trip::<HeaderMap>();
        words_round_trip::<LogLevel>();
    }

    #[test]
    fn choice_words_are_gunicorns() {
        assert_eq!(Protocol::WORDS.values, ["http", "uwsgi"]);
        assert_eq!(ProxyProtocol::WORDS.values, ["off", "v1", "v2", "auto"]);
        assert_eq!(HeaderMap::WORDS.values, ["drop", "refuse", "dangerous"]);
        assert_eq!(LogLevel::WORDS.values, ["debug", "info", "warning", "error", "critical"]);
        // Gunicorn's boolean `proxy_protocol`, still read from config files.
        assert_eq!(ProxyProtocol::from_word("true"), Some(ProxyProtocol::Auto));
        assert_eq!(ProxyProtocol::from_word("False"), Some(ProxyProtocol::Off));
        assert_eq!(LogLevel::from_word("CRITICAL").map(LogLevel::filter), Some(log::LevelFilter::Error));
        assert!(Protocol::WORDS.aliases.is_empty() && LogLevel::WORDS.aliases.is_empty());
    }

    #[test]
    fn words_listed_as_a_sentence() {
        assert_eq!(ProxyProtocol::WORDS.listed(), "off, v1, v2 or auto");
        assert_eq!(Protocol::WORDS.listed(), "http or uwsgi");
        assert!(ProxyProtocol::WORDS.accepts("TRUE") && !Protocol::WORDS.accepts("true"));
    }

    #[test]
    fn umask_forms() {
        assert_eq!(parse_umask("0o022"), Ok(0o22));
        assert_eq!(parse_umask("022"), Ok(0o22));
        assert_eq!(parse_umask("18"), Ok(18));
        assert_eq!(parse_umask("0"), Ok(0));
        assert!(parse_umask("0o1000").is_err());
        assert!(parse_umask("rw").is_err());
    }

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env_pair("A="), Ok(("A".into(), String::new())));
        for bad in ["NOEQUALS", "=v", "A\0=v", "A=v\0"] {
            assert_eq!(parse_env_pair(bad).unwrap_err().0, format!("env: '{bad}' is not KEY=VALUE"));
        }
    }

    #[test]
    fn bind_forms() {
        assert_eq!(BindAddr::parse("unix:/run/a.sock").unwrap(), BindAddr::Unix("/run/a.sock".into()));
        assert_eq!(BindAddr::parse("fd://3").unwrap(), BindAddr::Fd(3));
        assert_eq!(BindAddr::parse("[::1]:80").unwrap(), BindAddr::Tcp("[::1]:80".parse().unwrap()));
        assert_eq!(BindAddr::parse("127.0.0.1").unwrap(), BindAddr::Tcp("127.0.0.1:8000".parse().unwrap()));
        assert_eq!(BindAddr::parse(":9000").unwrap(), BindAddr::Tcp("0.0.0.0:9000".parse().unwrap()));
        assert!(BindAddr::parse("::1:80").is_err());
        assert!(BindAddr::parse("unix:").is_err());
    }

    #[test]
    fn app_forms() {
        let a = AppSpec::parse("pkg.mod:app").unwrap();
        assert_eq!((a.module.as_str(), a.attr.as_str(), a.call), ("pkg.mod", "app", None));
        let a = AppSpec::parse("m:create_app('x', debug=True)").unwrap();
        assert_eq!(a.call.as_deref(), Some("'x', debug=True"));
        assert_eq!(AppSpec::parse("m:f()").unwrap().call.as_deref(), Some(""));
        assert_eq!(AppSpec::parse("myproject.wsgi").unwrap().attr, "application");
        assert!(AppSpec::parse("m:f(").is_err());
        assert!(AppSpec::parse(":app").is_err());
    }
}
