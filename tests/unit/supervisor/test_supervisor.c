/*
 * test_supervisor.c - supervisor against real processes.
 *
 * Every test runs its own libuv loop with two timers besides the
 * supervisor's handles: a 1 ms poll timer that drives the test's step
 * function (watching status, files written by the children, reaped
 * grandchildren) and a deadline timer that stops the loop if something
 * never happens, which then fails the test. Nothing sleeps and hopes.
 *
 * Grandchildren are made ours with PR_SET_CHILD_SUBREAPER so that the
 * tests can reap them and see which signal killed them; libuv only ever
 * waits for the pids of its own process handles, so it does not race us.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "core/log.h"
#include "supervisor/supervisor.h"

#define MS (UINT64_C(1000000))
#define MAX_SPAWNS 16

struct ctx;
typedef void (*step_fn)(struct ctx *x);

struct ctx {
	uv_loop_t loop;
	uv_timer_t poll;
	uv_timer_t deadline;
	struct supervisor *s;
	step_fn step;
	bool stopping;
	bool done;
	bool timed_out;
	bool keep_polling; /* the step still has work after done */
	bool finished;	   /* timers closed */
	int done_calls;
	uint64_t stop_ns;
	uint64_t done_ns;
	struct supervisor_proc_status final; /* child 0, read inside done */
	char final_name[64];
	size_t final_count;

	/* Per-test scratch. */
	char dir[64];
	char file[128];
	uint64_t spawn_ns[MAX_SPAWNS];
	size_t nspawn;
	uint32_t seen_restarts;
	pid_t pid;
	pid_t gpid;
	int gstatus;
	bool greaped;
};

static void timer_close_cb(uv_handle_t *h)
{
	(void)h;
}

static void ctx_finish(struct ctx *x)
{
	if (x->finished)
		return;
	x->finished = true;
	uv_close((uv_handle_t *)&x->poll, timer_close_cb);
	uv_close((uv_handle_t *)&x->deadline, timer_close_cb);
}

static void done_cb(struct supervisor *s, void *ud)
{
	struct ctx *x = ud;

	assert_ptr_equal(s, x->s);
	x->done = true;
	x->done_calls++;
	x->done_ns = uv_hrtime();
	/* The contract keeps status readable until done returns. */
	x->final_count = supervisor_count(s);
	if (x->final_count > 0) {
		supervisor_status(s, 0, &x->final);
		snprintf(x->final_name, sizeof(x->final_name), "%s",
			 x->final.name);
		x->final.name = NULL;
	}
	x->s = NULL;
	if (!x->keep_polling)
		ctx_finish(x);
}

static void ctx_stop(struct ctx *x, uint32_t grace_ms)
{
	assert_false(x->stopping);
	x->stopping = true;
	x->stop_ns = uv_hrtime();
	supervisor_stop(x->s, grace_ms, done_cb, x);
}

static void poll_cb(uv_timer_t *t)
{
	struct ctx *x = t->data;

	if (x->step != NULL && !x->finished)
		x->step(x);
}

static void deadline_cb(uv_timer_t *t)
{
	struct ctx *x = t->data;

	x->timed_out = true;
	print_message("deadline: stopping=%d done=%d gpid=%d greaped=%d\n",
		      x->stopping, x->done, (int)x->gpid, x->greaped);
	uv_stop(&x->loop);
}

static void ctx_init(struct ctx *x, step_fn step, uint64_t deadline_ms)
{
	memset(x, 0, sizeof(*x));
	assert_int_equal(uv_loop_init(&x->loop), 0);
	assert_int_equal(uv_timer_init(&x->loop, &x->poll), 0);
	assert_int_equal(uv_timer_init(&x->loop, &x->deadline), 0);
	x->poll.data = x;
	x->deadline.data = x;
	x->step = step;
	x->s = supervisor_new(&x->loop);
	assert_non_null(x->s);
	assert_int_equal(uv_timer_start(&x->poll, poll_cb, 1, 1), 0);
	assert_int_equal(
		uv_timer_start(&x->deadline, deadline_cb, deadline_ms, 0), 0);

	snprintf(x->dir, sizeof(x->dir), "/tmp/sk_sup_XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(x->file, sizeof(x->file), "%s/out", x->dir);
}

/* Runs the loop to the end; every handle must be closed by then. */
static void ctx_run(struct ctx *x)
{
	uv_run(&x->loop, UV_RUN_DEFAULT);
	unlink(x->file);
	rmdir(x->dir);
	assert_false(x->timed_out);
	assert_true(x->done);
	assert_int_equal(x->done_calls, 1);
	assert_int_equal(uv_loop_close(&x->loop), 0);
}

/* Reaps what the subreaper inherited (grandchildren the tests did not
 * wait for). Every one of them was killed, so within a second there
 * must be none left; returns false otherwise. */
static bool reap_descendants(void)
{
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(-1, NULL, WNOHANG);

		if (r == -1 && errno == ECHILD)
			return true;
		if (r == 0)
			usleep(1000);
	}
	return false;
}

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Reads the whole (small) file into out; returns its length or -1. */
static ssize_t file_read(const char *path, char *out, size_t outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, out, outlen - 1);
	close(fd);
	if (n < 0)
		return -1;
	out[n] = '\0';
	return n;
}

static int add_sh(struct ctx *x, const char *name, const char *script,
		  uint32_t min_ms, uint32_t max_ms, uint32_t stable_ms)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, "sh", x->file, NULL};
	struct supervisor_proc_opts o = {
		.name = name,
		.argv = argv,
		.backoff_min_ms = min_ms,
		.backoff_max_ms = max_ms,
		.stable_ms = stable_ms,
	};

	return supervisor_add(x->s, &o);
}

static void status0(struct ctx *x, struct supervisor_proc_status *st)
{
	assert_int_equal(supervisor_count(x->s), 1);
	supervisor_status(x->s, 0, st);
}

/* Reaps the grandchild (ours through the subreaper) without blocking. */
static bool grandchild_reaped(struct ctx *x)
{
	if (!x->greaped && waitpid(x->gpid, &x->gstatus, WNOHANG) == x->gpid)
		x->greaped = true;
	return x->greaped;
}

/* True once the grandchild no longer exists. Usually it is reparented to
 * us and we reap it; but when it dies first, its shell may reap it. */
static bool grandchild_gone(struct ctx *x)
{
	if (grandchild_reaped(x))
		return true;
	return kill(x->gpid, 0) == -1 && errno == ESRCH;
}

/* Reads "$!" that the child wrote (atomically, via rename) into x->file. */
static bool grandchild_known(struct ctx *x)
{
	char buf[32];

	if (x->gpid != 0)
		return true;
	if (file_read(x->file, buf, sizeof(buf)) <= 0)
		return false;
	x->gpid = (pid_t)atoi(buf);
	assert_true(x->gpid > 0);
	return true;
}

/* --- restart with backoff -------------------------------------------- */

static void backoff_step(struct ctx *x)
{
	struct supervisor_proc_status st;

	if (x->stopping)
		return;
	status0(x, &st);
	if (st.restarts != x->seen_restarts) {
		/* One restart per backoff period, never two in one poll. */
		assert_int_equal(st.restarts, x->seen_restarts + 1);
		x->seen_restarts = st.restarts;
		x->spawn_ns[x->nspawn++] = uv_hrtime();
	}
	if (x->seen_restarts >= 5 && st.pid == 0) {
		assert_string_equal(st.name, "quitter");
		assert_int_equal(st.last_exit, 3);
		ctx_stop(x, 200);
	}
}

static void test_exiting_child_restarts_with_backoff(void **state)
{
	/* Gaps between spawns: backoff plus the shell's short run time. */
	static const uint64_t expect_ms[] = {50, 100, 200, 400, 400};
	struct ctx x;

	(void)state;
	ctx_init(&x, backoff_step, 5000);
	assert_int_equal(add_sh(&x, "quitter", "exit 3", 50, 400, 10000), 0);
	x.spawn_ns[x.nspawn++] = uv_hrtime();
	ctx_run(&x);

	assert_true(x.nspawn >= 6);
	for (size_t i = 0; i < 5; i++) {
		uint64_t gap = (x.spawn_ns[i + 1] - x.spawn_ns[i]) / MS;

		print_message("gap %zu: %llu ms (backoff %llu)\n", i,
			      (unsigned long long)gap,
			      (unsigned long long)expect_ms[i]);
		assert_true(gap + 3 >= expect_ms[i]);
		assert_true(gap <= expect_ms[i] + 80);
	}
	assert_int_equal(x.final_count, 1);
	assert_true(x.final.restarts >= 5);
	assert_string_equal(x.final_name, "quitter");
}

/* --- backoff resets after a stable run ------------------------------- */

static void stable_step(struct ctx *x)
{
	struct supervisor_proc_status st;

	if (x->stopping)
		return;
	status0(x, &st);
	if (st.restarts != x->seen_restarts) {
		x->seen_restarts = st.restarts;
		x->spawn_ns[x->nspawn++] = uv_hrtime();
	}
	if (x->seen_restarts >= 3) {
		assert_int_equal(st.last_exit, 1);
		ctx_stop(x, 200);
	}
}

static void test_backoff_resets_after_stable_run(void **state)
{
	struct ctx x;

	(void)state;
	/* Each run lasts 100 ms, longer than stable_ms, so every restart
	 * waits the minimum: gaps near 150 ms instead of 150, 200, 300. */
	ctx_init(&x, stable_step, 5000);
	assert_int_equal(add_sh(&x, "steady", "sleep 0.1; exit 1", 50, 400, 60),
			 0);
	x.spawn_ns[x.nspawn++] = uv_hrtime();
	ctx_run(&x);

	assert_true(x.nspawn >= 4);
	for (size_t i = 0; i < 3; i++) {
		uint64_t gap = (x.spawn_ns[i + 1] - x.spawn_ns[i]) / MS;

		print_message("gap %zu: %llu ms\n", i, (unsigned long long)gap);
		assert_true(gap >= 145);
		assert_true(gap <= 240);
	}
}

/* --- exit by signal -------------------------------------------------- */

static void signal_step(struct ctx *x)
{
	struct supervisor_proc_status st;

	if (x->stopping)
		return;
	status0(x, &st);
	if (st.pid == 0 && st.last_exit != 0) {
		assert_int_equal(st.last_exit, -SIGKILL);
		assert_int_equal(st.restarts, 0);
		ctx_stop(x, 200);
	}
}

static void test_signal_exit_reported_negative(void **state)
{
	struct ctx x;

	(void)state;
	/* A long backoff keeps the restart pending until the stop cancels
	 * it, which also proves a pending restart does not delay done. */
	ctx_init(&x, signal_step, 5000);
	assert_int_equal(add_sh(&x, "crasher", "kill -KILL $$", 10000, 0, 0),
			 0);
	ctx_run(&x);
	assert_int_equal(x.final.last_exit, -SIGKILL);
	assert_int_equal(x.final.restarts, 0);
	assert_int_equal(x.final.pid, 0);
	assert_true((x.done_ns - x.stop_ns) / MS < 1000);
}

/* --- stop by SIGTERM ------------------------------------------------- */

static void sigterm_step(struct ctx *x)
{
	struct supervisor_proc_status st;

	if (x->stopping)
		return;
	status0(x, &st);
	assert_int_not_equal(st.pid, 0);
	assert_int_equal(st.restarts, 0);
	assert_string_equal(st.name, "sleeper");
	/* Its own session and process group. */
	assert_int_equal(getpgid(st.pid), st.pid);
	assert_int_equal(getsid(st.pid), st.pid);
	x->pid = st.pid;
	ctx_stop(x, 5000);
}

static void test_stop_terminates_child(void **state)
{
	char *argv[] = {"/bin/sleep", "60", NULL};
	struct supervisor_proc_opts o = {.name = "sleeper", .argv = argv};
	struct ctx x;

	(void)state;
	ctx_init(&x, sigterm_step, 5000);
	assert_int_equal(supervisor_add(x.s, &o), 0);
	ctx_run(&x);

	assert_int_equal(x.final.last_exit, -SIGTERM);
	assert_int_equal(x.final.pid, 0);
	/* SIGTERM sufficed: far quicker than the 5 s grace. */
	assert_true((x.done_ns - x.stop_ns) / MS < 1000);
	/* Reaped by libuv: the pid no longer exists at all. */
	assert_int_equal(kill(x.pid, 0), -1);
	assert_int_equal(errno, ESRCH);
}

/* --- SIGKILL after the grace period ---------------------------------- */

static void trap_step(struct ctx *x)
{
	if (!x->stopping && file_exists(x->file))
		ctx_stop(x, 200);
}

static void test_stop_kills_child_ignoring_sigterm(void **state)
{
	struct ctx x;
	uint64_t took;

	(void)state;
	ctx_init(&x, trap_step, 5000);
	/* The file says the trap is in place; before that a SIGTERM would
	 * still kill the shell and the test would prove nothing. */
	assert_int_equal(add_sh(&x, "stubborn",
				"trap '' TERM; : > \"$1\"; sleep 60", 10000, 0,
				0),
			 0);
	ctx_run(&x);

	took = (x.done_ns - x.stop_ns) / MS;
	print_message("done %llu ms after stop\n", (unsigned long long)took);
	assert_true(took >= 195);
	assert_true(took < 1000);
	assert_int_equal(x.final.last_exit, -SIGKILL);
}

/* --- the whole group dies on stop ------------------------------------ */

static void group_step(struct ctx *x)
{
	struct supervisor_proc_status st;

	if (!x->stopping) {
		if (!grandchild_known(x))
			return;
		status0(x, &st);
		assert_int_not_equal(st.pid, 0);
		assert_int_equal(getpgid(x->gpid), st.pid);
		ctx_stop(x, 5000);
		return;
	}
	if (x->done && grandchild_gone(x))
		ctx_finish(x);
}

static void test_stop_kills_grandchild(void **state)
{
	struct ctx x;

	(void)state;
	ctx_init(&x, group_step, 5000);
	x.keep_polling = true;
	assert_int_equal(add_sh(&x, "forker",
				"sleep 60 & echo $! > \"$1.tmp\"; "
				"mv \"$1.tmp\" \"$1\"; wait",
				10000, 0, 0),
			 0);
	ctx_run(&x);

	if (x.greaped) {
		assert_true(WIFSIGNALED(x.gstatus));
		assert_true(WTERMSIG(x.gstatus) == SIGTERM ||
			    WTERMSIG(x.gstatus) == SIGKILL);
	}
	assert_int_equal(kill(x.gpid, 0), -1);
	assert_int_equal(errno, ESRCH);
}

/* --- a leader's exit takes its group along --------------------------- */

static void leftover_step(struct ctx *x)
{
	struct supervisor_proc_status st;

	if (x->stopping)
		return;
	status0(x, &st);
	if (st.pid != 0 || !grandchild_known(x))
		return;
	assert_int_equal(st.last_exit, 5);
	if (grandchild_reaped(x))
		ctx_stop(x, 200);
}

static void test_exit_kills_leftover_group(void **state)
{
	struct ctx x;

	(void)state;
	ctx_init(&x, leftover_step, 5000);
	/* The grandchild ignores SIGTERM and outlives its parent, so it is
	 * surely reparented to us; only the supervisor's SIGKILL of the
	 * group can end it. */
	assert_int_equal(add_sh(&x, "leaver",
				"trap '' TERM; sleep 60 & "
				"echo $! > \"$1.tmp\"; mv \"$1.tmp\" \"$1\"; "
				"exit 5",
				10000, 0, 0),
			 0);
	ctx_run(&x);

	assert_true(x.greaped);
	assert_true(WIFSIGNALED(x.gstatus));
	assert_int_equal(WTERMSIG(x.gstatus), SIGKILL);
}

/* --- stdio, argv and env --------------------------------------------- */

static void copy_step(struct ctx *x)
{
	char buf[256];

	if (x->stopping)
		return;
	if (file_read(x->file, buf, sizeof(buf)) < 0)
		return;
	if (strcmp(buf, "/dev/null\nhello\n/dev/null\nhello\n") == 0)
		ctx_stop(x, 200);
}

static void test_argv_env_copied_stdin_null(void **state)
{
	char script[] = "readlink /proc/self/fd/0 >> \"$1\"; "
			"echo \"$SK_V\" >> \"$1\"; exit 0";
	char path[sizeof(((struct ctx *)0)->file)];
	char envv[] = "SK_V=hello";
	char envp[] = "PATH=/usr/bin:/bin";
	char *argv[] = {"/bin/sh", "-c", script, "sh", path, NULL};
	char *env[] = {envv, envp, NULL};
	struct supervisor_proc_opts o = {
		.name = "copier",
		.argv = argv,
		.env = env,
		.backoff_min_ms = 20,
	};
	struct ctx x;

	(void)state;
	ctx_init(&x, copy_step, 5000);
	memcpy(path, x.file, sizeof(path));
	assert_int_equal(supervisor_add(x.s, &o), 0);
	/* The restart must not see these. */
	memset(script, 'x', sizeof(script) - 1);
	memset(path, 'x', sizeof(path) - 1);
	memset(envv, 'x', sizeof(envv) - 1);
	argv[0] = NULL;
	env[0] = NULL;
	ctx_run(&x);
}

/* --- edge cases ------------------------------------------------------ */

static void test_stop_without_children(void **state)
{
	struct ctx x;

	(void)state;
	ctx_init(&x, NULL, 2000);
	assert_int_equal(supervisor_count(x.s), 0);
	ctx_stop(&x, 1000);
	/* Never from inside supervisor_stop. */
	assert_false(x.done);
	ctx_run(&x);
	assert_int_equal(x.final_count, 0);
	assert_true((x.done_ns - x.stop_ns) / MS < 100);
}

static void test_add_missing_executable_fails(void **state)
{
	char *argv[] = {"/nonexistent/sk-no-such-binary", NULL};
	struct supervisor_proc_opts o = {.name = "ghost", .argv = argv};
	char *argv2[] = {"/bin/sleep", "60", NULL};
	struct supervisor_proc_opts o2 = {.name = "real", .argv = argv2};
	struct supervisor_proc_status st;
	struct ctx x;

	(void)state;
	ctx_init(&x, NULL, 5000);
	assert_int_equal(supervisor_add(x.s, &o), UV_ENOENT);
	assert_int_equal(supervisor_count(x.s), 0);
	/* The failed child leaves no trace; the next one is index 0. */
	assert_int_equal(supervisor_add(x.s, &o2), 0);
	assert_int_equal(supervisor_count(x.s), 1);
	supervisor_status(x.s, 0, &st);
	assert_string_equal(st.name, "real");
	ctx_stop(&x, 1000);
	ctx_run(&x);
	assert_string_equal(x.final_name, "real");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exiting_child_restarts_with_backoff),
		cmocka_unit_test(test_backoff_resets_after_stable_run),
		cmocka_unit_test(test_signal_exit_reported_negative),
		cmocka_unit_test(test_stop_terminates_child),
		cmocka_unit_test(test_stop_kills_child_ignoring_sigterm),
		cmocka_unit_test(test_stop_kills_grandchild),
		cmocka_unit_test(test_exit_kills_leftover_group),
		cmocka_unit_test(test_argv_env_copied_stdin_null),
		cmocka_unit_test(test_stop_without_children),
		cmocka_unit_test(test_add_missing_executable_fails),
	};

	log_set_level(LOG_WARN);
	/* Orphaned grandchildren become ours, so tests can reap them. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		return 1;
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	if (!reap_descendants()) {
		fprintf(stderr, "descendant processes outlived the tests\n");
		return 1;
	}
	return failed;
}
