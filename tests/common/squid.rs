//! The distribution's Squid on a loopback port, with a generated configuration that
//! sends requests to an ICAP service (`reqmod_precache`, `bypass=off`), optionally
//! bumping TLS with its own test CA. Stopped by the PID in its `pid_filename` (Squid
//! started as root re-executes as user `proxy`).

use super::PATIENCE;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub struct Squid {
    child: std::process::Child,
    pub port: u16,
    dir: tempfile::TempDir,
    /// The CA Squid mints bumped leaves with (what clients trust), when bumping.
    pub bump_ca: Option<PathBuf>,
}

/// Options for [`Squid::start`].
#[derive(Default)]
pub struct SquidOptions<'a> {
    /// The ICAP service; `None` runs plain Squid (the latency baseline).
    pub icap: Option<SocketAddr>,
    /// Bump TLS, trusting this CA for origins.
    pub bump_origin_ca: Option<&'a Path>,
}

fn chown_proxy(path: &Path) {
    let _ = std::process::Command::new("chown")
        .args(["-R", "proxy:proxy"])
        .arg(path)
        .status();
}

impl Squid {
    pub fn start(opts: SquidOptions<'_>) -> Squid {
        let dir = tempfile::Builder::new().prefix("squid").tempdir().unwrap();
        let d = dir.path();
        // Squid drops to user `proxy`: it must reach its own files.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = super::closed_port();
        let mut conf = String::new();
        let mut bump_ca = None;
        match opts.bump_origin_ca {
            None => conf.push_str(&format!("http_port 127.0.0.1:{port}\n")),
            Some(origin_ca) => {
                let (cert, key) = test_ca(d);
                // The origin's CA lives in a private temp dir; Squid's user reads a copy.
                let origin_copy = d.join("origin-ca.pem");
                std::fs::copy(origin_ca, &origin_copy).unwrap();
                std::fs::set_permissions(&origin_copy, std::fs::Permissions::from_mode(0o644))
                    .unwrap();
                let db = d.join("ssl_db");
                let st = std::process::Command::new("/usr/lib/squid/security_file_certgen")
                    .args(["-c", "-s"])
                    .arg(&db)
                    .args(["-M", "4MB"])
                    .stdout(Stdio::null())
                    .status()
                    .expect("security_file_certgen runs");
                assert!(st.success());
                chown_proxy(&db);
                conf.push_str(&format!(
                    "http_port 127.0.0.1:{port} ssl-bump tls-cert={} tls-key={} \
                     generate-host-certificates=on dynamic_cert_mem_cache_size=4MB\n\
                     sslcrtd_program /usr/lib/squid/security_file_certgen -s {} -M 4MB\n\
                     sslcrtd_children 2 startup=1 idle=1\n\
                     ssl_bump bump all\n\
                     tls_outgoing_options cafile={}\n",
                    cert.display(),
                    key.display(),
                    db.display(),
                    origin_copy.display()
                ));
                bump_ca = Some(cert);
            }
        }
        conf.push_str(&format!(
            "pid_filename {d}/squid.pid\n\
             cache_log {d}/cache.log\n\
             access_log stdio:{d}/access.log\n\
             coredump_dir {d}\n\
             cache deny all\n\
             shutdown_lifetime 0 seconds\n\
             visible_hostname clawguard-test\n\
             dns_nameservers 127.0.0.1\n\
             http_access allow localhost\n\
             http_access deny all\n",
            d = d.display()
        ));
        if let Some(icap) = opts.icap {
            conf.push_str(&super::squid::icap_config(icap));
        }
        let conf_path = d.join("squid.conf");
        std::fs::write(&conf_path, &conf).unwrap();
        std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let child = std::process::Command::new("squid")
            .args(["-N", "-f"])
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squid starts");
        let squid = Squid {
            child,
            port,
            dir,
            bump_ca,
        };
        squid.wait_ready();
        squid
    }

    fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "squid did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Squid's cache.log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cache.log")).unwrap_or_default()
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("squid.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a PID Squid wrote for itself; no memory is touched.
        if let Some(pid) = self.pid() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines that make Squid call ClawGuard for every request, fail-closed.
pub fn icap_config(icap: SocketAddr) -> String {
    format!(
        "icap_enable on\n\
         icap_send_client_ip on\n\
         icap_persistent_connections on\n\
         icap_service clawguard reqmod_precache icap://{icap}/reqmod bypass=off\n\
         adaptation_access clawguard allow all\n"
    )
}

/// A CA for Squid's bumped leaves (cert and key PEM files).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "ClawGuard Test Squid Bump CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    let (c, k) = (dir.join("bump-ca.pem"), dir.join("bump-ca.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
    (c, k)
}
