/* SPDX-License-Identifier: ISC */
/* The ledger's WAL checkpoints on a thread of their own, off the event loop. */
#include "svc/daemon/ckpt.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "store/store.h"

/*
 * One thread, woken after the loop's commits, runs store_ckpt_run on its
 * own connection. Every field below mu is shared with it and read or
 * written under mu; the store_ckpt is the thread's alone while it runs
 * (ckpt_stop joins it before closing). The thread never touches the
 * writer's connection, libuv or the log (not thread-safe): results go back
 * through ckpt_result, read on the loop after its next commit.
 */
struct ckpt {
	pthread_t thread;
	struct store_ckpt *c;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* asked changed, or stop */
	pthread_cond_t idle; /* done changed */
	uint64_t asked, done;
	bool stop, final, reported;
	int result;
	struct store_ckpt_stat stat; /* the last run's */
	char msg[256];
};

static void *run(void *arg)
{
	struct ckpt *k = arg;
	struct store_ckpt_stat st;
	uint64_t goal;
	int nice, ret;

	/*
	 * Below the loop: on a busy machine (or User-Mode Linux's one CPU) a
	 * checkpoint waits while the loop sends a pass, rather than slowing it.
	 * Lowering one's own priority needs no privilege; if it fails, it runs
	 * at the loop's.
	 */
	errno = 0;
	nice = getpriority(PRIO_PROCESS, (id_t)gettid());
	if (errno == 0)
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(),
				  nice + CKPT_NICE > 19 ? 19 : nice + CKPT_NICE);
	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (!k->stop && k->done == k->asked)
			pthread_cond_wait(&k->wake, &k->mu);
		if (k->stop)
			break;
		goal = k->asked;
		pthread_mutex_unlock(&k->mu);
		ret = store_ckpt_run(k->c, false, &st);
		pthread_mutex_lock(&k->mu);
		k->result = ret;
		k->stat = st;
		k->reported = false;
		snprintf(k->msg, sizeof(k->msg), "%s", ret ? store_ckpt_errmsg(k->c) : "");
		k->done = goal;
		pthread_cond_broadcast(&k->idle);
	}
	if (k->final) {
		pthread_mutex_unlock(&k->mu);
		ret = store_ckpt_run(k->c, true, &st);
		pthread_mutex_lock(&k->mu);
		k->result = ret;
		snprintf(k->msg, sizeof(k->msg), "%s", ret ? store_ckpt_errmsg(k->c) : "");
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

/* Its connection closed, its synchronisation objects destroyed, k freed (the thread gone). */
static void ckpt_free(struct ckpt *k)
{
	store_ckpt_close(k->c);
	pthread_cond_destroy(&k->idle);
	pthread_cond_destroy(&k->wake);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

int ckpt_start(struct store *s, struct ckpt **out, char *err, size_t err_size)
{
	struct ckpt *k = calloc(1, sizeof(*k));
	pthread_attr_t attr;
	sigset_t all, old;
	int ret;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	if ((ret = store_ckpt_open(s, &k->c, err, err_size))) {
		free(k);
		return ret;
	}
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->wake, NULL);
	pthread_cond_init(&k->idle, NULL);
	k->reported = true;
	/* Small explicit stack (mlockall), and no signal is ever delivered to it. */
	ret = -pthread_attr_init(&attr);
	if (!ret)
		ret = -pthread_attr_setstacksize(&attr, CKPT_STACK_BYTES);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (!ret)
		ret = -pthread_create(&k->thread, &attr, run, k);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (!ret) {
		pthread_setname_np(k->thread, "sakeyd-ckpt");
		/* Only once the thread runs: otherwise nothing would checkpoint at all. */
		ret = store_autocheckpoint(s, false);
		if (ret) {
			ckpt_stop(k, false, NULL, 0);
			if (err && err_size)
				snprintf(err, err_size, "%s", store_errmsg(s));
			return ret;
		}
		*out = k;
		return 0;
	}
	if (err && err_size)
		snprintf(err, err_size, "checkpoint thread: %s", strerror(-ret));
	ckpt_free(k);
	return ret;
}

void ckpt_wake(struct ckpt *k)
{
	pthread_mutex_lock(&k->mu);
	k->asked++;
	pthread_cond_signal(&k->wake);
	pthread_mutex_unlock(&k->mu);
}

int ckpt_result(struct ckpt *k, struct store_ckpt_stat *st, char *msg, size_t msg_size)
{
	int ret = 1;

	pthread_mutex_lock(&k->mu);
	if (!k->reported) {
		ret = k->result;
		k->reported = true;
		if (st)
			*st = k->stat;
		if (msg && msg_size)
			snprintf(msg, msg_size, "%s", k->msg);
	}
	pthread_mutex_unlock(&k->mu);
	return ret;
}

void ckpt_drain(struct ckpt *k)
{
	pthread_mutex_lock(&k->mu);
	while (k->done != k->asked)
		pthread_cond_wait(&k->idle, &k->mu);
	pthread_mutex_unlock(&k->mu);
}

int ckpt_stop(struct ckpt *k, bool final, char *msg, size_t msg_size)
{
	int ret;

	if (!k)
		return 0;
	pthread_mutex_lock(&k->mu);
	k->stop = true;
	k->final = final;
	pthread_cond_signal(&k->wake);
	pthread_mutex_unlock(&k->mu);
	pthread_join(k->thread, NULL);
	ret = final ? k->result : 0;
	if (msg && msg_size)
		snprintf(msg, msg_size, "%s", final ? k->msg : "");
	ckpt_free(k);
	return ret;
}
