/* SPDX-License-Identifier: ISC */
/* alert_command hooks each in a cgroup of its own, where systemd delegates one to the daemon. */
#ifndef SAKEYD_HOOKCG_H
#define SAKEYD_HOOKCG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

struct hookcg;

/* Tasks (processes and threads) one hook's cgroup may hold: pids.max, when pids is available. */
#define HOOKCG_PIDS_MAX 64
/* The daemon's own leaf under its delegated cgroup (cgroup v2: no internal processes). */
#define HOOKCG_DAEMON_LEAF "daemon"
/* The prefix of each hook's cgroup name (hook-N), and of what a crashed run left. */
#define HOOKCG_PREFIX "hook-"

/*
 * The cgroup v2 path of the process from the text of /proc/PID/cgroup
 * (len bytes, need not end in NUL): the "0::PATH" line, into path (size
 * bytes). 0, -ENOENT (no such line: cgroup v1 only), -EINVAL (a line that is
 * not "ID:CONTROLLERS:PATH", or a PATH that is not absolute or holds a "."
 * or ".." component), -ENAMETOOLONG.
 */
int hookcg_parse_cgroup(const char *text, size_t len, char *path, size_t size);

/*
 * Where the cgroup cgpath (an absolute cgroup v2 path) is reached, from the
 * text of /proc/PID/mountinfo (len bytes): of the cgroup2 mounts whose root
 * holds cgpath, the one with the longest root (a bind mount of a unit's
 * own cgroup, as ReadWritePaths= makes one, wins over the read-only
 * /sys/fs/cgroup), and the directory mount point + the rest of cgpath into
 * dir (size bytes). Octal escapes (\040) are decoded. 0, -ENOENT (no
 * cgroup2 mount holds it), -EINVAL (a malformed line), -ENAMETOOLONG.
 */
int hookcg_parse_mountinfo(const char *text, size_t len, const char *cgpath, char *dir,
			   size_t size);

/*
 * Set up containment on loop, once, at start: the daemon's cgroup v2 from
 * /proc/self/cgroup and /proc/self/mountinfo, delegated if systemd marked it
 * (xattr user.delegate or trusted.delegate "1", src/core/cgroup.c:
 * cgroup_delegate_xattr_apply). Then the daemon moves to the leaf
 * HOOKCG_DAEMON_LEAF, the pids controller is enabled for the children (if
 * the cgroup has it) and what a crashed earlier run left (HOOKCG_PREFIX*)
 * is killed and removed. Logs once, at info, which containment is used.
 * Returns the state, or NULL when there is none to use (not delegated,
 * cgroup v1, read-only, any failure: said in that line): the caller then
 * relies on the subreaper and its sweep.
 */
struct hookcg *hookcg_new(uv_loop_t *loop);

/*
 * Start argv[0] (path) with envp in a new cgroup of its own, from its first
 * instruction (clone3 CLONE_INTO_CGROUP; where a seccomp filter refuses
 * clone3, as systemd's RestrictNamespaces= does, fork and the child joins
 * the cgroup before anything else: the command never runs outside), as
 * posix_spawn would with
 * POSIX_SPAWN_SETSID, every signal default and unblocked, stdin /dev/null,
 * stdout to stderr, cwd /, no descriptor above 2. 0 with *pid and *cg (the
 * cgroup's id for hookcg_kill / hookcg_release); -errno if the command
 * could not run (exec failed: nothing runs, nothing to release);
 * -EAGAIN for a containment failure (logged once: the caller falls back to
 * posix_spawn; after one that cannot get better, hookcg_active says false).
 */
int hookcg_spawn(struct hookcg *hc, const char *path, char *const argv[], char *const envp[],
		 pid_t *pid, unsigned *cg);

/* Whether hookcg_spawn is worth calling (set up and not given up). NULL: false. */
bool hookcg_active(const struct hookcg *hc);

/*
 * Kill (SIGKILL) everything in cgroup cg but main (whose death the caller
 * handles, or which is a zombie): cgroup.kill, else each pid of
 * cgroup.procs. Returns how many processes it held besides main.
 */
unsigned hookcg_kill(struct hookcg *hc, unsigned cg, pid_t main);

/* Done with cg: kill what is left and remove it once empty, from the loop (never blocks). */
void hookcg_release(struct hookcg *hc, unsigned cg);

/* At stop: kill what released cgroups still hold, remove the empty ones, close the handles. */
void hookcg_stop(struct hookcg *hc);
/* Free (after the loop closed). NULL: no-op. */
void hookcg_free(struct hookcg *hc);

#endif
