//! Module implementing the simulated population's flags, shared by every command that
//! must agree on it. See [`PopulationArgs`] for details.
//!
//! `modelwatch serve` seeds its empty feature store from a population and
//! `modelwatch loadgen` sends that population's transactions: both must be given the
//! same values, or the load's customers and terminals are unknown to the server.

use crate::SimConfig;

/// The simulated population: seed and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct PopulationArgs {
    /// Seed of the simulated population.
    #[arg(long, env = "MODELWATCH_SIM_SEED", default_value_t = SimConfig::default().seed)]
    pub sim_seed: u64,
    /// Customers in the simulated population.
    #[arg(long, env = "MODELWATCH_SIM_CUSTOMERS", default_value_t = SimConfig::default().customers)]
    pub sim_customers: usize,
    /// Terminals in the simulated population.
    #[arg(long, env = "MODELWATCH_SIM_TERMINALS", default_value_t = SimConfig::default().terminals)]
    pub sim_terminals: usize,
    /// Days of simulated history behind the population's features.
    #[arg(long, env = "MODELWATCH_SIM_DAYS", default_value_t = SimConfig::default().days)]
    pub sim_days: u32,
}

impl Default for PopulationArgs {
    fn default() -> Self {
        let c = SimConfig::default();
        Self {
            sim_seed: c.seed,
            sim_customers: c.customers,
            sim_terminals: c.terminals,
            sim_days: c.days,
        }
    }
}

impl PopulationArgs {
    /// The simulator configuration these flags describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.sim_seed,
            customers: self.sim_customers,
            terminals: self.sim_terminals,
            days: self.sim_days,
            ..SimConfig::default()
        }
    }
}
