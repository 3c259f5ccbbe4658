//! Where `unsafe` lives: fork, signal dispositions in a worker, the
//! shared-memory scoreboard, adopting inherited fds and starting CPython
//! with a chosen program name. (Outside it, only forking itself, where
//! the caller vouches for one thread: the master's workers and zygotes,
//! and the zygote's workers with CPython's fork protocol, each marked
//! `#[allow(unsafe_code)]`.) Each function here is mechanism, not policy:
//! callers decide when and why.

pub mod scoreboard;
pub mod tally;

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::ForkResult;

pub use scoreboard::{Scoreboard, SlotState};
pub use tally::{Served, Totals};

/// This worker's heartbeat cell in the scoreboard, once set.
static HEARTBEAT: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

/// Make [`beat`] write to slot `index` of `board` (a worker, after fork).
pub fn set_heartbeat(board: &Scoreboard, index: usize) {
    HEARTBEAT.store(std::ptr::from_ref(board.beat_cell(index)).cast_mut(), Ordering::Release);
}

thread_local! {
    /// A request thread's own progress cell, which [`beat`] writes instead
    /// of the worker's slot: the worker's heartbeat is then its slowest
    /// busy thread's, so one thread stuck in the app is noticed while the
    /// others make progress.
    static THREAD_BEAT: std::cell::Cell<Option<&'static AtomicU64>> = const { std::cell::Cell::new(None) };
}

/// Make [`beat`] on this thread write to `cell` (a request thread).
pub fn set_thread_heartbeat(cell: &'static AtomicU64) {
    THREAD_BEAT.with(|t| t.set(Some(cell)));
}

/// Monotonic milliseconds, the scoreboard's clock.
pub fn now_ms() -> u64 {
    scoreboard::now_ms()
}

/// Block, in the calling thread, the signals the worker handles, so they
/// are delivered to its main thread (whose poll they interrupt).
pub fn block_worker_signals_in_thread() -> nix::Result<()> {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGCHLD,
        Signal::SIGHUP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(sig);
    }
    signal::pthread_sigmask(signal::SigmaskHow::SIG_BLOCK, Some(&set), None)
}

/// Run the calling thread under SCHED_BATCH: when it is woken it does not
/// preempt the thread running (the worker's poller), which finishes its
/// turn first; its nice value and share of the CPU are unchanged.
pub fn set_thread_batch_scheduling() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: param is a valid sched_param; 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Accept a connection already non-blocking and close-on-exec (one
/// accept4(2), no fcntl or ioctl after it), with its peer's address
/// (`None` on a unix socket).
pub fn accept_nonblocking(listener: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(OwnedFd, Option<std::net::SocketAddr>)> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len describe a writable buffer of len bytes.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            (&raw mut storage).cast::<libc::sockaddr>(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let peer = match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let a = unsafe { &*(&raw const storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let a = unsafe { &*(&raw const storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    };
    Ok((fd, peer))
}

/// Tell the master this worker is making progress. Called from the serve
/// loop and while waiting on a client; never from application code, so a
/// worker stuck in the app stops beating.
pub fn beat() {
    if let Some(cell) = THREAD_BEAT.with(std::cell::Cell::get) {
        cell.store(scoreboard::now_ms(), Ordering::Relaxed);
        return;
    }
    let cell = HEARTBEAT.load(Ordering::Acquire);
    if cell.is_null() {
        return;
    }
    // SAFETY: the pointer was taken from the scoreboard mapping, which a
    // worker never unmaps (its Scoreboard handle lives in the master's
    // frames that the worker inherited and never returns to), so it is
    // valid for the rest of the process.
    let cell = unsafe { &*cell };
    cell.store(scoreboard::now_ms(), Ordering::Relaxed);
}

/// Fork the calling process with every signal blocked across the fork.
/// The parent gets its mask back; the child keeps everything blocked until
/// [`install_worker_signals`] has replaced the master's handlers, so a
/// signal sent to a brand-new worker is neither lost in the master's pipe
/// nor acted on with the master's meaning.
///
/// # Safety
///
/// The calling process must have exactly one thread. The child is a copy
/// of the caller's memory with only the calling thread in it, and it goes
/// on to run arbitrary code (allocate, log, start Python, or exec); a lock
/// that another thread held at the fork, or data it was halfway through
/// changing, would stay that way in the child for good.
pub unsafe fn fork() -> nix::Result<ForkResult> {
    let mut old = SigSet::empty();
    signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut old))?;
    // SAFETY: the caller guarantees this process is single-threaded (this
    // function's contract), so no thread holds a lock the child could need
    // and the child may run arbitrary code afterwards.
    let result = unsafe { nix::unistd::fork() };
    if !matches!(result, Ok(ForkResult::Child)) {
        // Restoring a mask saved a moment ago cannot fail in practice; an
        // error here must not turn a successful fork into a failed one.
        let _ = signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    result
}

/// Have the kernel send TERM to this worker when the master dies, and
/// check the master did not die before that was set.
pub fn follow_master(master: nix::unistd::Pid) -> nix::Result<bool> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
    Ok(nix::unistd::getppid() == master)
}

/// Set by the worker's TERM handler: finish the request in hand, then exit.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Set by the worker's USR1 handler: reopen log files.
static REOPEN_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Where [`on_term`] reports itself to the serve loop, once set: the
/// worker's signal pipe (see [`take_over_term`]).
static TERM_PIPE: AtomicI32 = AtomicI32::new(-1);

/// The byte rwsgi's TERM handler writes to the signal pipe; CPython writes signal
/// numbers (below 65) there.
pub const OWN_TERM_BYTE: u8 = 0xff;

extern "C" fn on_term(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    let fd = TERM_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe and errno is this thread's
        // own (saved and restored around it, so the interrupted code never
        // sees it change); the byte lives in a static; a full pipe is only
        // a lost wake-up (the flag above is set regardless). The pipe stays
        // open until the process exits.
        unsafe {
            let errno = libc::__errno_location();
            let saved = *errno;
            let _ = libc::write(fd, std::ptr::from_ref(&OWN_TERM_BYTE).cast(), 1);
            *errno = saved;
        }
    }
}

/// Make rwsgi's own handler the process's SIGTERM handler again (after
/// CPython installed its own for a Python-level handler), reporting each
/// TERM on `pipe` (non-blocking) with [`OWN_TERM_BYTE`], for the serve
/// loop to run the Python-level handler between requests.
pub fn take_over_term(pipe: RawFd) -> nix::Result<()> {
    TERM_PIPE.store(pipe, Ordering::SeqCst);
    let action = SigAction::new(SigHandler::Handler(on_term), SaFlags::empty(), SigSet::empty());
    // SAFETY: on_term stores to atomics and calls write(2): all
    // async-signal-safe.
    unsafe { signal::sigaction(Signal::SIGTERM, &action) }.map(drop)
}

extern "C" fn on_usr1(_: libc::c_int) {
    REOPEN_REQUESTED.store(true, Ordering::SeqCst);
}

/// True once this worker is stopping: TERM arrived, or it decided to
/// (its last request under --max-requests, --max-worker-memory).
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// Stop this worker gracefully, as TERM does: TERM that came through
/// Python's own signal handling (see the worker's `signals`), or a stop
/// the worker decided itself.
pub fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Set in a process forked from a worker (an application's `os.fork()`).
static FORKED_CHILD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_fork_child() {
    FORKED_CHILD.store(true, Ordering::Relaxed);
}

/// Mark every process forked from this worker from now on, so that one
/// that returns into the server (an application that forks and lets the
/// child return) can be told from the worker: see
/// [`leave_if_forked_child`].
pub fn mark_forked_children() -> std::io::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe (all a child of a threaded process may do before
    // it returns from fork).
    let rc = unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// End this process at once if it is a child the application forked that
/// has returned into the server: it must never write to, read from, shut
/// down or accept on the worker's sockets, whose other copies the worker
/// still serves. Called before every such operation.
pub fn leave_if_forked_child() {
    if FORKED_CHILD.load(Ordering::Relaxed) {
        // Straight to stderr: the error log's lock may have been held by
        // another thread of the worker at the fork, and is held for good
        // in this child.
        let line = format!(
            "[rwsgi] process {} was forked by the application and returned into the server; it exits without serving\n",
            std::process::id()
        );
        // SAFETY: write(2) of a buffer that lives on across the call.
        let _ = unsafe { libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), line.len()) };
        exit_now(0);
    }
}

/// True (once) after USR1 arrived in this worker.
pub fn take_reopen_request() -> bool {
    REOPEN_REQUESTED.swap(false, Ordering::SeqCst)
}

/// Give a freshly forked worker its own signal dispositions, replacing the
/// master's (whose handlers write to a pipe the worker must not touch):
/// TERM → graceful stop flag; INT and QUIT → default (die at once);
/// USR1 → reopen flag; the master's control signals (HUP, TTIN, TTOU, USR2,
/// WINCH) ignored, so `pkill -HUP rwsgi` cannot kill workers; PIPE ignored
/// so a client hang-up is an `EPIPE`, not death.
pub fn install_worker_signals() -> nix::Result<()> {
    let flag = |h: extern "C" fn(libc::c_int)| SigHandler::Handler(h);
    install_dispositions(flag(on_term), flag(on_usr1))
}

/// The zygote's signal dispositions (see `worker::zygote`): as a worker's,
/// but TERM ends it. USR1 asks it to reopen its logs too, which the
/// workers it forks next inherit. Its workers set their own after the
/// fork.
pub fn install_zygote_signals() -> nix::Result<()> {
    install_dispositions(SigHandler::SigDfl, SigHandler::Handler(on_usr1))
}

/// A forked child's dispositions, with `term` and `usr1` as given; nothing
/// blocked afterwards.
fn install_dispositions(term: SigHandler, usr1: SigHandler) -> nix::Result<()> {
    use SigHandler::{SigDfl, SigIgn};
    let table = [
        (Signal::SIGTERM, term),
        (Signal::SIGUSR1, usr1),
        (Signal::SIGINT, SigDfl),
        (Signal::SIGQUIT, SigDfl),
        (Signal::SIGCHLD, SigDfl),
        (Signal::SIGHUP, SigIgn),
        (Signal::SIGTTIN, SigIgn),
        (Signal::SIGTTOU, SigIgn),
        (Signal::SIGUSR2, SigIgn),
        (Signal::SIGWINCH, SigIgn),
        (Signal::SIGPIPE, SigIgn),
    ];
    for (sig, handler) in table {
        let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
        // SAFETY: the only handlers given (the worker's) store to atomics
        // and write(2), which are async-signal-safe; SigDfl/SigIgn install
        // no code at all.
        unsafe { signal::sigaction(sig, &action) }?;
    }
    signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// Connections waiting to be accepted on the TCP listening socket `fd`
/// (Linux's `tcpi_unacked` of a listener); `None` for another socket.
pub fn listen_queue(fd: RawFd) -> Option<u32> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is
    // that large and zeroed, and says in `len` how many it wrote.
    let rc = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return None;
    }
    // SAFETY: zeroed, then (partly) written by the kernel: every field is
    // an integer, valid at any value.
    let info = unsafe { info.assume_init() };
    Some(info.tcpi_unacked)
}

/// Wait until `fd` is readable or `limit` has passed (a signal may end
/// the wait early); whether it is readable.
pub fn wait_readable(fd: &impl std::os::fd::AsFd, limit: std::time::Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
}

/// Make the master the reaper of its orphaned descendants: a worker a
/// zygote forked through a process that exits at once becomes the
/// master's child, which it reaps and supervises like one it forked.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Ignore SIGPIPE in the master too: a write to a closed pipe must be an
/// error return, never a death.
pub fn ignore_sigpipe() -> nix::Result<()> {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN runs no code.
    unsafe { signal::sigaction(Signal::SIGPIPE, &ignore) }.map(drop)
}

/// Take ownership of an inherited, open file descriptor (`fd://N`,
/// systemd's `LISTEN_FDS`).
pub fn adopt_fd(fd: RawFd) -> nix::Result<OwnedFd> {
    // An adopted socket must not leak into programs the app executes.
    // SAFETY: fcntl on a bare number touches nothing but that descriptor;
    // one that is not open fails with EBADF, which the check below uses.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: `fd` is open (F_SETFD succeeded) and the caller hands its
    // only owner to us: nothing else in rwsgi knows this number.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A descriptor of rwsgi's own for the open file `fd` that someone else
/// owns (a Python file object's `fileno()`): a duplicate, valid for as
/// long as rwsgi holds it, whatever the owner does meanwhile.
pub fn duplicate_fd(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC reads only the number; one that is not an
    // open descriptor fails with EBADF and touches nothing.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fcntl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Raise the soft limit on open files to the hard limit, as nginx's
/// `worker_rlimit_nofile` would: a worker's own connection cap, not a
/// default soft limit of 1024 descriptors, then bounds what it holds.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::debug!("cannot raise the open file limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => log::debug!("cannot read the open file limit: {e}"),
    }
}

/// Close every descriptor this new worker inherited except stdio and
/// `keep` (its own generation's listeners, the error log): the master's
/// poll and signal pipe, other generations' listeners (which would keep a
/// dropped port listening with nobody accepting), anything else.
pub fn close_inherited_except(keep: &[RawFd]) {
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        // No /proc (a chroot): try every number up to the fd limit.
        Err(_) => {
            let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_or(1024, |(soft, _)| soft.min(65536));
            (0..limit as RawFd).collect()
        }
    };
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: the worker has just been forked and owns none of these
        // yet: nothing else in this process will use or close them. The
        // descriptor read_dir used is already closed, so closing its
        // number again is a harmless EBADF.
        unsafe { libc::close(fd) };
    }
}

/// Start CPython in this process, as `program` would start (a virtualenv's
/// `bin/python` makes CPython read its `pyvenv.cfg` and use its
/// site-packages), with signal handlers left alone. Leaves the GIL
/// released, as pyo3 expects.
pub fn init_python(program: Option<&Path>) -> Result<(), String> {
    use pyo3::ffi;
    let program = match program {
        Some(p) => Some(
            CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(|_| format!("{}: path contains NUL", p.display()))?,
        ),
        None => None,
    };
    // SAFETY: called once, in a worker that has not touched Python; the
    // PyConfig lives on this stack frame, is initialized by
    // PyConfig_InitPythonConfig before any field is read, and is cleared
    // before it goes out of scope. The error message pointer in a PyStatus
    // is a static C string owned by CPython.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Ok(());
        }
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let mut status = ffi::PyStatus_Ok();
        if let Some(program) = &program {
            status = ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, program.as_ptr());
        }
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::Py_InitializeFromConfig(&config);
        }
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            let msg = if status.err_msg.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
            };
            return Err(format!("cannot initialize Python: {msg}"));
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// End CPython as a normal interpreter exit does (`Py_FinalizeEx`): join
/// non-daemon threads, run `atexit` handlers, flush and close files. The
/// error says buffered data could not be written. Called once, on the
/// thread that started Python, with no Python object of rwsgi's left to
/// use: the process only exits after it.
pub fn finalize_python() -> Result<(), String> {
    use pyo3::ffi;
    // SAFETY: Python was started on this, the main, thread (init_python),
    // so PyGILState_Ensure takes the GIL with the thread state it was
    // started with, as Py_FinalizeEx requires. Nothing calls into Python
    // afterwards: the worker exits.
    let status = unsafe {
        if ffi::Py_IsInitialized() == 0 {
            return Ok(());
        }
        ffi::PyGILState_Ensure();
        ffi::Py_FinalizeEx()
    };
    if status == 0 {
        Ok(())
    } else {
        Err("Python could not flush buffered data at exit".into())
    }
}

/// Point this process's stdout and stderr at `fd` (the error log file):
/// `--capture-output`.
pub fn redirect_stdio(fd: RawFd) -> nix::Result<()> {
    for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        if fd != target {
            // SAFETY: dup2 on bare numbers: `fd` is the error log's open
            // descriptor, and the standard descriptors it replaces are this
            // process's own; nothing holds a Rust owner of either number.
            if unsafe { libc::dup2(fd, target) } < 0 {
                return Err(nix::errno::Errno::last());
            }
        }
    }
    Ok(())
}

/// Switch this worker to `gid` and `uid` (group first: once the uid is
/// dropped, the gid can no longer change). As root, the supplementary
/// groups become `gid` alone, or, with `all_groups` (`--initgroups`),
/// every group of the user `uid` names.
pub fn drop_privileges(uid: Option<u32>, gid: Option<u32>, all_groups: bool) -> nix::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid, User};
    if let Some(gid) = gid {
        let gid = Gid::from_raw(gid);
        if nix::unistd::getegid() != gid || Uid::effective().is_root() {
            if Uid::effective().is_root() {
                let user = uid.filter(|_| all_groups).map(|uid| User::from_uid(Uid::from_raw(uid))).transpose()?.flatten();
                match user {
                    Some(user) => nix::unistd::initgroups(&CString::new(user.name).map_err(|_| nix::errno::Errno::EINVAL)?, gid)?,
                    None => setgroups(&[gid])?,
                }
            }
            setgid(gid)?;
        }
    }
    if let Some(uid) = uid {
        let uid = Uid::from_raw(uid);
        if Uid::effective() != uid {
            setuid(uid)?;
        }
    }
    Ok(())
}

/// Set this process's title: the short name (`ps -o comm`, `top`,
/// `pkill`; at most 15 bytes, "rwsgi: master") and the command line `ps`
/// shows (`rwsgi: master [myapp]`), written over the original arguments
/// in place (through /proc/self/mem, so no pointer games), cut to their
/// length.
pub fn set_process_title(short: &str, full: &str) {
    if let Ok(name) = CString::new(short) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    if let Err(e) = write_cmdline(full) {
        log::debug!("cannot set the process title: {e}");
    }
}

fn write_cmdline(title: &str) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name in parentheses; arg_start and arg_end
    // are fields 48 and 49 (proc(5)), i.e. 46 and 47 after it.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<u64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let (start, end) = match (fields.get(45), fields.get(46)) {
        (Some(&s), Some(&e)) if e > s => (s, e),
        _ => return Err(std::io::Error::other("no argument area in /proc/self/stat")),
    };
    let len = (end - start) as usize;
    let mut area = vec![0u8; len];
    let text = title.as_bytes();
    let n = text.len().min(len.saturating_sub(1));
    area[..n].copy_from_slice(&text[..n]);
    let mut mem = std::fs::OpenOptions::new().write(true).open("/proc/self/mem")?;
    mem.seek(SeekFrom::Start(start))?;
    mem.write_all(&area)
}

/// Detach into the background: fork (the parent exits), start a new
/// session, point stdin/stdout/stderr at /dev/null. Keeps the directory.
pub fn daemonize(keep_stdio: bool) -> nix::Result<()> {
    // glibc's daemon() forks; rwsgi calls it before any thread or worker
    // exists, so the fork is as sound as the master's own.
    nix::unistd::daemon(true, keep_stdio)
}

/// Sockets passed by systemd socket activation (`LISTEN_FDS` for this
/// pid), taken over once; the variables are removed so workers and
/// reloads do not take them again.
pub fn systemd_listen_fds() -> Vec<OwnedFd> {
    let for_us = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<i32>().ok()).unwrap_or(0);
    for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // The master is single-threaded: nothing reads the environment
        // concurrently.
        std::env::remove_var(key);
    }
    if !for_us {
        return Vec::new();
    }
    // SD_LISTEN_FDS_START: systemd passes them from fd 3 on.
    (3..3 + count.max(0)).filter_map(|fd| adopt_fd(fd).ok()).collect()
}

/// Listening sockets handed over by the master this one replaces (USR2):
/// `RWSGI_FDS=3:own,4` names them, `:own` marking a unix socket whose file
/// the old master created (and so this one removes on its final exit).
/// Taken once; the variable is removed.
pub fn upgrade_listen_fds() -> Vec<(OwnedFd, bool)> {
    let fds = std::env::var("RWSGI_FDS").unwrap_or_default();
    // Single-threaded master, as above.
    std::env::remove_var("RWSGI_FDS");
    fds.split(',')
        .filter_map(|item| {
            let (n, owns) = item.split_once(':').map_or((item, false), |(n, flag)| (n, flag == "own"));
            Some((adopt_fd(n.trim().parse::<RawFd>().ok()?).ok()?, owns))
        })
        .collect()
}

/// Whether the sockets the old master handed over (USR2) are systemd's,
/// which outlive rwsgi (`RWSGI_FDS_KEPT=1`), rather than ones it bound.
/// Taken once; the variable is removed.
pub fn upgrade_fds_outlive_us() -> bool {
    let kept = std::env::var("RWSGI_FDS_KEPT").is_ok_and(|v| v == "1");
    // Single-threaded master, as above.
    std::env::remove_var("RWSGI_FDS_KEPT");
    kept
}

/// USR2: start a new master from the binary at `program` (as found on
/// PATH now, so an upgraded package's binary), with `args`, in `dir`,
/// handing it the listening sockets `fds` (`RWSGI_FDS`, and
/// `RWSGI_FDS_KEPT=1` if they are systemd's, `kept`) and this master's
/// pid (`RWSGI_UPGRADE_FROM`). Returns the new master's pid.
pub fn spawn_upgraded_master(
    program: &str,
    args: &[String],
    dir: &Path,
    fds: &[(RawFd, bool)],
    kept: bool,
) -> Result<nix::unistd::Pid, String> {
    let c_args = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "an argument contains NUL".to_string())?;
    let c_program = CString::new(program).map_err(|_| "the program path contains NUL".to_string())?;
    let fd_list = fds.iter().map(|(fd, own)| if *own { format!("{fd}:own") } else { fd.to_string() }).collect::<Vec<_>>().join(",");
    let master = std::process::id().to_string();
    // SAFETY: only the master calls this (on USR2), and the master never
    // starts a thread: it is the single thread that runs main, so the
    // process is single-threaded here, as fork requires.
    match unsafe { fork() }.map_err(|e| format!("fork failed: {e}"))? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            // The master is single-threaded, so the child may allocate
            // before exec. The listeners must survive exec (clear
            // close-on-exec), and the signal mask that fork() set must not
            // be inherited by the new master.
            for (fd, _) in fds {
                // SAFETY: the master's listeners, open in this child (the
                // master's copy holds them) until it execs.
                let listener = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
                let _ = nix::fcntl::fcntl(listener, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()));
            }
            let _ = std::env::set_current_dir(dir);
            std::env::set_var("RWSGI_FDS", &fd_list);
            if kept {
                std::env::set_var("RWSGI_FDS_KEPT", "1");
            }
            std::env::set_var("RWSGI_UPGRADE_FROM", &master);
            let _ = signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let err = nix::unistd::execvp(&c_program, &c_args).unwrap_err();
            eprintln!("rwsgi: cannot exec {program}: {err}");
            exit_now(127)
        }
    }
}

/// Tell systemd (when `NOTIFY_SOCKET` is set) about the service's state:
/// `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=...`.
pub fn notify_systemd(message: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else { return };
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr));
    if let Err(e) = sent {
        log::debug!("cannot notify systemd at {path}: {e}");
    }
}

/// Leave the process now, without running Rust destructors or flushing
/// stdio buffers inherited from the master.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and always sound to call.
    unsafe { libc::_exit(code) }
}

/// Set by the wheel's launcher (`packaging/wheel/src/launch.rs`) to the
/// directory it put first on `LD_LIBRARY_PATH` so the loader finds the
/// virtualenv's libpython.
const LIBPYTHON_DIR: &str = "RWSGI_LIBPYTHON_DIR";

/// Take the launcher's directory off `LD_LIBRARY_PATH` again: it is there
/// for this binary's own libpython, not for whatever the application
/// runs. [`own_binary`] puts it back for the copies of rwsgi itself. Call
/// once, first thing, while the process has one thread.
pub fn forget_launcher_library_path() {
    let Some(dir) = std::env::var_os(LIBPYTHON_DIR) else { return };
    let Some(path) = std::env::var_os("LD_LIBRARY_PATH") else { return };
    let mut rest: Vec<_> = std::env::split_paths(&path).collect();
    if let Some(at) = rest.iter().position(|p| p.as_os_str() == dir) {
        rest.remove(at);
    }
    match std::env::join_paths(&rest) {
        Ok(joined) if !joined.is_empty() => std::env::set_var("LD_LIBRARY_PATH", joined),
        _ => std::env::remove_var("LD_LIBRARY_PATH"),
    }
}

/// A command running this very binary, even once its file was replaced
/// on disk (a package upgrade before a HUP: `/proc/self/exe` still opens
/// the running one), with the loader path the launcher gave it.
pub fn own_binary() -> std::io::Result<std::process::Command> {
    let exe = Some(std::path::PathBuf::from("/proc/self/exe")).filter(|p| p.exists()).map_or_else(std::env::current_exe, Ok)?;
    let mut command = std::process::Command::new(exe);
    if let Some(dir) = std::env::var_os(LIBPYTHON_DIR) {
        let mut path = dir;
        if let Some(rest) = std::env::var_os("LD_LIBRARY_PATH").filter(|p| !p.is_empty()) {
            path.push(":");
            path.push(rest);
        }
        command.env("LD_LIBRARY_PATH", path);
    }
    Ok(command)
}
