//! `cln-autoreload dev`: the node-free dev loop, end to end, with the real
//! binary, the real host it starts, and tests/plugins/testplugin.py.
//!
//! Every wait is bounded: a test that does not see what it waits for within
//! 30 s fails with everything the process printed so far.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// A directory of its own for one test, removed afterwards.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!(
            "cln-autoreload-devtest.{}.{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create test dir");
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a version of tests/plugins/testplugin.py (see the contract at its
/// top) to `path`, executable, atomically.
fn write_plugin(path: &Path, config: &Value) {
    use std::os::unix::fs::PermissionsExt;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/plugins/testplugin.py");
    let src = std::fs::read_to_string(src).expect("read testplugin.py");
    let marker = "# --- body ---\n";
    let body = &src[src.find(marker).expect("body marker") + marker.len()..];
    let literal = serde_json::to_string(&config.to_string()).expect("string literal");
    let tmp = path.with_extension("tmp~");
    std::fs::write(
        &tmp,
        format!("#!/usr/bin/env python3\nCONFIG = {literal}\n{body}"),
    )
    .expect("write plugin");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, path).expect("rename plugin into place");
}

/// A running `cln-autoreload dev`, its stdout as lines on a channel and its
/// stderr collected, for waiting and for failure messages.
struct Dev {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Dev {
    /// Runs `cln-autoreload dev ARGS...` in `dir`, with `dir` as its
    /// TMPDIR (so the test can see it cleaned up after itself).
    fn start(dir: &Path, args: &[&str]) -> Dev {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cln-autoreload"))
            .arg("dev")
            .args(args)
            .current_dir(dir)
            .env("TMPDIR", dir)
            .env("PWD", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cln-autoreload dev");
        let (tx, lines) = channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let seen = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                seen.lock().unwrap().push_str(&format!("{line}\n"));
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let seen = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        Dev {
            child,
            stdin,
            lines,
            stdout,
            stderr,
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{what}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        );
    }

    /// Waits (bounded) for a stdout line `pred` accepts.
    fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no {what} on stdout within {LIMIT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("stdout closed before {what}"))
                }
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin.write_all(format!("{line}\n").as_bytes()) {
            self.fail(&format!("writing {line:?} to stdin: {e}"));
        }
    }

    /// Closes stdin and waits (bounded) for the process to exit.
    fn finish(&mut self) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                self.fail(&format!("did not exit within {LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// All of stdout, once the process has exited and stdout is closed.
    fn all_stdout(&mut self) -> Vec<String> {
        let mut lines = vec![];
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => self.fail("stdout still open"),
            }
        }
    }
}

/// The test dir holds only the plugin: the dev node removed its lightning
/// dir.
fn assert_cleaned_up(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("read test dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cln-autoreload-dev."))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn calls_from_the_command_line() {
    let dir = TestDir::new("calls");
    write_plugin(&dir.0.join("testplugin.py"), &json!({"version": "v1"}));
    // A relative path: taken relative to where dev was started.
    let mut dev = Dev::start(
        &dir.0,
        &[
            "testplugin.py",
            "--call",
            "tp-echo",
            "a=1",
            "--call",
            "tp-echo",
            r#"[1,"two"]"#,
            // The plugin calls the dev node's lightning-rpc.
            "--call",
            "tp-rpc",
            "getinfo",
        ],
    );
    let status = dev.finish();
    let out = dev.all_stdout();
    if !status.success() || out.len() != 3 {
        dev.fail(&format!("exit {status}, {} lines", out.len()));
    }
    let results: Vec<Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(results[0]["params"], json!({"a": 1}));
    assert_eq!(results[0]["version"], "v1");
    assert_eq!(results[1]["params"], json!([1, "two"]));
    assert_eq!(results[2]["alias"], "cln-autoreload-dev");
    assert_eq!(results[2]["network"], "regtest");
    // The manifest went to stderr, not among the results.
    let stderr = dev.stderr.lock().unwrap().clone();
    assert!(stderr.contains("tp-echo [params]"), "stderr: {stderr}");
    assert_cleaned_up(&dir.0);
}

#[test]
fn a_failed_call_exits_1_and_says_why() {
    let dir = TestDir::new("failed");
    write_plugin(&dir.0.join("testplugin.py"), &json!({}));
    let mut dev = Dev::start(
        &dir.0,
        &[
            "testplugin.py",
            "--call",
            "no-such-method",
            "--call",
            "tp-error",
        ],
    );
    let status = dev.finish();
    let out = dev.all_stdout();
    if status.code() != Some(1) || out.len() != 2 {
        dev.fail(&format!("exit {status}, {} lines", out.len()));
    }
    let unknown: Value = serde_json::from_str(&out[0]).expect("JSON");
    assert_eq!(unknown["error"]["code"], -32601);
    assert!(unknown["error"]["message"]
        .as_str()
        .unwrap()
        .contains("only knows getinfo and the plugin's methods"));
    // The plugin's own error, verbatim.
    let error: Value = serde_json::from_str(&out[1]).expect("JSON");
    assert_eq!(
        error,
        json!({"error": {"code": 1234, "message": "nope", "data": {"x": 1}}})
    );
}

#[test]
fn a_missing_plugin_is_a_usage_error() {
    let dir = TestDir::new("missing");
    let mut dev = Dev::start(&dir.0, &["nope.py", "--call", "x"]);
    let status = dev.finish();
    let stderr = dev.stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("nope.py: no such file"), "stderr: {stderr}");

    std::fs::write(dir.0.join("plain.py"), "print('hi')\n").expect("write");
    let mut dev = Dev::start(&dir.0, &["plain.py"]);
    let status = dev.finish();
    let stderr = dev.stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("chmod +x"), "stderr: {stderr}");
}

#[test]
fn interactive_calls_see_a_reload() {
    let dir = TestDir::new("interactive");
    let plugin = dir.0.join("testplugin.py");
    write_plugin(&plugin, &json!({"version": "v1"}));
    let mut dev = Dev::start(&dir.0, &[plugin.to_str().expect("utf-8 path")]);
    // The manifest, on stdout in interactive mode.
    dev.expect_line("the manifest's tp-echo", |l| l.contains("tp-echo [params]"));

    dev.send("tp-echo x=1");
    dev.expect_line("x=1 echoed", |l| l.trim() == r#""x": 1"#);
    dev.expect_line("version v1", |l| l.contains(r#""version": "v1""#));

    write_plugin(&plugin, &json!({"version": "v2"}));
    dev.expect_line("the reload", |l| {
        l.starts_with("* ") && l.contains("reloaded (")
    });

    dev.send("tp-echo");
    dev.expect_line("version v2", |l| l.contains(r#""version": "v2""#));

    dev.send("status");
    dev.expect_line("autoreload-status's generation", |l| {
        l.contains(r#""generation": 2"#)
    });

    let status = dev.finish();
    if !status.success() {
        dev.fail(&format!("exit {status}"));
    }
    assert_cleaned_up(&dir.0);
}
