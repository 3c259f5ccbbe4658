//! `rwsgi ctl -s PATH COMMAND...`: a client of the control socket
//! (`--control-socket`), speaking Gunicorn's protocol: it sends one
//! command and prints the answer's data as JSON (exit 0), or the error
//! (exit 1). `rwsgi top -s PATH`: the server's rates and every worker's
//! row, refreshed each second, from the same socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The first argument that runs the rwsgi binary as the client.
pub const WORD: &str = "ctl";
/// The first argument that runs the live view.
pub const TOP: &str = "top";

const USAGE: &str = "usage: rwsgi ctl -s PATH COMMAND...   (e.g. show workers, worker add 2, reload, help)";

/// Run the client with the arguments after `ctl`; the exit status.
pub fn run(args: &[String]) -> i32 {
    let (socket, command) = match args {
        [flag, path, rest @ ..] if (flag == "-s" || flag == "--socket") && !rest.is_empty() => (path, rest.join(" ")),
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    match ask(socket, &command) {
        Ok(answer) if answer.get("status").and_then(Value::as_str) == Some("ok") => {
            let data = answer.get("data").cloned().unwrap_or(Value::Null);
            println!("{}", serde_json::to_string_pretty(&data).unwrap_or_default());
            0
        }
        Ok(answer) => {
            eprintln!("Error: {}", answer.get("error").and_then(Value::as_str).unwrap_or("no answer"));
            1
        }
        Err(e) => {
            eprintln!("Error: {socket}: {e}");
            1
        }
    }
}

/// Send `command`, read the answer.
fn ask(socket: &str, command: &str) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let payload = json!({"id": 1, "command": command, "args": []}).to_string().into_bytes();
    stream.write_all(&(payload.len() as u32).to_be_bytes())?;
    stream.write_all(&payload)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

/// `rwsgi top -s PATH [-n ROUNDS]`: the master's line, the server's rates
/// (from the second screen on), and every worker's row (state, requests,
/// last status, memory, CPU time, restarts, heartbeat, the request in hand
/// and its age), refreshed each second until Ctrl-C (or ROUNDS times).
pub fn top(args: &[String]) -> i32 {
    let (socket, rounds) = match args {
        [flag, path] if flag == "-s" || flag == "--socket" => (path, u64::MAX),
        [flag, path, n, count] if (flag == "-s" || flag == "--socket") && n == "-n" => match count.parse() {
            Ok(count) => (path, count),
            Err(_) => return usage_top(),
        },
        _ => return usage_top(),
    };
    let mut last: Option<(Instant, Value)> = None;
    for round in 0..rounds {
        if round > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let screen = ask(socket, "show stats").and_then(|stats| Ok((stats, ask(socket, "show workers")?)));
        match screen {
            Ok((stats, workers)) => {
                let now = Instant::now();
                let rates = last.as_ref().map(|(then, before)| Rates::between(&before["data"], &stats["data"], now - *then));
                print!("\x1b[H\x1b[2J{}", render_top(&stats["data"], &workers["data"], rates.as_ref()));
                last = Some((now, stats));
            }
            Err(e) => {
                eprintln!("Error: {socket}: {e}");
                return 1;
            }
        }
        let _ = std::io::stdout().flush();
    }
    0
}

fn usage_top() -> i32 {
    eprintln!("usage: rwsgi top -s PATH [-n ROUNDS]   (the control socket of a server started with --control-socket)");
    2
}

/// The server's rates between two `show stats`, per second.
struct Rates {
    requests: f64,
    by_class: Vec<(String, f64)>,
    bytes_in: f64,
    bytes_out: f64,
}

impl Rates {
    fn between(before: &Value, now: &Value, elapsed: Duration) -> Rates {
        let seconds = elapsed.as_secs_f64().max(0.001);
        let rate = |a: &Value, b: &Value| (b.as_f64().unwrap_or(0.0) - a.as_f64().unwrap_or(0.0)).max(0.0) / seconds;
        let classes = now["responses"].as_object().into_iter().flatten();
        Rates {
            requests: rate(&before["requests"], &now["requests"]),
            by_class: classes.map(|(class, n)| (class.clone(), rate(&before["responses"][class], n))).collect(),
            bytes_in: rate(&before["bytes_in"], &now["bytes_in"]),
            bytes_out: rate(&before["bytes_out"], &now["bytes_out"]),
        }
    }
}

/// One screen of `rwsgi top`: the server's line, its rates (from the
/// second screen on), then a row per worker.
fn render_top(stats: &Value, workers: &Value, rates: Option<&Rates>) -> String {
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let mut out = format!(
        "rwsgi top: master {}, up {:.0} s, workers {}/{}, requests {}, reloads {}, listen queue {}   (Ctrl-C quits)\n",
        num(stats, "pid"),
        num(stats, "uptime"),
        num(stats, "workers_current"),
        num(stats, "workers_target"),
        num(stats, "requests"),
        num(stats, "reloads"),
        num(stats, "listen_queue"),
    );
    match rates {
        Some(r) => {
            let classes: Vec<String> = r.by_class.iter().filter(|(_, n)| *n > 0.0).map(|(c, n)| format!("{c} {n:.1}")).collect();
            out.push_str(&format!(
                "rates: {:.1} req/s [{}], in {}/s, out {}/s\n\n",
                r.requests,
                classes.join(", "),
                human_bytes(r.bytes_in),
                human_bytes(r.bytes_out)
            ));
        }
        None => out.push_str("rates: (from the next screen)\n\n"),
    }
    out.push_str(&format!(
        "{:>8} {:>5} {:<9} {:>9} {:>4} {:>8} {:>8} {:>3} {:>7}  {}\n",
        "PID", "AGE", "STATE", "REQUESTS", "LAST", "RSS", "CPU", "RST", "BEAT", "REQUEST"
    ));
    for w in workers.get("workers").and_then(Value::as_array).into_iter().flatten() {
        let request = match (w.get("request").and_then(Value::as_str), w.get("request_seconds").and_then(Value::as_f64)) {
            (Some(line), Some(age)) => format!("{line} ({age:.1} s)"),
            _ => String::new(),
        };
        let last = w.get("last_status").and_then(Value::as_u64).map_or("-".to_string(), |s| s.to_string());
        let rss = w.get("rss").and_then(Value::as_f64).map_or("-".to_string(), human_bytes);
        let cpu = w.get("cpu_seconds").and_then(Value::as_f64).map_or("-".to_string(), |s| format!("{s:.2}s"));
        out.push_str(&format!(
            "{:>8} {:>5} {:<9} {:>9} {:>4} {:>8} {:>8} {:>3} {:>6.1}s  {}\n",
            num(w, "pid"),
            num(w, "age"),
            w.get("state").and_then(Value::as_str).unwrap_or("?"),
            num(w, "requests"),
            last,
            rss,
            cpu,
            num(w, "restarts"),
            num(w, "last_heartbeat"),
            request
        ));
    }
    out
}

/// `12.3M`-style sizes, as top shows them.
fn human_bytes(bytes: f64) -> String {
    let mut size = bytes;
    for unit in ["B", "K", "M", "G"] {
        if size < 1024.0 {
            return if unit == "B" { format!("{size:.0}{unit}") } else { format!("{size:.1}{unit}") };
        }
        size /= 1024.0;
    }
    format!("{size:.1}T")
}
