//! Renders `man/rwsgi.1` from the settings table, so the man page cannot
//! drift from the flags. A unit test fails when the checked-in page is
//! stale; `RWSGI_UPDATE_MAN=1 cargo test man_page` rewrites it.

use super::settings::{Kind, SETTINGS};

/// The whole man page in roff.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str(&format!(
        ".TH RWSGI 1 \"\" \"rwsgi {}\" \"User Commands\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(
        ".SH NAME\nrwsgi \\- a pre-fork WSGI HTTP server for Python web applications\n\
         .SH SYNOPSIS\n.B rwsgi\n[\\fIOPTIONS\\fR] [\\fIAPP\\fR]\n\
         .SH DESCRIPTION\n\
         rwsgi serves a Python WSGI (PEP 3333) application over HTTP/1.1. A master process binds \
         the sockets and forks worker processes; each worker embeds CPython, imports the \
         application and serves requests one at a time, keeping idle keep-alive connections \
         parked. Its command line follows Gunicorn's.\n\
         .PP\nAPP is \\fIMODULE\\fR:\\fICALLABLE\\fR, or \\fIMODULE\\fR:\\fIFACTORY\\fR() to call \
         an application factory, e.g.\n.PP\n.RS\nrwsgi \\-w 4 get_started:hello_world\n.RE\n",
    );
    let mut section = "";
    for s in SETTINGS.iter().filter(|s| s.long.is_some()) {
        if s.section != section {
            section = s.section;
            out.push_str(&format!(".SH {}\n", section.to_uppercase()));
        }
        let mut flag = String::new();
        if let Some(c) = s.short {
            flag.push_str(&format!("\\fB\\-{c}\\fR, "));
        }
        flag.push_str(&format!("\\fB\\-\\-{}\\fR", escape(s.long.unwrap_or_default())));
        if s.kind != Kind::Flag {
            flag.push_str(&format!(" \\fI{}\\fR", s.meta));
        }
        out.push_str(&format!(".TP\n{flag}\n{}", escape(s.help)));
        out.push_str(&format!("\nConfig file key: \\fB{}\\fR.", escape(s.name)));
        if !s.default.is_empty() && s.kind != Kind::Flag {
            out.push_str(&format!(" Default: \\fB{}\\fR.", escape(s.default)));
        }
        out.push('\n');
    }
    out.push_str(
        ".SH ENVIRONMENT\n\
         .TP\n\\fBRWSGI_CMD_ARGS\\fR\nExtra command-line arguments, applied after the config file \
         and before the real command line.\n\
         .TP\n\\fBWEB_CONCURRENCY\\fR\nThe default number of workers.\n\
         .TP\n\\fBPORT\\fR\nWhen set, the default bind is 0.0.0.0:$PORT.\n\
         .TP\n\\fBVIRTUAL_ENV\\fR\nThe default for \\-\\-virtualenv.\n\
         .TP\n\\fBSCRIPT_NAME\\fR\nThe WSGI SCRIPT_NAME; stripped from the front of PATH_INFO when it matches.\n\
         .SH SIGNALS\n\
         .TP\n\\fBTERM\\fR, \\fBINT\\fR, \\fBQUIT\\fR\nStop: workers finish the request in hand, \
         then exit; after \\-\\-graceful\\-timeout they are killed.\n\
         .SH EXIT STATUS\n0 after a requested stop; 1 for a configuration or start-up error; \
         3 when a worker cannot boot; 4 when the application cannot be loaded.\n\
         .SH FILES\n\\fI/etc/rwsgi/rwsgi.toml\\fR, an example config file (see \\fBconfig/rwsgi.toml\\fR in the sources).\n\
         .SH SEE ALSO\n\\fBgunicorn\\fR(1), \\fBnginx\\fR(8)\n",
    );
    out
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

    #[test]
    fn man_page_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/rwsgi.1");
        let fresh = render();
        if std::env::var_os("RWSGI_UPDATE_MAN").is_some() {
            std::fs::write(path, &fresh).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == fresh,
            "man/rwsgi.1 is stale: run `RWSGI_UPDATE_MAN=1 cargo test man_page` and commit it"
        );
    }

    #[test]
    fn every_flag_is_in_the_man_page() {
        let page = render();
        for s in SETTINGS.iter().filter_map(|s| s.long) {
            assert!(page.contains(&escape(s)), "{s}");
        }
    }
}
