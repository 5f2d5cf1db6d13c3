//! Blocking JSON-RPC clients for the measurements: a connection to a
//! node's `lightning-rpc` socket, and a process driven over its stdio as
//! lightningd drives a plugin. Every wait is bounded: a socket has a read
//! timeout, a process a watchdog that kills it.

use anyhow::{anyhow, bail, Context as _, Result};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A call got no answer within its bound.
#[derive(Debug)]
pub struct NoAnswer(pub Duration);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer within {:?}", self.0)
    }
}

impl std::error::Error for NoAnswer {}

/// One JSON-RPC message as the benchmark needs it.
#[derive(Debug, Deserialize)]
pub struct Msg {
    pub id: Option<Box<RawValue>>,
    pub method: Option<String>,
    pub result: Option<Value>,
    pub error: Option<Value>,
}

impl Msg {
    fn is_response(&self) -> bool {
        self.id.is_some() && self.method.is_none()
    }

    /// The result, or the error as an `Err` with its message.
    pub fn outcome(self) -> Result<Value, String> {
        match (self.result, self.error) {
            (_, Some(e)) => Err(e
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| e.to_string(), str::to_owned)),
            // `"result": null` (pyln's init) reads as no result.
            (r, None) => Ok(r.unwrap_or(Value::Null)),
        }
    }
}

/// Cuts a byte stream into JSON messages.
#[derive(Default)]
pub struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    /// The next message, reading from `r` as needed.
    pub fn next(&mut self, r: &mut impl Read) -> std::io::Result<Msg> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let start = self
                .buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(self.buf.len());
            if start > 0 {
                self.buf.drain(..start);
            }
            if !self.buf.is_empty() {
                let mut it = serde_json::Deserializer::from_slice(&self.buf)
                    .into_iter::<serde::de::IgnoredAny>();
                match it.next() {
                    Some(Ok(_)) => {
                        let end = it.byte_offset();
                        let msg: Msg = serde_json::from_slice(&self.buf[..end])
                            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                        self.buf.drain(..end);
                        return Ok(msg);
                    }
                    Some(Err(e)) if e.is_eof() => {}
                    Some(Err(e)) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "not JSON ({e}): {}",
                                String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                            ),
                        ))
                    }
                    None => {}
                }
            }
            let n = r.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the stream ended",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A connection to a node's rpc socket; one call at a time.
pub struct Conn {
    s: UnixStream,
    frames: Frames,
    n: u64,
    req: Vec<u8>,
    bound: Duration,
    tag: String,
}

static CONN: AtomicU64 = AtomicU64::new(1);

impl Conn {
    /// Connects; every answer must come within `bound`.
    pub fn connect(path: &Path, bound: Duration) -> Result<Conn> {
        let s = UnixStream::connect(path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        s.set_read_timeout(Some(bound))?;
        s.set_write_timeout(Some(bound))?;
        Ok(Conn {
            s,
            frames: Frames::default(),
            n: 0,
            req: Vec::with_capacity(256),
            bound,
            tag: format!("bench{}", CONN.fetch_add(1, Ordering::Relaxed)),
        })
    }

    /// One call; `params` is JSON text. Err(NoAnswer) past the bound.
    pub fn call(&mut self, method: &str, params: &str) -> Result<Result<Value, String>> {
        self.n += 1;
        self.req.clear();
        write!(
            self.req,
            "{{\"jsonrpc\":\"2.0\",\"id\":\"{}:{method}#{}\",\"method\":\"{method}\",\"params\":{params}}}",
            self.tag, self.n
        )?;
        self.s.write_all(&self.req)?;
        let want = format!("\"{}:{method}#{}\"", self.tag, self.n);
        loop {
            let msg = match self.frames.next(&mut self.s) {
                Ok(m) => m,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(NoAnswer(self.bound).into())
                }
                Err(e) => return Err(anyhow!(e).context(format!("calling {method}"))),
            };
            if !msg.is_response() {
                continue;
            }
            let id = msg.id.as_ref().map(|i| i.get()).unwrap_or_default();
            if id != want {
                bail!("calling {method}: answer to {id}, expected {want}");
            }
            return Ok(msg.outcome());
        }
    }

    /// A call that must succeed.
    pub fn ok(&mut self, method: &str, params: &str) -> Result<Value> {
        self.call(method, params)?
            .map_err(|e| anyhow!("{method} {params} answered an error: {e}"))
    }
}

/// Kills a process that takes longer than armed.
pub struct Watchdog {
    deadline_ms: Arc<AtomicU64>,
    fired: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(pid: u32) -> Watchdog {
        let deadline_ms = Arc::new(AtomicU64::new(0));
        let fired = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let (d, f, s) = (deadline_ms.clone(), fired.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let at = d.load(Ordering::Relaxed);
                let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                if at != 0 && now > at {
                    if let Ok(pid) = i32::try_from(pid) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    f.store(true, Ordering::SeqCst);
                    return;
                }
            }
        });
        Watchdog {
            deadline_ms,
            fired,
            stop,
            epoch,
            thread: Some(thread),
        }
    }

    /// Kill the process unless disarmed within `d`.
    pub fn arm(&self, d: Duration) {
        let at = self.epoch.elapsed() + d;
        let ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX).max(1);
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    pub fn disarm(&self) {
        self.deadline_ms.store(0, Ordering::Relaxed);
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A process driven over its stdio, as lightningd drives a plugin.
pub struct PipeProc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    frames: Frames,
    pub dog: Watchdog,
    n: u64,
    req: Vec<u8>,
}

impl PipeProc {
    pub fn spawn(name: &str, mut cmd: Command) -> Result<PipeProc> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("{name}: no piped stdio");
        };
        let dog = Watchdog::new(child.id());
        Ok(PipeProc {
            name: name.to_string(),
            child,
            stdin: Some(stdin),
            stdout,
            frames: Frames::default(),
            dog,
            n: 0,
            req: Vec::with_capacity(256),
        })
    }

    /// Writes one request (lightningd's framing); returns its id text.
    pub fn send(&mut self, method: &str, params: &str) -> Result<()> {
        self.n += 1;
        self.req.clear();
        write!(
            self.req,
            "{{\"jsonrpc\":\"2.0\",\"id\":\"cli:{method}#{n}/cln:{method}#{n}\",\"method\":\"{method}\",\"params\":{params}}}\n\n",
            n = self.n
        )?;
        let name = &self.name;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("{name}: stdin already closed"))?;
        stdin
            .write_all(&self.req)
            .with_context(|| format!("writing to {name}"))
    }

    /// The next response (skipping notifications such as `log`).
    pub fn recv(&mut self) -> Result<Msg> {
        loop {
            let msg = match self.frames.next(&mut self.stdout) {
                Ok(m) => m,
                Err(e) if self.dog.fired() => {
                    bail!("{}: no answer in time, killed it ({e})", self.name)
                }
                Err(e) => return Err(anyhow!(e).context(format!("reading from {}", self.name))),
            };
            if msg.is_response() {
                return Ok(msg);
            }
        }
    }

    /// One request and its response, which must be a success.
    pub fn request(&mut self, method: &str, params: &str) -> Result<Value> {
        self.send(method, params)?;
        let m = self.recv()?;
        let want = format!("\"cli:{method}#{n}/cln:{method}#{n}\"", n = self.n);
        let id = m.id.as_ref().map(|i| i.get()).unwrap_or_default();
        if id != want {
            bail!("{}: answer to {id}, expected {want}", self.name);
        }
        m.outcome()
            .map_err(|e| anyhow!("{}: {method} answered an error: {e}", self.name))
    }

    /// getmanifest and init as lightningd sends them; `options` is the
    /// init options object (JSON text).
    pub fn handshake(&mut self, dir: &Path, options: &str) -> Result<()> {
        self.dog.arm(Duration::from_secs(60));
        self.request("getmanifest", "{\"allow-deprecated-apis\":false}")?;
        let dir = serde_json::to_string(&dir.display().to_string())?;
        let init = format!(
            "{{\"options\":{options},\"configuration\":{{\"lightning-dir\":{dir},\"rpc-file\":\"lightning-rpc\",\"startup\":true,\"network\":\"regtest\",\"feature_set\":{{\"init\":\"\",\"node\":\"\",\"channel\":\"\",\"invoice\":\"\",\"bolt11\":\"\",\"bolt12\":\"\",\"offers\":\"\"}}}}}}",
        );
        self.request("init", &init)?;
        self.dog.disarm();
        Ok(())
    }

    /// Closes stdin and waits (briefly) for the exit; kills otherwise.
    pub fn finish(mut self) {
        self.stdin = None;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PipeProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
