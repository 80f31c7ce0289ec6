//! `connect(2)` mediation: every `connect` the locked-down command makes arrives here as
//! a seccomp user notification, and ClawGuard performs it on the command's behalf.
//!
//! Why: a network namespace does not separate filesystem UNIX sockets, and any listener
//! with network access (the Docker socket, systemd-resolved, nscd, an SSH control master,
//! a user's relay) is then a way out. A seccomp filter cannot read the address behind the
//! pointer, and letting the kernel continue after we looked would race with a second
//! thread rewriting it. So ClawGuard copies the address once, decides on that copy, and
//! connects the command's own socket (taken with `pidfd_getfd`) to exactly what it
//! checked:
//!
//! - a pathname UNIX socket is resolved inside the command's root (`openat2` with
//!   `RESOLVE_IN_ROOT`), pinned by an `O_PATH` descriptor, and connected through
//!   `/proc/self/fd/N` only if it lives on one of the lockdown's private filesystems
//!   (the command made it) or is an `--allow-socket` socket; otherwise `EACCES`;
//! - any other address (IP, abstract UNIX, netlink) is connected as given: those are
//!   looked up in the socket's own network namespace, the lockdown's;
//! - when ClawGuard is root, the connecting thread first takes on the command's
//!   uid, gids and empty capability sets, so file permissions and `SO_PEERCRED` are the
//!   command's, never root's.
//!
//! Fail-closed: a notification we cannot read or act on is answered with an error,
//! and if ClawGuard goes away the kernel fails every pending and later `connect`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Notifications handled at once; beyond this a `connect` fails with `EAGAIN` (memory
/// and threads stay bounded whatever the command does).
const MAX_IN_FLIGHT: usize = 256;

/// `sizeof(struct sockaddr_storage)`: the kernel refuses longer addresses with `EINVAL`.
const MAX_ADDR: usize = 128;

/// Who the command is, for connecting with its credentials (ClawGuard root only).
#[derive(Debug, Clone)]
pub struct CommandIdentity {
    pub uid: [u32; 3],
    pub gid: [u32; 3],
    pub groups: Vec<u32>,
}

/// Which pathname UNIX sockets the command may reach.
#[derive(Debug, Clone, Default)]
pub struct SocketPolicy {
    /// `(st_dev, st_ino)` of each `--allow-socket` socket.
    pub allowed: Vec<(u64, u64)>,
    /// Device numbers of the lockdown's private filesystems.
    pub private_devs: Vec<u64>,
    /// Connect with these credentials (set when ClawGuard runs as root).
    pub identity: Option<CommandIdentity>,
}

impl SocketPolicy {
    fn allows(&self, dev: u64, ino: u64) -> bool {
        self.private_devs.contains(&dev) || self.allowed.contains(&(dev, ino))
    }
}

/// The `(st_dev, st_ino)` of an `--allow-socket` path; it must be a socket.
pub fn socket_identity(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path)?;
    if !m.file_type().is_socket() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
    }
    Ok((m.dev(), m.ino()))
}

/// The running mediation; [`Supervisor::stop`] ends it.
pub struct Supervisor {
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    refused: Arc<AtomicUsize>,
}

impl Supervisor {
    pub fn start(listener: OwnedFd, policy: SocketPolicy) -> io::Result<Supervisor> {
        let (stop_rx, stop_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let refused = Arc::new(AtomicUsize::new(0));
        let r = refused.clone();
        let thread = std::thread::Builder::new()
            .name("lockdown-connect".into())
            .spawn(move || serve(Arc::new(listener), stop_rx, Arc::new(policy), r))?;
        Ok(Supervisor {
            stop: Some(stop_tx),
            thread: Some(thread),
            refused,
        })
    }

    /// Connections to UNIX sockets outside the lockdown refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn stop(mut self) {
        self.stop.take(); // closing the pipe wakes the thread
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.take();
    }
}

/// Kernel sizes of the notification structs (they may grow).
fn notif_sizes() -> io::Result<libc::seccomp_notif_sizes> {
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: the kernel fills the struct we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &mut sizes as *mut libc::seccomp_notif_sizes,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sizes)
}

fn serve(
    listener: Arc<OwnedFd>,
    stop: OwnedFd,
    policy: Arc<SocketPolicy>,
    refused: Arc<AtomicUsize>,
) {
    let Ok(sizes) = notif_sizes() else {
        tracing::error!("lockdown: cannot size seccomp notifications; every connect will fail");
        return;
    };
    let notif_len = (sizes.seccomp_notif as usize).max(std::mem::size_of::<libc::seccomp_notif>());
    let resp_len =
        (sizes.seccomp_notif_resp as usize).max(std::mem::size_of::<libc::seccomp_notif_resp>());
    let in_flight = Arc::new(AtomicUsize::new(0));
    loop {
        let mut fds = [
            rustix::event::PollFd::new(listener.as_ref(), rustix::event::PollFlags::IN),
            rustix::event::PollFd::new(&stop, rustix::event::PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
            Ok(_) => {}
        }
        let (l, s) = (fds[0].revents(), fds[1].revents());
        if !s.is_empty()
            || l.intersects(rustix::event::PollFlags::HUP | rustix::event::PollFlags::ERR)
        {
            return; // stopped, or every process using the filter is gone
        }
        if !l.contains(rustix::event::PollFlags::IN) {
            continue;
        }
        // u64 storage keeps the struct aligned.
        let mut buf = vec![0u64; notif_len.div_ceil(8)];
        // SAFETY: a zeroed buffer at least as large as the kernel's struct.
        let rc = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                buf.as_mut_ptr(),
            )
        };
        if rc < 0 {
            continue; // EINTR, or the caller died (ENOENT)
        }
        // SAFETY: the kernel filled a `seccomp_notif` at the start of `buf`.
        let notif: libc::seccomp_notif = unsafe { std::ptr::read(buf.as_ptr().cast()) };
        let reply = Reply {
            listener: listener.clone(),
            id: notif.id,
            resp_len,
        };
        if in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            reply.send(Err(libc::EAGAIN));
            continue;
        }
        let fallback = Reply {
            listener: listener.clone(),
            id: notif.id,
            resp_len,
        };
        let (policy, refused, in_flight2) = (policy.clone(), refused.clone(), in_flight.clone());
        let spawned = std::thread::Builder::new()
            .name("lockdown-connect-1".into())
            .spawn(move || {
                let result = handle(&notif, &reply, &policy, &refused);
                reply.send(result);
                in_flight2.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            fallback.send(Err(libc::EAGAIN));
        }
    }
}

struct Reply {
    listener: Arc<OwnedFd>,
    id: u64,
    resp_len: usize,
}

impl Reply {
    /// Still the same waiting system call (the process did not die, its pid was not
    /// reused).
    fn valid(&self) -> bool {
        let id = self.id;
        // SAFETY: the ioctl reads one u64.
        unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
                &id as *const u64,
            ) == 0
        }
    }

    fn send(&self, result: Result<i64, i32>) {
        let mut buf = vec![0u64; self.resp_len.div_ceil(8)];
        let (val, error) = match result {
            Ok(v) => (v, 0),
            Err(errno) => (0, -errno),
        };
        // SAFETY: `buf` is zeroed, aligned and at least the kernel's struct size.
        unsafe {
            let resp = buf.as_mut_ptr().cast::<libc::seccomp_notif_resp>();
            (*resp).id = self.id;
            (*resp).val = val;
            (*resp).error = error;
            (*resp).flags = 0;
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                buf.as_mut_ptr(),
            );
        }
    }
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EPERM)
}

/// The thread group of a thread id (`pidfd_open` wants a process).
fn tgid_of(tid: u32) -> io::Result<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    super::profile::status_field(&status, "Tgid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
}

/// Copy `len` bytes at `addr` out of thread `tid`.
fn read_memory(tid: u32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; len];
    if len == 0 {
        return Ok(out);
    }
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` covers `out`; the kernel checks the remote range.
    let n = unsafe { libc::process_vm_readv(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != len {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(out)
}

/// Resolve a pathname socket as the command would (its root, its working directory),
/// pinned by an `O_PATH` descriptor, with its `(st_dev, st_ino, mode)`.
fn resolve_in(tid: u32, path: &[u8]) -> io::Result<(OwnedFd, u64, u64, u32)> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let full: PathBuf = if path.first() == Some(&b'/') {
        PathBuf::from(std::ffi::OsStr::from_bytes(path))
    } else {
        let cwd = std::fs::read_link(format!("/proc/{tid}/cwd"))?;
        cwd.join(std::ffi::OsStr::from_bytes(path))
    };
    let root = rustix::fs::open(
        format!("/proc/{tid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = full.strip_prefix("/").unwrap_or(&full);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let pinned = openat2(
        &root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    let st = rustix::fs::fstat(&pinned)?;
    Ok((pinned, st.st_dev, st.st_ino, st.st_mode))
}

/// Decide and act on one `connect`. `Ok(0)` or the errno to fail it with.
fn handle(
    notif: &libc::seccomp_notif,
    reply: &Reply,
    policy: &SocketPolicy,
    refused: &AtomicUsize,
) -> Result<i64, i32> {
    if notif.data.nr as libc::c_long != libc::SYS_connect {
        return Err(libc::ENOSYS);
    }
    let tid = notif.pid;
    let sockfd = notif.data.args[0] as RawFd;
    let addr_ptr = notif.data.args[1];
    let addr_len = notif.data.args[2] as u32 as usize;
    if addr_len > MAX_ADDR {
        return Err(libc::EINVAL);
    }
    let tgid = tgid_of(tid).map_err(|e| errno_of(&e))?;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(tgid).ok_or(libc::ESRCH)?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| e.raw_os_error())?;
    if !reply.valid() {
        return Err(libc::ESRCH); // gone: the answer goes nowhere
    }
    let sock =
        rustix::process::pidfd_getfd(&pidfd, sockfd, rustix::process::PidfdGetfdFlags::empty())
            .map_err(|e| e.raw_os_error())?;
    let addr = read_memory(tid, addr_ptr, addr_len).map_err(|e| errno_of(&e))?;
    if !reply.valid() {
        return Err(libc::ESRCH);
    }

    let family = (addr.len() >= 2).then(|| u16::from_ne_bytes([addr[0], addr[1]]) as i32);
    let mut pinned = None;
    let target: Vec<u8> = if family == Some(libc::AF_UNIX) && addr.len() > 2 && addr[2] != 0 {
        let path = &addr[2..];
        let path = &path[..path.iter().position(|b| *b == 0).unwrap_or(path.len())];
        let (fd, dev, ino, mode) = resolve_in(tid, path).map_err(|e| errno_of(&e))?;
        if mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(libc::ECONNREFUSED);
        }
        if !policy.allows(dev, ino) {
            refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                socket = %String::from_utf8_lossy(path),
                "lockdown: refused a connection to a UNIX socket outside the lockdown \
                 (pass --allow-socket PATH to trust it)"
            );
            return Err(libc::EACCES);
        }
        let via = unix_address(&format!("/proc/self/fd/{}", fd.as_raw_fd()));
        pinned = Some(fd);
        via
    } else {
        addr
    };
    if let Some(id) = &policy.identity {
        become_command(id).map_err(|e| errno_of(&e))?;
    }
    let rc = connect_raw(sock.as_fd(), &target);
    drop(pinned);
    rc
}

/// A `sockaddr_un` for `path`, as bytes.
fn unix_address(path: &str) -> Vec<u8> {
    let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(path.as_bytes());
    v.push(0);
    v
}

fn connect_raw(sock: BorrowedFd<'_>, addr: &[u8]) -> Result<i64, i32> {
    // SAFETY: `addr` is a byte copy of a sockaddr of `addr.len()` bytes.
    let rc = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(0)
    } else {
        Err(errno_of(&io::Error::last_os_error()))
    }
}

/// Give this (short-lived) thread the command's credentials and no capabilities. The
/// `rustix` calls are the raw per-thread system calls, not the C library's
/// process-wide ones, so ClawGuard's other threads keep theirs.
fn become_command(id: &CommandIdentity) -> io::Result<()> {
    use rustix::process::{Gid, Uid};
    let gids: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    rustix::thread::set_thread_groups(&gids)?;
    rustix::thread::set_thread_res_gid(
        Gid::from_raw(id.gid[0]),
        Gid::from_raw(id.gid[1]),
        Gid::from_raw(id.gid[2]),
    )?;
    rustix::thread::set_thread_res_uid(
        Uid::from_raw(id.uid[0]),
        Uid::from_raw(id.uid[1]),
        Uid::from_raw(id.uid[2]),
    )?;
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: rustix::thread::CapabilitySet::empty(),
            permitted: rustix::thread::CapabilitySet::empty(),
            inheritable: rustix::thread::CapabilitySet::empty(),
        },
    )?;
    Ok(())
}

/// Preflight in ClawGuard itself: the calls mediation relies on exist (`pidfd_open`,
/// `pidfd_getfd`: Linux 5.6; `openat2`: 5.6).
pub fn preflight() -> Result<(), (&'static str, io::Error)> {
    let me = rustix::process::getpid();
    let pidfd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty())
        .map_err(|e| ("pidfd_open (Linux 5.3)", e.into()))?;
    let probe = rustix::fs::open(
        "/",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| ("open /", e.into()))?;
    let dup = rustix::process::pidfd_getfd(
        &pidfd,
        probe.as_raw_fd(),
        rustix::process::PidfdGetfdFlags::empty(),
    )
    .map_err(|e| ("pidfd_getfd (Linux 5.6)", e.into()))?;
    drop(dup);
    rustix::fs::openat2(
        rustix::fs::CWD,
        "/",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT,
    )
    .map_err(|e| ("openat2 (Linux 5.6)", e.into()))?;
    Ok(())
}
