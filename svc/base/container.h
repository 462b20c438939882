/* SPDX-License-Identifier: ISC */
/* container_of: the struct that embeds a member, from a pointer to the member (libuv handles). */
#ifndef SAKEYD_CONTAINER_H
#define SAKEYD_CONTAINER_H

#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
