#!/usr/bin/env python3
"""Ways out of a `clawguard exec --lockdown`, tried from inside (tests/lockdown_bypass.rs).

    lockdown_probe.py KIND ARGS...

Prints one line per attempt: `reached <detail>` when the attempt got through, or
`blocked <why>` when the kernel refused it. Exit status is always 0: the test decides.
Standard library only (ctypes for the system calls Python does not wrap).
"""
import ctypes
import errno
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def blocked(why):
    print(f"blocked {why}", flush=True)


def reached(detail):
    print(f"reached {detail}", flush=True)


def err_name(e):
    return errno.errorcode.get(e, str(e))


def oserror(e):
    return err_name(e.errno) if e.errno else type(e).__name__


def http_get(sock, path):
    sock.settimeout(10)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: probe\r\n\r\n".encode())
    data = sock.recv(64)
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def tcp(host, port, path="/direct-tcp"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect((host, int(port)))
        reached(f"tcp {host}:{port} {http_get(s, path)}")
    except OSError as e:
        blocked(f"tcp {host}:{port} {oserror(e)}")


def tcp_link_local(addr, port):
    """A link-local address needs an interface: try every index the namespace could have."""
    for index in range(1, 16):
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect((addr, int(port), 0, index))
            reached(f"tcp [{addr}%{index}]:{port} {http_get(s, '/direct-ll')}")
            return
        except OSError:
            continue
    blocked(f"tcp [{addr}]:{port} on every interface")


def udp(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(b"probe", (host, int(port)))
        data, _ = s.recvfrom(64)
        reached(f"udp {host}:{port} echo {data!r}")
    except OSError as e:
        blocked(f"udp {host}:{port} {oserror(e)}")


def unix(path):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        reached(f"unix {path} {http_get(s, '/direct-unix')}")
    except OSError as e:
        blocked(f"unix {path} {oserror(e)}")


def abstract(name):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect("\0" + name)
        reached(f"abstract @{name} {http_get(s, '/direct-abstract')}")
    except OSError as e:
        blocked(f"abstract @{name} {oserror(e)}")


def unix_dgram(path):
    # The kernel makes an AF_UNIX SOCK_RAW socket a datagram socket too.
    for how, kind in (
        ("socket", socket.SOCK_DGRAM),
        ("socketpair", socket.SOCK_DGRAM),
        ("socket", socket.SOCK_RAW),
        ("socketpair", socket.SOCK_RAW),
    ):
        name = f"{how} {'SOCK_RAW' if kind == socket.SOCK_RAW else 'SOCK_DGRAM'}"
        try:
            if how == "socket":
                s = socket.socket(socket.AF_UNIX, kind)
            else:
                s, _ = socket.socketpair(socket.AF_UNIX, kind)
            s.sendto(b"probe", path)
            reached(f"unix datagram ({name}) to {path}")
        except OSError as e:
            blocked(f"unix datagram ({name}) {oserror(e)}")


def raw():
    for name, args in (
        ("inet raw", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)),
        ("inet6 raw", (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)),
        ("packet", (socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))),
    ):
        try:
            socket.socket(*args)
            reached(f"{name} socket created")
        except OSError as e:
            blocked(f"{name} {oserror(e)}")


def vsock():
    # AF_VSOCK is not network-namespaced: it reaches the hypervisor host.
    for cid in (2, 1):
        try:
            s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            s.settimeout(3)
            s.connect((cid, 1024))
            reached(f"vsock cid {cid}")
        except OSError as e:
            blocked(f"vsock cid {cid} {oserror(e)}")


def setns(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        blocked(f"open {path} {oserror(e)}")
        return
    if libc.setns(fd, 0) == 0:
        reached(f"setns {path}")
    else:
        blocked(f"setns {path} {err_name(ctypes.get_errno())}")


CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000


def unshare():
    for name, flag in (("net", CLONE_NEWNET), ("user", CLONE_NEWUSER), ("mount", CLONE_NEWNS)):
        if libc.unshare(flag) == 0:
            reached(f"unshare {name}")
        else:
            blocked(f"unshare {name} {err_name(ctypes.get_errno())}")


PTRACE_ATTACH, PTRACE_DETACH = 16, 17


def ptrace(pid):
    pid = int(pid)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
        reached(f"ptrace {pid}")
    else:
        blocked(f"ptrace {pid} {err_name(ctypes.get_errno())}")
    try:
        with open(f"/proc/{pid}/mem", "rb"):
            reached(f"/proc/{pid}/mem opened")
    except OSError as e:
        blocked(f"/proc/{pid}/mem {oserror(e)}")


SYS = {
    "x86_64": {"request_key": 249, "io_uring_setup": 425},
    "aarch64": {"request_key": 218, "io_uring_setup": 425},
}[os.uname().machine]


def request_key():
    # The dns_resolver key type makes the kernel run /sbin/request-key, which resolves
    # the name on the host: an upcall outside every namespace.
    libc.syscall.argtypes = [ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_long]
    r = libc.syscall(SYS["request_key"], b"dns_resolver", b"probe.invalid", None, -4)
    if r >= 0:
        reached("request_key dns_resolver")
    else:
        blocked(f"request_key {err_name(ctypes.get_errno())}")


def io_uring():
    libc.syscall.argtypes = [ctypes.c_long, ctypes.c_uint, ctypes.c_void_p]
    params = ctypes.create_string_buffer(120)
    r = libc.syscall(SYS["io_uring_setup"], 4, params)
    if r >= 0:
        reached("io_uring_setup")
    else:
        blocked(f"io_uring_setup {err_name(ctypes.get_errno())}")


def getaddrinfo(name):
    try:
        infos = socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)
        reached(f"getaddrinfo {name} {infos[0][4][0]}")
    except OSError as e:
        blocked(f"getaddrinfo {name} {type(e).__name__} {e.errno}")


def daemon(marker_file, host, port, seconds):
    """Double fork and setsid, then keep trying the host origin from the background."""
    if os.fork() > 0:
        return
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    with open(marker_file, "w") as f:
        f.write(os.readlink("/proc/self/ns/net"))
    import time

    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        try:
            s = socket.create_connection((host, int(port)), timeout=1)
            http_get(s, "/direct-daemon")
        except OSError:
            pass
        time.sleep(0.2)
    os._exit(0)


def fd(number):
    """Write to a descriptor the lockdown might have inherited from ClawGuard's parent."""
    try:
        os.write(int(number), b"GET /direct-fd HTTP/1.0\r\n\r\n")
        reached(f"inherited descriptor {number}")
    except OSError as e:
        blocked(f"inherited descriptor {number} {oserror(e)}")


def tiocsti():
    """Push characters into the terminal's input, to be run by the user's shell later."""
    import fcntl
    import termios

    if not os.isatty(0):
        print("no-tty", flush=True)
        return
    try:
        fcntl.ioctl(0, termios.TIOCSTI, b"#")
        reached("TIOCSTI")
    except OSError as e:
        blocked(f"TIOCSTI {oserror(e)}")


def read_file(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
        reached(f"read {path}")
    except OSError as e:
        blocked(f"read {path} {oserror(e)}")


def write_file(path):
    try:
        with open(path, "ab") as f:
            f.write(b"x")
        reached(f"write {path}")
    except OSError as e:
        blocked(f"write {path} {oserror(e)}")


def fifo(path):
    """Write into a named pipe that a host process reads (a relay with network access)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"leak\n")
        finally:
            os.close(fd)
        reached(f"fifo {path}")
    except OSError as e:
        blocked(f"fifo {path} {oserror(e)}")


KINDS = {
    "fifo": fifo,
    "fd": fd,
    "tiocsti": tiocsti,
    "read": read_file,
    "write": write_file,
    "tcp": tcp,
    "tcp-link-local": tcp_link_local,
    "udp": udp,
    "unix": unix,
    "abstract": abstract,
    "unix-dgram": unix_dgram,
    "raw": raw,
    "vsock": vsock,
    "setns": setns,
    "unshare": unshare,
    "ptrace": ptrace,
    "request-key": request_key,
    "io-uring": io_uring,
    "getaddrinfo": getaddrinfo,
    "daemon": daemon,
}

if __name__ == "__main__":
    KINDS[sys.argv[1]](*sys.argv[2:])
