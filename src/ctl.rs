//! `rwsgi ctl -s PATH COMMAND...`: a client of the control socket
//! (`--control-socket`), speaking Gunicorn's protocol: it sends one
//! command and prints the answer's data as JSON (exit 0), or the error
//! (exit 1).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{json, Value};

/// The first argument that runs the rwsgi binary as the client.
pub const WORD: &str = "ctl";

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
