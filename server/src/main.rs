// Every process (coordinator, worker, dev, bench) allocates through mimalloc: under TPC-H,
// glibc's malloc, free and consolidation took about a sixth of a cluster's CPU (Arrow
// buffers, Flight frames, a zstd context per Parquet column chunk opened).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    shoal::cli::main()
}
