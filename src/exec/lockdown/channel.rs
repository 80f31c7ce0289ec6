//! The control channel between ClawGuard and the lockdown it starts: a `SOCK_SEQPACKET`
//! pair (one message per `sendmsg`, so no framing of our own), JSON messages, and file
//! descriptors passed alongside with `SCM_RIGHTS`.

use super::profile::Profile;
use super::Plan;
use rustix::net::{
    recvmsg, sendmsg, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Largest message either side sends (a profile is a few KiB).
const MAX_MESSAGE: usize = 256 * 1024;

/// ClawGuard → lockdown.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToLockdown {
    Plan(Box<Plan>),
    /// ClawGuard serves the listener and the connect supervisor: start the command.
    Go,
}

/// Lockdown → ClawGuard.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToClawGuard {
    /// With the proxy listener bound inside the network namespace; `private_devs` are
    /// the device numbers of the lockdown's private filesystems (sockets there were
    /// made inside and may be connected to).
    Listener { private_devs: Vec<u64> },
    /// With the seccomp notification descriptor; the command starts after `Go`.
    Ready(Box<Profile>),
    /// Set-up failed at `stage`; nothing was started.
    Failed {
        stage: String,
        error: String,
        needs: String,
    },
}

/// A connected `SOCK_SEQPACKET` pair, close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

pub fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    sendmsg(
        sock,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// One message and the descriptors that came with it. A closed peer is an error.
pub fn recv<T: DeserializeOwned>(sock: BorrowedFd<'_>) -> io::Result<(T, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    let fds: Vec<OwnedFd> = control
        .drain()
        .filter_map(|m| match m {
            RecvAncillaryMessage::ScmRights(fds) => Some(fds.collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    if got.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the other side closed the control channel",
        ));
    }
    let msg = serde_json::from_slice(&buf[..got.bytes]).map_err(io::Error::other)?;
    Ok((msg, fds))
}

/// `send` for an owned socket.
pub fn send_on<T: Serialize>(sock: &OwnedFd, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    send(sock.as_fd(), msg, fds)
}
