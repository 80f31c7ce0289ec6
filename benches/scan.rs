//! Scanner throughput: `cargo bench --bench scan`.
//!
//! (a) the labelled dev corpus (`../shared/corpus/dev/docs`, skipped if absent);
//! (b) benign text with no planted items: source code and prose found on the machine
//!     (Python's standard library, this crate's own sources), repeated to 8 MiB.

use clawguard::detect::rules::RulePack;
use clawguard::detect::scan::Scanner;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;

fn benign_text(target: usize) -> Vec<u8> {
    let mut text = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    if let Ok(out) = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig;print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            dirs.push(p.into());
        }
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            if f.extension().is_some_and(|x| x == "py" || x == "rs") {
                if let Ok(b) = std::fs::read(&f) {
                    text.extend_from_slice(&b);
                }
            }
            if text.len() >= target {
                break;
            }
        }
    }
    assert!(!text.is_empty(), "no benign text found");
    while text.len() < target {
        let again = text.clone();
        text.extend_from_slice(&again);
    }
    text.truncate(target);
    text
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::new(&RulePack::builtin()).unwrap();
    let mut g = c.benchmark_group("scan");
    g.sample_size(20);

    let benign = benign_text(8 << 20);
    g.throughput(Throughput::Bytes(benign.len() as u64));
    g.bench_function("benign_8MiB", |b| b.iter(|| scanner.scan(&benign)));

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/dev/docs");
    match std::fs::read_dir(&corpus) {
        Ok(entries) => {
            let docs: Vec<Vec<u8>> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect();
            let total: usize = docs.iter().map(Vec::len).sum();
            g.throughput(Throughput::Bytes(total as u64));
            g.bench_function("dev_corpus", |b| {
                b.iter(|| docs.iter().map(|d| scanner.scan(d).len()).sum::<usize>())
            });
        }
        Err(_) => eprintln!("skipping dev_corpus: {} not found", corpus.display()),
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
