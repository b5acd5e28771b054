/*
 * rte_memseg_get_fd() as a duplicate the caller owns.
 *
 * DPDK 22.11's memif PMD, as a zero-copy client, closes the descriptor
 * rte_memseg_get_fd() gave it once the peer has it (memif_connect). That
 * descriptor is EAL's own: a second zero-copy port then hands its peer a closed
 * or reused number (the peer's mmap fails, or maps the wrong file), and closes
 * whatever holds the number by then. Defined in the binaries that link the shim
 * (and exported from them: appliance/build.rs), or preloaded into another DPDK
 * program (perf/pktgen's testpmd), this definition comes before EAL's: every
 * caller gets its own duplicate, which it may close.
 *
 * Standalone (no DPDK header) so that it also builds as a preload library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>

struct rte_memseg;

int rte_memseg_get_fd(const struct rte_memseg *ms)
{
	static int (*eal)(const struct rte_memseg *);

	if (eal == NULL)
		eal = (int (*)(const struct rte_memseg *))dlsym(RTLD_NEXT, "rte_memseg_get_fd");
	if (eal == NULL)
		return -1;
	int fd = eal(ms);
	return fd < 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}
