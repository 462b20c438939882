/* SPDX-License-Identifier: ISC */
/* sakeyd: keeps manually keyed IPsec SAs fresh and watched; the process's entry point. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conf/conf.h"
#include "svc/daemon/daemon.h"
#include "svc/base/log.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sakeyd [-c FILE] [--check [--plan]] [-q | -v] [--version]\n"
		   "  -c, --config FILE  configuration (default " CONF_DEFAULT_PATH ")\n"
		   "      --check        validate the configuration and its secret files, exit 0/1\n"
		   "      --plan         with --check: print per link what both hosts must agree on\n"
		   "                     and its digest, to compare with the peer's\n"
		   "  -q, --quiet        log warnings (alerts among them) and errors only\n"
		   "  -v, --verbose      debug logging\n"
		   "      --version      print the version and exit\n"
		   "  -h, --help         this text\n");
}

/*
 * Keys must not reach a core dump, swap or another process's ptrace: the
 * process is made non-dumpable, core size 0, and its memory locked where
 * permitted (security rules of DESIGN.md).
 */
static void harden(bool quiet)
{
	struct rlimit no_core = { 0, 0 };

	umask(077);
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		log_warn("prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
	if (setrlimit(RLIMIT_CORE, &no_core))
		log_warn("setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
	/*
	 * Keep the heap's memory between passes. A pass of many links
	 * allocates megabytes of plan and reconcile arrays and frees them at
	 * its end: above glibc's thresholds each came from a fresh mmap or
	 * heap top, which mlockall (MCL_FUTURE) populates page by page and free
	 * gave back, thousands of page faults per rotation, each a trap to the
	 * kernel.
	 * Fixed thresholds (the largest mmap threshold glibc allows) make them
	 * heap memory reused by the next pass; the peak RSS stays the pass's.
	 */
	if (!mallopt(M_MMAP_THRESHOLD, 32 << 20) || !mallopt(M_TRIM_THRESHOLD, 64 << 20))
		log_warn("mallopt: the heap's thresholds stay glibc's defaults");
	/*
	 * MCL_ONFAULT: a page is locked once touched, not populated when
	 * mapped. Without it every mapping counted whole: the 8 MiB stack of
	 * each of libuv's four pool threads (32 MiB, of which the REGISTER
	 * probe uses a few pages), every library's text (libcrypto's 4.6 MiB),
	 * 53 MiB resident for 10 links. What holds data is touched, so locked
	 * all the same: nothing with a key is ever swapped out. A kernel older
	 * than 4.4 refuses the flag (EINVAL): then as before.
	 */
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) &&
	    (errno != EINVAL || mlockall(MCL_CURRENT | MCL_FUTURE)) && !quiet)
		log_warn("mlockall: %s: key material could be swapped out; run as root or raise "
			 "RLIMIT_MEMLOCK (LimitMEMLOCK=infinity in the systemd unit)",
			 strerror(errno));
}

/* --check: no warning about the heap (it is not the daemon's). */
static bool quiet_heap;

/*
 * Keys live in OpenSSL's secure heap: mlocked, guarded, wiped on free. It is
 * one fixed mapping (mem_sec.c: sh_init) that never grows, so it is sized for
 * what the configuration format allows, not for this file: CONF_LINKS_MAX
 * links' secrets held CONF_SECRET_COPIES times (running, deferred reload,
 * reload being read) and the keys derived per SA, 8 MiB of locked memory. Any
 * reload of a valid file then fits without a restart, and no link count
 * makes a rotation fail for want of room; sized for the file instead, a
 * reload adding links past a power of two would need a restart to grow it.
 * Made after the file is parsed (conf_load reads no secret), before the
 * secrets are read.
 *
 * Tests of the daemon on the simulator make it smaller to exhaust it:
 * SAKEYD_SIM_SECURE_HEAP=BYTES (a power of two), read with kernel = sim only.
 */
static void secure_heap(const struct config *cfg)
{
	bool quiet = quiet_heap;
	size_t size = conf_secure_heap_size(CONF_LINKS_MAX);
	const char *test = getenv("SAKEYD_SIM_SECURE_HEAP");
	int ret;

	if (test && cfg->daemon.kernel == CONF_KERNEL_SIM) {
		char *end;
		unsigned long long v = strtoull(test, &end, 10);

		if (*end || v < 128 || (v & (v - 1)) || v > (1ULL << 30)) {
			log_warn("SAKEYD_SIM_SECURE_HEAP=%s ignored: write a power of two of bytes "
				 "from 128 to 2^30",
				 test);
		} else {
			size = (size_t)v;
			log_warn("simulated SADB: secure heap of %zu bytes (SAKEYD_SIM_SECURE_HEAP)",
				 size);
		}
	}
	ret = conf_secure_heap_init(size);
	if (ret == -EPERM && !quiet)
		log_warn("OpenSSL secure heap of %zu KiB not locked in memory: key material could "
			 "be swapped out; run as root with CAP_IPC_LOCK or raise RLIMIT_MEMLOCK "
			 "(LimitMEMLOCK= in the systemd unit)",
			 size / 1024);
	else if (ret && !quiet)
		log_warn("OpenSSL secure heap of %zu KiB unavailable (%s); keys use ordinary memory",
			 size / 1024, strerror(-ret));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "plan", no_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = CONF_DEFAULT_PATH;
	struct timespec load_started, loaded;
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;
	bool check = false, plan = false, quiet = false, verbose = false;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "c:qvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'P':
			plan = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("sakeyd %s\n", SAKEYD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (quiet && verbose) {
		log_plain(LOG_LVL_ERR, "sakeyd: -q (warnings and errors only) and -v (debug) "
				       "contradict each other; give one of them");
		usage(stderr);
		return 2;
	}
	if (quiet)
		log_set_level(LOG_LVL_WARN);
	if (verbose)
		log_set_level(LOG_LVL_DEBUG);
	if (plan && !check) {
		fprintf(stderr, "sakeyd: --plan goes with --check (it prints the plan and exits); "
				"write: sakeyd --check --plan -c %s\n",
			path);
		return 2;
	}

	/*
	 * A write to a pipe whose reader went away (the log's reader, a
	 * client's socket) fails with EPIPE instead of killing the daemon.
	 * alert_command children get every signal's default back (sinks.c).
	 */
	signal(SIGPIPE, SIG_IGN);
	harden(check);
	/* The config, its alert_command, state_dir and secrets: every refusal, not the first. */
	quiet_heap = check;
	clock_gettime(CLOCK_MONOTONIC, &load_started);
	ret = conf_load_daemon(path, geteuid(), secure_heap, &cfg, &diag);
	/* Each "FILE:LINE: ..." as it is, an error to journald (<3>) when stderr is the journal. */
	for (size_t i = 0; i < diag.count; i++)
		log_plain(LOG_LVL_ERR, "%s", diag.msgs[i]);
	if (diag.dropped)
		log_plain(LOG_LVL_ERR, "(%zu more errors not shown; fix the ones above first)",
			  diag.dropped);
	conf_diag_fini(&diag);
	if (ret) {
		log_plain(LOG_LVL_ERR, "sakeyd: %s: configuration refused", path);
		conf_free(cfg);
		return 1;
	}
	if (plan) {
		ret = daemon_print_plan(cfg, (int64_t)time(NULL), stdout);
		conf_free(cfg);
		return ret || fflush(stdout) ? 1 : 0;
	}
	if (check) {
		printf("sakeyd: %s: configuration OK (%zu link%s)\n", path, cfg->nlinks,
		       cfg->nlinks == 1 ? "" : "s");
		conf_free(cfg);
		return 0;
	}
	/* Start-up's first phase (#22: parsing, the files' checks, the secrets). */
	clock_gettime(CLOCK_MONOTONIC, &loaded);
	log_info("configuration and %zu secret file%s loaded in %.3f s", cfg->nlinks,
		 cfg->nlinks == 1 ? "" : "s",
		 (double)(loaded.tv_sec - load_started.tv_sec) +
			 (double)(loaded.tv_nsec - load_started.tv_nsec) / 1e9);
	ret = daemon_run(cfg, path);
	conf_free(cfg);
	CRYPTO_secure_malloc_done();
	return ret ? 1 : 0;
}
