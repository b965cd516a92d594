// Every process (coordinator, worker, dev, bench) allocates through mimalloc: glibc's malloc
// spent a sixth of a worker's CPU in allocation, trimming and consolidating under TPC-H
// (Arrow buffers, Flight frames, a zstd context per Parquet column chunk opened).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    shoal::cli::main()
}
