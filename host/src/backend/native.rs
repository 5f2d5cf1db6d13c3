//! Native plugins: a child process with piped stdio, in its own process
//! group, that dies with the host.
//!
//! Owns: spawning the child, pumping its stdout/stderr, reaping it (its
//! stdin is an [`Outbox`] the host's loop writes to).
//! Must not: interpret messages beyond framing.

use super::{spawn_stderr_lines, Control, Exit, Instance, InstanceEvent, Reporter, Stdin};
use crate::decode::FrameReader;
use crate::outbox::Outbox;
use crate::sandbox::{restrict_self, Prepared};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::oneshot;

/// How long a child that closed its stdout may take to exit.
const STDOUT_CLOSED_GRACE: Duration = Duration::from_millis(1000);
/// How long an exit waits for the rest of the child's stderr.
const STDERR_AFTER_EXIT: Duration = Duration::from_millis(200);

/// Sends `sig` to the process group led by `pid` (the plugin and anything
/// it started).
pub fn signal_group(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), sig);
    }
}

/// Starts `path` as lightningd would (argv is the path, plus `--developer`
/// when lightningd gave it to us), reporting through `report`; inside
/// `sandbox` when one is given (its environment, and its Landlock ruleset
/// entered between fork and exec).
pub fn spawn(
    path: &Path,
    developer: bool,
    sandbox: Option<Prepared>,
    report: impl Fn(InstanceEvent) + Send + Sync + Clone + 'static,
) -> std::io::Result<Instance> {
    let mut cmd = Command::new(path);
    if developer {
        cmd.arg("--developer");
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a stop reaches whatever the plugin started.
        .process_group(0);
    let mut ruleset = None;
    let mut fence = None;
    if let Some(s) = sandbox {
        if let Some(env) = s.env {
            cmd.env_clear().envs(env);
        }
        cmd.env("TMPDIR", &s.tmpdir);
        ruleset = s.ruleset;
        fence = s.fence;
    }
    // SAFETY: only system calls (prctl, unshare, mount, chdir, open/write
    // of /proc/self maps, landlock_restrict_self), which are
    // async-signal-safe and touch no memory of ours: the ruleset and the
    // fence's paths were made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // The child dies with the host, even if the host is SIGKILLed.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // Its own view of the network directory, before Landlock,
            // which forbids mounting.
            if let Some(f) = &fence {
                f.enter()
                    .map_err(|(_, e)| std::io::Error::from_raw_os_error(e))?;
            }
            // The sandbox, inherited by everything it starts.
            match &ruleset {
                Some(fd) => restrict_self(fd),
                None => Ok(()),
            }
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let (stdin, stdout, stderr) =
        match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => return Err(std::io::Error::other("child has no piped stdio")),
        };
    let stdin = match stdin.into_owned_fd().and_then(pipe::Sender::from_owned_fd) {
        Ok(pipe) => Outbox::new(pipe),
        Err(e) => {
            let _ = child.start_kill();
            return Err(e);
        }
    };
    let stderr = spawn_stderr_lines(stderr, report.clone());
    tokio::spawn(read_stdout(child, stdout, stderr, report));
    let Some(pid) = pid else {
        return Err(std::io::Error::other(
            "child exited before it could be watched",
        ));
    };
    Ok(Instance {
        stdin: Some(Stdin::Pipe(stdin)),
        control: Control::Native { pid },
    })
}

/// Reports the child's frames until its stdout ends (or until shortly after
/// it exited), then how it ended.
async fn read_stdout(
    mut child: Child,
    stdout: ChildStdout,
    stderr: tokio::task::JoinHandle<()>,
    report: impl Fn(InstanceEvent),
) {
    let pid = child.id();
    // Waited for by a task of its own: a wait polled beside every read
    // would cost each message a look at the signal it waits for.
    let (tx, mut exited) = oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(child.wait().await);
    });
    let status_of = |r: Result<std::io::Result<ExitStatus>, oneshot::error::RecvError>| {
        r.unwrap_or_else(|_| Err(std::io::Error::other("its waiting task ended")))
    };
    let mut status = None;
    FrameReader::new(stdout)
        .repairing_utf8()
        .run_until(&mut Reporter(&report), async {
            status = Some(status_of((&mut exited).await));
            // The child has exited, but a grandchild may hold its stdout
            // open: take what is already in the pipe, then stop waiting.
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
        .await;
    // Its stdout is closed: nothing it does can answer anything any more.
    // lightningd takes that for death; so does the host, killing one that
    // lingers, so that its calls are answered rather than waiting for it.
    let mut killed = false;
    let status = match status {
        Some(s) => s,
        None => match tokio::time::timeout(STDOUT_CLOSED_GRACE, &mut exited).await {
            Ok(s) => status_of(s),
            Err(_) => {
                if let Some(pid) = pid {
                    signal_group(pid, Signal::SIGKILL);
                }
                killed = true;
                status_of(exited.await)
            }
        },
    };
    let how = match status {
        Ok(_) if killed => format!(
            "closed its stdout but did not exit within {} ms: killed",
            STDOUT_CLOSED_GRACE.as_millis()
        ),
        Ok(s) => describe(s),
        Err(e) => format!("could not be waited for: {e}"),
    };
    // Its last stderr lines say why it ended (a traceback, "Address
    // already in use"): they must be told before its exit, which is
    // judged by them. A grandchild may hold stderr open: not for long.
    let _ = tokio::time::timeout(STDERR_AFTER_EXIT, stderr).await;
    report(InstanceEvent::Exited(Exit::plain(how)));
}

fn describe(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(sig) => format!("killed by {sig}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => "ended".into(),
    }
}

/// Whether a spawn error means "being written right now, try again soon".
pub fn is_busy(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
}
