/*
 * supervisor.h - managed child processes.
 *
 * A supervisor runs on one libuv loop (the control thread's) and keeps a
 * set of child processes alive: a child that exits or crashes is restarted
 * after a backoff that doubles from backoff_min_ms up to backoff_max_ms and
 * resets once the child has stayed up for stable_ms. Children get their
 * own process group, stdin from /dev/null, and stdout/stderr inherited.
 *
 * Stopping sends SIGTERM to every child, waits up to grace_ms, then sends
 * SIGKILL, and calls the done callback once every child has been reaped,
 * so no process is left behind.
 */
#ifndef SK_SUPERVISOR_SUPERVISOR_H
#define SK_SUPERVISOR_SUPERVISOR_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct supervisor;

struct supervisor_proc_opts {
	const char *name;	 /* for logs and status, e.g. "shop1" */
	char **argv;		 /* argv[0] is the executable path; copied */
	char **env;		 /* NULL = inherit; copied */
	uint32_t backoff_min_ms; /* 0 = 500 */
	uint32_t backoff_max_ms; /* 0 = 30000 */
	uint32_t stable_ms;	 /* 0 = 10000 */
};

struct supervisor_proc_status {
	const char *name;
	pid_t pid;	    /* 0 while waiting to restart */
	uint32_t restarts;  /* since the supervisor started */
	int last_exit;	    /* exit status, or -signal, of the last exit */
};

typedef void (*supervisor_done_cb)(struct supervisor *s, void *ud);

struct supervisor *supervisor_new(uv_loop_t *loop);
/* Starts a child now. Returns 0 or a negative errno (logged). */
int supervisor_add(struct supervisor *s, const struct supervisor_proc_opts *o);
size_t supervisor_count(const struct supervisor *s);
/* Fills st for child i (i < supervisor_count()). Loop thread only. */
void supervisor_status(const struct supervisor *s, size_t i,
		       struct supervisor_proc_status *st);
/* Stops every child (SIGTERM, then SIGKILL after grace_ms) and calls
 * done once all are reaped; the supervisor is freed after done returns. */
void supervisor_stop(struct supervisor *s, uint32_t grace_ms,
		     supervisor_done_cb done, void *ud);

#endif
