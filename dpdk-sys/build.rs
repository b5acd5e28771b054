//! Finds the system DPDK with pkg-config, generates bindings with bindgen, compiles
//! the static-inline wrappers bindgen writes (wrap_static_fns) plus `shim.c`, and
//! tells dependents which poll-mode-driver libraries to link with `--no-as-needed`.

use std::env;
use std::path::{Path, PathBuf};

/// PMD and bus libraries that register drivers from constructors: nothing references
/// their symbols, so a default `--as-needed` link drops them and their vdevs silently
/// do not exist. The vdev ones come first; the rest are common NICs, linked when the
/// system has them.
const PMDS: &[&str] = &[
    "rte_mempool_ring",
    "rte_bus_vdev",
    "rte_bus_pci",
    "rte_net_af_packet",
    "rte_net_tap",
    "rte_net_null",
    "rte_net_ring",
    "rte_net_memif",
    "rte_net_virtio",
    "rte_net_ixgbe",
    "rte_net_i40e",
    "rte_net_ice",
    "rte_net_e1000",
    "rte_net_vmxnet3",
    "rte_net_mlx5",
];

/// The only allowed prefixes of bound items: keeps the bindings (and the wrapper shim)
/// small and reviewable.
const ALLOW_FUNCS: &str = "rte_(eal_init|eal_cleanup|eal_mp_wait_lcore|eal_remote_launch|eal_get_lcore_state|lcore_id|lcore_count|lcore_to_socket_id|socket_id|get_main_lcore|get_next_lcore|lcore_is_enabled|rdtsc|get_tsc_hz|get_timer_cycles|strerror|exit|version|pktmbuf_.*|mbuf_raw_.*|mbuf_refcnt_.*|mempool_free|mempool_avail_count|mempool_in_use_count|mempool_lookup|eth_dev_count_avail|eth_dev_get_port_by_name|eth_dev_get_name_by_port|eth_find_next_owned_by|eth_dev_info_get|eth_dev_configure|eth_rx_queue_setup|eth_tx_queue_setup|eth_dev_start|eth_dev_stop|eth_dev_close|eth_dev_set_mtu|eth_macaddr_get|eth_promiscuous_enable|eth_allmulticast_enable|eth_link_get_nowait|eth_stats_get|eth_stats_reset|eth_rx_burst|eth_tx_burst|eth_dev_is_valid_port|eth_dev_socket_id|dev_is_probed|vdev_init)|rvs_rte_errno|rvs_memseg_fd_of";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-changed=memseg_fd.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new().atleast_version("22.11").cargo_metadata(false).probe("libdpdk") {
        Ok(lib) => lib,
        Err(e) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_owned();
            eprintln!("error: DPDK (libdpdk >= 22.11) not found by pkg-config ({first}); run scripts/setup as root");
            std::process::exit(1);
        }
    };

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let cflags = pkg_cflags();

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .allowlist_function(ALLOW_FUNCS)
        .allowlist_type("rte_(mbuf|mempool|eth_.*|ether_addr|lcore_state_t|rmt_call_main_t|mbuf_.*)")
        .allowlist_var("RTE_(ETH_.*|MBUF_.*|PKTMBUF_.*|MAX_ETHPORTS|MAX_LCORE|ETHER_.*|PTYPE_.*|VERSION.*)|(RTE_)?ETH_.*|SOCKET_ID_ANY|LCORE_ID_ANY")
        // DPDK's packed+aligned structs (ARP and friends) trip bindgen (#1538):
        // treat them as opaque, the appliance parses packets itself.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(out.join("static_fns"))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| {
            eprintln!("error: bindgen failed on the DPDK headers: {e}");
            std::process::exit(1);
        });
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");

    // The generated C file defines one extern wrapper per static inline function.
    let mut build = cc::Build::new();
    build
        .file(out.join("static_fns.c"))
        .file("shim.c")
        .include(env::current_dir().expect("cwd"))
        .flag("-include")
        .flag(Path::new("wrapper.h").canonicalize().expect("wrapper.h").to_str().expect("utf8"))
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(false)
        .opt_level(2);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("rvs_dpdk_shim");

    // Link DPDK's libraries (the shim depends on them) ...
    for path in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    // ... and hand the PMD list to dependents (DEP_DPDK_PMD_LINK_ARGS): only a
    // binary's own build script can pass `--no-as-needed` to the linker.
    let libdirs: Vec<PathBuf> = dpdk
        .link_paths
        .iter()
        .cloned()
        .chain(
            ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/local/lib", "/usr/lib"]
                .map(PathBuf::from),
        )
        .collect();
    let present: Vec<&str> =
        PMDS.iter().copied().filter(|l| libdirs.iter().any(|d| d.join(format!("lib{l}.so")).exists())).collect();
    let mut args = vec!["-Wl,--no-as-needed".to_owned()];
    args.extend(present.iter().map(|l| format!("-l{l}")));
    args.push("-Wl,--as-needed".to_owned());
    println!("cargo:pmd_link_args={}", args.join(" "));
    println!("cargo:version={}", dpdk.version);
}

/// `pkg-config --cflags libdpdk`, split into arguments (it carries `-include
/// rte_config.h` and `-march=...`, both needed to see DPDK's inlines as DPDK built them).
fn pkg_cflags() -> Vec<String> {
    let out = std::process::Command::new("pkg-config").args(["--cflags", "libdpdk"]).output().expect("run pkg-config");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}
