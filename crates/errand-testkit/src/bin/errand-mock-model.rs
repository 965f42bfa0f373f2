//! `errand-mock-model --script FILE [--port N]`: serve a model script on loopback until killed.
//!
//! Prints `errand-mock-model listening on http://127.0.0.1:PORT/v1` once ready, so a test can
//! read the base URL from the first line of stdout. Script violations go to stderr as they happen.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use errand_testkit::{Script, ScriptedModel};

const USAGE: &str = "usage: errand-mock-model --script FILE [--port N]";

fn parse_args() -> Result<(String, u16), String> {
    let mut script = None;
    let mut port = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--script" => script = Some(args.next().ok_or("--script needs a file")?),
            "--port" => {
                let value = args.next().ok_or("--port needs a number")?;
                port =
                    value.parse().map_err(|_| format!("--port: `{value}` is not a port number"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok((script.ok_or_else(|| format!("--script is required\n{USAGE}"))?, port))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (path, port) = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("errand-mock-model: {message}");
            return ExitCode::from(2);
        }
    };
    let script = match Script::from_file(&path) {
        Ok(script) => script,
        Err(e) => {
            eprintln!("errand-mock-model: {e}");
            return ExitCode::from(2);
        }
    };
    let server =
        match ScriptedModel::start_on(script, SocketAddr::from(([127, 0, 0, 1], port))).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("errand-mock-model: cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "errand-mock-model listening on {}", server.base_url());
    let _ = stdout.flush();
    let _ = tokio::signal::ctrl_c().await;
    match server.verify() {
        Ok(()) => ExitCode::SUCCESS,
        Err(problems) => {
            eprintln!("{problems}");
            ExitCode::FAILURE
        }
    }
}
