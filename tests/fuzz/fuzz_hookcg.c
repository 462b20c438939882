/* SPDX-License-Identifier: ISC */
/* libFuzzer target: the daemon's cgroup from /proc/self/cgroup and /proc/self/mountinfo text. */

/* Compiled in for the harness's coverage instrumentation, as fuzz_conf.c does with conf.c. */
#include "svc/daemon/hookcg.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: /proc/self/cgroup text, a NUL, /proc/self/mountinfo text. Each
 * parser reads only the bytes given; what it returns is 0 with an
 * absolute, NUL-terminated path inside its buffer, or a -errno it names.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *nul = memchr(data, '\0', size);
	size_t first = nul ? (size_t)(nul - text) : size;
	char cgpath[64], dir[96];
	int ret;

	ret = hookcg_parse_cgroup(text, first, cgpath, sizeof(cgpath));
	if (ret) {
		if (ret != -ENOENT && ret != -EINVAL && ret != -ENAMETOOLONG)
			abort();
		return 0;
	}
	if (cgpath[0] != '/' || !memchr(cgpath, '\0', sizeof(cgpath)))
		abort();
	if (!nul)
		return 0;
	ret = hookcg_parse_mountinfo(nul + 1, size - first - 1, cgpath, dir, sizeof(dir));
	if (ret) {
		if (ret != -ENOENT && ret != -EINVAL && ret != -ENAMETOOLONG)
			abort();
		return 0;
	}
	if (dir[0] != '/' || !memchr(dir, '\0', sizeof(dir)))
		abort();
	return 0;
}
