//! Checks the drift rules' noise levels by simulation: windows of N predictions drawn
//! from the bundled model's reference itself (`models/fraud.reference.json`), with
//! `modelwatch::drift` computing PSI, Jensen-Shannon and total variation, against the
//! no-drift expectations the recording rules use. Prints the Markdown tables of
//! docs/drift.md.
//!
//! `cargo run --release -p modelwatch-mixin --example drift_noise [-- reference.json]`

use modelwatch::drift::ReferenceBins;
use modelwatch_mixin::noise::{self, SplitMix64};
use std::path::PathBuf;

const SIZES: [u64; 10] = [50, 100, 200, 500, 1000, 2000, 5000, 10_000, 50_000, 100_000];

fn bins(value: &serde_json::Value) -> anyhow::Result<ReferenceBins> {
    let numbers = |key: &str| -> anyhow::Result<Vec<f64>> {
        value[key]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("no {key} array"))?
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| anyhow::anyhow!("{key}: not a number"))
            })
            .collect()
    };
    Ok(ReferenceBins {
        edges: numbers("edges")?,
        ratios: numbers("fractions")?,
        min: value["min"].as_f64().unwrap_or(f64::MIN),
        max: value["max"].as_f64().unwrap_or(f64::MAX),
    })
}

fn replicates(n: u64) -> u32 {
    if n <= 10_000 { 400 } else { 40 }
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fraud.reference.json")
        });
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut distributions = vec![("score".to_string(), bins(&json["score"])?)];
    for f in json["features"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or("?").to_string();
        distributions.push((name, bins(f)?));
    }
    let defaults = modelwatch_mixin::MixinConfig::default();
    let (threshold, k) = (defaults.drift.psi_warning, defaults.drift.noise_k);
    let mut rng = SplitMix64::new(19);

    let score = &distributions[0].1;
    let b = score.ratios.len();
    println!(
        "Score ({b} bins), {} draws per N ({} at N > 10,000):\n",
        400, 40
    );
    println!(
        "| N | E[PSI] = (B-1)/N | mean PSI | ratio | sd expected | sd observed | E[JS] = (B-1)/8N | mean JS | E[TV] | TV bound | mean TV |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in SIZES {
        let s = noise::simulate(score, n, replicates(n), threshold, k, &mut rng);
        let e = noise::psi_noise(b, n);
        println!(
            "| {n} | {e:.5} | {:.5} | {:.2} | {:.5} | {:.5} | {:.6} | {:.6} | {:.4} | {:.4} | {:.4} |",
            s.psi,
            s.psi / e,
            noise::psi_noise_sd(b, n),
            s.psi_sd,
            noise::jensen_shannon_noise(b, n),
            s.jensen_shannon,
            noise::total_variation_noise_exact(&score.ratios, n),
            noise::total_variation_noise(b, n),
            s.total_variation,
        );
    }

    println!(
        "\nAll {} distributions (score and features): observed over expected mean PSI, and how often a window \
         of pure noise passes the warning threshold {threshold} alone (fixed) or {threshold} + {k} (B-1)/N (noise):\n",
        distributions.len()
    );
    println!(
        "| N | median ratio | largest ratio (distribution) | P(PSI > {threshold}), worst | P(PSI > {threshold} + {k}(B-1)/N), worst |"
    );
    println!("|---:|---:|---|---:|---:|");
    for n in SIZES {
        let mut ratios = Vec::new();
        let (mut worst_fixed, mut worst_noise) = (0.0f64, 0.0f64);
        for (name, d) in &distributions {
            let s = noise::simulate(d, n, replicates(n), threshold, k, &mut rng);
            ratios.push((s.psi / noise::psi_noise(d.ratios.len(), n), name.as_str()));
            worst_fixed = worst_fixed.max(s.above_fixed);
            worst_noise = worst_noise.max(s.above_noise);
        }
        ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
        let median = ratios[ratios.len() / 2].0;
        let (largest, name) = ratios[ratios.len() - 1];
        println!(
            "| {n} | {median:.2} | {largest:.2} ({name}) | {worst_fixed:.4} | {worst_noise:.4} |"
        );
    }
    Ok(())
}
