//! A sandboxed native plugin's own `lightning-rpc`: a unix socket that
//! forwards to lightningd's only the calls its allow-list permits
//! (`autoreload-native-rpc-allow`).
//!
//! Owns: one listening socket per plugin, kept across its generations;
//! per connection, one connection to lightningd's socket; the check of
//! every request (through [`crate::rpc_allow`]); answering the refused
//! ones itself, with a warning in lightningd's log; and answering every
//! request lightningd did not answer when its connection ends, so that no
//! call waits forever. lightningd's answers and notifications pass
//! through as lightningd wrote them, whole messages in order.
//! Must not: keep the plugin from the real socket (`rpc_fence` does),
//! decide the list (`sandbox` does), or parse more of a message than its
//! method and id.

use crate::decode::FrameReader;
use crate::framing::{Frame, Kind};
use crate::link::{Level, Link};
use crate::rpc_allow::{self, Methods, Refusal};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// The JSON-RPC error code of an answer the filter gives itself.
const CODE: i64 = cln_protocol::errors::INVALID_REQUEST;

/// What the filter lets through, and where to.
#[derive(Debug, Clone)]
struct Policy {
    methods: Methods,
    /// lightningd's socket (`None` until known).
    upstream: Option<PathBuf>,
}

struct Shared {
    name: String,
    link: Link,
    policy: RwLock<Policy>,
    refused: AtomicU64,
    forwarded: AtomicU64,
}

impl Shared {
    fn policy(&self) -> Policy {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One plugin's filtering socket; stops listening and removes its file
/// when dropped.
pub struct Filter {
    path: PathBuf,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Filter {
    /// Listens at `path` (replacing a stale file) for plugin `name`,
    /// warning through `link`. Needs the tokio runtime.
    pub fn start(path: &Path, name: &str, link: Link, methods: Methods) -> std::io::Result<Filter> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            link,
            policy: RwLock::new(Policy {
                methods,
                upstream: None,
            }),
            refused: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((client, _)) => {
                        tokio::spawn(serve(client, s.clone()));
                    }
                    // Out of file descriptors: the plugin's connect waits
                    // in the backlog until one is free.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            }
        });
        Ok(Filter {
            path: path.to_owned(),
            shared,
            task,
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The list and lightningd's socket for connections made from now on.
    pub fn set(&self, methods: Methods, upstream: Option<PathBuf>) {
        *self
            .shared
            .policy
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Policy { methods, upstream };
    }

    /// Calls refused and forwarded so far.
    pub fn counts(&self) -> Value {
        json!({
            "refused": self.shared.refused.load(Ordering::Relaxed),
            "forwarded": self.shared.forwarded.load(Ordering::Relaxed),
        })
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The requests forwarded on one connection and not answered yet, by id.
#[derive(Default)]
struct Pending {
    ids: HashMap<String, usize>,
    /// lightningd's side has ended: nothing more will be answered there.
    closed: bool,
}

/// An id in one spelling, whatever whitespace it came with.
fn id_key(id: &Value) -> String {
    id.to_string()
}

fn answer(id: &Value, message: &str) -> Bytes {
    let a = json!({"jsonrpc": "2.0", "id": id, "error": {"code": CODE, "message": message}});
    Bytes::from(serde_json::to_vec(&a).unwrap_or_default())
}

/// Serves one connection of the plugin's.
async fn serve(client: UnixStream, shared: Arc<Shared>) {
    let policy = shared.policy();
    let (client_rd, client_wr) = client.into_split();
    let (to_client, rx) = unbounded_channel::<Bytes>();
    let writer = tokio::spawn(write_messages(client_wr, rx));
    let pending = Arc::new(Mutex::new(Pending::default()));
    let upstream = match &policy.upstream {
        None => Err("lightningd's rpc socket is not known yet (before init)".to_string()),
        Some(p) => UnixStream::connect(p)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", p.display())),
    };
    let to_upstream = match upstream {
        Ok(s) => {
            let (up_rd, up_wr) = s.into_split();
            let (tx, up_rx) = unbounded_channel::<Bytes>();
            tokio::spawn(write_messages(up_wr, up_rx));
            tokio::spawn(from_lightningd(up_rd, to_client.clone(), pending.clone()));
            Ok(tx)
        }
        Err(why) => Err(why),
    };
    let list = policy.methods.describe();
    let mut sink = |frame: Frame| {
        let raw = match frame {
            Frame::Message(m) => m.raw,
            Frame::Garbage { bytes, .. } => bytes,
        };
        let id = rpc_allow::id_of(&raw);
        let checked = match rpc_allow::check(&policy.methods, &raw) {
            Ok(c) => c,
            Err(Refusal::Method(m)) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                shared.link.log(
                    Level::Warn,
                    format!(
                        "[{}] refused its call to lightningd's '{m}': not in autoreload-native-rpc-allow ({list})",
                        shared.name
                    ),
                );
                if !id.is_null() {
                    let why = format!("cln-autoreload: calling '{m}' is not allowed (autoreload-native-rpc-allow)");
                    let _ = to_client.send(answer(&id, &why));
                }
                return ControlFlow::Continue(());
            }
            Err(Refusal::NotRequest) => {
                // As lightningd does with what it cannot parse: say so
                // and hang up.
                let _ = to_client.send(answer(&id, "cln-autoreload: not a JSON-RPC request"));
                return ControlFlow::Break(());
            }
        };
        let sender = match &to_upstream {
            Ok(tx) => tx,
            Err(why) => {
                if !id.is_null() {
                    let _ = to_client.send(answer(&id, &format!("cln-autoreload: {why}")));
                }
                return ControlFlow::Continue(());
            }
        };
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.closed {
            drop(p);
            if !id.is_null() {
                let why = "cln-autoreload: lightningd closed the connection";
                let _ = to_client.send(answer(&id, why));
            }
            return ControlFlow::Continue(());
        }
        if !id.is_null() {
            *p.ids.entry(id_key(&id)).or_default() += 1;
        }
        drop(p);
        shared.forwarded.fetch_add(1, Ordering::Relaxed);
        let _ = sender.send(Bytes::from(checked));
        ControlFlow::Continue(())
    };
    FrameReader::new(client_rd).run(&mut sink).await;
    // The plugin is done sending: lightningd's side is told so (its
    // writer ends once it has written everything), and the connection to
    // the plugin closes once lightningd's answers are through.
    drop(to_upstream);
    drop(to_client);
    let _ = writer.await;
}

/// Passes lightningd's messages to the plugin until lightningd's side
/// ends; then answers what it left unanswered.
async fn from_lightningd(
    up: tokio::net::unix::OwnedReadHalf,
    to_client: UnboundedSender<Bytes>,
    pending: Arc<Mutex<Pending>>,
) {
    let mut sink = |frame: Frame| {
        let raw = match frame {
            Frame::Message(m) => {
                if let Kind::Response { id } = &m.kind {
                    if let Ok(id) = serde_json::from_str::<Value>(id.as_json()) {
                        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                        let key = id_key(&id);
                        if let Some(n) = p.ids.get_mut(&key) {
                            *n -= 1;
                            if *n == 0 {
                                p.ids.remove(&key);
                            }
                        }
                    }
                }
                m.raw
            }
            Frame::Garbage { bytes, .. } => bytes,
        };
        match to_client.send(raw) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    };
    FrameReader::new(up).run(&mut sink).await;
    let left = {
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        p.closed = true;
        std::mem::take(&mut p.ids)
    };
    for (id, n) in left {
        let id: Value = serde_json::from_str(&id).unwrap_or(Value::Null);
        for _ in 0..n {
            let why = "cln-autoreload: lightningd closed the connection before answering";
            let _ = to_client.send(answer(&id, why));
        }
    }
}

/// Writes whole messages, each followed by lightningd's separator, until
/// every sender is gone; then shuts the writing side down.
async fn write_messages(
    mut out: tokio::net::unix::OwnedWriteHalf,
    mut rx: UnboundedReceiver<Bytes>,
) {
    while let Some(msg) = rx.recv().await {
        if out.write_all(&msg).await.is_err()
            || out
                .write_all(cln_protocol::MESSAGE_SEPARATOR)
                .await
                .is_err()
        {
            return;
        }
    }
    let _ = out.shutdown().await;
}
