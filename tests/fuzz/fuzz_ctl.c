/* SPDX-License-Identifier: ISC */
/* libFuzzer target: ctl_parse_request(), the control socket's request parser, on arbitrary bytes. */

/*
 * The unit is compiled into this file (as wireguard-tools' harnesses do), so
 * that the parser gets the harness's -fsanitize=fuzzer coverage
 * instrumentation; the linker then takes nothing from libctl.a's ctl.o.
 */
#include "svc/ctl/ctl.c"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request req = { 0 };
	const char *why = NULL;
	char *buf;
	int ret;

	/* Exactly size bytes, not NUL-terminated: the parser must not read past them. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	ret = ctl_parse_request(buf, size, &req, &why);
	if (ret == 0) {
		/* Accepted: one line of printable ASCII within the limit, naming a known request. */
		if (size == 0 || size > CTL_REQUEST_MAX || buf[size - 1] != '\n' ||
		    memchr(buf, '\n', size) != buf + size - 1 || !strcmp(ctl_cmd_name(req.cmd), "?"))
			abort();
		for (size_t i = 0; i + 1 < size; i++)
			if ((unsigned char)buf[i] >= 0x7f ||
			    ((unsigned char)buf[i] < 0x20 && !(buf[i] == '\r' && i + 2 == size)))
				abort();
	} else if (ret != -EINVAL || !why || !why[0]) {
		abort(); /* every refusal is explained */
	}
	free(buf);
	return 0;
}
