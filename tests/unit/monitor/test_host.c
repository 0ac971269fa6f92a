/*
 * test_host.c - monitor/host.h against this machine's real /proc, and
 * against fake /proc and /sys trees written by the test.
 *
 * Real /proc: the values must be sane (ratios in [0, 1] summing to 1,
 * totals >= available, our RSS > 0, a descriptor we open shows up in our
 * count), the filesystem rule must hold for the mount that holds /tmp,
 * and the Prometheus output must parse. What the machine has (swap,
 * disks, interfaces) varies, so those parts check shape, not presence.
 *
 * Fake trees: exact values from files we wrote, including the awkward
 * cases (a comm with spaces and parentheses, escaped mount points, bind
 * mounts, partitions, missing MemAvailable, lines that do not parse), and
 * trees with files missing, empty, or replaced by directories: nothing
 * may crash, and whatever is readable is still reported.
 *
 * The cost of a sample on this machine is printed, not asserted.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "monitor/host.h"
#include "promparse.h"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void sample_self(struct host_sample *s)
{
	struct host_pid me = {getpid(), "storekeep"};
	struct host_opts o = {.pids = &me, .npids = 1};

	assert_int_equal(host_sample(s, &o), 0);
}

static const struct host_proc *proc_named(const struct host_sample *s,
					  const char *name)
{
	for (size_t i = 0; i < s->nproc; i++)
		if (strcmp(s->proc[i].name, name) == 0)
			return &s->proc[i];
	return NULL;
}

/* --- the real /proc ------------------------------------------------------- */

static void test_real_sanity(void **state)
{
	struct host_sample s;
	const struct host_proc *me;
	time_t now = time(NULL);

	(void)state;
	assert_int_equal(host_sample(&s, NULL), 0); /* NULL opts: ourselves */
	/* Any Linux with /proc mounted has these. */
	assert_true(s.have & HOST_HAVE_CPU);
	assert_true(s.have & HOST_HAVE_LOAD);
	assert_true(s.have & HOST_HAVE_MEM);
	assert_true(s.have & HOST_HAVE_FS);
	assert_true(s.have & HOST_HAVE_NET);
	assert_true(s.have & HOST_HAVE_FD);
	assert_true(s.ncpu >= 2);
	assert_int_equal(s.cpu[0].id, -1);
	for (size_t i = 1; i < s.ncpu; i++)
		assert_true(s.cpu[i].id >= 0);
	assert_true(s.cpu[0].idle + s.cpu[0].user + s.cpu[0].system > 0);
	assert_true(s.load1 >= 0 && s.load5 >= 0 && s.load15 >= 0);
	assert_true(s.tasks >= s.tasks_running && s.tasks > 0);
	assert_true(s.mem_total > 0);
	assert_true(s.mem_total >= s.mem_available);
	assert_true(s.mem_total >= s.mem_free);
	if (s.have & HOST_HAVE_SWAP)
		assert_true(s.swap_total >= s.swap_free);
	assert_true(s.nfs >= 1);
	for (size_t i = 0; i < s.nfs; i++) {
		const struct host_fs *f = &s.fs[i];

		assert_false(host_fs_type_ignored(f->fstype));
		assert_true(f->size_bytes > 0);
		assert_true(f->size_bytes >= f->free_bytes);
		assert_true(f->free_bytes >= f->avail_bytes);
		assert_true(f->files >= f->files_free);
		assert_true(f->mount[0] == '/');
	}
	for (size_t i = 0; i < s.ndisk; i++)
		assert_false(host_disk_ignored(s.disk[i].name, "/sys"));
	for (size_t i = 0; i < s.nnet; i++)
		assert_true(s.net[i].name[0] != '\0');
	assert_true(s.fd_max > 0 && s.fd_allocated > 0);
	me = proc_named(&s, "storekeep");
	assert_non_null(me);
	assert_int_equal(me->pid, getpid());
	assert_true(me->alive);
	assert_true(me->rss_bytes > 0);
	assert_true(me->vm_bytes >= me->rss_bytes);
	assert_true(me->threads >= 1);
	assert_true(me->open_fds >= 3);
	assert_true(me->max_fds >= me->open_fds);
	assert_true(me->start_time_seconds > 1e9);
	assert_true(me->start_time_seconds <= (double)now + 2);
	printf("real: %zu cpus, %zu filesystems, %zu disks, %zu interfaces; "
	       "mem %llu/%llu MiB available; our rss %llu KiB, %lld fds\n",
	       s.ncpu - 1, s.nfs, s.ndisk, s.nnet,
	       (unsigned long long)(s.mem_available >> 20),
	       (unsigned long long)(s.mem_total >> 20),
	       (unsigned long long)(me->rss_bytes >> 10),
	       (long long)me->open_fds);
	host_sample_free(&s);
	assert_null(s.cpu);
	assert_int_equal(s.ncpu, 0);
}

static void test_real_rates(void **state)
{
	struct host_sample a, b;
	struct host_rates r;
	double t0;
	volatile uint64_t spin = 0;

	(void)state;
	sample_self(&a);
	/* Burn CPU for 300 ms so that our own ratio has something to show. */
	t0 = now_ns();
	while (now_ns() - t0 < 300e6)
		for (int i = 0; i < 10000; i++)
			spin += (uint64_t)i;
	sample_self(&b);
	assert_int_equal(host_rates(&b, &a, &r), -EINVAL);
	assert_null(r.cpu);
	assert_int_equal(host_rates(&a, &b, &r), 0);
	assert_true(r.interval_s >= 0.29 && r.interval_s < 10);
	assert_true(r.ncpu >= 1);
	assert_int_equal(r.cpu[0].id, -1);
	for (size_t i = 0; i < r.ncpu; i++) {
		const struct host_cpu_ratio *c = &r.cpu[i];
		const double v[8] = {c->user,	c->nice, c->system,  c->idle,
				     c->iowait, c->irq,	 c->softirq, c->steal};
		double sum = 0;

		for (int k = 0; k < 8; k++) {
			assert_true(v[k] >= 0 && v[k] <= 1);
			sum += v[k];
		}
		assert_true(sum > 1 - 1e-9 && sum < 1 + 1e-9);
	}
	for (size_t i = 0; i < r.ndisk; i++) {
		assert_true(r.disk[i].busy_ratio >= 0 &&
			    r.disk[i].busy_ratio <= 1);
		assert_true(r.disk[i].read_bytes_per_s >= 0);
	}
	for (size_t i = 0; i < r.nnet; i++)
		assert_true(r.net[i].rx_bytes_per_s >= 0 &&
			    r.net[i].tx_bytes_per_s >= 0);
	assert_int_equal(r.nproc, 1);
	/* We were spinning the whole interval; anything much above zero will
	 * do on a busy VM, and one thread cannot exceed one core by much. */
	assert_true(r.proc[0].cpu_ratio > 0.1);
	assert_true(r.proc[0].cpu_ratio < 1.5);
	printf("rates over %.3f s: host busy %.1f%%, our process %.2f cores\n",
	       r.interval_s, 100 * (1 - r.cpu[0].idle - r.cpu[0].iowait),
	       r.proc[0].cpu_ratio);
	host_rates_free(&r);
	host_sample_free(&a);
	host_sample_free(&b);
}

static void test_real_fd_count(void **state)
{
	struct host_sample s;
	int64_t before, after, closed;
	char path[] = "/tmp/sk_host_fd_XXXXXX";
	int fds[4];

	(void)state;
	sample_self(&s);
	before = s.proc[0].open_fds;
	host_sample_free(&s);
	fds[0] = mkstemp(path);
	assert_true(fds[0] >= 0);
	for (int i = 1; i < 4; i++)
		assert_true((fds[i] = open(path, O_RDONLY)) >= 0);
	sample_self(&s);
	after = s.proc[0].open_fds;
	host_sample_free(&s);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	unlink(path);
	sample_self(&s);
	closed = s.proc[0].open_fds;
	host_sample_free(&s);
	assert_int_equal(after, before + 4);
	assert_int_equal(closed, before);
}

struct mnt {
	char point[512];
	char dev[32];
	char type[64];
};

/* The mounts of /proc/self/mountinfo, as the test reads them itself. */
static size_t read_mounts(struct mnt *m, size_t max)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	size_t n = 0;

	assert_non_null(f);
	while (n < max && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		char pt[512];

		if (!sep ||
		    sscanf(line, "%*s %*s %31s %*s %511s", m[n].dev, pt) != 2 ||
		    sscanf(sep + 3, "%63s", m[n].type) != 1)
			continue;
		/* Undo \040 and friends as the module does. */
		{
			char *r = pt, *w = m[n].point;

			while (*r) {
				if (r[0] == '\\' && r[1] && r[2] && r[3]) {
					*w++ = (char)((r[1] - '0') * 64 +
						      (r[2] - '0') * 8 +
						      (r[3] - '0'));
					r += 4;
				} else {
					*w++ = *r++;
				}
			}
			*w = '\0';
		}
		n++;
	}
	fclose(f);
	return n;
}

static void test_real_tmp_rule(void **state)
{
	static struct mnt m[1024];
	size_t n = read_mounts(m, 1024), best = SIZE_MAX, bestlen = 0;
	struct host_sample s;
	struct statvfs sv;
	bool listed = false, same_dev = false;

	(void)state;
	/* The mount holding /tmp: the longest mount point that prefixes it
	 * (the last one wins among equals: it is mounted on top). */
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(m[i].point);

		if (strncmp("/tmp", m[i].point, l) != 0 ||
		    (l > 1 && "/tmp"[l] != '\0' && "/tmp"[l] != '/'))
			continue;
		if (l >= bestlen) {
			bestlen = l;
			best = i;
		}
	}
	assert_true(best != SIZE_MAX);
	assert_int_equal(host_sample(&s, NULL), 0);
	for (size_t i = 0; i < s.nfs; i++) {
		if (strcmp(s.fs[i].mount, m[best].point) == 0)
			listed = true;
		/* The rule keeps one mount per device: another of /tmp's. */
		for (size_t k = 0; k < n; k++)
			if (strcmp(m[k].point, s.fs[i].mount) == 0 &&
			    strcmp(m[k].dev, m[best].dev) == 0)
				same_dev = true;
	}
	if (host_fs_type_ignored(m[best].type)) {
		assert_false(listed);
		printf("tmp: /tmp is on %s (%s), skipped by the rule\n",
		       m[best].point, m[best].type);
	} else if (statvfs(m[best].point, &sv) == 0 && sv.f_blocks > 0) {
		assert_true(listed || same_dev);
		printf("tmp: /tmp is on %s (%s, %s), reported\n", m[best].point,
		       m[best].type, m[best].dev);
	}
	/* No device is reported twice. */
	for (size_t i = 0; i < s.nfs; i++)
		for (size_t j = i + 1; j < s.nfs; j++) {
			const char *di = NULL, *dj = NULL;

			for (size_t k = 0; k < n; k++) {
				if (!di &&
				    strcmp(m[k].point, s.fs[i].mount) == 0)
					di = m[k].dev;
				if (!dj &&
				    strcmp(m[k].point, s.fs[j].mount) == 0)
					dj = m[k].dev;
			}
			if (di && dj)
				assert_string_not_equal(di, dj);
		}
	host_sample_free(&s);
}

static void test_real_prometheus(void **state)
{
	struct host_sample a, b;
	struct host_rates r;
	struct buf o;
	struct pp_doc doc;
	const struct pp_sample *p;
	struct metrics *m = NULL;
	size_t ratios = 0;

	(void)state;
	sample_self(&a);
	usleep(20000);
	sample_self(&b);
	assert_int_equal(host_rates(&a, &b, &r), 0);
	buf_init(&o);
	host_write_prometheus(&b, &r, &o);
	if (!pp_parse(buf_cstr(&o), &doc))
		fail_msg("parse: %s", doc.err);
	for (size_t i = 0; i < doc.nf; i++) {
		assert_non_null(doc.f[i].help);
		assert_non_null(doc.f[i].type);
		assert_true(strncmp(doc.f[i].name, "storekeep_host_", 15) == 0);
		if (strcmp(doc.f[i].type, "counter") == 0) {
			size_t l = strlen(doc.f[i].name);

			assert_string_equal(doc.f[i].name + l - 6, "_total");
		}
	}
	for (size_t i = 0; i < doc.ns; i++) {
		size_t l = strlen(doc.s[i].name);

		if (l > 6 && strcmp(doc.s[i].name + l - 6, "_ratio") == 0) {
			bool proc = strstr(doc.s[i].name, "process") != NULL;

			assert_true(doc.s[i].value >= 0);
			assert_true(proc || doc.s[i].value <= 1);
			ratios++;
		}
		assert_false(isnan(doc.s[i].value));
	}
	assert_true(ratios > 8);
	p = pp_find(&doc, "storekeep_host_memory_available_bytes", NULL);
	assert_true(p && p->value > 0);
	p = pp_find(&doc, "storekeep_host_cpu_ratio", "cpu", "all", "mode",
		    "idle", NULL);
	assert_non_null(p);
	p = pp_find(&doc, "storekeep_host_process_resident_memory_bytes",
		    "process", "storekeep", NULL);
	assert_true(p && p->value > 0);
	p = pp_find(&doc, "storekeep_host_filesystem_free_bytes", "mount",
		    b.fs[0].mount, "device", b.fs[0].device, "fstype",
		    b.fs[0].fstype, NULL);
	assert_non_null(p);
	printf("prometheus: %zu families, %zu samples, %zu bytes\n", doc.nf,
	       doc.ns, o.len);
	pp_free(&doc);

	/* The same values through the registry. */
	assert_int_equal(metrics_new(2, &m), 0);
	assert_int_equal(host_write_metrics(&b, &r, m, 2), -EINVAL);
	assert_int_equal(host_write_metrics(&b, &r, m, 1), 0);
	assert_int_equal(host_write_metrics(&b, &r, m, 1), 0);
	buf_reset(&o);
	metrics_write_prometheus(m, &o);
	if (!pp_parse(buf_cstr(&o), &doc))
		fail_msg("parse: %s", doc.err);
	p = pp_find(&doc, "storekeep_host_memory_total_bytes", NULL);
	assert_true(p && p->value == (double)b.mem_total);
	p = pp_find(&doc, "storekeep_host_cpu_seconds_total", "cpu", "0",
		    "mode", "user", NULL);
	assert_non_null(p);
	assert_true(p->value > b.cpu[1].user - 0.001 &&
		    p->value < b.cpu[1].user + 0.001);
	pp_free(&doc);
	metrics_free(m);
	buf_fini(&o);
	host_rates_free(&r);
	host_sample_free(&a);
	host_sample_free(&b);
}

static void test_real_cost(void **state)
{
	enum { N = 200 };
	struct host_sample prev, cur;
	struct host_rates r;
	struct buf o;
	double t0, t1, t2;

	(void)state;
	buf_init(&o);
	sample_self(&prev);
	t0 = now_ns();
	for (int i = 0; i < N; i++) {
		sample_self(&cur);
		host_sample_free(&cur);
	}
	t1 = now_ns();
	for (int i = 0; i < N; i++) {
		sample_self(&cur);
		assert_int_equal(host_rates(&prev, &cur, &r), 0);
		buf_reset(&o);
		host_write_prometheus(&cur, &r, &o);
		host_rates_free(&r);
		host_sample_free(&prev);
		prev = cur;
	}
	t2 = now_ns();
	printf("cost: host_sample %.1f us; sample + rates + Prometheus text "
	       "(%zu bytes) %.1f us\n",
	       (t1 - t0) / N / 1000, o.len, (t2 - t1) / N / 1000);
	host_sample_free(&prev);
	buf_fini(&o);
}

/* --- fake trees ----------------------------------------------------------- */

static char root[64];

static void put(const char *rel, const char *content)
{
	char path[512], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	/* mkdir -p of the parents */
	for (slash = strchr(path + strlen(root) + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	if (!content) { /* a directory */
		mkdir(path, 0700);
		return;
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static int make_root(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/sk_host_XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int remove_root(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_fake_exact(void **state)
{
	char mountinfo[2048], spaced[256], proc_root[128], sys_root[128];
	struct host_pid pids[] = {{4242, "shop1"}, {4343, "gone"}};
	struct host_opts o = {proc_root, sys_root, pids, 2};
	double hz = (double)sysconf(_SC_CLK_TCK);
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	const struct host_proc *p;
	struct host_sample s;

	(void)state;
	snprintf(proc_root, sizeof(proc_root), "%s/proc", root);
	snprintf(sys_root, sizeof(sys_root), "%s/sys", root);
	put("proc/stat", "cpu  100 0 50 800 10 0 5 0 0 0\n"
			 "cpu0 50 0 25 400 5 0 2 0\n"
			 "cpu1 50 0 25 400 5 0 3\n"
			 "cpu2 garbage\n"
			 "intr 1 2 3\n"
			 "btime 1700000000\n");
	put("proc/loadavg", "0.50 0.25 0.10 3/250 12345\n");
	put("proc/meminfo", "MemTotal:       1000 kB\n"
			    "MemFree:         100 kB\n"
			    "Buffers:          50 kB\n"
			    "Cached:          200 kB\n"
			    "Garbage line\n"
			    "SwapTotal:         0 kB\n"
			    "SwapFree:          0 kB\n");
	snprintf(spaced, sizeof(spaced), "%s/with space", root);
	put("with space", NULL);
	put("bad\xffname", NULL);
	snprintf(mountinfo, sizeof(mountinfo),
		 "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
		 "2 1 0:5 / /proc rw - proc proc rw\n"
		 "3 1 8:1 /data /home rw - ext4 /dev/sda1 rw\n"
		 "4 1 0:40 / /run rw - tmpfs tmpfs rw\n"
		 "5 1 8:2 / /nonexistent/sk/path rw - ext4 /dev/sda2 rw\n"
		 "6 1 8:3 / /tmp rw shared:1 master:2 - xfs /dev/sda3 rw\n"
		 "7 1 0:50 / /mnt/nfs rw - nfs4 server:/x rw\n"
		 "8 1 8:4 / %s/with\\040space rw - ext4 /dev/my\\040disk rw\n"
		 "garbage\n"
		 "9 1 8:5 / /x rw no separator here\n"
		 "10 1 8:6 / %s/bad\\377name rw - ext4 /dev/sdz rw\n",
		 root, root);
	put("proc/self/mountinfo", mountinfo);
	put("proc/diskstats",
	    "   8       0 sda 100 0 2000 50 200 0 4000 70 0 120 130 0 0 0 0\n"
	    "   8       1 sda1 1 2 3 4 5 6 7 8 0 9 10\n"
	    "   7       0 loop0 1 0 0 0 0 0 0 0 0 0 0\n"
	    " 253       0 zram0 1 0 0 0 0 0 0 0 0 0 0\n"
	    "   8      16 sdb 1 2\n"
	    "   x\n");
	put("sys/block/sda", NULL);
	put("sys/block/zram0", NULL);
	put("proc/net/dev",
	    "Inter-|   Receive                 |  Transmit\n"
	    " face |bytes packets errs drop ...|bytes packets errs drop ...\n"
	    "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n"
	    "  eth0: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0\n"
	    "   bad: 1 2 3\n"
	    " e\xffx: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n");
	put("proc/sys/fs/file-nr", "1024\t0\t99999\n");
	put("proc/4242/stat",
	    "4242 (we (i)rd) name) S 1 4242 4242 0 -1 4194304 0 0 0 0 150 50 "
	    "0 0 20 0 7 0 1000 123456 100 18446744073709551615\n");
	put("proc/4242/statm", "2000 500 100 10 0 300 0\n");
	put("proc/4242/limits", "Limit                     Soft Limit          "
				" Hard Limit   Units\n"
				"Max open files            1024                "
				" 4096         files\n");
	put("proc/4242/fd/0", "");
	put("proc/4242/fd/1", "");
	put("proc/4242/fd/2", "");

	assert_int_equal(host_sample(&s, &o), 0);
	assert_int_equal(s.have, HOST_HAVE_CPU | HOST_HAVE_LOAD |
					 HOST_HAVE_MEM | HOST_HAVE_SWAP |
					 HOST_HAVE_FS | HOST_HAVE_DISK |
					 HOST_HAVE_NET | HOST_HAVE_FD);
	assert_int_equal(s.ncpu, 3);
	assert_true(s.cpu[0].user == 100 / hz && s.cpu[0].idle == 800 / hz);
	assert_int_equal(s.cpu[2].id, 1);
	assert_true(s.cpu[2].softirq == 3 / hz && s.cpu[2].steal == 0);
	assert_true(s.load1 == 0.5 && s.load15 == 0.1);
	assert_int_equal(s.tasks_running, 3);
	assert_int_equal(s.tasks, 250);
	assert_int_equal(s.mem_total, 1000 * 1024);
	/* No MemAvailable: free + buffers + cached. */
	assert_int_equal(s.mem_available, 350 * 1024);
	assert_int_equal(s.swap_total, 0);

	/* /, /tmp, the spaced one and the one whose name is not UTF-8; not
	 * the bind mount of sda1, tmpfs, proc, nfs, the missing path or the
	 * broken lines. */
	assert_int_equal(s.nfs, 4);
	assert_string_equal(s.fs[0].mount, "/");
	assert_string_equal(s.fs[0].device, "/dev/sda1");
	assert_string_equal(s.fs[1].mount, "/tmp");
	assert_string_equal(s.fs[1].fstype, "xfs");
	assert_string_equal(s.fs[2].mount, spaced);
	assert_string_equal(s.fs[2].device, "/dev/my disk");
	snprintf(spaced, sizeof(spaced), "%s/bad?name", root);
	assert_string_equal(s.fs[3].mount, spaced);

	assert_int_equal(s.ndisk, 1);
	assert_string_equal(s.disk[0].name, "sda");
	assert_int_equal(s.disk[0].reads, 100);
	assert_int_equal(s.disk[0].read_bytes, 2000 * 512);
	assert_int_equal(s.disk[0].writes, 200);
	assert_int_equal(s.disk[0].written_bytes, 4000 * 512);
	assert_true(s.disk[0].read_seconds == 0.05);
	assert_true(s.disk[0].busy_seconds == 0.12);

	assert_int_equal(s.nnet, 3);
	assert_string_equal(s.net[1].name, "eth0");
	assert_string_equal(s.net[2].name, "e?x");
	assert_int_equal(s.net[1].rx_bytes, 5000);
	assert_int_equal(s.net[1].rx_errors, 1);
	assert_int_equal(s.net[1].rx_drops, 2);
	assert_int_equal(s.net[1].tx_bytes, 7000);
	assert_int_equal(s.net[1].tx_drops, 4);
	assert_int_equal(s.fd_allocated, 1024);
	assert_int_equal(s.fd_max, 99999);

	p = proc_named(&s, "shop1");
	assert_non_null(p);
	assert_true(p->alive);
	assert_string_equal(p->comm, "we (i)rd) name");
	assert_true(p->cpu_seconds == 200 / hz);
	assert_int_equal(p->threads, 7);
	assert_true(p->start_time_seconds == 1700000000 + 1000 / hz);
	assert_int_equal(p->vm_bytes, 2000 * page);
	assert_int_equal(p->rss_bytes, 500 * page);
	assert_int_equal(p->max_fds, 1024);
	assert_int_equal(p->open_fds, 3);
	p = proc_named(&s, "gone");
	assert_non_null(p);
	assert_false(p->alive);
	assert_int_equal(p->open_fds, -1);
	host_sample_free(&s);
}

static void test_fake_rates(void **state)
{
	char proc_root[128], sys_root[128];
	struct host_pid pid = {4242, "shop1"};
	struct host_opts o = {proc_root, sys_root, &pid, 1};
	struct host_sample a, b;
	struct host_rates r;

	(void)state;
	snprintf(proc_root, sizeof(proc_root), "%s/proc", root);
	snprintf(sys_root, sizeof(sys_root), "%s/sys", root);
	assert_int_equal(host_sample(&a, &o), 0);
	/* Pretend one second passed: CPU 0 busy half the time, iowait going
	 * backwards (it can), sda read 1 MiB and was busy 0.5 s, a new
	 * interface, a counter that went down, and the process restarted. */
	put("proc/stat", "cpu  150 0 50 850 5 0 5 0 0 0\n"
			 "cpu0 100 0 25 450 5 0 2 0\n"
			 "cpu1 50 0 25 400 5 0 3\n"
			 "btime 1700000000\n");
	put("proc/diskstats",
	    "   8       0 sda 110 0 4048 50 200 0 4000 70 0 620 130 0 0 0 0\n");
	put("proc/net/dev",
	    "h\nh\n"
	    "    lo: 900 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n"
	    "  eth1: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0\n");
	assert_int_equal(host_sample(&b, &o), 0);
	b.mono_ns = a.mono_ns + 1000000000ULL;
	assert_int_equal(host_rates(&a, &b, &r), 0);
	assert_true(r.interval_s == 1);
	/* cpu1 did not move: no ratio for it. */
	assert_int_equal(r.ncpu, 2);
	assert_int_equal(r.cpu[1].id, 0);
	assert_true(r.cpu[1].user == 0.5 && r.cpu[1].idle == 0.5);
	assert_true(r.cpu[0].iowait == 0);
	assert_true(r.cpu[0].user == 0.5 && r.cpu[0].idle == 0.5);
	assert_int_equal(r.ndisk, 1);
	assert_true(r.disk[0].reads_per_s == 10);
	assert_true(r.disk[0].read_bytes_per_s == 2048 * 512);
	assert_true(r.disk[0].busy_ratio == 0.5);
	assert_int_equal(r.nnet, 1); /* eth1 is new */
	assert_string_equal(r.net[0].name, "lo");
	assert_true(r.net[0].rx_bytes_per_s == 0);
	assert_int_equal(r.nproc, 1);
	assert_true(r.proc[0].cpu_ratio == 0);
	host_rates_free(&r);
	/* The process restarted under the same pid: no rate. */
	put("proc/4242/stat", "4242 (x) S 1 4242 4242 0 -1 4194304 0 0 0 0 1 1 "
			      "0 0 20 0 1 0 999999 1 1 1\n");
	host_sample_free(&b);
	assert_int_equal(host_sample(&b, &o), 0);
	b.mono_ns = a.mono_ns + 1000000000ULL;
	assert_int_equal(host_rates(&a, &b, &r), 0);
	assert_int_equal(r.nproc, 0);
	host_rates_free(&r);
	host_sample_free(&a);
	host_sample_free(&b);
}

static void test_fake_missing(void **state)
{
	char empty[128], broken[128];
	struct host_pid pid = {1, "init"};
	struct host_opts o = {.proc_root = empty, .pids = &pid, .npids = 1};
	struct host_sample s;
	struct buf out;
	struct pp_doc doc;
	const struct pp_sample *p;

	(void)state;
	snprintf(empty, sizeof(empty), "%s/empty", root);
	put("empty", NULL);
	assert_int_equal(host_sample(&s, &o), 0);
	assert_int_equal(s.have, 0);
	assert_true(!s.ncpu && !s.nfs && !s.ndisk && !s.nnet);
	assert_int_equal(s.nproc, 1);
	assert_false(s.proc[0].alive);
	buf_init(&out);
	host_write_prometheus(&s, NULL, &out);
	if (!pp_parse(buf_cstr(&out), &doc))
		fail_msg("parse: %s", doc.err);
	assert_int_equal(doc.ns, 1);
	p = pp_find(&doc, "storekeep_host_process_up", "process", "init", NULL);
	assert_true(p && p->value == 0);
	pp_free(&doc);
	host_sample_free(&s);

	/* Files that are directories, empty, binary or cut short. */
	snprintf(broken, sizeof(broken), "%s/broken", root);
	o.proc_root = broken;
	put("broken/stat", NULL);
	put("broken/loadavg", "");
	put("broken/meminfo", "MemTotal: lots\n\x01\x02\xff");
	put("broken/self/mountinfo", "1 0 8:1 / /");
	put("broken/diskstats", "8 0");
	put("broken/net/dev", ":::\n: 1 2\n");
	put("broken/sys/fs/file-nr", "x y z");
	put("broken/1/stat", "1 (init");
	put("broken/1/fd", "not a dir");
	assert_int_equal(host_sample(&s, &o), 0);
	/* The files are there (their sources count as read) but hold
	 * nothing usable. */
	assert_int_equal(s.have, HOST_HAVE_FS | HOST_HAVE_DISK | HOST_HAVE_NET);
	assert_true(!s.ncpu && !s.nfs && !s.ndisk && !s.nnet);
	assert_false(s.proc[0].alive);
	buf_reset(&out);
	host_write_prometheus(&s, NULL, &out);
	assert_true(pp_parse(buf_cstr(&out), &doc));
	pp_free(&doc);
	host_sample_free(&s);
	buf_fini(&out);
}

static void test_rules(void **state)
{
	(void)state;
	assert_true(host_fs_type_ignored("tmpfs"));
	assert_true(host_fs_type_ignored("proc"));
	assert_true(host_fs_type_ignored("nfs4"));
	assert_true(host_fs_type_ignored("fuse.sshfs"));
	assert_true(host_fs_type_ignored("squashfs"));
	assert_false(host_fs_type_ignored("ext4"));
	assert_false(host_fs_type_ignored("xfs"));
	assert_false(host_fs_type_ignored("btrfs"));
	assert_false(host_fs_type_ignored("overlay"));
	assert_false(host_fs_type_ignored("fuseblk"));
	assert_true(host_disk_ignored("loop0", NULL));
	assert_true(host_disk_ignored("ram12", NULL));
	assert_true(host_disk_ignored("zram0", NULL));
	assert_false(host_disk_ignored("loopy", NULL));
	assert_false(host_disk_ignored("sda1", NULL));
	assert_false(host_disk_ignored("nvme0n1", "/nonexistent/sys"));
}

static void test_duplicate_names(void **state)
{
	struct host_pid pids[] = {{getpid(), "shop"}, {1, "shop"}};
	struct host_opts o = {.pids = pids, .npids = 2};
	struct host_sample s;

	(void)state;
	assert_int_equal(host_sample(&s, &o), -EINVAL);
	assert_null(s.cpu);
	assert_int_equal(s.nproc, 0);
	pids[1].name = "shop2";
	assert_int_equal(host_sample(&s, &o), 0);
	assert_int_equal(s.nproc, 2);
	host_sample_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_duplicate_names),
		cmocka_unit_test(test_real_sanity),
		cmocka_unit_test(test_real_rates),
		cmocka_unit_test(test_real_fd_count),
		cmocka_unit_test(test_real_tmp_rule),
		cmocka_unit_test(test_real_prometheus),
		cmocka_unit_test(test_real_cost),
		cmocka_unit_test(test_fake_exact),
		cmocka_unit_test(test_fake_rates),
		cmocka_unit_test(test_fake_missing),
	};

	return cmocka_run_group_tests(tests, make_root, remove_root);
}
