//! Test support for cln-autoreload: start a node (the lightningd stand-in,
//! or a real lightningd when `LIGHTNINGD` names one) with the host as its
//! plugin, call it over its `lightning-rpc` socket, write plugin versions,
//! and wait for things to happen, always with a bound that fails loudly.

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// How long any single wait in a test may take before it fails.
pub const BOUND: Duration = Duration::from_secs(60);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared` beside the checkout.
pub fn shared() -> PathBuf {
    root().join("../shared")
}

/// The directory cargo builds into.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    // <target>/<profile>/deps/<test-exe>, or <target>/<profile>/<bin>
    std::env::current_exe()
        .ok()
        .and_then(|e| {
            let mut dir = e.parent()?;
            if dir.file_name()? == "deps" {
                dir = dir.parent()?;
            }
            dir.parent().map(Path::to_path_buf)
        })
        .unwrap_or_else(|| root().join("target"))
}

/// The host binary, built (once per test process) if needed.
pub fn host_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built_bin("cln-autoreload", "cln-autoreload"))
        .clone()
}

/// The example native plugin, built if needed.
pub fn hello_native_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built_bin("hello-native", "hello-native"))
        .clone()
}

/// Builds a workspace binary (cargo builds a package's own binaries before
/// its tests, but not other packages') and returns its path.
pub fn built_bin(package: &str, bin: &str) -> PathBuf {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "-p", package, "--bin", bin])
        .current_dir(root());
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building {bin} failed");
    target_dir().join(profile).join(bin)
}

/// The stand-in binary.
pub fn standin_bin() -> PathBuf {
    // Cargo builds a package's binaries before its integration tests.
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    target_dir().join(profile).join("lightningd-standin")
}

/// lightningd's source (a git directory): `LIGHTNING_SRC`, or the mirror
/// `fetch` puts beside the checkout; `None`, after a skip note, when
/// neither is there.
pub fn lightning_src() -> Option<PathBuf> {
    let src = std::env::var_os("LIGHTNING_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../.mirror/ElementsProject+lightning/repo"));
    if !src.exists() {
        skip(format!(
            "no lightningd source at {} (set LIGHTNING_SRC to a clone of ElementsProject/lightning)",
            src.display()
        ));
        return None;
    }
    Some(src)
}

/// The real lightningd to test against, if `LIGHTNINGD` names one.
pub fn real_lightningd() -> Option<PathBuf> {
    std::env::var_os("LIGHTNINGD")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A fresh temporary directory that lives as long as the value.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("autoreload-test-")
        .tempdir()
        .expect("a temp dir")
}

/// An error answered by lightningd (or the stand-in).
#[derive(Debug, Clone)]
pub struct RpcError {
    /// The error object.
    pub error: Value,
}

impl RpcError {
    /// The error's code.
    pub fn code(&self) -> i64 {
        self.error["code"].as_i64().unwrap_or(0)
    }
    /// The kind cln-autoreload gives its own errors, in `error.data.kind`
    /// ("reloaded", "crashed", "down", ...); empty for anyone else's.
    pub fn kind(&self) -> &str {
        self.error["data"]["kind"].as_str().unwrap_or_default()
    }
    /// The error's message.
    pub fn message(&self) -> String {
        self.error["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

/// How to start a node.
#[derive(Debug, Clone, Default)]
pub struct NodeBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    launch_dir: Option<PathBuf>,
    with_host: bool,
    host_path: Option<PathBuf>,
    standin_only: bool,
    lightning_dir: Option<PathBuf>,
}

impl NodeBuilder {
    /// A node running cln-autoreload as a plugin.
    pub fn new() -> NodeBuilder {
        NodeBuilder {
            with_host: true,
            ..Default::default()
        }
    }

    /// Adds a command line argument (e.g. `--autoreload-plugin=x`).
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Adds several arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the node (and so its plugins).
    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Removes an environment variable (e.g. `PWD`).
    pub fn env_remove(mut self, k: &str) -> Self {
        self.env_remove.push(k.into());
        self
    }

    /// The directory the node is launched from (its cwd and `PWD`).
    pub fn launch_dir(mut self, d: &Path) -> Self {
        self.launch_dir = Some(d.to_path_buf());
        self
    }

    /// The node's lightning dir, made by the test (a plugin needs a file
    /// there before it starts); by default a temporary one.
    pub fn lightning_dir(mut self, d: &Path) -> Self {
        self.lightning_dir = Some(d.to_path_buf());
        self
    }

    /// Runs the host through this path (a wrapper script) instead.
    pub fn host_path(mut self, p: &Path) -> Self {
        self.host_path = Some(p.to_path_buf());
        self
    }

    /// Don't add `--plugin=cln-autoreload` (the test adds its own).
    pub fn without_host(mut self) -> Self {
        self.with_host = false;
        self
    }

    /// This test needs the stand-in's dev methods: skipped with a real
    /// lightningd.
    pub fn standin_only(mut self) -> Self {
        self.standin_only = true;
        self
    }

    /// Starts the node and waits until its rpc socket answers. `None`
    /// (with a line on stderr) when the test does not apply to the node
    /// under test.
    pub async fn start(self) -> Result<Option<Node>> {
        let real = real_lightningd();
        if real.is_some() && self.standin_only {
            skip("against the real lightningd: needs the stand-in's dev methods");
            return Ok(None);
        }
        let dir = tempdir();
        let launch = self
            .launch_dir
            .clone()
            .unwrap_or_else(|| dir.path().to_path_buf());
        let bin = real.clone().unwrap_or_else(standin_bin);
        let ldir = self
            .lightning_dir
            .clone()
            .unwrap_or_else(|| dir.path().to_path_buf());
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--lightning-dir={}", ldir.display()))
            .arg("--network=regtest");
        // lightningd's log, to show what happened when a call hangs (no
        // rpc, `getlog` included, is answered while a db_write is out).
        let log_file = self
            .args
            .iter()
            .find_map(|a| a.strip_prefix("--log-file=").map(PathBuf::from))
            .unwrap_or_else(|| dir.path().join("log"));
        if !self.args.iter().any(|a| a.starts_with("--log-file=")) {
            cmd.arg(format!("--log-file={}", log_file.display()));
        }
        if real.is_some() {
            cmd.arg("--disable-plugin=bcli")
                .arg(format!(
                    "--plugin={}",
                    shared().join("tools/regtest-backend.py").display()
                ))
                .arg("--offline")
                .arg("--log-level=debug");
        }
        if self.with_host {
            let host = self.host_path.clone().unwrap_or_else(host_bin);
            cmd.arg(format!("--plugin={}", host.display()));
        }
        cmd.args(&self.args)
            .current_dir(&launch)
            .env("PWD", &launch)
            // The host keeps compiled wasm modules under the user's cache
            // directory: each node gets its own, so that no test (or bench
            // run) finds what another one compiled, unless it says so.
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take();
        let stderr_buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut e) = stderr {
            let buf = stderr_buf.clone();
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 4096];
                while let Ok(n) = e.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&chunk[..n]).into_owned();
                    eprint!("{text}");
                    if let Ok(mut b) = buf.lock() {
                        b.push_str(&text);
                    }
                }
            });
        }
        let rpc = ldir.join("regtest/lightning-rpc");
        let deadline = Instant::now() + Duration::from_secs(60);
        let node = Node {
            child,
            dir,
            rpc,
            real: real.is_some(),
            stderr: stderr_buf,
            log_file,
        };
        Self::wait_ready(node, deadline).await
    }

    async fn wait_ready(mut node: Node, deadline: Instant) -> Result<Option<Node>> {
        loop {
            if node.rpc.exists() && UnixStream::connect(&node.rpc).await.is_ok() {
                // The socket may open before plugins have answered init
                // (lightningd's does); getinfo is answered only after.
                let getinfo = br#"{"jsonrpc":"2.0","id":"ready","method":"getinfo","params":{}}"#;
                let left = deadline.saturating_duration_since(Instant::now());
                return match tokio::time::timeout(left, node.try_call_raw(getinfo)).await {
                    Ok(Ok(_)) => Ok(Some(node)),
                    Ok(Err(e)) => {
                        bail!("the node did not answer getinfo: {e:#}: {}", node.stderr())
                    }
                    Err(_) => bail!(
                        "the node did not answer getinfo within 60s: {}",
                        node.stderr()
                    ),
                };
            }
            if let Some(status) = node.child.try_wait()? {
                bail!(
                    "the node exited during start-up ({status}): {}",
                    node.stderr()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the node did not open its rpc socket within 60s: {}",
                    node.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A running node (stand-in or real lightningd).
pub struct Node {
    child: Child,
    /// Its lightning dir.
    pub dir: tempfile::TempDir,
    rpc: PathBuf,
    /// Whether this is a real lightningd.
    pub real: bool,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    log_file: PathBuf,
}

static CALL_ID: AtomicU64 = AtomicU64::new(1);

impl Node {
    /// The last `n` lines of the node's log file.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// What the node wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Calls `method`; fails the test if no answer comes within [`BOUND`].
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let n = CALL_ID.fetch_add(1, Ordering::Relaxed);
        let req = json!({"jsonrpc": "2.0", "id": format!("test:{method}#{n}"), "method": method, "params": params});
        let resp = self.call_raw(req.to_string().as_bytes()).await;
        match resp.get("error") {
            Some(e) => Err(RpcError { error: e.clone() }),
            None => Ok(resp.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Calls and expects success.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        match self.call(method, params.clone()).await {
            Ok(v) => v,
            Err(e) => panic!(
                "{method} {params} failed: {e}\nnode stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Sends raw request bytes and returns the whole response object.
    pub async fn call_raw(&self, request: &[u8]) -> Value {
        match tokio::time::timeout(BOUND, self.try_call_raw(request)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!(
                "call {} failed: {e:#}\nnode stderr:\n{}",
                String::from_utf8_lossy(&request[..request.len().min(300)]),
                self.stderr()
            ),
            Err(_) => panic!(
                "no answer within {BOUND:?} to {}: a caller would hang forever\nnode stderr:\n{}\nthe end of its log:\n{}",
                String::from_utf8_lossy(&request[..request.len().min(300)]),
                self.stderr(),
                self.log_tail(80)
            ),
        }
    }

    async fn try_call_raw(&self, request: &[u8]) -> Result<Value> {
        let mut s = UnixStream::connect(&self.rpc).await?;
        s.write_all(request).await?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed without an answer");
            }
            buf.extend_from_slice(&chunk[..n]);
            // A response ends with '}' (and whitespace): don't re-parse a
            // big one from its start after every read.
            if buf.iter().rev().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
                continue;
            }
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    // Skip notifications (message/progress) for this call.
                    if v.get("id").is_some() {
                        return Ok(v);
                    }
                    let off = it.byte_offset();
                    buf.drain(..off);
                }
                Some(Err(e)) if e.is_eof() => continue,
                Some(Err(e)) => bail!("bad JSON from node: {e}"),
                None => continue,
            }
        }
    }

    /// All log lines so far (`getlog`), as `"TYPE source: text"`.
    pub async fn logs(&self) -> Vec<String> {
        let v = self.ok("getlog", json!({"level": "debug"})).await;
        v["log"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e.get("log").is_some())
                    .map(|e| {
                        format!(
                            "{} {}: {}",
                            e["type"].as_str().unwrap_or(""),
                            e["source"].as_str().unwrap_or(""),
                            e["log"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until a log line contains `needle`; returns it.
    pub async fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.logs().await.into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if start.elapsed() > BOUND {
                panic!(
                    "no log line with {needle:?} within {BOUND:?}; log:\n{}",
                    self.logs().await.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `autoreload-status` for the first plugin satisfies `f`.
    pub async fn wait_status(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.ok("autoreload-status", json!({})).await;
            if f(&s["plugins"][0]) {
                return s["plugins"][0].clone();
            }
            if start.elapsed() > BOUND {
                panic!("status never became {what} within {BOUND:?}: {s:#}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first plugin's generation now (0: none yet).
    pub async fn generation(&self) -> u64 {
        self.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until a generation of the first plugin newer than `after`
    /// serves; its status entry.
    pub async fn serving_after(&self, after: u64) -> Value {
        self.wait_status(&format!("a generation after {after} serving"), |s| {
            s["state"] == "serving" && s["generation"].as_u64() > Some(after)
        })
        .await
    }

    /// The host's entry in `plugin list`.
    pub async fn host_entry(&self) -> Value {
        let v = self.ok("plugin", json!({"subcommand": "list"})).await;
        // The stand-in keeps killed plugins in the list (inactive): prefer
        // a live entry.
        let ours = |p: &&Value| p["name"].as_str().is_some_and(|n| n.contains("autoreload"));
        let list = v["plugins"].as_array().cloned().unwrap_or_default();
        list.iter()
            .filter(ours)
            .find(|p| p["active"] == true)
            .or_else(|| list.iter().find(ours))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Asks the node to stop and waits for it to exit.
    pub async fn stop(mut self) -> Result<std::process::ExitStatus> {
        let _ = tokio::time::timeout(
            BOUND,
            self.try_call_raw(br#"{"jsonrpc":"2.0","id":"stop","method":"stop","params":{}}"#),
        )
        .await;
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(s) => Ok(s?),
            Err(_) => Err(anyhow!("node did not exit within 60s of stop")),
        }
    }

    /// The node's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Writes a version of the configurable test plugin (tests/plugins/
/// testplugin.py) to `path`, executable, atomically (write + rename).
pub fn write_testplugin(path: &Path, config: &Value) {
    let text = testplugin_text(config);
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write plugin");
    make_executable(&tmp);
    std::fs::rename(&tmp, path).expect("rename plugin into place");
}

/// The text of a version of the test plugin.
pub fn testplugin_text(config: &Value) -> String {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(|| {
        let src = std::fs::read_to_string(root().join("tests/plugins/testplugin.py"))
            .expect("testplugin.py");
        let at = src.find("# --- body ---\n").expect("body marker");
        src[at + "# --- body ---\n".len()..].to_string()
    });
    let literal = serde_json::to_string(&config.to_string()).expect("string");
    format!("#!/usr/bin/env python3\nCONFIG = {literal}\n{body}")
}

/// A wrapper script running the host on `plugin` (how to start the host
/// with `plugin start`, or several independent hosts).
pub fn write_wrapper(path: &Path, plugin: &Path) -> PathBuf {
    let text = format!(
        "#!/bin/sh\nexec {} {} \"$@\"\n",
        host_bin().display(),
        plugin.display()
    );
    std::fs::write(path, text).expect("write wrapper");
    make_executable(path);
    path.to_path_buf()
}

/// chmod +x.
pub fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(p).expect("metadata").permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(p, perm).expect("chmod");
}

/// Polls `f` until it returns `Some`, failing loudly after [`BOUND`].
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > BOUND {
            panic!("{what}: not within {BOUND:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The host driven directly, the test acting as lightningd byte for byte:
/// for replaying traces and feeding bad input.
pub struct Direct {
    child: Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::process::ChildStdout,
    buf: Vec<u8>,
    /// Every message the host wrote so far, in order.
    pub seen: Vec<Value>,
    /// The lightning dir (cwd is `<dir>/regtest`).
    pub dir: tempfile::TempDir,
}

impl Direct {
    /// Starts the host as lightningd would: argv is its path (plus `args`),
    /// cwd `<lightning-dir>/regtest`, env plus `LIGHTNINGD_PLUGIN=1`.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Direct {
        let dir = tempdir();
        let cwd = dir.path().join("regtest");
        std::fs::create_dir_all(&cwd).expect("mkdir");
        let mut cmd = Command::new(host_bin());
        cmd.args(args)
            .current_dir(&cwd)
            .env("LIGHTNINGD_PLUGIN", "1")
            .env("LIGHTNINGD_VERSION", "v26.06.6")
            // Its own cache of compiled wasm modules (see NodeBuilder).
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("host starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        Direct {
            child,
            stdin,
            stdout,
            buf: vec![],
            seen: vec![],
            dir,
        }
    }

    /// Writes bytes to the host's stdin.
    pub async fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.expect("write to host");
        stdin.flush().await.expect("flush");
    }

    /// Closes the host's stdin.
    pub fn close(&mut self) {
        self.stdin = None;
    }

    /// The next message the host writes; fails after [`BOUND`]. Also
    /// fails if the host writes anything that is not a JSON-RPC object:
    /// lightningd would kill it for that.
    pub async fn next(&mut self) -> Option<Value> {
        match tokio::time::timeout(BOUND, self.next_inner()).await {
            Ok(v) => v,
            Err(_) => panic!(
                "the host wrote nothing for {BOUND:?}; seen so far: {:#?}",
                self.seen
            ),
        }
    }

    async fn next_inner(&mut self) -> Option<Value> {
        loop {
            let start = self
                .buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(self.buf.len());
            self.buf.drain(..start);
            if !self.buf.is_empty() {
                let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
                match it.next() {
                    Some(Ok(v)) => {
                        let off = it.byte_offset();
                        self.buf.drain(..off);
                        assert!(
                            v.get("jsonrpc").is_some(),
                            "host wrote a JSON object without jsonrpc (lightningd kills for that): {v}"
                        );
                        self.seen.push(v.clone());
                        return Some(v);
                    }
                    Some(Err(e)) if e.is_eof() => {}
                    Some(Err(e)) => panic!(
                        "host wrote something that is not JSON (lightningd kills for that): {e}: {}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
                    ),
                    None => {}
                }
            }
            let mut chunk = vec![0u8; 1 << 16];
            let n = self
                .stdout
                .read(&mut chunk)
                .await
                .expect("read host stdout");
            if n == 0 {
                assert!(
                    self.buf.iter().all(u8::is_ascii_whitespace),
                    "host ended mid-message"
                );
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until the response to `id` (a JSON string id); returns it.
    pub async fn response(&mut self, id: &str) -> Value {
        loop {
            match self.next().await {
                Some(v)
                    if v.get("id").and_then(Value::as_str) == Some(id)
                        && v.get("method").is_none() =>
                {
                    return v
                }
                Some(_) => {}
                None => panic!("host exited before answering {id}; seen: {:#?}", self.seen),
            }
        }
    }

    /// Sends a request and returns its response.
    pub async fn request(&mut self, id: &str, method: &str, params: Value) -> Value {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(format!("{msg}\n\n").as_bytes()).await;
        self.response(id).await
    }

    /// Log lines the host wrote so far.
    pub fn logs(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter(|v| v["method"] == "log")
            .map(|v| {
                format!(
                    "{} {}",
                    v["params"]["level"].as_str().unwrap_or(""),
                    v["params"]["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Waits for the host to exit (after shutdown or EOF).
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        while self.next().await.is_some() {}
        match tokio::time::timeout(BOUND, self.child.wait()).await {
            Ok(s) => s.expect("wait"),
            Err(_) => panic!("host did not exit within {BOUND:?}"),
        }
    }

    /// The host's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// getmanifest as lightningd v26.06 sends it.
pub fn getmanifest_bytes(n: u32) -> Vec<u8> {
    format!("{{\"jsonrpc\":\"2.0\",\"id\":\"cln:getmanifest#{n}\",\"method\":\"getmanifest\",\"params\":{{\"allow-deprecated-apis\":true}}}}\n\n").into_bytes()
}

/// Says that (part of) the running test cannot run here, and why: on
/// stderr, and as a line `test: why` appended to the file named by
/// `AUTORELOAD_SKIP_LOG`, which `.ci/run` reads after the tests: a test CI
/// is meant to run that skipped fails the run instead of counting as
/// passed. Under `AUTORELOAD_NO_SKIP` the test fails at once.
pub fn skip(why: impl std::fmt::Display) {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string();
    assert!(
        std::env::var_os("AUTORELOAD_NO_SKIP").is_none(),
        "AUTORELOAD_NO_SKIP is set, but {test} would be skipped: {why}"
    );
    eprintln!("SKIPPED {test}: {why}");
    if let Some(log) = std::env::var_os("AUTORELOAD_SKIP_LOG") {
        use std::io::Write;
        let line = format!("{test}: {why}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!(
                "cannot note the skip in {}: {e}",
                PathBuf::from(log).display()
            );
        }
    }
}

/// The trace file `name` from `../shared/cln-v26.06/traces`, or `None`
/// (with a note) when `../shared` is not beside the checkout.
pub fn trace(name: &str) -> Option<Vec<u8>> {
    let p = shared().join("cln-v26.06/traces").join(name);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            assert!(
                std::env::var_os("AUTORELOAD_REQUIRE_TRACES").is_none(),
                "AUTORELOAD_REQUIRE_TRACES is set but {} is missing",
                p.display()
            );
            skip(format!("{} not found", p.display()));
            None
        }
    }
}

/// Builds a workspace binary for wasm32-wasip1 (debug or release) and
/// returns the .wasm path.
pub fn wasm_bin(package: &str, release: bool) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "--target", "wasm32-wasip1", "-p", package])
        .current_dir(root());
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(
        status.success(),
        "building {package} for wasm32-wasip1 failed (rustup target add wasm32-wasip1?)"
    );
    target_dir()
        .join("wasm32-wasip1")
        .join(if release { "release" } else { "debug" })
        .join(format!("{package}.wasm"))
}

/// The test guest's module, built once per test process.
pub fn testguest_wasm() -> Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| std::fs::read(wasm_bin("testguest", false)).expect("testguest.wasm"))
        .clone()
}

/// The test guest with its version marker set to `version` (up to 8
/// bytes): a different module, as a rebuild would make.
pub fn testguest_version(version: &str) -> Vec<u8> {
    with_testguest_version(testguest_wasm(), version)
}

/// A build of the test guest (`bytes`, debug or release) with its version
/// marker set to `version` (up to 8 bytes).
pub fn with_testguest_version(mut bytes: Vec<u8>, version: &str) -> Vec<u8> {
    assert!(version.len() <= 8);
    let marker = b"TGVERSION:";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the version marker is in testguest.wasm");
    let mut v = version.as_bytes().to_vec();
    v.resize(8, b'_');
    bytes[at + marker.len()..at + marker.len() + 8].copy_from_slice(&v);
    bytes
}

/// Writes bytes to `path` atomically (write + rename), like a build.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A copy of examples/hello-wasm as a crate of its own in `dir` (so it can
/// be edited and rebuilt like a user's plugin), with the release profile
/// docs/wasm.md recommends for wasm plugins; returns its main.rs text.
pub fn copy_hello_wasm(dir: &Path) -> String {
    let src = root().join("examples/hello-wasm");
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    let main_rs = std::fs::read_to_string(src.join("src/main.rs")).expect("hello-wasm main.rs");
    std::fs::write(dir.join("src/main.rs"), &main_rs).expect("write main.rs");
    let sdk = root().join("guest-sdk").canonicalize().expect("guest-sdk");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"hello-wasm\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncln-autoreload-guest = {{ path = {sdk:?} }}\n\n[workspace]\n\n{WASM_RELEASE_PROFILE}"
        ),
    )
    .expect("write Cargo.toml");
    main_rs
}

/// The release profile docs/wasm.md recommends for a wasm plugin: a module
/// half the size, which Winch compiles in about half the time.
pub const WASM_RELEASE_PROFILE: &str =
    "[profile.release]\nlto = true\nopt-level = \"s\"\ncodegen-units = 1\n";

/// `cargo build --target wasm32-wasip1` in a copied crate, into a target
/// dir kept between runs; returns the .wasm path.
pub fn build_copied_wasm(krate: &Path, release: bool) -> PathBuf {
    build_wasm_crate(krate, release, Some(&target_dir().join("example-copies")))
}

/// `cargo build --target wasm32-wasip1 [--release]` in `krate`, into
/// `target`, or into the crate's own `target/` (as a user's crate builds,
/// which is what the host's build inference recognizes); returns the
/// hello-wasm module's path.
pub fn build_wasm_crate(krate: &Path, release: bool, target: Option<&Path>) -> PathBuf {
    build_wasm_crate_with(krate, release, target, true)
}

/// [`build_copied_wasm`] with cargo's progress on the terminal: the
/// demo's first build compiles the SDK's dependencies for wasm32-wasip1,
/// which takes a while.
pub fn build_copied_wasm_showing_progress(krate: &Path, release: bool) -> PathBuf {
    build_wasm_crate_with(
        krate,
        release,
        Some(&target_dir().join("example-copies")),
        false,
    )
}

fn build_wasm_crate_with(
    krate: &Path,
    release: bool,
    target: Option<&Path>,
    quiet: bool,
) -> PathBuf {
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--offline", "--target", "wasm32-wasip1"])
        .current_dir(krate);
    if quiet {
        cmd.arg("-q");
    }
    match target {
        Some(t) => cmd.env("CARGO_TARGET_DIR", t),
        None => cmd.env_remove("CARGO_TARGET_DIR"),
    };
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(
        status.success(),
        "cargo build of {} failed",
        krate.display()
    );
    target
        .map_or_else(|| krate.join("target"), Path::to_path_buf)
        .join("wasm32-wasip1")
        .join(if release { "release" } else { "debug" })
        .join("hello-wasm.wasm")
}

/// The parent of process `pid`.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The most memory process `pid` has had resident so far (`VmHWM`), in
/// MiB.
pub fn peak_rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// What the bench and the soak reports say about the machine and commit.
pub mod facts;
/// The mixed soak and the resource-hygiene measurement.
pub mod soak;
pub use soak::host_pid;

/// The plugin a benchmark proxy (`pump`, `forwarder`) stands in front of:
/// `TOOL PLUGIN [ARGS]...` from the command line, started with piped
/// stdin and stdout (its stderr is the proxy's).
pub fn proxied_plugin(
    tool: &str,
) -> std::io::Result<(
    std::process::Child,
    std::process::ChildStdin,
    std::process::ChildStdout,
)> {
    use std::io;
    use std::process::Stdio;
    let mut args = std::env::args_os().skip(1);
    let Some(plugin) = args.next() else {
        return Err(io::Error::other(format!("usage: {tool} PLUGIN [ARGS]...")));
    };
    let mut child = std::process::Command::new(&plugin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| io::Error::other(format!("starting {}: {e}", plugin.to_string_lossy())))?;
    match (child.stdin.take(), child.stdout.take()) {
        (Some(i), Some(o)) => Ok((child, i, o)),
        _ => Err(io::Error::other("the plugin has no piped stdio")),
    }
}
