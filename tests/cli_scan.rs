//! The real `clawguard` binary on files, stdin, directories and bad input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn clawguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clawguard"))
}

fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = clawguard()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const AWS: &str = "AKIAQYLPMN5HFIQR7VUX";
const ID: &str = "11010519491231002X";

#[test]
fn stdin_json_reports_offsets_line_and_masked_preview() {
    let input = format!("hello\nkey={AWS}\n身份证号：{ID}\n");
    let out = run_stdin(&["scan", "--format", "json", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let found = json_lines(&out.stdout);
    assert_eq!(found.len(), 2, "{found:?}");
    let aws = &found[0];
    assert_eq!(aws["rule"], "aws-access-key-id");
    assert_eq!(aws["category"], "credential");
    assert_eq!(aws["line"], 2);
    let (s, e) = (
        aws["start"].as_u64().unwrap() as usize,
        aws["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&input.as_bytes()[s..e], AWS.as_bytes());
    assert_eq!(found[1]["rule"], "cn-resident-id");
    assert_eq!(found[1]["line"], 3);
    // The preview never shows the whole value, and the raw value appears nowhere.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(AWS) && !stdout.contains(ID), "{stdout}");
}

#[test]
fn nothing_found_exits_zero() {
    let out = run_stdin(
        &["scan"],
        b"just some prose, order 12345, uuid 123e4567-e89b-12d3-a456-426614174000\n",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn directories_are_walked_and_files_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(
        dir.path().join("a/b/secret.env"),
        format!("AWS_ACCESS_KEY_ID={AWS}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("a/clean.txt"), "nothing here\n").unwrap();
    std::fs::write(dir.path().join("pii.txt"), format!("x\ny\nID {ID}\n")).unwrap();
    let out = clawguard()
        .args(["scan", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let found = json_lines(&out.stdout);
    let paths: Vec<&str> = found.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(paths.iter().any(|p| p.ends_with("a/b/secret.env")));
    assert!(paths.iter().any(|p| p.ends_with("pii.txt")));
    let pii = found
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("pii.txt"))
        .unwrap();
    assert_eq!(pii["line"], 3);
}

#[test]
fn text_format_is_file_line_rule() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("k.txt");
    std::fs::write(&f, format!("\n\n{AWS}\n")).unwrap();
    let out = clawguard().args(["scan"]).arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "{}:3: aws-access-key-id (credential)",
            f.display()
        )),
        "{text}"
    );
    assert!(!text.contains(AWS));
}

#[test]
fn sarif_is_valid_2_1_0() {
    let out = run_stdin(
        &["scan", "--format", "sarif"],
        format!("{AWS}\n").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "aws-access-key-id");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    let idx = results[0]["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(
        v["runs"][0]["tool"]["driver"]["rules"][idx]["id"],
        "aws-access-key-id"
    );
}

#[test]
fn redact_prints_input_with_placeholders() {
    let input = format!("{{\"k\": \"{AWS}\", \"id\": \"{ID}\"}}");
    let out = run_stdin(&["scan", "--redact", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        "{\"k\": \"[REDACTED:aws-access-key-id]\", \"id\": \"[REDACTED:cn-resident-id]\"}"
    );
    let _: serde_json::Value = serde_json::from_str(&text).unwrap();
}

#[test]
fn unreadable_paths_exit_2_but_other_files_are_still_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    std::fs::write(&good, format!("{AWS}\n")).unwrap();
    let missing = dir.path().join("missing.txt");
    let not_a_dir = good.join("child");
    let out = clawguard()
        .args(["scan", "--format", "json"])
        .arg(&missing)
        .arg(&not_a_dir)
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.txt"), "{err}");
    assert!(err.contains("child"), "{err}");
    assert_eq!(
        json_lines(&out.stdout).len(),
        1,
        "the readable file is still reported"
    );
}

fn rules_dir(content: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("custom.toml"), content).unwrap();
    dir
}

fn scan_with_rules(dir: &Path, input: &str) -> Output {
    let mut child = clawguard()
        .args(["scan", "--format", "json", "--rules"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The binary may exit on a bad rule file before reading stdin: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn bad_rule_files_name_file_line_and_reason() {
    let dir = rules_dir("[[rule]]\nid = \"x\"\ncategory = \"credential\"\nregex = '''(unclosed'''\nkeywords = [\"zz\"]\n");
    let out = scan_with_rules(dir.path(), "hi");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("custom.toml") && err.contains("rule `x`") && err.contains("regex"),
        "{err}"
    );

    let dir = rules_dir("[[rule]]\nid = \"x\"\ncategory = \"nope\"\n");
    let out = scan_with_rules(dir.path(), "hi");
    assert_eq!(out.status.code(), Some(2));

    let dir = rules_dir("\n\n[[rule]\nid = 1\n");
    let out = scan_with_rules(dir.path(), "hi");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("custom.toml:3:"), "{err}");

    let dir = rules_dir("[[rule]]\nid = \"x\"\ncategory = \"pii\"\nregex = 'a'\n");
    let out = scan_with_rules(dir.path(), "hi");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keywords"), "{err}");
}

#[test]
fn user_rules_add_disable_and_override() {
    let dir = rules_dir(
        r#"
[[rule]]
id = "employee-id"
category = "pii"
keywords = ["EMP-"]
regex = '''\bEMP-\d{6}\b'''
match = ["EMP-123456"]
no_match = ["EMP-12345"]

[[rule]]
id = "aws-access-key-id"
disabled = true
"#,
    );
    let out = scan_with_rules(dir.path(), &format!("EMP-004211 {AWS}"));
    assert_eq!(out.status.code(), Some(1));
    let found = json_lines(&out.stdout);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["rule"], "employee-id");

    let out = clawguard()
        .args(["rules", "test", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn rules_test_reports_a_broken_example() {
    let dir = rules_dir(
        r#"
[[rule]]
id = "employee-id"
category = "pii"
keywords = ["EMP-"]
regex = '''\bEMP-\d{6}\b'''
match = ["EMP-12345"]
no_match = ["EMP-1234567"]
"#,
    );
    let out = clawguard()
        .args(["rules", "test", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL employee-id"), "{text}");
    assert!(text.contains("1 failed"), "{text}");
}

#[test]
fn builtin_rules_pass_their_own_examples() {
    let out = clawguard().args(["rules", "test"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn large_file_offsets_are_absolute_across_read_windows() {
    // Reads are 4 MiB windows; place IDs around the first two window edges.
    let positions = [(4 << 20) - 30, (4 << 20) + 5, (8 << 20) - 10, (9 << 20) + 3];
    let mut data = vec![b'a'; 10 << 20];
    for &p in &positions {
        data[p - 1] = b' ';
        data[p..p + 18].copy_from_slice(ID.as_bytes());
        data[p + 18] = b' ';
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.txt");
    std::fs::write(&f, &data).unwrap();
    let out = clawguard()
        .args(["scan", "--format", "json"])
        .arg(&f)
        .output()
        .unwrap();
    let starts: Vec<usize> = json_lines(&out.stdout)
        .iter()
        .map(|f| f["start"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(starts, positions);
}
