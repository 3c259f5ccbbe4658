//! The `rwsgi` command (see `rwsgi::entry`).

fn main() {
    std::process::exit(rwsgi::entry::run());
}
