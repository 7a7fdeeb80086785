//! `modelwatch mixin`: write, check, and print the default config.

use modelwatch_mixin::{MixinArgs, run};
use std::process::ExitCode;

fn args(out: &std::path::Path) -> MixinArgs {
    MixinArgs {
        config: None,
        out: out.to_path_buf(),
        check: false,
        print_default_config: false,
    }
}

#[test]
fn check_fails_until_the_files_are_generated_then_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = MixinArgs {
        check: true,
        ..args(dir.path())
    };
    assert_eq!(run(&check).expect("runs"), ExitCode::FAILURE);
    assert_eq!(run(&args(dir.path())).expect("writes"), ExitCode::SUCCESS);
    assert_eq!(run(&check).expect("runs"), ExitCode::SUCCESS);
    // A hand edit makes the check fail again.
    let rules = dir.path().join(modelwatch_mixin::RULES_PATH);
    let text = std::fs::read_to_string(&rules).expect("rules");
    std::fs::write(&rules, text.clone() + "# edited by hand\n").expect("edit");
    assert_eq!(run(&check).expect("runs"), ExitCode::FAILURE);
    // So does a test file the generator no longer writes.
    std::fs::write(&rules, text).expect("restore");
    assert_eq!(run(&check).expect("runs"), ExitCode::SUCCESS);
    let leftover = dir.path().join("tests/removed-test.yaml");
    std::fs::write(&leftover, "tests: []\n").expect("leftover");
    let stale = modelwatch_mixin::check(
        dir.path(),
        &modelwatch_mixin::generate(&modelwatch_mixin::MixinConfig::default()).expect("generates"),
    )
    .expect_err("a leftover file is stale");
    assert_eq!(stale.paths, ["tests/removed-test.yaml"]);
}

#[test]
fn a_config_file_changes_thresholds_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("mixin.toml");
    std::fs::write(
        &config,
        "[drift]\npsi_critical = 0.3\nthreshold = \"fixed\"\n",
    )
    .expect("config");
    let out = dir.path().join("out");
    let generate = MixinArgs {
        config: Some(config.clone()),
        ..args(&out)
    };
    assert_eq!(run(&generate).expect("writes"), ExitCode::SUCCESS);
    let alerts = std::fs::read_to_string(out.join(modelwatch_mixin::ALERTS_PATH)).expect("alerts");
    assert!(
        alerts.contains("model_version:model_score:psi > 0.3"),
        "{alerts}"
    );
    std::fs::write(&config, "[slo]\nlatency_threshold_seconds = 0.03\n").expect("config");
    let err = run(&generate).expect_err("0.03 is not a bucket bound");
    assert!(
        format!("{err:#}").contains("latency_threshold_seconds"),
        "{err:#}"
    );
}

#[test]
fn the_printed_default_config_reads_back_as_the_default() {
    let text = modelwatch_mixin::MixinConfig::default_toml();
    let config = modelwatch_mixin::MixinConfig::from_toml(&text).expect("valid");
    assert_eq!(config, modelwatch_mixin::MixinConfig::default());
    for field in [
        "time_scale",
        "availability_target",
        "psi_warning",
        "max_age_default",
        "uid",
    ] {
        assert!(text.contains(field), "{field} missing from\n{text}");
    }
}
