//! The dev node: the lightningd side of the host's pipes, and the
//! `lightning-rpc` socket it serves.
//!
//! Owns: requests to the host and matching their answers (bounded by the
//! timeout), the host's notifications (handed to [`Ui`] to show), the
//! methods the node registered from the manifest, answering a call as
//! lightningd would (`getinfo` itself, the registered methods through the
//! host, anything else with lightningd's error), and serving those calls on
//! the lightning dir's `lightning-rpc`. Must not: start or stop the host
//! process (the session does), read the terminal, or answer anything on the
//! plugin's behalf.

use super::print::Ui;
use super::{ALIAS, LIGHTNINGD_VERSION, NODE_ID};
use crate::decode::FrameReader;
use crate::framing::{preview, Frame, Kind, Message, RawId};
use crate::jsonrpc::{self, METHOD_NOT_FOUND};
use crate::link::{self, Link};
use crate::manifest::HOST_PREFIX;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::{oneshot, watch};

/// Error code of the dev node's own failures (no answer in time, host gone).
const DEV_ERROR: i64 = -1;

/// The dev node's side of the host's pipes, shared by the terminal, the
/// rpc socket's connections and the task reading the host's stdout.
pub(super) struct Node {
    /// To the host's stdin; `None` once closed.
    link: Mutex<Option<Link>>,
    /// Requests sent to the host, by id (its JSON text).
    waiters: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    next_id: AtomicU64,
    /// Methods registered from the host's manifest (as lightningd does).
    methods: OnceLock<BTreeSet<String>>,
    /// Set once the host's stdout has closed.
    closed: watch::Sender<bool>,
    timeout: Duration,
    ui: Ui,
}

/// The lock, even if a thread panicked holding it: every value behind one
/// here is whole between statements.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error object for the dev node's own failures.
fn dev_error(message: impl Into<String>) -> Value {
    json!({"code": DEV_ERROR, "message": message.into()})
}

impl Node {
    /// A node talking to a host through its `stdin` and `stdout`; also
    /// returns the task writing to `stdin`, which ends once everything
    /// queued is written after [`Node::close_link`].
    pub(super) fn start<W, R>(
        stdin: W,
        stdout: R,
        timeout: Duration,
        ui: Ui,
    ) -> (Arc<Node>, tokio::task::JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + Send + 'static,
        R: AsyncRead + Unpin + Send + 'static,
    {
        let (link, writer) = link::writer(stdin);
        let node = Arc::new(Node {
            link: Mutex::new(Some(link)),
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            methods: OnceLock::new(),
            closed: watch::channel(false).0,
            timeout,
            ui,
        });
        let (on_frame, on_close) = (node.clone(), node.clone());
        tokio::spawn(link::read_loop(
            stdout,
            move |f| on_frame.on_frame(f),
            move || on_close.on_closed(),
        ));
        (node, writer)
    }

    /// Registers the manifest's methods, once, as lightningd does: a
    /// later call is ignored.
    pub(super) fn register(&self, methods: BTreeSet<String>) {
        let _ = self.methods.set(methods);
    }

    /// Whether the node registered `method`.
    pub(super) fn has_method(&self, method: &str) -> bool {
        self.methods.get().is_some_and(|ms| ms.contains(method))
    }

    /// Whether the host's stdout has closed.
    pub(super) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Follows whether the host's stdout has closed.
    pub(super) fn watch_closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Closes the host's stdin (once what is queued is written).
    pub(super) fn close_link(&self) {
        drop(lock(&self.link).take());
    }

    /// Sends a request to the host and waits (bounded) for its answer:
    /// the result, or the error object.
    pub(super) async fn request(
        &self,
        id: RawId,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let key = id.as_json().to_owned();
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(key.clone(), tx);
        let sent = match &*lock(&self.link) {
            Some(link) => {
                link.send(jsonrpc::request(&id, method, &params));
                true
            }
            None => false,
        };
        if !sent || self.is_closed() {
            lock(&self.waiters).remove(&key);
            return Err(dev_error("the plugin host is not running"));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(answer)) => match answer.get("error") {
                Some(e) => Err(e.clone()),
                None => Ok(answer.get("result").cloned().unwrap_or(Value::Null)),
            },
            Ok(Err(_)) => Err(dev_error(format!(
                "the plugin host exited before answering {method}"
            ))),
            Err(_) => {
                lock(&self.waiters).remove(&key);
                Err(dev_error(format!(
                    "no answer to {method} within {} s (--timeout-secs); it may still be running in the plugin",
                    self.timeout.as_secs()
                )))
            }
        }
    }

    /// A call from the terminal or the rpc socket, answered as lightningd
    /// would: `getinfo` by the node, the plugin's (and host's) methods by
    /// the host, nothing else.
    pub(super) async fn dispatch(&self, method: &str, params: Value) -> Result<Value, Value> {
        if method == "getinfo" {
            return Ok(json!({
                "id": NODE_ID,
                "alias": ALIAS,
                "network": "regtest",
                "version": LIGHTNINGD_VERSION,
                "blockheight": 0,
            }));
        }
        let methods = self.methods.get();
        if methods.is_some_and(|m| m.contains(method)) {
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            let id = RawId::from_string(&format!("cli:{method}#{n}/cln:{method}#{n}"));
            return self.request(id, method, params).await;
        }
        let known: Vec<&str> = methods
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|m| !m.starts_with(HOST_PREFIX))
            .collect();
        Err(json!({
            "code": METHOD_NOT_FOUND,
            "message": format!(
                "Unknown command '{method}': the dev node only knows getinfo and the plugin's methods ({})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        }))
    }

    /// Sends a notification to the host.
    pub(super) fn notify(&self, method: &str, params: Value) {
        if let Some(link) = &*lock(&self.link) {
            link.send(jsonrpc::notification(method, params));
        }
    }

    /// Something the host wrote on its stdout.
    fn on_frame(&self, frame: Frame) {
        match frame {
            Frame::Message(Message { raw, kind }) => match kind {
                Kind::Response { id } => {
                    let waiter = lock(&self.waiters).remove(id.as_json());
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(jsonrpc::parse(&raw).unwrap_or(Value::Null));
                        }
                        None if self.ui.verbose => {
                            err!("[dev] late answer to {id} dropped");
                        }
                        None => {}
                    }
                }
                Kind::Notification { method } => {
                    let params = jsonrpc::parse(&raw)
                        .and_then(|mut v| v.get_mut("params").map(Value::take))
                        .unwrap_or(Value::Null);
                    self.ui.notification(&method, &params);
                }
                Kind::Request { method, .. } => err!(
                    "[dev] the host sent a request ({method}) on stdout, which lightningd would not answer"
                ),
            },
            Frame::Garbage { bytes, reason } => err!(
                "[dev] the host wrote something that is not JSON-RPC ({reason}), which would make lightningd kill it: {}",
                preview(&bytes, 200)
            ),
        }
    }

    /// The host's stdout closed: nothing will be answered any more.
    fn on_closed(&self) {
        self.closed.send_replace(true);
        lock(&self.waiters).clear();
    }
}

/// The node `lightning-rpc` requests go to (`None` between hosts), shared
/// by the session and the socket's connections.
#[derive(Clone, Default)]
pub(super) struct Current(Arc<Mutex<Option<Arc<Node>>>>);

impl Current {
    /// From now on, requests go to `node` (none: they are refused).
    pub(super) fn set(&self, node: Option<Arc<Node>>) {
        *lock(&self.0) = node;
    }

    fn get(&self) -> Option<Arc<Node>> {
        lock(&self.0).clone()
    }
}

/// Serves `lightning-rpc`: each request is answered by [`Node::dispatch`].
pub(super) async fn serve_rpc(listener: UnixListener, current: Current) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, current.clone()));
            }
            Err(e) => {
                err!("[dev] lightning-rpc: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client of `lightning-rpc`: its requests, each answered when done,
/// in any order, as lightningd does.
async fn serve_connection(stream: UnixStream, current: Current) {
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        while let Some(answer) = rx.recv().await {
            if wr.write_all(&answer).await.is_err()
                || wr.write_all(cln_protocol::MESSAGE_SEPARATOR).await.is_err()
            {
                break;
            }
        }
    });
    FrameReader::new(rd)
        .run(&mut |frame| {
            let (raw, id, method) = match frame {
                Frame::Message(Message {
                    raw,
                    kind: Kind::Request { id, method },
                }) => (raw, id, method),
                Frame::Message(_) => return ControlFlow::Continue(()),
                // lightningd, too, drops a client that sends garbage.
                Frame::Garbage { .. } => return ControlFlow::Break(()),
            };
            let params = jsonrpc::parse(&raw)
                .and_then(|mut v| v.get_mut("params").map(Value::take))
                .unwrap_or(json!({}));
            let (node, tx) = (current.get(), tx.clone());
            tokio::spawn(async move {
                let answered = match node {
                    Some(node) => node.dispatch(&method, params).await,
                    None => Err(dev_error("the dev node is restarting the host: call again")),
                };
                let answer = match answered {
                    Ok(result) => jsonrpc::response(&id, result),
                    Err(error) => Bytes::from(format!(
                        r#"{{"jsonrpc":"2.0","id":{},"error":{error}}}"#,
                        id.as_json()
                    )),
                };
                let _ = tx.send(answer);
            });
            ControlFlow::Continue(())
        })
        .await;
}
