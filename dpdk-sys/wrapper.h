/* The DPDK headers dpdk-sys binds. Kept small: only what the appliance uses. */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_bus_vdev.h>
#include <rte_version.h>

/* rte_errno is a per-lcore (thread-local) variable behind a macro; bindgen cannot
 * reach it, so the shim exports a getter. */
int rvs_rte_errno(void);

/* The descriptor of the memory segment holding `addr` (rte_mem_virt2memseg, then
 * rte_memseg_get_fd: the shim's, a duplicate the caller owns); -1 where there is
 * none (--no-huge, or `addr` outside DPDK's memory). */
int rvs_memseg_fd_of(const void *addr);
