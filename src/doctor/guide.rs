//! The recommendations of the CNCERT/CCS OpenClaw secure use practice guide (CNCERT and
//! the Cyber Security Association of China, 22 March 2026; part A, personal users) that
//! the checks serve. Items 1–3 carry the guide's numbers; the others are quoted by topic.

pub const ISOLATE: &str = "A.1 install OpenClaw on a dedicated device, virtual machine or \
     container, isolated from the host; not on a daily office computer";
pub const NO_EXPOSED_PORTS: &str = "A.2 do not expose OpenClaw's ports (18789/19890) to the \
     network: local access (127.0.0.1) only";
pub const NO_ROOT: &str = "A.3 do not run OpenClaw with administrator or superuser privileges: \
     a dedicated low-privilege account";
pub const NO_PRIVATE_DATA: &str = "A (personal users) do not store or process private data in \
     OpenClaw's environment";
pub const UPDATE: &str = "A (personal users) update OpenClaw to the latest version promptly";
pub const CONTROL_EGRESS: &str = "network control and credential management: OpenClaw's \
     traffic leaves through a filtering proxy (ClawGuard) that refuses local destinations and \
     stops credentials and personal data";
/// Not a recommendation: the install every other check is about.
pub const SCOPE: &str = "the OpenClaw install (state, config, workspace, package) the checks \
     below judge";
