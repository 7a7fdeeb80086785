//! Module implementing model loading (bundled or from a card path) and first-start
//! seeding of the embedded feature store. See [`load_model`] and [`seed_if_empty`].

use crate::features::FeatureLayout;
use crate::store::SqliteStore;
use anyhow::Context as _;
use modelwatch::{FeatureReference, ModelReference, ReferenceBins};
use modelwatch_runtime::{Model, ModelCard, Reference};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The bundled fraud model, compiled into the binary so the first run needs no files.
pub mod bundled {
    /// The model card.
    pub const CARD: &str = include_str!("../../../models/fraud.card.json");
    /// The ONNX graph.
    pub const ONNX: &[u8] = include_bytes!("../../../models/fraud.onnx");
    /// The reference distributions.
    pub const REFERENCE: &str = include_str!("../../../models/fraud.reference.json");
}

/// A model ready to serve.
#[derive(Debug)]
pub struct LoadedModel {
    /// Its card.
    pub card: ModelCard,
    /// Its evaluator; `None` for a monitor-only card (no ONNX file).
    pub model: Option<Arc<dyn Model>>,
    /// Its reference distributions, in the library's terms.
    pub reference: ModelReference,
    /// Where the card was read from.
    pub card_path: PathBuf,
}

/// Writes `bytes` to `path` unless it already holds exactly them.
fn write_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|current| current == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Unpacks the bundled model into `data_dir/models/` and returns its card path.
pub fn unpack_bundled(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let card =
        ModelCard::from_json_str(bundled::CARD).context("the bundled model card is invalid")?;
    let dir = data_dir.join("models");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let card_path = dir.join(format!("{}.card.json", card.name));
    write_if_changed(&card_path, bundled::CARD.as_bytes())?;
    let onnx = card
        .onnx_path(&dir)
        .context("the bundled model card names no ONNX file")?;
    write_if_changed(&onnx, bundled::ONNX)?;
    write_if_changed(
        &reference_path(&card_path, &card),
        bundled::REFERENCE.as_bytes(),
    )?;
    Ok(card_path)
}

/// The reference file that sits next to a card: `<dir>/<name>.reference.json`.
pub fn reference_path(card_path: &Path, card: &ModelCard) -> PathBuf {
    card_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{}.reference.json", card.name))
}

/// Loads the model named by `card_path`, or the bundled one.
pub fn load_model(card_path: Option<&Path>, data_dir: &Path) -> anyhow::Result<LoadedModel> {
    let card_path = match card_path {
        Some(path) => path.to_path_buf(),
        None => unpack_bundled(data_dir)?,
    };
    let hint = |e: modelwatch_runtime::RuntimeError| {
        anyhow::anyhow!(
            "{e}\nhint: --model takes a model card (models/<name>.card.json) with its .onnx next to it, or a monitor-only card (no `onnx`) for a model served elsewhere"
        )
    };
    let card = ModelCard::load(&card_path).map_err(hint)?;
    let model = match card.onnx {
        None => None,
        Some(_) => {
            let dir = card_path.parent().unwrap_or(Path::new("."));
            let model = modelwatch_runtime::load_model_for_card(&card, dir).map_err(hint)?;
            Some(Arc::from(model))
        }
    };
    let ref_path = reference_path(&card_path, &card);
    let reference = Reference::load(&ref_path).map_err(|e| {
        anyhow::anyhow!(
            "{e}\nhint: build it with `modelwatch reference --model {}`",
            card_path.display()
        )
    })?;
    let reference = to_model_reference(&card, &reference)?;
    Ok(LoadedModel {
        card,
        model,
        reference,
        card_path,
    })
}

/// Loads every model of a repository: each `*.card.json` in `dir` (not its
/// subdirectories), in file-name order, each with its ONNX file and reference next
/// to it. Refuses an empty directory and two cards with one name.
pub fn load_repository(dir: &Path) -> anyhow::Result<Vec<LoadedModel>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the model repository {}: {e}\nhint: --model-repository takes a directory of <name>.card.json files",
            dir.display()
        )
    })?;
    let mut cards: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".card.json"))
        })
        .collect();
    cards.sort();
    anyhow::ensure!(
        !cards.is_empty(),
        "the model repository {} holds no model card\nhint: put <name>.card.json there with its .onnx and <name>.reference.json next to it",
        dir.display()
    );
    let mut models: Vec<LoadedModel> = Vec::with_capacity(cards.len());
    for path in &cards {
        let model = load_model(Some(path), dir)
            .map_err(|e| anyhow::anyhow!("model card {}: {e}", path.display()))?;
        if let Some(other) = models.iter().find(|m| m.card.name == model.card.name) {
            anyhow::bail!(
                "two cards name the model {:?}: {} and {}\nhint: a name is the `model` label of every series; give each card its own",
                model.card.name,
                other.card_path.display(),
                path.display()
            );
        }
        models.push(model);
    }
    Ok(models)
}

/// Converts the runtime's reference file into the library's drift reference, in the
/// card's feature order (which is the model row order the server records in).
pub fn to_model_reference(
    card: &ModelCard,
    reference: &Reference,
) -> anyhow::Result<ModelReference> {
    let bins = |d: &modelwatch_runtime::Distribution| ReferenceBins {
        edges: d.edges.clone(),
        ratios: d.fractions.clone(),
        min: d.min,
        max: d.max,
    };
    let mut features = Vec::with_capacity(card.features.len());
    for spec in &card.features {
        let distribution = reference
            .features
            .iter()
            .find(|f| f.name == spec.name)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the reference has no distribution for feature {:?}",
                    spec.name
                )
            })?;
        features.push(FeatureReference {
            name: spec.name.clone(),
            group: spec.group.clone(),
            bins: bins(distribution),
        });
    }
    Ok(ModelReference {
        score: bins(&reference.score),
        features,
    })
}

/// Seeds the embedded store from the simulator for each entity group that is empty
/// and that the simulator computes (`customer` and `terminal` with its features): the
/// feature values of the simulated population as of now, so live traffic from
/// `modelwatch loadgen` (same simulator, same seed) finds its customers and
/// terminals. Any other empty group is left empty with a warning (its entities are
/// unknown, so zeros, until `modelwatch features load` fills it).
pub async fn seed_if_empty(
    store: &SqliteStore,
    layout: &FeatureLayout,
    population: modelwatch_sim::SimConfig,
) -> anyhow::Result<()> {
    let mut to_seed = layout.clone();
    let mut empty = Vec::new();
    for (_, group) in &layout.entity_groups {
        if store.count(&group.name)? == 0 {
            empty.push(group.name.clone());
        }
    }
    to_seed.entity_groups.retain(|(_, group)| {
        if !empty.contains(&group.name) {
            return false;
        }
        match simulator_order(group) {
            Ok(_) => true,
            Err(why) => {
                eprintln!(
                    "warning: feature group {:?} is empty and the simulator cannot seed it ({why}); its entities are unknown until it is loaded\nhint: modelwatch features load --model CARD --group {} FILE.csv",
                    group.name, group.name
                );
                false
            }
        }
    });
    if to_seed.entity_groups.is_empty() {
        return Ok(());
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || seed(&store, &to_seed, population))
        .await
        .context("seeding task failed")?
}

/// The simulator's group for `group`, and the position in the simulator's features
/// of each of the card's, or why the simulator cannot compute the group.
fn simulator_order(
    group: &crate::features::EntityGroup,
) -> Result<(modelwatch_sim::FeatureGroup, Vec<usize>), String> {
    let sim_group = modelwatch_sim::FeatureGroup::from_name(&group.name)
        .ok_or_else(|| format!("the simulator has no feature group {:?}", group.name))?;
    if sim_group == modelwatch_sim::FeatureGroup::Transaction {
        return Err(format!(
            "the simulator computes group {:?} from a request, not a store",
            group.name
        ));
    }
    let sim_features = sim_group.features();
    let order = group
        .features
        .iter()
        .map(|name| {
            sim_features
                .iter()
                .position(|f| f.name == name)
                .ok_or_else(|| format!("the simulator cannot compute feature {name:?}"))
        })
        .collect::<Result<_, _>>()?;
    Ok((sim_group, order))
}

fn seed(
    store: &SqliteStore,
    layout: &FeatureLayout,
    config: modelwatch_sim::SimConfig,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    eprintln!(
        "seeding the feature store {} from the simulator ({} customers, {} terminals, {} days)...",
        store.path().display(),
        config.customers,
        config.terminals,
        config.days
    );
    let simulator = modelwatch_sim::Simulator::new(config)?;
    let history = simulator.generate();
    let snapshot = modelwatch_sim::FeatureBuilder::new(&history).snapshot(history.end_timestamp());
    let now = crate::unix_now();
    for (_, group) in &layout.entity_groups {
        let (sim_group, order) = simulator_order(group).map_err(|why| anyhow::anyhow!(why))?;
        let rows: Vec<(String, Vec<f32>)> = match sim_group {
            modelwatch_sim::FeatureGroup::Customer => snapshot
                .iter_customers()
                .map(|(id, v)| (id.to_string(), order.iter().map(|i| v[*i]).collect()))
                .collect(),
            modelwatch_sim::FeatureGroup::Terminal => snapshot
                .iter_terminals()
                .map(|(id, v)| (id.to_string(), order.iter().map(|i| v[*i]).collect()))
                .collect(),
            modelwatch_sim::FeatureGroup::Transaction => continue,
        };
        // The same writer as `modelwatch features load`.
        let written = crate::ingest::write_group(
            store,
            group,
            rows.into_iter().map(|(id, values)| (id, values, now)),
        )?;
        eprintln!("  {}: {written} entities", group.name);
    }
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
