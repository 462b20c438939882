/* SPDX-License-Identifier: ISC */
/*
 * What a cgroup per alert_command hook costs: the time from the call that
 * starts a hook to the hook's first instruction, from a process the size of
 * a daemon with 10,000 links (memory touched and locked, as sakeyd locks
 * its own), by the three ways sinks.c can start one:
 *
 *   hookcg_lat posix|clone3|fork|plainfork MIB N PROG
 *
 * posix: posix_spawn with sinks.c's attributes (no delegation: what the
 * benchmark's daemon does); clone3: hookcg_spawn into a cgroup of its own;
 * fork: the same with clone3 refused (ENOSYS, a seccomp filter as systemd's
 * RestrictNamespaces= installs); plainfork: fork and execve, no cgroup, to
 * tell the cost of a fork from that of the cgroup. The cgroup modes need a delegated cgroup v2
 * (run it inside one marked with trusted.delegate). PROG is floor.c's
 * alert-stamp link: it appends "spawn 0xI NS" (CLOCK_MONOTONIC) to
 * /run/sakeyd-bench/stamps. One start every 20 ms, each waited for. Prints
 * the median, p90, p99 and max in ms. HOOKCG_LAT_NOLOCK=1: no mlockall.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "svc/daemon/hookcg.h"

#define STAMPS "/run/sakeyd-bench/stamps"

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int refuse_clone3(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = code };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0))
		return -errno;
	return 0;
}

static int spawn_posix(const char *prog, char *args[], char *envp[], pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int ret;

	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	posix_spawn_file_actions_addchdir_np(&fa, "/");
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	ret = posix_spawn(pid, prog, &fa, &attr, args, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return ret;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *mode, *prog;
	long mib, n, got = 0;
	long long *t0;
	double *lat;
	struct hookcg *hc = NULL;
	uv_loop_t loop;
	char *mem, line[128];
	FILE *f;

	if (argc != 5) {
		fprintf(stderr, "usage: hookcg_lat posix|clone3|fork|plainfork MIB N PROG\n");
		return 2;
	}
	mode = argv[1];
	mib = atol(argv[2]);
	n = atol(argv[3]);
	prog = argv[4];
	t0 = calloc((size_t)n, sizeof(*t0));
	lat = calloc((size_t)n, sizeof(*lat));
	mem = malloc((size_t)mib << 20);
	if (!t0 || !lat || !mem)
		return 1;
	memset(mem, 1, (size_t)mib << 20);
	if (!getenv("HOOKCG_LAT_NOLOCK") && mlockall(MCL_CURRENT | MCL_FUTURE))
		perror("mlockall (not locked)");
	unlink(STAMPS);
	uv_loop_init(&loop);
	if (!strcmp(mode, "fork") && refuse_clone3()) {
		perror("seccomp");
		return 1;
	}
	if (strcmp(mode, "posix") && strcmp(mode, "plainfork")) {
		hc = hookcg_new(&loop);
		if (!hookcg_active(hc)) {
			fprintf(stderr, "no delegated cgroup: run inside one\n");
			return 1;
		}
	}
	for (long i = 0; i < n; i++) {
		char ev[] = "SAKEYD_EVENT=spawn", spi[32];
		char *envp[] = { ev, spi, NULL };
		char *args[] = { (char *)prog, NULL };
		unsigned cg = 0;
		pid_t pid;
		int ret;

		snprintf(spi, sizeof(spi), "SAKEYD_SPI=0x%lx", i + 1);
		t0[i] = now_ns();
		if (!strcmp(mode, "plainfork")) {
			pid = fork();
			if (!pid) {
				execve(prog, args, envp);
				_exit(127);
			}
			ret = pid < 0 ? -errno : 0;
		} else {
			ret = hc ? hookcg_spawn(hc, prog, args, envp, &pid, &cg) :
				   -spawn_posix(prog, args, envp, &pid);
		}
		if (ret) {
			fprintf(stderr, "spawn %ld: %s\n", i, strerror(-ret));
			return 1;
		}
		waitpid(pid, NULL, 0);
		if (cg) {
			hookcg_kill(hc, cg, pid);
			hookcg_release(hc, cg);
		}
		usleep(20000);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	f = fopen(STAMPS, "r");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long i;
		long long ns;

		if (sscanf(line, "spawn 0x%lx %lld", &i, &ns) == 2 && i >= 1 && i <= (unsigned long)n)
			lat[got++] = (double)(ns - t0[i - 1]) / 1e6;
	}
	if (f)
		fclose(f);
	qsort(lat, (size_t)got, sizeof(*lat), cmp);
	if (got)
		printf("%s %ld MiB: n=%ld median %.3f p90 %.3f p99 %.3f max %.3f ms\n", mode, mib, got,
		       lat[got / 2], lat[got * 9 / 10], lat[got * 99 / 100], lat[got - 1]);
	hookcg_stop(hc);
	uv_run(&loop, UV_RUN_NOWAIT);
	hookcg_free(hc);
	return got == n ? 0 : 1;
}
