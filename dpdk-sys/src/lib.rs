//! Raw FFI bindings to the system DPDK, generated at build time by bindgen from
//! `wrapper.h`. Static inline functions (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, ...)
//! are reached through wrappers bindgen generates (`wrap_static_fns`) and `cc` compiles.
//! Nothing but bindings lives here; the safe layer is `appliance::dpdk`.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
#![allow(clippy::all, clippy::undocumented_unsafe_blocks, clippy::ptr_as_ptr, clippy::cast_possible_truncation)]
#![allow(unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
