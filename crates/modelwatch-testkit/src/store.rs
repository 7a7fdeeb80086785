//! Module implementing the seeding of a feature store for tests. See [`small_store`]
//! and [`population_store`] for details.
//!
//! Entity ids follow the store's formats (`modelwatch_sim::CustomerId`,
//! `modelwatch_sim::TerminalId`): customers `C` and 6 digits, terminals `T` and 5
//! digits. Load that used other formats would only ever hit unknown entities.

use modelwatch_server::features::FeatureLayout;
use modelwatch_server::load;
use modelwatch_server::store::SqliteStore;
use modelwatch_sim::{CustomerId, SimConfig, TerminalId};
use std::path::{Path, PathBuf};

/// The one customer of [`small_store`]: `C000001`.
pub const CUSTOMER: &str = "C000001";
/// The one terminal of [`small_store`]: `T00001`.
pub const TERMINAL: &str = "T00001";

/// The store's file name inside a data directory (what `serve --data-dir` opens).
pub const STORE_FILE: &str = "features.sqlite";

/// The id of customer number `n`, such as `C000123`.
pub fn customer_id(n: u32) -> String {
    CustomerId(n).to_string()
}

/// The id of terminal number `n`, such as `T00042`.
pub fn terminal_id(n: u32) -> String {
    TerminalId(n).to_string()
}

/// The event timestamp (Unix seconds) of every row [`seed`] writes.
pub const SEEDED_AT: i64 = 1_700_000_000;

/// Writes one known entity per entity group of `layout` into `store`: [`CUSTOMER`]
/// for the customer group and [`TERMINAL`] for the terminal group, feature `i` of a
/// group holding the value `i + 1`, stamped [`SEEDED_AT`].
pub fn seed(store: &SqliteStore, layout: &FeatureLayout) {
    for (_, group) in &layout.entity_groups {
        let names: Vec<&str> = group.features.iter().map(String::as_str).collect();
        let values: Vec<f32> = (1..=names.len()).map(|i| i as f32).collect();
        let entity = match group.key.as_str() {
            "customer_id" => CUSTOMER,
            "terminal_id" => TERMINAL,
            other => panic!("the test kit seeds customer_id and terminal_id groups, not {other:?}"),
        };
        store
            .upsert_group(
                &group.name,
                &names,
                [(entity.to_string(), values.as_slice(), SEEDED_AT)],
            )
            .unwrap_or_else(|e| panic!("seed the {} group: {e:#}", group.name));
    }
}

/// The bundled model unpacked into `data_dir` (as `serve` does), its feature layout,
/// and the store at `data_dir/features.sqlite`, opened.
pub fn bundled_store(data_dir: &Path) -> (FeatureLayout, SqliteStore, PathBuf) {
    let card_path = load::unpack_bundled(data_dir).expect("the bundled model unpacks");
    let card = modelwatch_runtime::ModelCard::load(&card_path).expect("the bundled card loads");
    let layout = FeatureLayout::from_card(&card).expect("the bundled card has a layout");
    let path = data_dir.join(STORE_FILE);
    let store = SqliteStore::open(&path).expect("the feature store opens");
    (layout, store, path)
}

/// Writes a small store into `data_dir` for the bundled model (see [`seed`]), so
/// that `serve --data-dir data_dir` does not seed the whole simulated population.
/// Returns the store's path.
pub fn small_store(data_dir: &Path) -> PathBuf {
    let (layout, store, path) = bundled_store(data_dir);
    seed(&store, &layout);
    path
}

/// Writes the whole simulated `population` into `data_dir`'s store for the bundled
/// model, as `serve` does on its first start. Returns the store's path, which labs
/// can copy instead of seeding again.
pub fn population_store(data_dir: &Path, population: SimConfig) -> PathBuf {
    let (layout, store, path) = bundled_store(data_dir);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(load::seed_if_empty(
            &(std::sync::Arc::new(store)
                as std::sync::Arc<dyn modelwatch_server::store::GroupWriter>),
            &layout,
            population,
        ))
        .expect("the population seeds the store");
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_store_formats() {
        assert_eq!(customer_id(1), CUSTOMER);
        assert_eq!(terminal_id(1), TERMINAL);
        assert_eq!(customer_id(123), "C000123");
        assert_eq!(terminal_id(42), "T00042");
    }
}
