//! `clawguard scan` over paths, the way people know from ripgrep: which files are read
//! (the `ignore` crate's walker: `.gitignore`, `.ignore` and `.git/info/exclude` are
//! honoured, `.git/` is skipped), a progress bar on a terminal for long scans, and the
//! one-line summary on standard error. Scanning and printing stay in [`crate::report`].

use crate::detect::scan::Scanner;
use crate::report::{self, FileResult};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Version-control directories: compressed objects and history, slow to read and not the
/// working files a user means. Skipped unless `hidden`.
const VCS_DIRS: &[&str] = &[".git", ".hg", ".svn"];

/// A scan shorter than this shows no progress bar at all (no flicker on small inputs).
const PROGRESS_DELAY: Duration = Duration::from_secs(1);

/// What the walk includes.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    /// Ignore `.gitignore`, `.ignore` and `.git/info/exclude` (scan what they list).
    pub no_ignore: bool,
    /// Also descend into version-control directories (`.git/`, `.hg/`, `.svn/`).
    pub hidden: bool,
}

impl WalkOptions {
    /// Everything: nothing ignored, nothing hidden (what `clawguard doctor` uses on
    /// OpenClaw's state, where a `.gitignore` must not hide a key from the check).
    pub fn everything() -> WalkOptions {
        WalkOptions {
            no_ignore: true,
            hidden: true,
        }
    }
}

/// An input named on the command line: a path, or `-` for standard input.
#[derive(Debug, Clone)]
pub enum Input {
    Stdin,
    Path(PathBuf),
}

/// The files a scan of `inputs` reads, in walk order (sorted by name within a directory),
/// plus a result for every path that could not be read, so nothing is skipped silently.
/// Dotfiles such as `.env` or `.npmrc` are included: that is where secrets live. Named
/// files are always scanned, even when an ignore file lists them (as in ripgrep).
/// Symbolic links to directories are not followed (a link loop cannot hang the walk);
/// links to files are scanned.
pub struct Walk {
    pub files: Vec<(PathBuf, u64)>,
    pub errors: Vec<FileResult>,
    pub stdin: bool,
}

pub fn walk(inputs: &[Input], opts: WalkOptions) -> Walk {
    let mut w = Walk {
        files: Vec::new(),
        errors: Vec::new(),
        stdin: false,
    };
    for input in inputs {
        match input {
            Input::Stdin => w.stdin = true,
            Input::Path(p) => walk_one(p, opts, &mut w),
        }
    }
    w
}

fn walk_one(root: &Path, opts: WalkOptions, w: &mut Walk) {
    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .ignore(!opts.no_ignore)
        .git_ignore(!opts.no_ignore)
        .git_exclude(!opts.no_ignore)
        .parents(!opts.no_ignore)
        // A `.gitignore` counts wherever it is, not only inside a git work tree: a user
        // who wrote one expects it to be honoured.
        .require_git(false)
        .sort_by_file_name(|a, b| a.cmp(b));
    if !opts.hidden {
        builder.filter_entry(|e| {
            !(e.depth() > 0
                && e.file_type().is_some_and(|t| t.is_dir())
                && VCS_DIRS.iter().any(|d| e.file_name() == *d))
        });
    }
    for entry in builder.build() {
        match entry {
            Ok(e) => {
                let Some(ft) = e.file_type() else { continue }; // stdin; never here
                if ft.is_dir() {
                    continue;
                }
                // `metadata` follows a symlink: a link to a file is scanned, a link to a
                // directory is not descended into.
                match std::fs::metadata(e.path()) {
                    Ok(m) if m.is_file() => w.files.push((e.into_path(), m.len())),
                    Ok(_) => {}
                    Err(err) => w.errors.push(error_result(e.path(), &err.to_string())),
                }
            }
            // Unreadable directories and files are results (exit status 2, the rest still
            // scanned); a malformed ignore-file line only warns, as in ripgrep.
            Err(err) => match err.io_error() {
                Some(io) => {
                    let path = walk_error_path(&err).unwrap_or(root);
                    w.errors.push(error_result(path, &io.to_string()));
                }
                None => eprintln!("clawguard: warning: {err}"),
            },
        }
    }
}

/// The path an `ignore` error is about, if it names one.
fn walk_error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            walk_error_path(err)
        }
        _ => None,
    }
}

fn error_result(path: &Path, reason: &str) -> FileResult {
    FileResult {
        path: path.display().to_string(),
        findings: Vec::new(),
        error: Some(format!("{}: {reason}", path.display())),
    }
}

/// Bytes read so far, drawn as a bar on standard error once a scan has run longer than
/// [`PROGRESS_DELAY`] and only when standard error is a terminal.
pub struct Progress {
    bar: ProgressBar,
    interactive: bool,
    shown: AtomicBool,
    start: Instant,
}

impl Progress {
    /// `total`: the bytes the scan expects to read (file sizes), `None` for a stream.
    pub fn new(total: Option<u64>, interactive: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        let template = if total.is_some() {
            "{spinner} scanning {bar:30} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta} left) {wide_msg}"
        } else {
            "{spinner} scanning {binary_bytes} ({binary_bytes_per_sec}) {wide_msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Progress {
            bar,
            interactive,
            shown: AtomicBool::new(false),
            start: Instant::now(),
        }
    }

    fn advance(&self, n: u64) {
        self.bar.inc(n);
        if self.interactive
            && !self.shown.load(Ordering::Relaxed)
            && self.start.elapsed() >= PROGRESS_DELAY
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn file_done(&self, path: &Path) {
        if self.shown.load(Ordering::Relaxed) {
            self.bar.set_message(path.display().to_string());
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bar.position()
    }

    /// Remove the bar before results are printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A reader that reports every byte it hands out to the progress bar.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Everything one `scan` produced, plus what the summary line reports.
pub struct Outcome {
    /// Per input, in walk order (read errors included).
    pub results: Vec<FileResult>,
    /// Files (and standard input) that were read.
    pub files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn findings(&self) -> usize {
        self.results.iter().map(|r| r.findings.len()).sum()
    }

    pub fn errors(&self) -> usize {
        self.results.iter().filter(|r| r.error.is_some()).count()
    }

    /// "scanned N files, M MB, K findings in T s" (plus the error count when there were
    /// errors).
    pub fn summary(&self) -> String {
        let files = plural(self.files, "file", "files");
        let findings = plural(self.findings(), "finding", "findings");
        let errors = match self.errors() {
            0 => String::new(),
            n => format!(", {}", plural(n, "error", "errors")),
        };
        format!(
            "scanned {files}, {:.1} MB, {findings}{errors} in {:.2} s",
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64()
        )
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Walk `inputs`, then scan standard input (if named) and every file on all cores.
/// `interactive`: standard error is a terminal, so a progress bar may be drawn.
pub fn scan(
    scanner: &Scanner,
    inputs: &[Input],
    opts: WalkOptions,
    stdin: impl Read,
    interactive: bool,
) -> Outcome {
    let start = Instant::now();
    scan_walk(scanner, walk(inputs, opts), stdin, interactive, start)
}

/// Scan what a [`walk`] listed (the caller may have filtered it; `clawguard doctor`
/// leaves out installed packages). `start`: when the whole scan began, for the summary.
pub fn scan_walk(
    scanner: &Scanner,
    walk: Walk,
    stdin: impl Read,
    interactive: bool,
    start: Instant,
) -> Outcome {
    let total = (!walk.stdin).then(|| walk.files.iter().map(|(_, len)| len).sum());
    let progress = Progress::new(total, interactive);
    let mut results = walk.errors;
    let mut files = walk.files.len();
    if walk.stdin {
        let reader = Counted {
            inner: stdin,
            progress: &progress,
        };
        results.push(report::scan_one(scanner, "-", reader));
        files += 1;
    }
    let scanned: Vec<FileResult> = walk
        .files
        .par_iter()
        .map(|(path, _)| {
            let result = match std::fs::File::open(path) {
                Ok(f) => report::scan_one(
                    scanner,
                    &path.display().to_string(),
                    Counted {
                        inner: f,
                        progress: &progress,
                    },
                ),
                Err(e) => error_result(path, &e.to_string()),
            };
            progress.file_done(path);
            result
        })
        .collect();
    results.extend(scanned);
    progress.finish();
    Outcome {
        results,
        files,
        bytes: progress.bytes(),
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(w: &Walk, root: &Path) -> Vec<String> {
        w.files
            .iter()
            .map(|(p, _)| p.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn summary_counts_files_bytes_findings_and_errors() {
        let o = Outcome {
            results: vec![error_result(Path::new("/x"), "gone")],
            files: 1,
            bytes: 3_400_000,
            elapsed: Duration::from_millis(210),
        };
        assert_eq!(
            o.summary(),
            "scanned 1 file, 3.4 MB, 0 findings, 1 error in 0.21 s"
        );
    }

    #[test]
    fn walk_honours_ignore_files_and_skips_git_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (p, body) in [
            (".gitignore", "target/\n*.log\n"),
            (".ignore", "secret-but-ignored.txt\n"),
            (".env", "KEY=1\n"),
            ("src/main.rs", "fn main() {}\n"),
            ("target/debug/out.bin", "x"),
            ("run.log", "x"),
            ("secret-but-ignored.txt", "x"),
            (".git/config", "[core]\n"),
        ] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, body).unwrap();
        }
        let input = [Input::Path(root.to_path_buf())];
        let w = walk(&input, WalkOptions::default());
        assert_eq!(
            names(&w, root),
            [".env", ".gitignore", ".ignore", "src/main.rs"]
        );
        let w = walk(
            &input,
            WalkOptions {
                no_ignore: true,
                hidden: false,
            },
        );
        assert_eq!(
            names(&w, root),
            [
                ".env",
                ".gitignore",
                ".ignore",
                "run.log",
                "secret-but-ignored.txt",
                "src/main.rs",
                "target/debug/out.bin"
            ]
        );
        let w = walk(&input, WalkOptions::everything());
        assert!(names(&w, root).contains(&".git/config".to_string()));
        // A file named on the command line is scanned even when it is ignored.
        let w = walk(&[Input::Path(root.join("run.log"))], WalkOptions::default());
        assert_eq!(w.files.len(), 1);
    }
}
