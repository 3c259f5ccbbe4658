//! `rwsgi-server`: the server itself, as `rwsgi` is when built from the
//! main crate; the wheel's `rwsgi` launcher runs it.

fn main() {
    std::process::exit(rwsgi::entry::run());
}
