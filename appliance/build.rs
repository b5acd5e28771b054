//! Links DPDK's poll-mode-driver libraries with `--no-as-needed` into the appliance's
//! binaries and tests: PMDs register their drivers from constructors, so an
//! `--as-needed` link would drop them and vdevs would silently not exist. dpdk-sys
//! computes the list (DEP_DPDK_PMD_LINK_ARGS); only this crate's build script can
//! pass linker arguments to its own binaries. It also exports the shim's
//! `rte_memseg_get_fd` from them, so that DPDK's libraries call it rather than
//! EAL's (dpdk-sys/memseg_fd.c says why).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_DPDK_PMD_LINK_ARGS");
    if std::env::var_os("CARGO_FEATURE_DPDK").is_none() {
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol=rte_memseg_get_fd");
    if let Ok(args) = std::env::var("DEP_DPDK_PMD_LINK_ARGS") {
        for a in args.split_whitespace() {
            println!("cargo:rustc-link-arg={a}");
        }
    }
}
