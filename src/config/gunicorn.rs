//! Gunicorn's own names: every setting of Gunicorn 27 (its
//! `gunicorn.config.KNOWN_SETTINGS`) and its server hooks, so that a
//! Gunicorn config file is read knowing which of its names are settings
//! rwsgi does not have (said once, and ignored) and which are plain
//! variables of the file (ignored, as Gunicorn ignores them).

/// The names of Gunicorn 27's settings (`KNOWN_SETTINGS`), hooks included.
pub const SETTINGS: &[&str] = &[
    "access_log_format", "accesslog", "asgi_disconnect_grace_period", "asgi_lifespan", "asgi_loop",
    "backlog", "bind", "ca_certs", "capture_output", "casefold_http_method", "cert_reqs",
    "certfile", "chdir", "check_config", "child_exit", "ciphers", "config", "control_socket",
    "control_socket_disable", "control_socket_mode", "daemon", "default_proc_name", "dirty_apps",
    "dirty_graceful_timeout", "dirty_post_fork", "dirty_threads", "dirty_timeout",
    "dirty_worker_exit", "dirty_worker_init", "dirty_workers", "disable_redirect_access_to_syslog",
    "do_handshake_on_connect", "dogstatsd_tags", "enable_backlog_metric",
    "enable_stdio_inheritance", "errorlog", "forwarded_allow_ips", "forwarder_headers",
    "graceful_timeout", "group", "header_map", "http2_cleartext", "http2_initial_window_size",
    "http2_max_concurrent_streams", "http2_max_frame_size", "http2_max_header_list_size",
    "http_parser", "http_protocols", "initgroups", "keepalive", "keyfile",
    "limit_request_field_size", "limit_request_fields", "limit_request_line", "logconfig",
    "logconfig_dict", "logconfig_json", "logger_class", "loglevel", "max_requests",
    "max_requests_jitter", "nworkers_changed", "on_dirty_starting", "on_exit", "on_reload",
    "on_starting", "paste", "permit_obsolete_folding", "permit_unconventional_http_method",
    "permit_unconventional_http_version", "pidfile", "post_fork", "post_request",
    "post_worker_init", "pre_exec", "pre_fork", "pre_request", "preload_app", "print_config",
    "proc_name", "protocol", "proxy_allow_ips", "proxy_protocol", "pythonpath", "raw_env",
    "raw_paste_global_conf", "reload", "reload_engine", "reload_extra_files", "reuse_port",
    "root_path", "secure_scheme_headers", "sendfile", "spew", "ssl_context", "ssl_version",
    "statsd_host", "statsd_prefix", "strip_header_spaces", "suppress_ragged_eofs", "syslog",
    "syslog_addr", "syslog_facility", "syslog_prefix", "threads", "timeout", "tmp_upload_dir",
    "umask", "user", "uwsgi_allow_ips", "websocket_max_message_size", "when_ready", "worker_abort",
    "worker_class", "worker_connections", "worker_exit", "worker_int", "worker_tmp_dir", "workers",
    "wsgi_app",
];

/// Gunicorn's server hooks, in the order its documentation lists them.
pub const HOOKS: &[&str] = &[
    "on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init",
    "worker_int", "worker_abort", "pre_exec", "pre_request", "post_request", "child_exit",
    "worker_exit", "nworkers_changed", "on_exit", "ssl_context",
];
