//! Prediction cost of the bundled model: one row at a time and batches of 64, then
//! onnxruntime on the same model and rows in the same run (`bench/ort_compare.py`), so
//! the ratio is measured under the same machine load.
//!
//! `cargo bench -p modelwatch-runtime --bench model`
//!
//! Environment: `MODELWATCH_BENCH_CARD` picks another card (default
//! `models/fraud.card.json`; rows come from its `<name>.parity.json`),
//! `MODELWATCH_BENCH_ORT=0` skips onnxruntime, `MODELWATCH_BENCH_PYTHON` names the
//! Python interpreter (default `python3`).

use criterion::{Criterion, Throughput};
use modelwatch_runtime::{Model, ModelCard, load_card_and_model};
use serde::Deserialize;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Deserialize)]
struct Parity {
    rows: Vec<Vec<Option<f32>>>,
}

struct Setup {
    card: ModelCard,
    model: Box<dyn Model>,
    onnx: PathBuf,
    parity: PathBuf,
    rows: Vec<f32>,
    batch: Vec<f32>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn setup() -> Setup {
    let card_path = std::env::var_os("MODELWATCH_BENCH_CARD")
        .map_or_else(|| repo().join("models/fraud.card.json"), PathBuf::from);
    let (card, model) =
        load_card_and_model(&card_path).unwrap_or_else(|e| panic!("{}: {e}", card_path.display()));
    let dir = card_path.parent().expect("card has a directory");
    let parity = dir.join(format!("{}.parity.json", card.name));
    let text =
        std::fs::read_to_string(&parity).unwrap_or_else(|e| panic!("{}: {e}", parity.display()));
    let fixture: Parity = serde_json::from_str(&text).expect("parity fixture parses");
    let rows: Vec<f32> = fixture
        .rows
        .iter()
        .flat_map(|r| r.iter().map(|v| v.unwrap_or(f32::NAN)))
        .collect();
    let batch: Vec<f32> = rows
        .iter()
        .copied()
        .cycle()
        .take(64 * model.n_features())
        .collect();
    Setup {
        onnx: card
            .onnx_path(dir)
            .expect("the bench card names an ONNX file"),
        card,
        model,
        parity,
        rows,
        batch,
    }
}

fn bench(c: &mut Criterion, s: &Setup) {
    let nf = s.model.n_features();
    let n_rows = s.rows.len() / nf;
    let mut group = c.benchmark_group(format!("predict/{}", s.card.name));
    group.throughput(Throughput::Elements(1));
    group.bench_function("row", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % n_rows;
            s.model
                .predict_one(black_box(&s.rows[i * nf..(i + 1) * nf]))
                .expect("predicts")
        });
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("batch64", |b| {
        let mut out = [0f32; 64];
        b.iter(|| {
            s.model
                .predict(black_box(&s.batch), black_box(&mut out))
                .expect("predicts");
        });
    });
    group.finish();
}

/// Time of one call in µs, median of 5 rounds: (wall clock, CPU time of the process).
/// The machine is shared: wall time includes time other processes took the core, CPU
/// time does not. The script measures onnxruntime the same way.
fn per_call_us(mut f: impl FnMut(), budget: Duration) -> (f64, f64) {
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    f();
    let mut calls = 1u64;
    let elapsed = loop {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        let elapsed = start.elapsed();
        if elapsed >= budget / 25 || calls >= 1 << 26 {
            break elapsed;
        }
        calls *= 2;
    };
    let per_round = (((calls as f64) * (budget.as_secs_f64() / 5.0)
        / elapsed.as_secs_f64().max(1e-9)) as u64)
        .max(1);
    let mut wall = Vec::with_capacity(5);
    let mut busy = Vec::with_capacity(5);
    for _ in 0..5 {
        let (start, start_cpu) = (Instant::now(), cpu());
        for _ in 0..per_round {
            f();
        }
        wall.push(start.elapsed().as_secs_f64() * 1e6 / per_round as f64);
        busy.push((cpu() - start_cpu) * 1e6 / per_round as f64);
    }
    wall.sort_by(f64::total_cmp);
    busy.sort_by(f64::total_cmp);
    (wall[2], busy[2])
}

fn ours(s: &Setup) -> ((f64, f64), (f64, f64)) {
    let nf = s.model.n_features();
    let n_rows = s.rows.len() / nf;
    let mut i = 0;
    let row = per_call_us(
        || {
            i = (i + 1) % n_rows;
            black_box(
                s.model
                    .predict_one(black_box(&s.rows[i * nf..(i + 1) * nf]))
                    .expect("predicts"),
            );
        },
        Duration::from_secs(1),
    );
    let mut out = [0f32; 64];
    let batch = per_call_us(
        || {
            s.model
                .predict(black_box(&s.batch), black_box(&mut out))
                .expect("predicts");
        },
        Duration::from_secs(1),
    );
    (row, batch)
}

#[derive(Deserialize)]
struct OrtReport {
    onnxruntime: String,
    results: Vec<OrtResult>,
}

#[derive(Deserialize)]
struct OrtResult {
    threads: serde_json::Value,
    us_per_row: f64,
    us_per_batch64: f64,
    cpu_us_per_row: f64,
    cpu_us_per_batch64: f64,
}

fn onnxruntime(s: &Setup) -> Result<OrtReport, String> {
    let python = std::env::var("MODELWATCH_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = std::process::Command::new(&python)
        .arg(repo().join("bench/ort_compare.py"))
        .arg("--model")
        .arg(&s.onnx)
        .arg("--parity")
        .arg(&s.parity)
        .arg("--output")
        .arg(
            s.card
                .onnx
                .as_ref()
                .and_then(|o| o.output.as_deref())
                .unwrap_or("probabilities"),
        )
        .arg("--json")
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("bad report: {e}"))
}

fn main() {
    let s = setup();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &s);
    criterion.final_summary();

    // The comparison: ours, then onnxruntime, back to back.
    let ((row, row_cpu), (batch, batch_cpu)) = ours(&s);
    println!();
    println!(
        "{} {} ({:?}), {} features",
        s.card.name,
        s.card.version,
        s.model.backend(),
        s.model.n_features()
    );
    println!(
        "  {:<34} {:>9} {:>12} {:>9} {:>12}",
        "", "µs/row", "µs/batch64", "cpu µs/row", "cpu µs/b64"
    );
    println!(
        "  {:<34} {row:>9.2} {batch:>12.2} {row_cpu:>9.2} {batch_cpu:>12.2}",
        "modelwatch-runtime"
    );
    if std::env::var("MODELWATCH_BENCH_ORT").as_deref() == Ok("0") {
        return;
    }
    match onnxruntime(&s) {
        Ok(report) => {
            for r in &report.results {
                let threads = r
                    .threads
                    .as_str()
                    .map_or_else(|| r.threads.to_string(), str::to_string);
                println!(
                    "  {:<34} {:>9.2} {:>12.2} {:>9.2} {:>12.2}",
                    format!("onnxruntime {} threads={threads}", report.onnxruntime),
                    r.us_per_row,
                    r.us_per_batch64,
                    r.cpu_us_per_row,
                    r.cpu_us_per_batch64
                );
                println!(
                    "  {:<34} {:>8.1}x {:>11.1}x {:>8.1}x {:>11.1}x",
                    "  onnxruntime / ours",
                    r.us_per_row / row,
                    r.us_per_batch64 / batch,
                    r.cpu_us_per_row / row_cpu,
                    r.cpu_us_per_batch64 / batch_cpu
                );
            }
        }
        Err(e) => println!("  onnxruntime: not measured ({e})"),
    }
}
