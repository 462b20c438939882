/* SPDX-License-Identifier: ISC */
/* placeholder: being written */
extern int sakeyd_placeholder_pfkey;
