/* Hand-written part of the shim: what neither bindgen nor wrap_static_fns can bind. */
#include "wrapper.h"

int rvs_rte_errno(void)
{
	return rte_errno;
}

/* EAL's memseg descriptors handed out as duplicates (see the file). */
#include "memseg_fd.c"

int rvs_memseg_fd_of(const void *addr)
{
	const struct rte_memseg *ms = rte_mem_virt2memseg(addr, NULL);

	if (ms == NULL)
		return -1;
	return rte_memseg_get_fd(ms);
}
