mod fixture;
mod local_repartition_bench;
mod shuffle_bench;
mod transport_bench;

pub use local_repartition_bench::{
    LocalRepartitionBench, LocalRepartitionFixture, LocalRepartitionMode,
};
pub use shuffle_bench::{ShuffleBench, ShuffleFixture};
pub use transport_bench::{TransportBench, TransportBenchMode, TransportFixture};
