//! The mount namespace that keeps a sandboxed native plugin away from
//! lightningd's real `lightning-rpc`.
//!
//! Landlock (up to ABI 7, this kernel's) does not check `connect()` to a
//! pathname unix socket: a plugin that may see the network directory can
//! connect to `lightning-rpc` and call anything. So the plugin gets its own
//! user and mount namespace, where the network directory is covered by a
//! *view*: a directory whose entries are bind mounts of the real ones
//! (secrets left as empty placeholders, which Landlock then refuses), and
//! whose `lightning-rpc` is the plugin's filtering socket
//! ([`crate::rpc_filter`]). The directory holding every plugin's filter is
//! covered by an empty tmpfs (a plugin must not reach another's, which may
//! allow more), and a second user namespace locks all these mounts, so
//! that not even a plugin running as root can lift them.
//!
//! Covering the directory rather than the socket file matters: lightningd
//! starts plugins (getmanifest) before it creates `lightning-rpc`, and
//! unlinking a file that is a mount point in another namespace detaches
//! those mounts; a socket created later in the real directory does not
//! show through a view.
//!
//! Owns: finding out once whether the kernel lets this process do that
//! ([`available`], in a forked child), and doing it between fork and exec
//! ([`Fence::enter`], system calls only, every path prepared before).
//! Must not: decide what goes in the view (`sandbox` does), allocate or
//! take a lock in [`Fence::enter`].

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// Test knob: pretend the kernel refuses the namespaces (set to any
/// value), to see `on` refuse and `best-effort` say what is not fenced.
pub const UNAVAILABLE_VAR: &str = "AUTORELOAD_FENCE_UNAVAILABLE";

/// A step of [`Fence::enter`], to say which one the kernel refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNS)`.
    Unshare = 1,
    /// Writing `/proc/self/{setgroups,uid_map,gid_map}`.
    Maps,
    /// Making the mounts private.
    Private,
    /// A bind mount into the view, or of the view.
    Bind,
    /// The empty tmpfs over the filters' directory.
    Hide,
    /// The second user namespace that locks the mounts.
    Lock,
    /// Entering the view as the working directory.
    Chdir,
}

impl Step {
    fn from_u8(v: u8) -> Option<Step> {
        [
            Step::Unshare,
            Step::Maps,
            Step::Private,
            Step::Bind,
            Step::Hide,
            Step::Lock,
            Step::Chdir,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
    }

    fn describe(self) -> &'static str {
        match self {
            Step::Unshare => "unshare(CLONE_NEWUSER|CLONE_NEWNS): unprivileged user namespaces are off (kernel.unprivileged_userns_clone, user.max_user_namespaces, or an AppArmor/SELinux policy)",
            Step::Maps => "writing the uid/gid map of the new user namespace",
            Step::Private => "making the mounts of the new namespace private",
            Step::Bind => "a bind mount in the new namespace (a policy denies mounts in user namespaces)",
            Step::Hide => "mounting a tmpfs in the new namespace",
            Step::Lock => "a second, nested user namespace",
            Step::Chdir => "entering the covered directory",
        }
    }
}

/// Everything [`Fence::enter`] needs, as C strings made before the fork.
#[derive(Debug)]
pub struct Fence {
    uid_map: CString,
    gid_map: CString,
    /// Bind mounts into the view: (what, onto which placeholder).
    binds: Vec<(CString, CString)>,
    /// The view, and the network directory it covers.
    view: CString,
    netdir: CString,
    /// The filter over a socket file outside the network directory.
    socket: Option<(CString, CString)>,
    /// The directory of all filters, covered with an empty tmpfs.
    hide: CString,
}

/// A string the kernel is to be given holds a NUL byte (a path never
/// does; a fence is not made with one that would).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0} holds a NUL byte")]
pub struct NulByte(pub String);

/// Why this process cannot fence plugins: the sandbox then refuses to
/// start a plugin, or (best effort) starts it unfenced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unavailable {
    /// [`UNAVAILABLE_VAR`] says so.
    #[error("{var} is set", var = UNAVAILABLE_VAR)]
    Disabled,
    /// The kernel (or its policy) refused a step of the fence.
    #[error("the kernel refused {step}: {error}")]
    Refused {
        /// The step, in words.
        step: &'static str,
        /// What the kernel said.
        error: String,
    },
    /// The probe itself could not run (scratch files, pipe, fork, a child
    /// that died): whether the kernel would allow it is not known.
    #[error("{0}")]
    Probe(String),
}

impl From<NulByte> for Unavailable {
    fn from(e: NulByte) -> Unavailable {
        Unavailable::Probe(e.to_string())
    }
}

/// A path as a C string (a path never holds a NUL; an error if it does).
pub fn cstr(p: &Path) -> Result<CString, NulByte> {
    c(p.as_os_str())
}

fn c(s: &OsStr) -> Result<CString, NulByte> {
    CString::new(s.as_bytes()).map_err(|_| NulByte(s.to_string_lossy().into_owned()))
}

impl Fence {
    /// A fence covering `netdir` with `view` after `binds` were made into
    /// it, the filter `socket.0` over `socket.1` if the real socket is
    /// elsewhere, and `hide` covered.
    pub fn new(
        binds: &[(&Path, &Path)],
        view: &Path,
        netdir: &Path,
        socket: Option<(&Path, &Path)>,
        hide: &Path,
    ) -> Result<Fence, NulByte> {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let binds = binds
            .iter()
            .map(|(a, b)| Ok((cstr(a)?, cstr(b)?)))
            .collect::<Result<Vec<_>, NulByte>>()?;
        let socket = match socket {
            Some((a, b)) => Some((cstr(a)?, cstr(b)?)),
            None => None,
        };
        Ok(Fence {
            uid_map: c(OsStr::new(&format!("{uid} {uid} 1\n")))?,
            gid_map: c(OsStr::new(&format!("{gid} {gid} 1\n")))?,
            binds,
            view: cstr(view)?,
            netdir: cstr(netdir)?,
            socket,
            hide: cstr(hide)?,
        })
    }

    /// Enters the fence: the calling process gets the new namespaces. Only
    /// system calls on memory prepared before: safe between fork and exec.
    pub fn enter(&self) -> Result<(), (Step, i32)> {
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: plain system calls on NUL-terminated strings that live
        // as long as `self`.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err((Step::Unshare, errno()));
            }
            self.maps(false).map_err(|e| (Step::Maps, e))?;
            let private = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(null, c"/".as_ptr(), null, private, std::ptr::null()) != 0 {
                return Err((Step::Private, errno()));
            }
            let bind = libc::MS_BIND | libc::MS_REC;
            for (what, onto) in &self.binds {
                if libc::mount(what.as_ptr(), onto.as_ptr(), null, bind, std::ptr::null()) != 0 {
                    return Err((Step::Bind, errno()));
                }
            }
            let (view, netdir) = (self.view.as_ptr(), self.netdir.as_ptr());
            if libc::mount(view, netdir, null, bind, std::ptr::null()) != 0 {
                return Err((Step::Bind, errno()));
            }
            if let Some((what, onto)) = &self.socket {
                let flags = libc::MS_BIND;
                if libc::mount(what.as_ptr(), onto.as_ptr(), null, flags, std::ptr::null()) != 0 {
                    return Err((Step::Bind, errno()));
                }
            }
            let ro = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            let opts = c"size=4k,mode=0500";
            let tmpfs = c"tmpfs".as_ptr();
            if libc::mount(tmpfs, self.hide.as_ptr(), tmpfs, ro, opts.as_ptr().cast()) != 0 {
                return Err((Step::Hide, errno()));
            }
            // Mounts copied into a namespace owned by a less privileged
            // user namespace are locked: they cannot be unmounted, even
            // by root in it, to show what they cover.
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err((Step::Lock, errno()));
            }
            self.maps(true).map_err(|e| (Step::Lock, e))?;
            // The working directory was taken before the view covered it.
            if libc::chdir(netdir) != 0 {
                return Err((Step::Chdir, errno()));
            }
        }
        Ok(())
    }

    /// Maps the caller's uid and gid to themselves in its new user
    /// namespace (`again`: a nested one, where `setgroups` may already
    /// say `deny`).
    fn maps(&self, again: bool) -> Result<(), i32> {
        let setgroups = write(c"/proc/self/setgroups", b"deny");
        if setgroups.is_err() && !again {
            return setgroups;
        }
        write(c"/proc/self/uid_map", self.uid_map.as_bytes())?;
        write(c"/proc/self/gid_map", self.gid_map.as_bytes())
    }
}

/// Writes `data` to the file `path` (system calls only).
fn write(path: &std::ffi::CStr, data: &[u8]) -> Result<(), i32> {
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: open, write and close on a NUL-terminated path and a slice.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = errno();
        libc::close(fd);
        if usize::try_from(n).ok() != Some(data.len()) {
            return Err(e);
        }
    }
    Ok(())
}

/// Whether this kernel (and its policy) lets the host fence plugins:
/// tried once, in a forked child, on scratch files. `Err` says why not.
pub fn available() -> Result<(), Unavailable> {
    if std::env::var_os(UNAVAILABLE_VAR).is_some() {
        return Err(Unavailable::Disabled);
    }
    static ONCE: OnceLock<Result<(), Unavailable>> = OnceLock::new();
    ONCE.get_or_init(probe).clone()
}

fn probe() -> Result<(), Unavailable> {
    let scratch = tempfile::Builder::new()
        .prefix("cln-autoreload-fence-")
        .tempdir()
        .map_err(|e| Unavailable::Probe(format!("cannot create a scratch directory: {e}")))?;
    let d = scratch.path();
    let made = (|| -> std::io::Result<()> {
        for dir in ["net", "view", "hide"] {
            std::fs::create_dir(d.join(dir))?;
        }
        std::fs::write(d.join("net/lightning-rpc"), "")?;
        std::fs::write(d.join("view/lightning-rpc"), "")?;
        std::fs::write(d.join("filter"), "")
    })();
    made.map_err(|e| Unavailable::Probe(format!("cannot prepare the scratch directory: {e}")))?;
    let (filter, placeholder) = (d.join("filter"), d.join("view/lightning-rpc"));
    let fence = Fence::new(
        &[(&filter, &placeholder)],
        &d.join("view"),
        &d.join("net"),
        None,
        &d.join("hide"),
    )?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Unavailable::Probe(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: the child only makes system calls (Fence::enter, write,
    // _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code: [u8; 5] = match fence.enter() {
            Ok(()) => [0; 5],
            Err((step, e)) => {
                let e = e.to_ne_bytes();
                [step as u8, e[0], e[1], e[2], e[3]]
            }
        };
        // SAFETY: write and _exit in the child.
        unsafe {
            libc::write(fds[1], code.as_ptr().cast(), code.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end; reading into a buffer;
    // reaping the child.
    let mut code = [0u8; 5];
    let n = unsafe {
        libc::close(fds[1]);
        if pid < 0 {
            libc::close(fds[0]);
            return Err(Unavailable::Probe(format!(
                "fork: {}",
                std::io::Error::last_os_error()
            )));
        }
        let n = libc::read(fds[0], code.as_mut_ptr().cast(), code.len());
        libc::close(fds[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        n
    };
    if n != 5 {
        return Err(Unavailable::Probe(
            "the probe child died before it said how it went".into(),
        ));
    }
    match Step::from_u8(code[0]) {
        None => Ok(()),
        Some(step) => {
            let e = i32::from_ne_bytes([code[1], code[2], code[3], code[4]]);
            Err(Unavailable::Refused {
                step: step.describe(),
                error: std::io::Error::from_raw_os_error(e).to_string(),
            })
        }
    }
}
