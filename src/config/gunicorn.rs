//! Gunicorn's own names: every setting of Gunicorn 27 (its
//! `gunicorn.config.KNOWN_SETTINGS`, hooks included) with what rwsgi does
//! with it, and its server hooks. A Gunicorn config file is read knowing
//! which of its names are settings rwsgi does not have (said once, and
//! ignored) and which are plain variables of the file (ignored, as
//! Gunicorn ignores them). The README's migration table is rendered from
//! [`SETTINGS`], and a unit test holds it to rwsgi's own settings table.

/// What rwsgi does with one of Gunicorn's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// rwsgi has it, with Gunicorn's meaning.
    Same,
    /// rwsgi has it; it differs as said.
    Differs(&'static str),
    /// rwsgi accepts it, and it has no effect, for the reason said.
    NoEffect(&'static str),
    /// A server hook rwsgi runs: where, when, and how it differs.
    Hook(&'static str),
    /// rwsgi does not have it: what to do instead.
    Unsupported(&'static str),
    /// It belongs to what Gunicorn serves besides WSGI over HTTP/1.x (ASGI,
    /// HTTP/2, its dirty arbiters).
    NotWsgi(&'static str),
}

impl Support {
    /// Whether rwsgi accepts the setting (it is in rwsgi's settings table).
    pub fn accepted(self) -> bool {
        matches!(self, Support::Same | Support::Differs(_) | Support::NoEffect(_))
    }
}

/// One of Gunicorn's settings.
#[derive(Clone, Copy, Debug)]
pub struct GunicornSetting {
    /// Its name (the config file's).
    pub name: &'static str,
    /// Its command-line flags, as Gunicorn spells them; "" for none.
    pub flags: &'static str,
    /// What rwsgi does with it.
    pub support: Support,
}

const fn g(name: &'static str, flags: &'static str, support: Support) -> GunicornSetting {
    GunicornSetting { name, flags, support }
}

use Support::{Differs, Hook, NoEffect, NotWsgi, Same, Unsupported};

const TLS: Support = Unsupported("terminate TLS in nginx, HAProxy or the load balancer");
const HTTP2: Support = NotWsgi("rwsgi speaks HTTP/1.0 and 1.1; HTTP/2 ends at the front end");
const ASGI: Support = NotWsgi("for Gunicorn's ASGI worker");
const DIRTY: Support = NotWsgi("Gunicorn's dirty arbiters (a separate pool for long tasks) have no counterpart: use a task queue");

/// Gunicorn 27's settings, in its documentation's order.
pub static SETTINGS: &[GunicornSetting] = &[
    g("config", "-c, --config", Differs("also a TOML file (ending in `.toml`); a Python file runs in a short-lived process of its own, never in the master")),
    g("wsgi_app", "", Same),
    g("bind", "-b, --bind", Same),
    g("backlog", "--backlog", Same),
    g("workers", "-w, --workers", Same),
    g("worker_class", "-k, --worker-class", Differs("`sync` and `gthread` only (by name, dotted path or egg URI); any other class is refused at start")),
    g("threads", "--threads", Same),
    g("worker_connections", "--worker-connections", Differs("bounds every worker's connections, idle keep-alive ones included (Gunicorn: async and gthread workers only)")),
    g("max_requests", "--max-requests", Same),
    g("max_requests_jitter", "--max-requests-jitter", Same),
    g("timeout", "-t, --timeout", Differs("also the longest wait for a request head and for each read or write; the stuck worker's Python stack is logged before it is killed")),
    g("graceful_timeout", "--graceful-timeout", Same),
    g("keepalive", "--keep-alive", Differs("every worker keeps connections alive (Gunicorn's sync worker closes after each response); 0 turns it off")),
    g("limit_request_line", "--limit-request-line", Same),
    g("limit_request_fields", "--limit-request-fields", Same),
    g("limit_request_field_size", "--limit-request-field_size", Same),
    g("reload", "--reload", Differs("the master watches the files the workers imported and reloads as HUP does (new workers first), so a broken edit keeps the old workers serving; Gunicorn's workers restart themselves")),
    g("reload_engine", "--reload-engine", Differs("`inotify` needs no Python package")),
    g("reload_extra_files", "--reload-extra-file", Same),
    g("spew", "--spew", Differs("traces each worker's main thread; the master runs no Python")),
    g("check_config", "--check-config", Same),
    g("print_config", "--print-config", Differs("prints TOML that `-c` reads back")),
    g("preload_app", "--preload", Differs("imported in a zygote process the workers are forked from, never in the master: HUP loads new code")),
    g("sendfile", "--no-sendfile", Same),
    g("reuse_port", "--reuse-port", Same),
    g("chdir", "--chdir", Same),
    g("daemon", "-D, --daemon", Same),
    g("raw_env", "-e, --env", Same),
    g("pidfile", "-p, --pid", Same),
    g("worker_tmp_dir", "--worker-tmp-dir", NoEffect("heartbeats are in shared memory: no file is written")),
    g("user", "-u, --user", Same),
    g("group", "-g, --group", Differs("started as root, the workers keep only this group (Gunicorn leaves them the master's supplementary groups, root's included)")),
    g("umask", "-m, --umask", Same),
    g("initgroups", "--initgroups", Differs("the workers' primary group is `--group` too (Gunicorn leaves the master's)")),
    g("tmp_upload_dir", "", NoEffect("bodies are streamed to the application (Gunicorn does not use it either)")),
    g("secure_scheme_headers", "", Differs("names match in any case (Gunicorn's keys must be upper-case)")),
    g("forwarded_allow_ips", "--forwarded-allow-ips", Differs("an IPv4 client on an IPv6 socket (`::ffff:a.b.c.d`) matches its IPv4 entry")),
    g("accesslog", "--access-logfile", Same),
    g("disable_redirect_access_to_syslog", "--disable-redirect-access-to-syslog", Same),
    g("access_log_format", "--access-logformat", Differs("what clients control is escaped as Apache escapes it, past ASCII included")),
    g("errorlog", "--error-logfile, --log-file", Same),
    g("loglevel", "--log-level", Same),
    g("capture_output", "--capture-output", Same),
    g("logger_class", "--logger-class", Differs("Gunicorn's default only: rwsgi's own logs are not Python's")),
    g("logconfig", "--log-config", Differs("configures Python's logging in the workers (the app's loggers, `gunicorn.error`, `gunicorn.access`); rwsgi's own lines keep to `--error-logfile` and `--access-logfile`")),
    g("logconfig_dict", "", Differs("as `--log-config`; its values are data, so classes are named by dotted path")),
    g("logconfig_json", "--log-config-json", Differs("as `--log-config`; a missing file is an error (Gunicorn ignores it)")),
    g("syslog_addr", "--log-syslog-to", Same),
    g("syslog", "--log-syslog", Same),
    g("syslog_prefix", "--log-syslog-prefix", Same),
    g("syslog_facility", "--log-syslog-facility", Same),
    g("enable_stdio_inheritance", "-R, --enable-stdio-inheritance", Same),
    g("statsd_host", "--statsd-host", Same),
    g("dogstatsd_tags", "--dogstatsd-tags", Same),
    g("statsd_prefix", "--statsd-prefix", Same),
    g("enable_backlog_metric", "--enable-backlog-metric", Same),
    g("proc_name", "-n, --name", Differs("process titles read `rwsgi: worker [NAME]`")),
    g("default_proc_name", "", Same),
    g("pythonpath", "--pythonpath", Same),
    g("paste", "--paste, --paster", Differs("also from a config file or `GUNICORN_CMD_ARGS`; a `MODULE:CALLABLE` given as well is named in a warning")),
    g("on_starting", "", Hook("hook process, before the sockets are bound and the pidfile written")),
    g("on_reload", "", Hook("hook process, on HUP once the new settings are read, before the new workers are forked")),
    g("when_ready", "", Hook("hook process, once the sockets are bound, before the first fork")),
    g("pre_fork", "", Hook("hook process; the fork waits for it (`worker.pid` is `\"[booting]\"`, ages count from 1)")),
    g("post_fork", "", Hook("worker, once CPython has started (after `--user` and `-e`), before the app is imported (with `--preload`, after); raising fails the worker's boot")),
    g("post_worker_init", "", Hook("worker, once the app is imported; raising fails the worker's boot")),
    g("worker_int", "", Hook("worker, on SIGINT or SIGQUIT (a fast stop), then worker_exit; once per worker (Gunicorn's can run twice on a Ctrl-C)")),
    g("worker_abort", "", Hook("worker, on the master's SIGABRT to a stuck worker, after its Python stack is logged, once Python gets to run (a worker stuck outside Python is killed without it)")),
    g("pre_exec", "", Hook("hook process, on USR2 before the new master starts (Gunicorn: in the forked child that becomes it)")),
    g("pre_request", "", Hook("worker, on the request's thread; raising answers 500 without calling the app")),
    g("post_request", "", Hook("worker, once the response is sent and logged; `resp.status` is the status sent, 500 when the app raised (Gunicorn: `None`)")),
    g("child_exit", "", Hook("hook process, for every worker that ends, however it ends (Gunicorn skips one that failed to boot, and those killed at the end of a stop)")),
    g("worker_exit", "", Hook("worker, as it ends by itself or on a signal it handles, after a failed boot too (not after SIGKILL)")),
    g("nworkers_changed", "", Hook("hook process: `(N, None)` at start, then on TTIN, TTOU and HUP")),
    g("on_exit", "", Hook("hook process, last, after every child_exit")),
    g("ssl_context", "", TLS),
    g("proxy_protocol", "--proxy-protocol", Differs("also takes a mode: `v1`, `v2` or `auto` (the flag alone)")),
    g("proxy_allow_ips", "--proxy-allow-from", Same),
    g("protocol", "--protocol", Same),
    g("uwsgi_allow_ips", "--uwsgi-allow-from", Same),
    g("keyfile", "--keyfile", TLS),
    g("certfile", "--certfile", TLS),
    g("ssl_version", "--ssl-version", TLS),
    g("cert_reqs", "--cert-reqs", TLS),
    g("ca_certs", "--ca-certs", TLS),
    g("suppress_ragged_eofs", "--suppress-ragged-eofs", TLS),
    g("do_handshake_on_connect", "--do-handshake-on-connect", TLS),
    g("ciphers", "--ciphers", TLS),
    g("http_protocols", "--http-protocols", HTTP2),
    g("http2_cleartext", "--http2-cleartext", HTTP2),
    g("http2_max_concurrent_streams", "--http2-max-concurrent-streams", HTTP2),
    g("http2_initial_window_size", "--http2-initial-window-size", HTTP2),
    g("http2_max_frame_size", "--http2-max-frame-size", HTTP2),
    g("http2_max_header_list_size", "--http2-max-header-list-size", HTTP2),
    g("raw_paste_global_conf", "--paste-global", Same),
    g("permit_obsolete_folding", "--permit-obsolete-folding", Same),
    g("strip_header_spaces", "--strip-header-spaces", Same),
    g("permit_unconventional_http_method", "--permit-unconventional-http-method", Same),
    g("permit_unconventional_http_version", "--permit-unconventional-http-version", NoEffect("rwsgi speaks HTTP/1.0 and 1.1 only; other versions get 505")),
    g("casefold_http_method", "--casefold-http-method", Same),
    g("forwarder_headers", "--forwarder-headers", Differs("names match in any case; a SCRIPT_NAME the path does not start with leaves PATH_INFO whole (Gunicorn answers 500)")),
    g("header_map", "--header-map", Same),
    g("asgi_loop", "--asgi-loop", ASGI),
    g("asgi_lifespan", "--asgi-lifespan", ASGI),
    g("asgi_disconnect_grace_period", "--asgi-disconnect-grace-period", ASGI),
    g("websocket_max_message_size", "--websocket-max-message-size", ASGI),
    g("http_parser", "--http-parser", NoEffect("rwsgi has one parser of its own")),
    g("root_path", "--root-path", NotWsgi("ASGI only, in Gunicorn too: a WSGI application gets SCRIPT_NAME")),
    g("dirty_apps", "--dirty-app", DIRTY),
    g("dirty_workers", "--dirty-workers", DIRTY),
    g("dirty_timeout", "--dirty-timeout", DIRTY),
    g("dirty_threads", "--dirty-threads", DIRTY),
    g("dirty_graceful_timeout", "--dirty-graceful-timeout", DIRTY),
    g("on_dirty_starting", "", DIRTY),
    g("dirty_post_fork", "", DIRTY),
    g("dirty_worker_init", "", DIRTY),
    g("dirty_worker_exit", "", DIRTY),
    g("control_socket", "--control-socket", Differs("off unless given (Gunicorn makes `$XDG_RUNTIME_DIR/gunicorn.ctl` by default); Gunicorn's protocol, so `gunicornc -s PATH` works, and `rwsgi ctl`")),
    g("control_socket_mode", "--control-socket-mode", Same),
    g("control_socket_disable", "--no-control-socket", Same),
];

/// Whether `name` is one of Gunicorn's settings.
pub fn is_setting(name: &str) -> bool {
    SETTINGS.iter().any(|s| s.name == name)
}

/// Gunicorn's server hooks, in the order its documentation lists them.
pub const HOOKS: &[&str] = &[
    "on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init",
    "worker_int", "worker_abort", "pre_exec", "pre_request", "post_request", "child_exit",
    "worker_exit", "nworkers_changed", "on_exit", "ssl_context",
];

/// The migration table in Markdown: every Gunicorn setting, its flags, and
/// what rwsgi does with it.
pub fn render_table() -> String {
    let mut out = String::from("| Gunicorn setting | flags | in rwsgi |\n|---|---|---|\n");
    for s in SETTINGS {
        let flags = if s.flags.is_empty() { "(config file)".to_string() } else { format!("`{}`", s.flags.replace(", ", "`, `")) };
        let support = match s.support {
            Same => "same".to_string(),
            Differs(how) => format!("differs: {how}"),
            NoEffect(why) => format!("accepted, no effect: {why}"),
            Hook(how) => format!("runs in the {how}"),
            Unsupported(instead) => format!("not supported: {instead}"),
            NotWsgi(why) => format!("not for WSGI: {why}"),
        };
        out.push_str(&format!("| `{}` | {flags} | {support} |\n", s.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::settings::{Cli, SETTINGS as RWSGI};
    use super::*;

    #[test]
    fn accepted_means_in_rwsgis_settings_table_with_gunicorns_flags() {
        for s in SETTINGS {
            let row = RWSGI.iter().find(|r| r.name == s.name);
            assert_eq!(row.is_some(), s.support.accepted(), "{}", s.name);
            let Some(row) = row else { continue };
            let mut flags: Vec<String> = Vec::new();
            if let Some(c) = row.short {
                flags.push(format!("-{c}"));
            }
            match row.cli {
                Cli::Flag(long) => flags.push(format!("--{long}")),
                Cli::Positional | Cli::FileOnly => {}
            }
            flags.extend(row.alias.map(|a| format!("--{a}")));
            assert_eq!(flags.join(", "), s.flags, "{}", s.name);
        }
    }

    #[test]
    fn names_are_unique_and_hooks_are_settings() {
        for (i, a) in SETTINGS.iter().enumerate() {
            assert!(SETTINGS[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
        assert!(HOOKS.iter().all(|h| is_setting(h)));
    }
}
