//! What operators read: JSON log lines that carry the request's id and module.

use std::io::Read as _;
use std::process::Stdio;

use app_kernel::db::Backend;
use serde_json::Value;

use crate::helpers::fresh_storage;
use crate::process::Process;

#[tokio::test]
async fn json_logs_carry_the_request_id_and_module_and_sigint_stops_cleanly() {
    let (url, _dir) = fresh_storage(Backend::Sqlite).await;
    let mut process = Process::start_with(
        &url,
        &["--log-format", "json"],
        "info,access=debug",
        Stdio::piped(),
    )
    .await;
    let mut stderr = process.child.stderr.take().unwrap();

    let response = crate::auth::client()
        .get(format!("{}/api/v1/ports/77", process.address))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    process.signal(libc::SIGINT);
    assert!(
        process.wait().success(),
        "SIGINT stops the process with status 0"
    );

    let mut output = String::new();
    stderr.read_to_string(&mut output).unwrap();
    let lines: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("JSON: {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "trace-me-42")
        .unwrap_or_else(|| panic!("a line for the request in {output}"));
    assert_eq!(access["span"]["module"], "ports");
    assert_eq!(access["status"], 404);
    assert!(
        lines.iter().any(|l| l["message"] == "stopped"),
        "the last words are logged"
    );
}
