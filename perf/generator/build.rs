//! Links DPDK's poll-mode-driver libraries with `--no-as-needed` into the generator
//! (PMDs register their drivers from constructors; an `--as-needed` link would drop
//! them and the memif vdevs would not exist). dpdk-sys computes the list; a build
//! script can pass linker arguments only to its own crate's binaries and tests.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_DPDK_PMD_LINK_ARGS");
    if let Ok(args) = std::env::var("DEP_DPDK_PMD_LINK_ARGS") {
        for a in args.split_whitespace() {
            println!("cargo:rustc-link-arg={a}");
        }
    }
}
