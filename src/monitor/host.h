/*
 * host.h - host metrics from /proc and statvfs: CPU, load, memory, swap,
 * filesystems, disk I/O, network, file descriptors, and chosen processes.
 *
 * Use, on the control thread, every second or so:
 *
 *   host_sample(&cur, &opts);            read everything once
 *   host_rates(&prev, &cur, &rates);     ratios and rates over the interval
 *   host_write_prometheus(&cur, &rates, out);    or host_write_metrics()
 *   host_rates_free(&rates); host_sample_free(&prev); prev = cur;
 *
 * A sample holds raw cumulative values as the kernel gives them (converted
 * to bytes and seconds); host_rates() turns two samples into ratios and
 * per-second rates. Every source is optional: a file that is missing,
 * unreadable or not in the expected shape (a container, an old kernel)
 * leaves its part of the sample out (its HOST_HAVE_ bit clear, or the
 * entry absent) and the rest goes on. Nothing here logs.
 *
 * Which filesystems and block devices are reported is a fixed rule, see
 * host_fs_type_ignored(), host_disk_ignored() and docs/monitoring.md.
 * Network filesystems are left out on purpose: statvfs() on a dead NFS
 * server blocks, and this runs on the control thread (watch them with a
 * probe, which has a timeout).
 *
 * Not here: cgroup limits (memory and CPU are the kernel's view of the
 * whole host), per-partition I/O, hardware sensors, scheduling (the caller
 * owns the timer). Nothing here is thread-safe; a sample is plain data.
 */
#ifndef SK_MONITOR_HOST_H
#define SK_MONITOR_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "monitor/metrics.h"

/* Which sources a sample got (struct host_sample.have). */
enum {
	HOST_HAVE_CPU = 1 << 0,	 /* /proc/stat */
	HOST_HAVE_LOAD = 1 << 1, /* /proc/loadavg */
	HOST_HAVE_MEM = 1 << 2,	 /* /proc/meminfo MemTotal */
	HOST_HAVE_SWAP = 1 << 3, /* /proc/meminfo SwapTotal, SwapFree */
	HOST_HAVE_FS = 1 << 4,	 /* /proc/self/mountinfo */
	HOST_HAVE_DISK = 1 << 5, /* /proc/diskstats */
	HOST_HAVE_NET = 1 << 6,	 /* /proc/net/dev */
	HOST_HAVE_FD = 1 << 7,	 /* /proc/sys/fs/file-nr */
};

/* Time spent by one CPU (or all: id -1), in seconds since boot. guest
 * time is part of user and nice, as the kernel counts it. */
struct host_cpu {
	int id;
	double user, nice, system, idle, iowait, irq, softirq, steal;
};

struct host_fs {
	char *mount;  /* mount point, unescaped */
	char *device; /* mount source, e.g. /dev/sda1 */
	char *fstype;
	uint64_t size_bytes;
	uint64_t free_bytes;  /* free, root's reserve included */
	uint64_t avail_bytes; /* free for unprivileged users */
	uint64_t files;	      /* inodes; 0 when the fs has no fixed count */
	uint64_t files_free;
	bool readonly;
};

struct host_disk {
	char name[32];
	uint64_t reads, writes; /* completed */
	uint64_t read_bytes, written_bytes;
	double read_seconds, write_seconds; /* time spent in them */
	double busy_seconds;		    /* time with I/O in flight */
	uint64_t in_progress;
};

struct host_net {
	char name[32];
	uint64_t rx_bytes, rx_packets, rx_errors, rx_drops;
	uint64_t tx_bytes, tx_packets, tx_errors, tx_drops;
};

struct host_proc {
	pid_t pid;
	char name[64]; /* the caller's name for it (label "process") */
	bool alive;    /* found in /proc; nothing below is set otherwise */
	char comm[32];
	double cpu_seconds;	   /* user + system */
	double start_time_seconds; /* Unix time; 0 if unknown */
	uint64_t rss_bytes;
	uint64_t vm_bytes;
	uint64_t threads;
	int64_t open_fds; /* -1 when /proc/PID/fd is unreadable */
	int64_t max_fds;  /* soft limit; -1 when unknown or unlimited */
};

struct host_sample {
	uint64_t mono_ns; /* when it was taken */
	unsigned have;	  /* HOST_HAVE_* */

	struct host_cpu *cpu; /* [0] is all CPUs, then one per core */
	size_t ncpu;	      /* 1 + cores, or 0 */

	double load1, load5, load15;
	uint64_t tasks_running, tasks; /* scheduling entities */

	uint64_t mem_total, mem_free, mem_available, mem_buffers, mem_cached;
	uint64_t swap_total, swap_free;

	struct host_fs *fs;
	size_t nfs;
	struct host_disk *disk;
	size_t ndisk;
	struct host_net *net;
	size_t nnet;

	uint64_t fd_allocated, fd_max; /* system-wide */

	struct host_proc *proc; /* one per requested pid, in order */
	size_t nproc;
};

struct host_pid {
	pid_t pid;
	/* label value, e.g. "storekeep" or "shop1": UTF-8, unique in the
	 * list; the first 63 bytes are kept */
	const char *name;
};

struct host_opts {
	const char *proc_root; /* NULL = "/proc" (tests point it elsewhere) */
	const char *sys_root;  /* NULL = "/sys" */
	/* Processes to watch. opts NULL: only this process, as "storekeep". */
	const struct host_pid *pids;
	size_t npids;
};

/*
 * Reads every source into *out (zeroed first; arrays allocated, free with
 * host_sample_free). opts may be NULL; its strings are borrowed for the
 * call. Returns 0, also when sources are missing (see out->have and the
 * array lengths); -EINVAL when two pids share a name; or -ENOMEM. *out is
 * zeroed on error.
 */
int host_sample(struct host_sample *out, const struct host_opts *opts);
/* Frees what host_sample allocated and zeroes s. */
void host_sample_free(struct host_sample *s);

struct host_cpu_ratio {
	int id; /* -1 = all CPUs */
	/* Shares of the interval, each in [0, 1], summing to 1. */
	double user, nice, system, idle, iowait, irq, softirq, steal;
};

struct host_disk_rate {
	char name[32];
	double reads_per_s, writes_per_s;
	double read_bytes_per_s, written_bytes_per_s;
	double busy_ratio; /* share of the interval with I/O in flight */
};

struct host_net_rate {
	char name[32];
	double rx_bytes_per_s, tx_bytes_per_s;
	double rx_packets_per_s, tx_packets_per_s;
	double rx_errors_per_s, tx_errors_per_s;
	double rx_drops_per_s, tx_drops_per_s;
};

struct host_proc_rate {
	pid_t pid;
	char name[64];
	double cpu_ratio; /* CPU seconds per second: 2.0 is two cores busy */
};

struct host_rates {
	double interval_s;
	struct host_cpu_ratio *cpu;
	size_t ncpu;
	struct host_disk_rate *disk;
	size_t ndisk;
	struct host_net_rate *net;
	size_t nnet;
	struct host_proc_rate *proc;
	size_t nproc;
};

/*
 * Ratios and rates between two samples of the same host, prev taken
 * before cur. An entry is present only when both samples have it (a CPU
 * by id, a disk or interface by name, a process by pid and start time)
 * and, for a CPU, when its counters moved. A counter that went backwards
 * (a device re-created) counts as no activity. Returns 0, -EINVAL when
 * cur is not later than prev, or -ENOMEM; *out is zeroed on error.
 */
int host_rates(const struct host_sample *prev, const struct host_sample *cur,
	       struct host_rates *out);
/* Frees what host_rates allocated and zeroes r. */
void host_rates_free(struct host_rates *r);

/*
 * One value of the host's metrics, as handed to a host_emit_cb. Counters
 * are count / 10^decimals (exact); gauges are value.
 */
struct host_metric {
	const char *name;
	const char *help;
	enum metrics_type type; /* METRICS_COUNTER or METRICS_GAUGE */
	const struct metrics_label *labels;
	size_t nlabels;
	uint64_t count;
	unsigned decimals;
	double value;
};

typedef void (*host_emit_cb)(void *ud, const struct host_metric *m);

/*
 * Calls cb for every value of cur and rates (rates may be NULL: the ratio
 * gauges are then left out), grouped by metric name: all values of one
 * name come in a row, each with the name's help. Pointers in *m are valid
 * during the call only; name and help are string literals.
 */
void host_emit(const struct host_sample *cur, const struct host_rates *rates,
	       host_emit_cb cb, void *ud);

/* Appends the host's metrics in Prometheus text format (HELP, TYPE,
 * samples; in the order of host_emit) to out. */
void host_write_prometheus(const struct host_sample *cur,
			   const struct host_rates *rates, struct buf *out);

/*
 * Registers the host's metrics in m (on first sight) and sets them in
 * shard (the control thread's). Series of a mount, disk, interface or
 * process that has gone keep their last value (the registry does not
 * remove series). Returns 0 or the first registration error.
 */
int host_write_metrics(const struct host_sample *cur,
		       const struct host_rates *rates, struct metrics *m,
		       unsigned shard);

/* The filesystem rule: true when mounts of this type are not reported. */
bool host_fs_type_ignored(const char *fstype);
/* The block device rule: true when a device of that name is not reported
 * (loop, ram, zram, or, with sys_root given, a partition). */
bool host_disk_ignored(const char *name, const char *sys_root);

#endif
