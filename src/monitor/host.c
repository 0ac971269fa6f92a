/*
 * host.c - reads a host sample from /proc, /sys and statvfs (host.h).
 *
 * Sources, each read whole into one reused buffer and parsed in place:
 *
 *   /proc/stat              cpu lines (USER_HZ ticks), btime
 *   /proc/loadavg           load averages, running/total tasks
 *   /proc/meminfo           memory and swap (kB)
 *   /proc/self/mountinfo    mounts, then statvfs() on each one kept
 *   /proc/diskstats         block devices (512-byte sectors, ms)
 *   /sys/block/<name>       whether a device is a whole disk
 *   /proc/net/dev           interfaces
 *   /proc/sys/fs/file-nr    file handles allocated and maximum
 *   /proc/<pid>/stat, statm, limits, fd/   each watched process (the fd
 *                           count from stat()'s size on Linux >= 6.2,
 *                           else by listing the directory)
 *
 * A source that cannot be opened or parsed is left out of the sample; a
 * line that does not parse is skipped and the others kept. Only an
 * allocation failure (or a caller's duplicate process names) fails the
 * whole sample. Files over 16 MiB count as unreadable, so a broken /proc
 * cannot make us allocate without bound.
 *
 * Filesystem rule (documented in docs/monitoring.md): a mount is kept
 * when its type is not in `ignored_fs` (pseudo and memory filesystems,
 * network and FUSE filesystems whose statvfs may hang, read-only images),
 * statvfs() succeeds and reports a non-zero size, and no earlier mount
 * had the same device number (bind mounts and the like count once).
 *
 * Invariants of a sample: when ncpu > 0, cpu[0] is the total (id -1)
 * and the others are cores; every name that becomes a label value (mount,
 * device, fstype, disk, interface, process) is valid UTF-8.
 *
 * Not done: cgroup-aware memory and CPU, partitions, /proc/pressure.
 */
#include "monitor/host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "monitor/monitor_int.h"

#define FILE_MAX (16u << 20)

struct ctx {
	const char *proc;
	const char *sys;
	struct buf b;
	char path[PATH_MAX];
	double hz;
	uint64_t page;
	double btime; /* boot time, Unix seconds; 0 if unknown */
	bool procfs;  /* proc is a real procfs (not a test's tree) */
};

/* --- reading ------------------------------------------------------------ */

/*
 * Reads <root>/<rel> into c->b (NUL-terminated). Returns 0, -ENOMEM, or
 * another negative errno for a file that is missing, unreadable or too
 * big (the caller skips the source).
 */
static int read_file(struct ctx *c, const char *root, const char *rel)
{
	int fd, r = 0;

	if (snprintf(c->path, sizeof(c->path), "%s/%s", root, rel) >=
	    (int)sizeof(c->path))
		return -ENAMETOOLONG;
	buf_reset(&c->b);
	fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (c->b.len >= FILE_MAX) {
			r = -EFBIG;
			break;
		}
		if ((r = buf_reserve(&c->b, 4096)))
			break;
		n = read(fd, c->b.data + c->b.len, c->b.cap - c->b.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		c->b.len += (size_t)n;
	}
	close(fd);
	if (!r)
		buf_cstr(&c->b);
	return r;
}

/* Cuts the next line off *p (NUL-terminating it); NULL at the end. */
static char *next_line(char **p)
{
	char *s = *p, *nl;

	if (!s || !*s)
		return NULL;
	nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = s + strlen(s);
	}
	return s;
}

/* Reads an unsigned decimal at *p (after blanks); moves *p past it. */
static bool num(char **p, uint64_t *v)
{
	char *s = *p, *end;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno)
		return false;
	*p = end;
	return true;
}

/* Reads up to n numbers; returns how many it found in a row. */
static size_t nums(char *p, uint64_t *v, size_t n)
{
	size_t k = 0;

	while (k < n && num(&p, &v[k]))
		k++;
	return k;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	void *na;
	size_t nc;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 8;
	na = realloc(*arr, nc * elem);
	if (!na)
		return -ENOMEM;
	memset((char *)na + *cap * elem, 0, (nc - *cap) * elem);
	*arr = na;
	*cap = nc;
	return 0;
}

/* Copies a name that will be a label value: cut to fit, and made valid
 * UTF-8 (the kernel allows any byte in names; Prometheus does not). */
static void copy_name(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	prom_utf8_fix(dst);
}

/* --- CPU, load, memory ---------------------------------------------------- */

static int read_stat(struct ctx *c, struct host_sample *s)
{
	size_t cap = 0;
	char *p, *line;
	int r = read_file(c, c->proc, "stat");

	if (r)
		return r == -ENOMEM ? r : 0;
	p = c->b.data;
	while ((line = next_line(&p))) {
		uint64_t v[8] = {0};
		struct host_cpu *cpu;
		char *q;
		int id;

		if (strncmp(line, "btime ", 6) == 0) {
			q = line + 6;
			if (num(&q, &v[0]))
				c->btime = (double)v[0];
			continue;
		}
		if (strncmp(line, "cpu", 3) != 0)
			continue;
		q = line + 3;
		if (*q == ' ') {
			id = -1;
		} else {
			uint64_t n;

			if (!num(&q, &n) || *q != ' ' || n > INT_MAX)
				continue;
			id = (int)n;
		}
		/* The total comes first; without it the per-core lines have
		 * nothing to be compared with, and we skip CPU altogether. */
		if ((id == -1) != (s->ncpu == 0))
			continue;
		if (nums(q, v, 8) < 4)
			continue;
		if (grow((void **)&s->cpu, &cap, s->ncpu, sizeof(*s->cpu)))
			return -ENOMEM;
		cpu = &s->cpu[s->ncpu++];
		cpu->id = id;
		cpu->user = (double)v[0] / c->hz;
		cpu->nice = (double)v[1] / c->hz;
		cpu->system = (double)v[2] / c->hz;
		cpu->idle = (double)v[3] / c->hz;
		cpu->iowait = (double)v[4] / c->hz;
		cpu->irq = (double)v[5] / c->hz;
		cpu->softirq = (double)v[6] / c->hz;
		cpu->steal = (double)v[7] / c->hz;
	}
	if (s->ncpu)
		s->have |= HOST_HAVE_CPU;
	return 0;
}

static int read_loadavg(struct ctx *c, struct host_sample *s)
{
	double l1, l5, l15;
	unsigned long long run, tot;
	int r = read_file(c, c->proc, "loadavg");

	if (r)
		return r == -ENOMEM ? r : 0;
	if (sscanf(c->b.data, "%lf %lf %lf %llu/%llu", &l1, &l5, &l15, &run,
		   &tot) != 5)
		return 0;
	s->load1 = l1;
	s->load5 = l5;
	s->load15 = l15;
	s->tasks_running = run;
	s->tasks = tot;
	s->have |= HOST_HAVE_LOAD;
	return 0;
}

static int read_meminfo(struct ctx *c, struct host_sample *s)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{"MemTotal", offsetof(struct host_sample, mem_total)},
		{"MemFree", offsetof(struct host_sample, mem_free)},
		{"MemAvailable", offsetof(struct host_sample, mem_available)},
		{"Buffers", offsetof(struct host_sample, mem_buffers)},
		{"Cached", offsetof(struct host_sample, mem_cached)},
		{"SwapTotal", offsetof(struct host_sample, swap_total)},
		{"SwapFree", offsetof(struct host_sample, swap_free)},
	};
	unsigned seen = 0;
	char *p, *line;
	int r = read_file(c, c->proc, "meminfo");

	if (r)
		return r == -ENOMEM ? r : 0;
	p = c->b.data;
	while ((line = next_line(&p))) {
		char *colon = strchr(line, ':'), *q;
		uint64_t v;

		if (!colon)
			continue;
		*colon = '\0';
		q = colon + 1;
		if (!num(&q, &v))
			continue;
		while (*q == ' ')
			q++;
		if (strcmp(q, "kB") == 0)
			v *= 1024;
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (strcmp(line, keys[k].key) == 0) {
				*(uint64_t *)((char *)s + keys[k].off) = v;
				seen |= 1u << k;
			}
		}
	}
	if (seen & 1) {
		s->have |= HOST_HAVE_MEM;
		/* Kernels before 3.14 have no MemAvailable: estimate it as
		 * what is free or could be dropped at once. */
		if (!(seen & (1u << 2)))
			s->mem_available =
				s->mem_free + s->mem_buffers + s->mem_cached;
		if (s->mem_available > s->mem_total)
			s->mem_available = s->mem_total;
	}
	if ((seen & (3u << 5)) == (3u << 5))
		s->have |= HOST_HAVE_SWAP;
	return 0;
}

/* --- filesystems -------------------------------------------------------- */

static const char *const ignored_fs[] = {
	/* kernel pseudo filesystems */
	"autofs",
	"binfmt_misc",
	"bpf",
	"cgroup",
	"cgroup2",
	"configfs",
	"debugfs",
	"devpts",
	"devtmpfs",
	"efivarfs",
	"fusectl",
	"hugetlbfs",
	"mqueue",
	"nsfs",
	"proc",
	"pstore",
	"rpc_pipefs",
	"securityfs",
	"selinuxfs",
	"sysfs",
	"tracefs",
	"nfsd",
	"xenfs",
	"usbfs",
	/* memory: counted by the memory metrics */
	"tmpfs",
	"ramfs",
	"rootfs",
	/* network and FUSE: statvfs() may block on a dead server */
	"nfs",
	"nfs4",
	"cifs",
	"smb3",
	"smbfs",
	"ceph",
	"glusterfs",
	"9p",
	"afs",
	"fuse",
	"lustre",
	"gfs2",
	"ocfs2",
	/* read-only images, always full */
	"squashfs",
	"iso9660",
	"udf",
};

bool host_fs_type_ignored(const char *t)
{
	if (strncmp(t, "fuse.", 5) == 0)
		return true;
	for (size_t i = 0; i < sizeof(ignored_fs) / sizeof(ignored_fs[0]); i++)
		if (strcmp(t, ignored_fs[i]) == 0)
			return true;
	return false;
}

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Splits line at spaces into at most n fields; returns how many. */
static size_t split(char *line, char **f, size_t n)
{
	size_t k = 0;
	char *save = NULL, *t;

	for (t = strtok_r(line, " ", &save); t && k < n;
	     t = strtok_r(NULL, " ", &save))
		f[k++] = t;
	return k;
}

static int read_mounts(struct ctx *c, struct host_sample *s)
{
	char **devs = NULL; /* major:minor of the mounts kept */
	size_t cap = 0, dcap = 0;
	char *p, *line;
	int r = read_file(c, c->proc, "self/mountinfo");

	if (r)
		return r == -ENOMEM ? r : 0;
	s->have |= HOST_HAVE_FS;
	p = c->b.data;
	while ((line = next_line(&p))) {
		char *f[64], *mnt, *dev, *type, *src;
		struct statvfs sv;
		struct host_fs *fs;
		size_t n = split(line, f, 64), sep = 0;
		bool dup = false;

		/* id parent major:minor root mountpoint opts [optional...]
		 * - fstype source superopts */
		for (size_t k = 6; k < n; k++)
			if (strcmp(f[k], "-") == 0) {
				sep = k;
				break;
			}
		if (n < 6 || !sep || sep + 2 >= n)
			continue;
		dev = f[2];
		mnt = f[4];
		type = f[sep + 1];
		src = f[sep + 2];
		if (host_fs_type_ignored(type))
			continue;
		for (size_t k = 0; k < s->nfs && !dup; k++)
			dup = strcmp(devs[k], dev) == 0;
		if (dup)
			continue;
		unescape(mnt);
		unescape(src);
		if (statvfs(mnt, &sv) != 0 || sv.f_blocks == 0)
			continue;
		if (grow((void **)&s->fs, &cap, s->nfs, sizeof(*s->fs)) ||
		    grow((void **)&devs, &dcap, s->nfs, sizeof(*devs)))
			goto nomem;
		fs = &s->fs[s->nfs];
		fs->mount = strdup(mnt);
		fs->device = strdup(src);
		fs->fstype = strdup(type);
		devs[s->nfs] =
			dev; /* points into c->b, alive until we return */
		s->nfs++;
		if (!fs->mount || !fs->device || !fs->fstype)
			goto nomem;
		prom_utf8_fix(fs->mount);
		prom_utf8_fix(fs->device);
		prom_utf8_fix(fs->fstype);
		fs->size_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
		fs->free_bytes = (uint64_t)sv.f_bfree * sv.f_frsize;
		fs->avail_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
		fs->files = sv.f_files;
		fs->files_free = sv.f_ffree;
		fs->readonly = (sv.f_flag & ST_RDONLY) != 0;
	}
	free(devs);
	return 0;
nomem:
	free(devs);
	return -ENOMEM;
}

/* --- block devices, network, descriptors ---------------------------------- */

bool host_disk_ignored(const char *name, const char *sys_root)
{
	static const char *const prefixes[] = {"loop", "ram", "zram", "fd"};
	char path[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t l = strlen(prefixes[i]);

		if (strncmp(name, prefixes[i], l) == 0 && name[l] >= '0' &&
		    name[l] <= '9')
			return true;
	}
	if (!sys_root)
		return false;
	/* /sys/block lists whole disks (and md, dm, nvme namespaces), not
	 * partitions. Without it we cannot tell, and keep the device. */
	snprintf(path, sizeof(path), "%s/block", sys_root);
	if (stat(path, &st) != 0)
		return false;
	if (snprintf(path, sizeof(path), "%s/block/%s", sys_root, name) >=
	    (int)sizeof(path))
		return true;
	return stat(path, &st) != 0;
}

static int read_diskstats(struct ctx *c, struct host_sample *s)
{
	size_t cap = 0;
	char *p, *line;
	int r = read_file(c, c->proc, "diskstats");

	if (r)
		return r == -ENOMEM ? r : 0;
	s->have |= HOST_HAVE_DISK;
	p = c->b.data;
	while ((line = next_line(&p))) {
		uint64_t maj, min, v[11];
		struct host_disk *d;
		char *q = line, *name, *end;

		if (!num(&q, &maj) || !num(&q, &min))
			continue;
		while (*q == ' ')
			q++;
		name = q;
		end = strchr(q, ' ');
		if (!end || end == name)
			continue;
		*end = '\0';
		/* reads merged sectors ms, writes merged sectors ms,
		 * in-flight, io ms, weighted ms */
		if (nums(end + 1, v, 11) < 11)
			continue;
		if (host_disk_ignored(name, c->sys))
			continue;
		if (grow((void **)&s->disk, &cap, s->ndisk, sizeof(*s->disk)))
			return -ENOMEM;
		d = &s->disk[s->ndisk++];
		copy_name(d->name, sizeof(d->name), name, strlen(name));
		d->reads = v[0];
		d->read_bytes = v[2] * 512; /* always 512-byte units */
		d->read_seconds = (double)v[3] / 1000;
		d->writes = v[4];
		d->written_bytes = v[6] * 512;
		d->write_seconds = (double)v[7] / 1000;
		d->in_progress = v[8];
		d->busy_seconds = (double)v[9] / 1000;
	}
	return 0;
}

static int read_netdev(struct ctx *c, struct host_sample *s)
{
	size_t cap = 0;
	char *p, *line;
	int r = read_file(c, c->proc, "net/dev");

	if (r)
		return r == -ENOMEM ? r : 0;
	s->have |= HOST_HAVE_NET;
	p = c->b.data;
	while ((line = next_line(&p))) {
		char *colon = strchr(line, ':'), *name = line;
		struct host_net *n;
		uint64_t v[16];

		if (!colon) /* the two header lines */
			continue;
		*colon = '\0';
		while (*name == ' ')
			name++;
		if (!*name || nums(colon + 1, v, 16) < 16)
			continue;
		if (grow((void **)&s->net, &cap, s->nnet, sizeof(*s->net)))
			return -ENOMEM;
		n = &s->net[s->nnet++];
		copy_name(n->name, sizeof(n->name), name, strlen(name));
		n->rx_bytes = v[0];
		n->rx_packets = v[1];
		n->rx_errors = v[2];
		n->rx_drops = v[3];
		n->tx_bytes = v[8];
		n->tx_packets = v[9];
		n->tx_errors = v[10];
		n->tx_drops = v[11];
	}
	return 0;
}

static int read_filenr(struct ctx *c, struct host_sample *s)
{
	uint64_t v[3];
	int r = read_file(c, c->proc, "sys/fs/file-nr");

	if (r)
		return r == -ENOMEM ? r : 0;
	if (nums(c->b.data, v, 3) < 3)
		return 0;
	s->fd_allocated = v[0];
	s->fd_max = v[2];
	s->have |= HOST_HAVE_FD;
	return 0;
}

/* --- processes ------------------------------------------------------------ */

/*
 * Open descriptors of pid. Since Linux 6.2, stat() of /proc/PID/fd gives
 * their number as its size, in O(1); before, the size is 0 and we count
 * the entries (about 0.5 us each: 5 ms a second for a proxy holding 10000
 * connections), not counting the descriptor we read them with. -1 when
 * neither works.
 */
static int64_t count_fds(struct ctx *c, pid_t pid)
{
	struct dirent *de;
	struct stat st;
	int64_t n = 0;
	DIR *d;
	int self;

	snprintf(c->path, sizeof(c->path), "%s/%d/fd", c->proc, (int)pid);
	if (c->procfs && stat(c->path, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_size > 0)
		return (int64_t)st.st_size;
	d = opendir(c->path);
	if (!d)
		return -1;
	self = dirfd(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (atoi(de->d_name) == self && pid == getpid())
			continue;
		n++;
	}
	closedir(d);
	return n;
}

static int read_proc(struct ctx *c, struct host_proc *pr)
{
	char rel[64], *q, *close_paren, *tok[24];
	uint64_t v[2];
	int r;

	snprintf(rel, sizeof(rel), "%d/stat", (int)pr->pid);
	if ((r = read_file(c, c->proc, rel)))
		return r == -ENOMEM ? r : 0;
	/* "pid (comm) state ppid ...": comm may hold spaces and
	 * parentheses, so fields are counted from the last ')'. */
	q = strchr(c->b.data, '(');
	close_paren = strrchr(c->b.data, ')');
	if (!q || !close_paren || close_paren < q)
		return 0;
	copy_name(pr->comm, sizeof(pr->comm), q + 1,
		  (size_t)(close_paren - q - 1));
	if (split(close_paren + 1, tok, 24) < 22)
		return 0;
	/* tok[0] is field 3 (state): utime 14, stime 15, num_threads 20,
	 * starttime 22. */
	pr->cpu_seconds = (double)(strtoull(tok[11], NULL, 10) +
				   strtoull(tok[12], NULL, 10)) /
			  c->hz;
	pr->threads = strtoull(tok[17], NULL, 10);
	if (c->btime > 0)
		pr->start_time_seconds =
			c->btime + (double)strtoull(tok[19], NULL, 10) / c->hz;
	pr->alive = true;

	snprintf(rel, sizeof(rel), "%d/statm", (int)pr->pid);
	if ((r = read_file(c, c->proc, rel)) == -ENOMEM)
		return r;
	if (!r && nums(c->b.data, v, 2) == 2) {
		pr->vm_bytes = v[0] * c->page;
		pr->rss_bytes = v[1] * c->page;
	}
	pr->max_fds = -1;
	snprintf(rel, sizeof(rel), "%d/limits", (int)pr->pid);
	if ((r = read_file(c, c->proc, rel)) == -ENOMEM)
		return r;
	if (!r) {
		char *p = c->b.data, *line;

		while ((line = next_line(&p))) {
			if (strncmp(line, "Max open files", 14) == 0) {
				q = line + 14;
				if (num(&q, &v[0]) && v[0] <= INT64_MAX)
					pr->max_fds = (int64_t)v[0];
				break;
			}
		}
	}
	pr->open_fds = count_fds(c, pr->pid);
	return 0;
}

/* --- the sample ------------------------------------------------------------
 */

void host_sample_free(struct host_sample *s)
{
	for (size_t i = 0; i < s->nfs; i++) {
		free(s->fs[i].mount);
		free(s->fs[i].device);
		free(s->fs[i].fstype);
	}
	free(s->fs);
	free(s->cpu);
	free(s->disk);
	free(s->net);
	free(s->proc);
	memset(s, 0, sizeof(*s));
}

int host_sample(struct host_sample *out, const struct host_opts *opts)
{
	struct host_pid self = {getpid(), "storekeep"};
	const struct host_pid *pids = &self;
	size_t npids = 1;
	struct ctx c = {0};
	struct statfs sf;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	int r;

	memset(out, 0, sizeof(*out));
	c.proc = opts && opts->proc_root ? opts->proc_root : "/proc";
	c.sys = opts && opts->sys_root ? opts->sys_root : "/sys";
	c.hz = hz > 0 ? (double)hz : 100;
	c.page = page > 0 ? (uint64_t)page : 4096;
	if (opts) {
		pids = opts->pids;
		npids = opts->npids;
	}
	/* Names become label values: two alike would be one series. */
	for (size_t i = 0; i < npids; i++)
		for (size_t j = 0; j < i; j++)
			if (strncmp(pids[i].name ? pids[i].name : "",
				    pids[j].name ? pids[j].name : "",
				    sizeof(out->proc->name) - 1) == 0)
				return -EINVAL;
	c.procfs = statfs(c.proc, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
	buf_init(&c.b);
	out->mono_ns = clock_mono_ns();
	if ((r = read_stat(&c, out)) || (r = read_loadavg(&c, out)) ||
	    (r = read_meminfo(&c, out)) || (r = read_mounts(&c, out)) ||
	    (r = read_diskstats(&c, out)) || (r = read_netdev(&c, out)) ||
	    (r = read_filenr(&c, out)))
		goto fail;
	if (npids) {
		out->proc = calloc(npids, sizeof(*out->proc));
		if (!out->proc) {
			r = -ENOMEM;
			goto fail;
		}
		out->nproc = npids;
		for (size_t i = 0; i < npids; i++) {
			struct host_proc *pr = &out->proc[i];

			pr->pid = pids[i].pid;
			pr->open_fds = -1;
			pr->max_fds = -1;
			copy_name(pr->name, sizeof(pr->name),
				  pids[i].name ? pids[i].name : "",
				  strlen(pids[i].name ? pids[i].name : ""));
			if ((r = read_proc(&c, pr)))
				goto fail;
		}
	}
	buf_fini(&c.b);
	return 0;
fail:
	buf_fini(&c.b);
	host_sample_free(out);
	return r;
}
