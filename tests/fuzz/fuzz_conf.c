/* SPDX-License-Identifier: ISC */
/* libFuzzer target: conf_parse() and conf_parse_duration() on arbitrary bytes. */

/*
 * The parser is compiled into this file (as wireguard-tools' harnesses do), so
 * that it gets the harness's -fsanitize=fuzzer coverage instrumentation; the
 * linker then takes nothing from libconf.a's conf.o.
 */
#include "conf/conf.c"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;
	char *text;
	uint64_t secs;
	int ret;

	/* Exactly size bytes, not NUL-terminated: the parser must not read past them. */
	text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	ret = conf_parse("fuzz.conf", text, size, &cfg, &diag);
	if ((ret == 0) != (cfg != NULL) || (ret == 0 && diag.count))
		abort();
	if (ret == -EINVAL && diag.count == 0)
		abort(); /* every refusal is explained */
	for (size_t i = 0; i < diag.count; i++)
		if (strncmp(diag.msgs[i], "fuzz.conf", 9))
			abort();
	conf_free(cfg);
	conf_diag_fini(&diag);
	free(text);

	/* The same bytes as one duration. */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (conf_parse_duration(text, &secs) == 0 && secs > CONF_DURATION_MAX)
		abort();
	free(text);
	return 0;
}
