/* SPDX-License-Identifier: ISC */
/*
 * LD_PRELOAD shim for linux.uml on hosts with a large XSAVE area (AMX).
 *
 * UML 6.1 saves a guest thread's FPU state with PTRACE_GETREGSET(NT_X86_XSTATE)
 * into a buffer of fixed size and restores it with PTRACE_SETREGSET from the
 * same buffer. The host kernel accepts a SETREGSET only if it carries the whole
 * user XSAVE area (arch/x86/kernel/fpu/regset.c: xstateregs_set returns EFAULT
 * when count != fpu_user_cfg.max_size). With AMX tile data that area is about
 * 11 KiB, larger than UML's buffer, so the first context switch fails with
 * "ptrace set fp regs failed, errno = 14" and init dies. This shim completes
 * such a SETREGSET: it reads the thread's full area, overlays the bytes UML
 * gave, and writes the full area back.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define XSTATE_PROBE_MAX (64 * 1024)

long ptrace(enum __ptrace_request request, ...);

static long raw_ptrace(long request, pid_t pid, void *addr, void *data)
{
	return syscall(SYS_ptrace, request, pid, addr, data);
}

static long set_xstate_full(pid_t pid, const struct iovec *iov)
{
	static __thread unsigned char full[XSTATE_PROBE_MAX] __attribute__((aligned(64)));
	struct iovec whole = { .iov_base = full, .iov_len = sizeof(full) };
	long ret;

	ret = raw_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
	if (ret < 0 || whole.iov_len <= iov->iov_len)
		return raw_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, (void *)iov);
	memcpy(full, iov->iov_base, iov->iov_len);
	return raw_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &whole);
}

long ptrace(enum __ptrace_request request, ...)
{
	static long (*real_ptrace)(enum __ptrace_request, ...);
	va_list ap;
	pid_t pid;
	void *addr, *data;

	va_start(ap, request);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);

	if (request == PTRACE_SETREGSET && (long)addr == NT_X86_XSTATE && data)
		return set_xstate_full(pid, data);
	if (!real_ptrace)
		real_ptrace = (long (*)(enum __ptrace_request, ...))dlsym(RTLD_NEXT, "ptrace");
	return real_ptrace(request, pid, addr, data);
}
