//! The command line that starts the real binary on a free loopback port. Shared by the
//! tests' `Proxy` (`tests/common/mod.rs`) and the benches' (`benches/common/mod.rs`
//! includes this file by path).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// `BIN SUBCOMMAND --listen 127.0.0.1:0 --config CFG --ca-dir CA_DIR [--upstream-ca CA]
/// --allow-root` (CI runs as root), stdin and stdout closed, stderr piped: the caller
/// reads the `… listening on ADDR` line from it and must keep draining it.
pub fn clawguard(
    bin: &OsStr,
    subcommand: &str,
    cfg: &Path,
    ca_dir: &Path,
    upstream_ca: Option<&Path>,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([subcommand, "--listen", "127.0.0.1:0", "--config"])
        .arg(cfg)
        .arg("--ca-dir")
        .arg(ca_dir);
    if let Some(ca) = upstream_ca {
        cmd.arg("--upstream-ca").arg(ca);
    }
    cmd.arg("--allow-root")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}
