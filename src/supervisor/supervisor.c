/*
 * supervisor.c - keeps managed child processes alive.
 *
 * Each child is spawned with UV_PROCESS_DETACHED, so it calls setsid() and
 * leads its own session and process group (pgid == pid). Every signal we
 * send goes to that group (kill(-pid, sig)), which reaches the shells'
 * grandchildren too. When a group leader exits, whatever is left of its
 * group is SIGKILLed at once: a restart never runs beside the remains of
 * the previous incarnation, and a stop leaves nothing behind.
 *
 * Life of a child: spawn -> exit callback -> the process handle is closed
 * -> its close callback arms the restart timer (the handle must be closed
 * before uv_spawn may reuse it) -> the timer fires -> spawn again. A spawn
 * that fails (the executable vanished, EAGAIN, ...) goes down the same path,
 * so it is retried with the same backoff. The backoff doubles after each
 * restart, from backoff_min_ms to backoff_max_ms, and falls back to the
 * minimum when the child had stayed up for at least stable_ms.
 *
 * Stopping cancels pending restarts, sends SIGTERM to every live group,
 * arms a grace timer that SIGKILLs the groups still alive, and, once the
 * last process handle is closed, closes the remaining handles; the last
 * close callback calls done and then frees everything. done is therefore
 * always called from the loop, never from supervisor_stop itself.
 *
 * supervisor_add() returns the error of the first spawn and then does not
 * keep the child: a wrong path in the config should fail start-up rather
 * than be retried forever. Later spawn failures are retried. Status stays
 * readable inside the done callback; everything is freed when it returns.
 *
 * Not done here: scaling, health checks, reading the children's output
 * (stdout and stderr are inherited as they are) or rate-limiting restarts
 * beyond the backoff. Everything runs on the loop's thread; nothing locks.
 *
 * Invariants: s->procs counts the process handles not yet through their
 * close callback, s->open every handle not yet through it (the grace
 * timer's and all children's); a child's pid is non-zero exactly while its
 * process is running and unreaped.
 */
#include "supervisor/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define DEFAULT_BACKOFF_MIN_MS 500u
#define DEFAULT_BACKOFF_MAX_MS 30000u
#define DEFAULT_STABLE_MS 10000u

struct child {
	struct supervisor *sup;
	bool registered;  /* in sup->children; else freed by its last close */
	char *name;
	char **argv;	  /* NULL-terminated, owned */
	char **env;	  /* NULL-terminated, owned; NULL = inherit */
	uint32_t backoff_min_ms;
	uint32_t backoff_max_ms;
	uint32_t stable_ms;
	uint32_t backoff_ms; /* delay before the next restart */
	uv_process_t proc;
	uv_timer_t restart;
	bool proc_open;	  /* proc initialised by uv_spawn, not yet closed */
	unsigned open;	  /* this child's handles not yet closed */
	pid_t pid;	  /* 0 while not running */
	uint32_t restarts;
	int last_exit;
	uint64_t started_ms; /* loop time of the last successful spawn */
};

struct supervisor {
	uv_loop_t *loop;
	struct child **children;
	size_t n;
	size_t cap;
	uv_timer_t grace;
	unsigned open;	/* handles (ours and the children's) not yet closed */
	unsigned procs; /* process handles not yet closed */
	bool stopping;
	bool closing;	/* the final round of uv_close has been issued */
	supervisor_done_cb done;
	void *ud;
};

static void child_exit_cb(uv_process_t *p, int64_t status, int sig);
static void proc_close_cb(uv_handle_t *h);
static void restart_close_cb(uv_handle_t *h);
static void grace_close_cb(uv_handle_t *h);
static void restart_cb(uv_timer_t *t);

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	SK_ASSERT(p != NULL);
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	SK_ASSERT(p != NULL);
	return p;
}

/* Deep-copies a NULL-terminated string vector. */
static char **strv_dup(char *const *v)
{
	size_t n = 0;
	char **out;

	while (v[n] != NULL)
		n++;
	out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void strv_free(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static void child_free(struct child *c)
{
	SK_ASSERT(c->open == 0);
	free(c->name);
	strv_free(c->argv);
	strv_free(c->env);
	free(c);
}

static void supervisor_free(struct supervisor *s)
{
	for (size_t i = 0; i < s->n; i++) {
		child_free(s->children[i]);
		s->children[i] = NULL;
	}
	free(s->children);
	s->children = NULL;
	free(s);
}

/* Sends sig to the child's whole process group. ESRCH (the group is
 * already gone) is expected and ignored. */
static void group_kill(const struct child *c, pid_t pgid, int sig)
{
	char q[128];
	int err;

	if (kill(-pgid, sig) == 0 || errno == ESRCH)
		return;
	err = errno;
	log_error("kill child group failed", "name=%s pgid=%d signal=%d err=%s",
		  log_q(q, sizeof(q), c->name), (int)pgid, sig, strerror(err));
}

/* The last close: tell the owner, then release everything. */
static void finish(struct supervisor *s)
{
	if (s->done != NULL)
		s->done(s, s->ud);
	supervisor_free(s);
}

/* Once stopping and every process is reaped and its handle closed, close
 * whatever handles remain; the last close callback calls finish(). */
static void maybe_close_all(struct supervisor *s)
{
	if (!s->stopping || s->closing || s->procs > 0)
		return;
	s->closing = true;
	uv_close((uv_handle_t *)&s->grace, grace_close_cb);
	for (size_t i = 0; i < s->n; i++)
		uv_close((uv_handle_t *)&s->children[i]->restart,
			 restart_close_cb);
}

/* Spawns c. Returns 0 or a negative errno (logged). Either way the process
 * handle is open afterwards and reaches proc_close_cb in due course: on
 * success through child_exit_cb, on failure right away. */
static int child_spawn(struct child *c)
{
	struct supervisor *s = c->sup;
	uv_process_options_t po;
	uv_stdio_container_t stdio[3];
	char q[128];
	int err;

	memset(&po, 0, sizeof(po));
	memset(stdio, 0, sizeof(stdio));
	/* UV_IGNORE on fd 0 makes libuv open /dev/null there. */
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = 1;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = 2;
	po.exit_cb = child_exit_cb;
	po.file = c->argv[0];
	po.args = c->argv;
	po.env = c->env;
	po.stdio_count = 3;
	po.stdio = stdio;
	/* DETACHED makes the child call setsid(): it leads a new process
	 * group, so kill(-pid, ...) reaches it and all its descendants. */
	po.flags = UV_PROCESS_DETACHED;

	c->proc.data = c;
	err = uv_spawn(s->loop, &c->proc, &po);
	/* uv_spawn initialises the handle even when it fails, and a failed
	 * handle still has to be closed. */
	c->proc_open = true;
	c->open++;
	s->open++;
	s->procs++;
	if (err != 0) {
		log_error("child spawn failed", "name=%s path=%s err=%s",
			  log_q(q, sizeof(q), c->name), c->argv[0],
			  uv_strerror(err));
		c->pid = 0;
		uv_close((uv_handle_t *)&c->proc, proc_close_cb);
		return err;
	}
	c->pid = c->proc.pid;
	c->started_ms = uv_now(s->loop);
	log_info("child started", "name=%s pid=%d restarts=%u",
		 log_q(q, sizeof(q), c->name), (int)c->pid, c->restarts);
	return 0;
}

static void child_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct child *c = p->data;
	struct supervisor *s = c->sup;
	pid_t pid = c->pid;
	char q[128];

	SK_ASSERT(pid != 0);
	c->pid = 0;
	c->last_exit = sig != 0 ? -sig : (int)status;
	/* libuv has reaped the leader, but while anything is left of its
	 * group the kernel does not hand the group's id out again. */
	group_kill(c, pid, SIGKILL);
	if (s->stopping) {
		log_info("child stopped", "name=%s pid=%d status=%d",
			 log_q(q, sizeof(q), c->name), (int)pid, c->last_exit);
	} else {
		log_warn("child exited", "name=%s pid=%d status=%d restarts=%u",
			 log_q(q, sizeof(q), c->name), (int)pid, c->last_exit,
			 c->restarts);
		if (uv_now(s->loop) - c->started_ms >= c->stable_ms)
			c->backoff_ms = c->backoff_min_ms;
	}
	uv_close((uv_handle_t *)p, proc_close_cb);
}

/* Called once per handle a child owns, after its close callback has
 * done the handle-specific part. */
static void child_handle_closed(struct child *c)
{
	struct supervisor *s = c->sup;

	SK_ASSERT(c->open > 0 && s->open > 0);
	c->open--;
	s->open--;
	if (!c->registered) {
		/* A child whose first spawn failed: nothing to restart. */
		if (c->open == 0)
			child_free(c);
	}
	if (s->open == 0) {
		SK_ASSERT(s->closing);
		finish(s);
		return;
	}
	maybe_close_all(s);
}

static void proc_close_cb(uv_handle_t *h)
{
	struct child *c = h->data;
	struct supervisor *s = c->sup;

	c->proc_open = false;
	SK_ASSERT(s->procs > 0);
	s->procs--;
	if (c->registered && !s->stopping) {
		uv_timer_start(&c->restart, restart_cb, c->backoff_ms, 0);
		c->backoff_ms = c->backoff_ms > c->backoff_max_ms / 2
					? c->backoff_max_ms
					: c->backoff_ms * 2;
	}
	child_handle_closed(c);
}

static void restart_close_cb(uv_handle_t *h)
{
	child_handle_closed(h->data);
}

static void grace_close_cb(uv_handle_t *h)
{
	struct supervisor *s = h->data;

	SK_ASSERT(s->open > 0);
	s->open--;
	if (s->open == 0)
		finish(s);
}

static void restart_cb(uv_timer_t *t)
{
	struct child *c = t->data;

	SK_ASSERT(!c->sup->stopping && !c->proc_open);
	c->restarts++;
	/* A failure is logged and retried through proc_close_cb. */
	(void)child_spawn(c);
}

static void grace_cb(uv_timer_t *t)
{
	struct supervisor *s = t->data;
	char q[128];

	for (size_t i = 0; i < s->n; i++) {
		struct child *c = s->children[i];

		if (c->pid == 0)
			continue;
		log_warn("child ignored SIGTERM, killing", "name=%s pid=%d",
			 log_q(q, sizeof(q), c->name), (int)c->pid);
		group_kill(c, c->pid, SIGKILL);
	}
}

struct supervisor *supervisor_new(uv_loop_t *loop)
{
	struct supervisor *s = xcalloc(1, sizeof(*s));
	int err;

	s->loop = loop;
	err = uv_timer_init(loop, &s->grace);
	SK_ASSERT(err == 0);
	s->grace.data = s;
	s->open = 1;
	return s;
}

int supervisor_add(struct supervisor *s, const struct supervisor_proc_opts *o)
{
	struct child *c;
	int err;

	SK_ASSERT(!s->stopping);
	SK_ASSERT(o->name != NULL && o->argv != NULL && o->argv[0] != NULL);

	c = xcalloc(1, sizeof(*c));
	c->sup = s;
	c->name = xstrdup(o->name);
	c->argv = strv_dup(o->argv);
	c->env = o->env != NULL ? strv_dup(o->env) : NULL;
	c->backoff_min_ms = o->backoff_min_ms != 0 ? o->backoff_min_ms
						  : DEFAULT_BACKOFF_MIN_MS;
	c->backoff_max_ms = o->backoff_max_ms != 0 ? o->backoff_max_ms
						  : DEFAULT_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	c->stable_ms = o->stable_ms != 0 ? o->stable_ms : DEFAULT_STABLE_MS;
	c->backoff_ms = c->backoff_min_ms;

	err = uv_timer_init(s->loop, &c->restart);
	SK_ASSERT(err == 0);
	c->restart.data = c;
	c->open++;
	s->open++;

	err = child_spawn(c);
	if (err != 0) {
		/* Not registered: its handles close and the last close
		 * callback frees it. */
		uv_close((uv_handle_t *)&c->restart, restart_close_cb);
		return err;
	}

	if (s->n == s->cap) {
		size_t cap = s->cap != 0 ? s->cap * 2 : 4;
		struct child **v = realloc(s->children, cap * sizeof(*v));

		SK_ASSERT(v != NULL);
		s->children = v;
		s->cap = cap;
	}
	c->registered = true;
	s->children[s->n++] = c;
	return 0;
}

size_t supervisor_count(const struct supervisor *s)
{
	return s->n;
}

void supervisor_status(const struct supervisor *s, size_t i,
		       struct supervisor_proc_status *st)
{
	const struct child *c;

	SK_ASSERT(i < s->n);
	c = s->children[i];
	st->name = c->name;
	st->pid = c->pid;
	st->restarts = c->restarts;
	st->last_exit = c->last_exit;
}

void supervisor_stop(struct supervisor *s, uint32_t grace_ms,
		     supervisor_done_cb done, void *ud)
{
	bool live = false;

	SK_ASSERT(!s->stopping);
	s->stopping = true;
	s->done = done;
	s->ud = ud;

	for (size_t i = 0; i < s->n; i++) {
		struct child *c = s->children[i];

		uv_timer_stop(&c->restart);
		if (c->pid == 0)
			continue;
		group_kill(c, c->pid, SIGTERM);
		live = true;
	}
	if (live)
		uv_timer_start(&s->grace, grace_cb, grace_ms, 0);
	/* With nothing running this closes the handles now; their close
	 * callbacks, and so done, run on the next turn of the loop. */
	maybe_close_all(s);
}
