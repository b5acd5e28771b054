/* Hand-written part of the shim: what neither bindgen nor wrap_static_fns can bind. */
#include "wrapper.h"

int rvs_rte_errno(void)
{
	return rte_errno;
}

/* EAL's memseg descriptors handed out as duplicates (see the file). */
#include "memseg_fd.c"
