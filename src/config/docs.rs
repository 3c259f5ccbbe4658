//! Renders `man/rwsgi.1` and the annotated example `config/rwsgi.toml`
//! from the settings table, so neither can drift from the flags. Unit tests
//! fail when a checked-in copy is stale; `RWSGI_UPDATE_DOCS=1 cargo test
//! docs::` rewrites them.

use super::settings::{Cli, Kind, SETTINGS};

/// The whole man page in roff.
pub fn render() -> String {
    let mut out = format!(".TH RWSGI 1 \"\" \"rwsgi {}\" \"User Commands\"\n", env!("CARGO_PKG_VERSION"));
    out.push_str(NAME_TO_DESCRIPTION);
    out.push_str(&man_options());
    for part in [ENVIRONMENT, SIGNALS] {
        out.push_str(part);
    }
    out.push_str(&metrics_section());
    for part in [EXIT_STATUS, EXAMPLES, FILES, SEE_ALSO] {
        out.push_str(part);
    }
    out
}

/// What `--metrics-bind` shows at /metrics, from the table it is shown from.
fn metrics_section() -> String {
    let mut out = ".SH PROMETHEUS METRICS
What \\-\\-metrics\\-bind serves at /metrics. Counters include what \
        the workers that are gone had counted.\n"
        .to_string();
    for f in crate::master::METRIC_FAMILIES.iter() {
        out.push_str(&format!(".TP\n\\fB{}\\fR ({})\n{}\n", escape(f.name), f.kind, escape(f.help)));
    }
    out
}

/// One section per settings heading, one entry per flag (or config-file
/// key, for the settings that have no flag), from the table.
fn man_options() -> String {
    let mut out = String::new();
    let mut section = "";
    for s in SETTINGS.iter().filter(|s| s.cli != Cli::Positional) {
        if s.section != section {
            section = s.section;
            out.push_str(&format!(".SH {}\n", section.to_uppercase()));
        }
        let mut flag = String::new();
        if let Some(c) = s.short {
            flag.push_str(&format!("\\fB\\-{c}\\fR, "));
        }
        match s.long() {
            Some(long) => flag.push_str(&format!("\\fB\\-\\-{}\\fR", escape(long))),
            None => flag.push_str(&format!("\\fB{}\\fR (config file only)", escape(s.name))),
        }
        if !s.kind.is_switch() && s.long().is_some() {
            flag.push_str(&format!(" \\fI{}\\fR", s.meta));
        }
        out.push_str(&format!(".TP\n{flag}\n{}", escape(s.help)));
        out.push_str(&format!("\nConfig file key: \\fB{}\\fR.", escape(s.name)));
        if !s.default.is_empty() && !s.kind.is_switch() {
            out.push_str(&format!(" Default: \\fB{}\\fR.", escape(s.default)));
        }
        out.push('\n');
    }
    out
}

/// NAME, SYNOPSIS and DESCRIPTION.
const NAME_TO_DESCRIPTION: &str = ".SH NAME\nrwsgi \\- a pre-fork WSGI HTTP server for Python web applications\n\
    .SH SYNOPSIS\n.B rwsgi\n[\\fIOPTIONS\\fR] [\\fIAPP\\fR]\n\
    .SH DESCRIPTION\n\
    rwsgi serves a Python WSGI (PEP 3333) application over HTTP/1.1 (or the uwsgi protocol \
    behind nginx). A master process, which never runs Python, binds the sockets and \
    supervises the workers. Each generation of workers (at start, and at each HUP) is forked \
    from a zygote: a process the master forks, which starts CPython once, imports the \
    standard library modules a Gunicorn worker has loaded, loads the config file's \
    worker-side hooks and, with \\-\\-preload, the application, so the workers share its \
    memory. Each worker is forked through a process that exits at once, so that it is the \
    master's child (the master is a subreaper), which reaps it and watches it directly. \
    Each worker imports the application (unless preloaded) and serves requests one at a \
    time (or N at once with \\-\\-threads N), keeping idle keep-alive connections parked. \
    Server hooks that Gunicorn runs in its master run in a hook process the master starts. \
    \\fBrwsgi ctl \\-s\\fR \\fIPATH COMMAND\\fR and \\fBrwsgi top \\-s\\fR \\fIPATH\\fR talk to a \
    server started with \\-\\-control\\-socket \\fIPATH\\fR. \
    Its command line follows Gunicorn's.\n\
    .PP\nAPP is \\fIMODULE\\fR:\\fICALLABLE\\fR, or \\fIMODULE\\fR:\\fIFACTORY\\fR() to call \
    an application factory, e.g.\n.PP\n.RS\nrwsgi \\-w 4 get_started:hello_world\n.RE\n";

/// The environment variables rwsgi reads.
const ENVIRONMENT: &str = ".SH ENVIRONMENT\n\
    .TP\n\\fBRWSGI_CMD_ARGS\\fR, \\fBGUNICORN_CMD_ARGS\\fR\nExtra command-line arguments, applied \
    after the config file and before the real command line; RWSGI_CMD_ARGS after GUNICORN_CMD_ARGS, so \
    it wins.\n\
    .TP\n\\fBFORWARDED_ALLOW_IPS\\fR\nThe default for \\-\\-forwarded\\-allow\\-ips, as in Gunicorn.\n\
    .TP\n\\fBWEB_CONCURRENCY\\fR\nThe default number of workers.\n\
    .TP\n\\fBPORT\\fR\nWhen set, the default bind is 0.0.0.0:$PORT.\n\
    .TP\n\\fBVIRTUAL_ENV\\fR\nThe default for \\-\\-virtualenv.\n\
    .TP\n\\fBSCRIPT_NAME\\fR\nThe WSGI SCRIPT_NAME; stripped from the front of PATH_INFO when it matches.\n\
    .TP\n\\fBRWSGI_NO_ZYGOTE\\fR\nWhen set, the master forks each worker itself and each starts its own \
    CPython (no zygote, no \\-\\-preload): for comparisons.\n\
    .TP\n\\fBLISTEN_FDS\\fR, \\fBLISTEN_PID\\fR\nSockets passed by systemd socket activation (when \
    LISTEN_PID is rwsgi's pid): rwsgi serves them instead of binding \\-\\-bind, and keeps them across reloads.\n\
    .TP\n\\fBNOTIFY_SOCKET\\fR\nWhere rwsgi reports READY=1 once its first workers have booted, RELOADING=1 \
    and READY=1 around a reload, and STOPPING=1 (systemd's Type=notify).\n";

/// What each signal to the master does.
const SIGNALS: &str = ".SH SIGNALS\n\
    .TP\n\\fBTERM\\fR\nGraceful stop: workers finish the requests in hand, then exit; after \
    \\-\\-graceful\\-timeout they are killed. Idle keep\\-alive connections stay open until \
    3 s before that (a request sent on one meanwhile is answered with Connection: close), and \
    the sockets stop listening once the workers have taken what was queued on them.\n\
    .TP\n\\fBINT\\fR, \\fBQUIT\\fR\nFast stop.\n\
    .TP\n\\fBHUP\\fR\nReload: read the settings again, boot new workers, and stop the old ones \
    once the new ones have booted; if they cannot boot, the old ones keep serving.\n\
    .TP\n\\fBTTIN\\fR, \\fBTTOU\\fR\nOne worker more, one fewer (never fewer than one).\n\
    .TP\n\\fBUSR1\\fR\nReopen the log files.\n\
    .TP\n\\fBUSR2\\fR\nBinary upgrade: start a new master from the binary on disk with the \
    listening sockets; TERM the old one once the new one serves.\n\
    .TP\n\\fBWINCH\\fR\nWhen daemonized, stop all workers but keep the master.\n";

/// The master's exit statuses.
const EXIT_STATUS: &str = ".SH EXIT STATUS\n0 after a requested stop; 1 for a configuration or start-up error \
    (a setting's value, a config file); 2 for a command line that cannot be read; 3 when a worker \
    cannot boot; 4 when the application cannot be loaded. As in Gunicorn.\n";

/// Running rwsgi behind nginx, HAProxy and systemd.
const EXAMPLES: &str = ".SH EXAMPLES\n\
    Four workers on a unix socket, behind nginx over HTTP with keep-alive to the upstream \
    (\\fBproxy_pass http://unix:/run/rwsgi/app.sock;\\fR in an upstream with \\fBkeepalive\\fR); \
    \\-\\-keep\\-alive 75 outlasts nginx's 60 s keepalive_timeout, so an idle \
    connection is closed by nginx, not by rwsgi as nginx reuses it:\n\
    .PP\n.RS\nrwsgi \\-w 4 \\-\\-keep\\-alive 75 \\-b unix:/run/rwsgi/app.sock myproject.wsgi:application\n.RE\n\
    .PP\nThe same behind nginx over the uwsgi protocol (\\fBuwsgi_pass unix:/run/rwsgi/app.sock;\\fR \
    with \\fBinclude uwsgi_params;\\fR); the environ then takes REMOTE_ADDR, PATH_INFO, HTTPS and \
    the rest from nginx's variables:\n\
    .PP\n.RS\nrwsgi \\-w 4 \\-\\-protocol uwsgi \\-b unix:/run/rwsgi/app.sock myproject.wsgi:application\n.RE\n\
    .PP\nBehind HAProxy with \\fBsend\\-proxy\\-v2\\fR, so REMOTE_ADDR is the client's address \
    (\\-\\-keep\\-alive 75 outlasts HAProxy's keep-alive timeout):\n\
    .PP\n.RS\nrwsgi \\-\\-proxy\\-protocol v2 \\-\\-proxy\\-allow\\-from 10.0.0.5 \\-\\-keep\\-alive 75 \\-b 0.0.0.0:8000 app:app\n.RE\n\
    .PP\nComplete nginx site files and an HAProxy example are in \\fBconfig/nginx/\\fR and \
    \\fBconfig/haproxy/\\fR in the sources, and in \\fI/usr/share/doc/rwsgi/examples/\\fR once \
    the package is installed.\n\
    .PP\nUnder systemd, with the Debian or RPM package: one instance per application, configured by \
    \\fI/etc/rwsgi/\\fRNAME\\fI.toml\\fR, run as the \\fBrwsgi\\fR user. With the socket unit, \
    systemd listens on \\fI/run/rwsgi/myapp.sock\\fR and hands it to rwsgi, so the socket stays open \
    across restarts:\n\
    .PP\n.RS\n.nf\n\
    cp /etc/rwsgi/example.toml /etc/rwsgi/myapp.toml\n\
    editor /etc/rwsgi/myapp.toml     # wsgi_app, chdir, workers\n\
    systemctl enable \\-\\-now rwsgi@myapp.socket\n\
    systemctl reload rwsgi@myapp     # HUP: graceful reload\n\
    journalctl \\-u rwsgi@myapp       # the error log\n\
    .fi\n.RE\n\
    .PP\nWithout the socket unit, \\fBsystemctl enable \\-\\-now rwsgi@myapp\\fR makes rwsgi bind \
    the \\fBbind\\fR addresses of the config file itself. A unit of your own needs \\fBType=notify\\fR:\n\
    .PP\n.RS\n.nf\n\
    [Service]\n\
    Type=notify\n\
    NotifyAccess=all\n\
    ExecStart=/usr/bin/rwsgi \\-\\-config /etc/rwsgi/myapp.toml\n\
    ExecReload=/bin/kill \\-s HUP $MAINPID\n\
    KillMode=mixed\n\
    .fi\n.RE\n";

/// What the Debian and RPM packages install.
const FILES: &str = ".SH FILES\n\
    The Debian and RPM packages install:\n\
    .TP\n\\fI/usr/bin/rwsgi\\fR\nThe server.\n\
    .TP\n\\fI/etc/rwsgi/example.toml\\fR\nAn annotated config file with every setting at its default \
    (\\fBconfig/rwsgi.toml\\fR in the sources). Copy it to \\fI/etc/rwsgi/\\fRNAME\\fI.toml\\fR \
    to configure the instance NAME.\n\
    .TP\n\\fI/usr/lib/systemd/system/rwsgi@.service\\fR, \\fIrwsgi@.socket\\fR\nThe systemd units \
    of an instance: the server, run as the \\fBrwsgi\\fR user with \\fI/etc/rwsgi/\\fRNAME\\fI.toml\\fR, \
    and its optional socket, \\fI/run/rwsgi/\\fRNAME\\fI.sock\\fR.\n\
    .TP\n\\fI/usr/lib/systemd/system/rwsgi.service\\fR\nStarting, stopping, restarting or reloading it \
    does the same to every instance.\n\
    .TP\n\\fI/etc/init.d/rwsgi\\fR, \\fI/etc/default/rwsgi\\fR\nThe SysV init script (Debian) and its \
    settings: INSTANCES names the instances it runs, none by default. On RPM systems \
    \\fI/etc/rc.d/init.d/rwsgi\\fR and \\fI/etc/sysconfig/rwsgi\\fR.\n\
    .TP\n\\fI/run/rwsgi/\\fR\nPidfiles (NAME.pid, under SysV init) and unix sockets.\n\
    .TP\n\\fI/var/log/rwsgi/\\fR\nLog files: under SysV init each instance's error log goes to \
    NAME.log unless its config file sets \\fBerrorlog\\fR (under systemd, to the journal). \
    \\fI/etc/logrotate.d/rwsgi\\fR rotates them and sends USR1.\n";

/// Related manual pages.
const SEE_ALSO: &str = ".SH SEE ALSO\n\\fBgunicorn\\fR(1), \\fBnginx\\fR(8), \\fBsystemd.service\\fR(5), \\fBsystemd.socket\\fR(5), \\fBlogrotate\\fR(8)\n";

/// An annotated config file: every setting commented out at its default,
/// with its help text above it.
pub fn render_example_config() -> String {
    let mut out = String::from(
        "# rwsgi configuration file (TOML). Use it with: rwsgi -c rwsgi.toml\n\
         # Keys are the setting names; every key is optional and shown at its default.\n\
         # Precedence: defaults < this file < GUNICORN_CMD_ARGS < RWSGI_CMD_ARGS < the command line.\n\
         # `rwsgi --print-config` prints the settings in force in this same format.\n",
    );
    let mut section = "";
    for s in SETTINGS.iter().filter(|s| s.printed && !s.kind.is_switch()) {
        if s.section != section {
            section = s.section;
            out.push_str(&format!("\n# === {section} ===\n"));
        }
        out.push('\n');
        for line in wrap(s.help, 76) {
            out.push_str(&format!("# {line}\n"));
        }
        let flag = s.long().map(|l| format!(" (--{l})")).unwrap_or_default();
        let shown = s.example.unwrap_or(s.default);
        let value = match s.kind {
            Kind::Uint => shown.to_string(),
            Kind::List if shown.is_empty() => "[]".to_string(),
            Kind::List => format!("[{}]", toml::Value::String(shown.into())),
            Kind::Table => shown.to_string(),
            _ => toml::Value::String(shown.into()).to_string(),
        };
        out.push_str(&format!("#{} = {value}{}\n", s.name, if flag.is_empty() { String::new() } else { format!("  #{flag}") }));
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("starts with one line");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Escape text for roff: backslashes, leading dots and dashes.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_current(relative: &str, fresh: &str) {
        let path = format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("RWSGI_UPDATE_DOCS").is_some() {
            std::fs::write(&path, fresh).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(on_disk == fresh, "{relative} is stale: run `RWSGI_UPDATE_DOCS=1 cargo test docs::` and commit it");
    }

    /// The part of `relative` between the `begin` and `end` marker lines
    /// must be `fresh` (rewritten under `RWSGI_UPDATE_DOCS`).
    fn assert_section_current(relative: &str, begin: &str, end: &str, fresh: &str) {
        let path = format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let (Some(start), Some(stop)) = (text.find(begin), text.find(end)) else {
            panic!("{relative} has no {begin} ... {end} markers");
        };
        let start = start + begin.len() + 1;
        if std::env::var_os("RWSGI_UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{}{fresh}{}", &text[..start], &text[stop..])).unwrap();
            return;
        }
        assert!(&text[start..stop] == fresh, "{relative} is stale: run `RWSGI_UPDATE_DOCS=1 cargo test docs::` and commit it");
    }

    #[test]
    fn readme_migration_table_is_current() {
        let table = super::super::gunicorn::render_table();
        assert_section_current("README.md", "<!-- gunicorn-settings:begin -->", "<!-- gunicorn-settings:end -->", &table);
    }

    #[test]
    fn readme_lists_every_metric() {
        let readme = std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for f in crate::master::METRIC_FAMILIES.iter() {
            assert!(readme.contains(&format!("| `{}` | {} |", f.name, f.kind)), "README's metrics table lacks {}", f.name);
        }
    }

    #[test]
    fn man_page_is_current() {
        assert_current("man/rwsgi.1", &render());
    }

    #[test]
    fn example_config_is_current_and_loads() {
        let text = render_example_config();
        assert_current("config/rwsgi.toml", &text);
        // Uncommented, every line of the example is a valid setting.
        let live: String = text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.contains(" = ") && !l.starts_with(' '))
            .map(|l| format!("{}\n", l.split("  #").next().unwrap_or(l)))
            .collect();
        let values = super::super::values_from_toml(&live).unwrap();
        let expected = SETTINGS.iter().filter(|s| !s.kind.is_switch() && s.name != "config").count();
        assert_eq!(values.len(), expected, "{live}");
        super::super::Config::from_values(values).unwrap();
    }

    #[test]
    fn every_flag_is_in_the_man_page() {
        let page = render();
        for s in SETTINGS.iter().filter_map(|s| s.long()) {
            assert!(page.contains(&escape(s)), "{s}");
        }
    }
}
