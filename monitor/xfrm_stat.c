/* SPDX-License-Identifier: ISC */
/* The kernel's IPsec error counters (/proc/net/xfrm_stat): parsing, and which of them rose. */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "monitor/xfrm_stat.h"

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

int mon_xfrm_stat_parse(const char *text, size_t len, struct mon_xfrm_stat *out, size_t max,
			size_t *n)
{
	size_t i = 0;

	*n = 0;
	while (i < len) {
		size_t name_start = i, name_len;
		uint64_t value = 0;
		bool digits = false;

		if (text[i] == '\n') { /* an empty line */
			i++;
			continue;
		}
		while (i < len && name_char(text[i]))
			i++;
		name_len = i - name_start;
		if (!name_len || i >= len || (text[i] != ' ' && text[i] != '\t'))
			return -EINVAL;
		while (i < len && (text[i] == ' ' || text[i] == '\t'))
			i++;
		while (i < len && text[i] >= '0' && text[i] <= '9') {
			unsigned d = (unsigned)(text[i] - '0');

			if (value > (UINT64_MAX - d) / 10)
				return -ERANGE;
			value = value * 10 + d;
			digits = true;
			i++;
		}
		while (i < len && (text[i] == ' ' || text[i] == '\t'))
			i++;
		if (!digits || (i < len && text[i] != '\n'))
			return -EINVAL;
		i++; /* the line feed, or past the end */
		if (*n >= max || name_len >= MON_XFRM_NAME_LEN)
			return -E2BIG;
		memcpy(out[*n].name, text + name_start, name_len);
		out[*n].name[name_len] = '\0';
		out[*n].value = value;
		(*n)++;
	}
	return 0;
}

size_t mon_xfrm_stat_rises(const struct mon_xfrm_stat *prev, size_t nprev,
			   const struct mon_xfrm_stat *cur, size_t ncur, char *msg, size_t len)
{
	size_t rose = 0, used = 0;

	if (len)
		msg[0] = '\0';
	for (size_t i = 0; i < ncur; i++) {
		const struct mon_xfrm_stat *old = NULL;
		int n;

		for (size_t j = 0; j < nprev && !old; j++)
			if (!strcmp(prev[j].name, cur[i].name))
				old = &prev[j];
		/* A counter not seen before is a baseline; one that fell was reset. */
		if (!old || cur[i].value <= old->value)
			continue;
		rose++;
		if (used >= len)
			continue;
		n = snprintf(msg + used, len - used, "%s%s +%" PRIu64 " (now %" PRIu64 ")",
			     used ? ", " : "", cur[i].name, cur[i].value - old->value, cur[i].value);
		if (n < 0 || (size_t)n >= len - used)
			used = len; /* truncated: the message stays a prefix, NUL-terminated */
		else
			used += (size_t)n;
	}
	return rose;
}
