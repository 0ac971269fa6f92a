/*
 * host_emit.c - rates between two host samples, and the host's metrics
 * handed out one value at a time (host_emit) to the Prometheus text writer
 * or the registry.
 *
 * The names, types, labels and help of every host metric are here and
 * only here; docs/monitoring.md lists the same set. Naming: everything
 * starts with storekeep_host_, sizes end in _bytes, cumulative counts in
 * _total, shares of something in _ratio (0..1), and labels are cpu/mode,
 * mount/device/fstype, device, interface, process.
 *
 * Emission order is fixed: by source, then by metric, then in the order of
 * the sample's arrays (the kernel's), so that all values of one name come
 * in a row, as the text format wants.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/host.h"
#include "monitor/monitor_int.h"

/* --- rates -------------------------------------------------------------- */

static double dsub0(double a, double b)
{
	return a > b ? a - b : 0;
}

static double usub0(uint64_t a, uint64_t b)
{
	return a > b ? (double)(a - b) : 0;
}

static double clamp01(double v)
{
	return v < 0 ? 0 : v > 1 ? 1 : v;
}

/*
 * The entry of prev matching cur's i-th one. Arrays usually line up, so
 * the same index is tried first and the search is linear only when a
 * device came or went.
 */
static const struct host_cpu *find_cpu(const struct host_sample *p, size_t i,
				       int id)
{
	if (i < p->ncpu && p->cpu[i].id == id)
		return &p->cpu[i];
	for (size_t j = 0; j < p->ncpu; j++)
		if (p->cpu[j].id == id)
			return &p->cpu[j];
	return NULL;
}

static const struct host_disk *find_disk(const struct host_sample *p, size_t i,
					 const char *name)
{
	if (i < p->ndisk && strcmp(p->disk[i].name, name) == 0)
		return &p->disk[i];
	for (size_t j = 0; j < p->ndisk; j++)
		if (strcmp(p->disk[j].name, name) == 0)
			return &p->disk[j];
	return NULL;
}

static const struct host_net *find_net(const struct host_sample *p, size_t i,
				       const char *name)
{
	if (i < p->nnet && strcmp(p->net[i].name, name) == 0)
		return &p->net[i];
	for (size_t j = 0; j < p->nnet; j++)
		if (strcmp(p->net[j].name, name) == 0)
			return &p->net[j];
	return NULL;
}

/* The same pid with another start time is a new process. */
static bool same_proc(const struct host_proc *x, const struct host_proc *a)
{
	return x->alive && x->pid == a->pid &&
	       x->start_time_seconds == a->start_time_seconds;
}

static const struct host_proc *find_proc(const struct host_sample *p, size_t i,
					 const struct host_proc *a)
{
	if (i < p->nproc && same_proc(&p->proc[i], a))
		return &p->proc[i];
	for (size_t j = 0; j < p->nproc; j++)
		if (same_proc(&p->proc[j], a))
			return &p->proc[j];
	return NULL;
}

static int cpu_rates(const struct host_sample *p, const struct host_sample *c,
		     struct host_rates *out)
{
	if (!c->ncpu)
		return 0;
	out->cpu = calloc(c->ncpu, sizeof(*out->cpu));
	if (!out->cpu)
		return -ENOMEM;
	for (size_t i = 0; i < c->ncpu; i++) {
		const struct host_cpu *a = &c->cpu[i], *b;
		struct host_cpu_ratio *r = &out->cpu[out->ncpu];
		double tot;

		b = find_cpu(p, i, a->id);
		if (!b)
			continue;
		/* A mode whose counter went back (iowait can) counts 0, and
		 * the total is the sum of what is left, so the shares still
		 * add up to 1. */
		r->user = dsub0(a->user, b->user);
		r->nice = dsub0(a->nice, b->nice);
		r->system = dsub0(a->system, b->system);
		r->idle = dsub0(a->idle, b->idle);
		r->iowait = dsub0(a->iowait, b->iowait);
		r->irq = dsub0(a->irq, b->irq);
		r->softirq = dsub0(a->softirq, b->softirq);
		r->steal = dsub0(a->steal, b->steal);
		tot = r->user + r->nice + r->system + r->idle + r->iowait +
		      r->irq + r->softirq + r->steal;
		if (!(tot > 0))
			continue;
		r->id = a->id;
		r->user /= tot;
		r->nice /= tot;
		r->system /= tot;
		r->idle /= tot;
		r->iowait /= tot;
		r->irq /= tot;
		r->softirq /= tot;
		r->steal /= tot;
		out->ncpu++;
	}
	return 0;
}

static int disk_rates(const struct host_sample *p, const struct host_sample *c,
		      double dt, struct host_rates *out)
{
	if (!c->ndisk)
		return 0;
	out->disk = calloc(c->ndisk, sizeof(*out->disk));
	if (!out->disk)
		return -ENOMEM;
	for (size_t i = 0; i < c->ndisk; i++) {
		const struct host_disk *a = &c->disk[i], *b;
		struct host_disk_rate *r = &out->disk[out->ndisk];

		b = find_disk(p, i, a->name);
		if (!b)
			continue;
		memcpy(r->name, a->name, sizeof(r->name));
		r->reads_per_s = usub0(a->reads, b->reads) / dt;
		r->writes_per_s = usub0(a->writes, b->writes) / dt;
		r->read_bytes_per_s = usub0(a->read_bytes, b->read_bytes) / dt;
		r->written_bytes_per_s =
			usub0(a->written_bytes, b->written_bytes) / dt;
		r->busy_ratio =
			clamp01(dsub0(a->busy_seconds, b->busy_seconds) / dt);
		out->ndisk++;
	}
	return 0;
}

static int net_rates(const struct host_sample *p, const struct host_sample *c,
		     double dt, struct host_rates *out)
{
	if (!c->nnet)
		return 0;
	out->net = calloc(c->nnet, sizeof(*out->net));
	if (!out->net)
		return -ENOMEM;
	for (size_t i = 0; i < c->nnet; i++) {
		const struct host_net *a = &c->net[i], *b;
		struct host_net_rate *r = &out->net[out->nnet];

		b = find_net(p, i, a->name);
		if (!b)
			continue;
		memcpy(r->name, a->name, sizeof(r->name));
		r->rx_bytes_per_s = usub0(a->rx_bytes, b->rx_bytes) / dt;
		r->tx_bytes_per_s = usub0(a->tx_bytes, b->tx_bytes) / dt;
		r->rx_packets_per_s = usub0(a->rx_packets, b->rx_packets) / dt;
		r->tx_packets_per_s = usub0(a->tx_packets, b->tx_packets) / dt;
		r->rx_errors_per_s = usub0(a->rx_errors, b->rx_errors) / dt;
		r->tx_errors_per_s = usub0(a->tx_errors, b->tx_errors) / dt;
		r->rx_drops_per_s = usub0(a->rx_drops, b->rx_drops) / dt;
		r->tx_drops_per_s = usub0(a->tx_drops, b->tx_drops) / dt;
		out->nnet++;
	}
	return 0;
}

static int proc_rates(const struct host_sample *p, const struct host_sample *c,
		      double dt, struct host_rates *out)
{
	if (!c->nproc)
		return 0;
	out->proc = calloc(c->nproc, sizeof(*out->proc));
	if (!out->proc)
		return -ENOMEM;
	for (size_t i = 0; i < c->nproc; i++) {
		const struct host_proc *a = &c->proc[i], *b;
		struct host_proc_rate *r = &out->proc[out->nproc];

		if (!a->alive)
			continue;
		b = find_proc(p, i, a);
		if (!b)
			continue;
		r->pid = a->pid;
		memcpy(r->name, a->name, sizeof(r->name));
		r->cpu_ratio = dsub0(a->cpu_seconds, b->cpu_seconds) / dt;
		out->nproc++;
	}
	return 0;
}

void host_rates_free(struct host_rates *r)
{
	free(r->cpu);
	free(r->disk);
	free(r->net);
	free(r->proc);
	memset(r, 0, sizeof(*r));
}

int host_rates(const struct host_sample *prev, const struct host_sample *cur,
	       struct host_rates *out)
{
	double dt;
	int r;

	memset(out, 0, sizeof(*out));
	if (cur->mono_ns <= prev->mono_ns)
		return -EINVAL;
	dt = (double)(cur->mono_ns - prev->mono_ns) / 1e9;
	out->interval_s = dt;
	if ((r = cpu_rates(prev, cur, out)) ||
	    (r = disk_rates(prev, cur, dt, out)) ||
	    (r = net_rates(prev, cur, dt, out)) ||
	    (r = proc_rates(prev, cur, dt, out))) {
		host_rates_free(out);
		return r;
	}
	return 0;
}

/* --- emission ------------------------------------------------------------- */

struct em {
	host_emit_cb cb;
	void *ud;
};

static void gauge(struct em *e, const char *name, const char *help,
		  const struct metrics_label *l, size_t nl, double v)
{
	struct host_metric m = {
		.name = name,
		.help = help,
		.type = METRICS_GAUGE,
		.labels = l,
		.nlabels = nl,
		.value = v,
	};

	e->cb(e->ud, &m);
}

static void counter(struct em *e, const char *name, const char *help,
		    const struct metrics_label *l, size_t nl, uint64_t n,
		    unsigned decimals)
{
	struct host_metric m = {
		.name = name,
		.help = help,
		.type = METRICS_COUNTER,
		.labels = l,
		.nlabels = nl,
		.count = n,
		.decimals = decimals,
	};

	e->cb(e->ud, &m);
}

/* Seconds as a counter of milliseconds shown with 3 decimals. */
static void seconds(struct em *e, const char *name, const char *help,
		    const struct metrics_label *l, size_t nl, double s)
{
	counter(e, name, help, l, nl, (uint64_t)(s * 1000 + 0.5), 3);
}

static const char *const modes[8] = {"user",   "nice", "system",  "idle",
				     "iowait", "irq",  "softirq", "steal"};

static void emit_cpu(struct em *e, const struct host_sample *s,
		     const struct host_rates *r)
{
	struct metrics_label l[2] = {{"cpu", NULL}, {"mode", NULL}};
	char id[16];

	if (!(s->have & HOST_HAVE_CPU))
		return;
	gauge(e, "storekeep_host_cpus",
	      "Number of CPUs (cores) the kernel reports.", NULL, 0,
	      (double)(s->ncpu - 1));
	for (size_t i = 1; i < s->ncpu; i++) {
		const struct host_cpu *c = &s->cpu[i];
		const double v[8] = {c->user,	c->nice, c->system,  c->idle,
				     c->iowait, c->irq,	 c->softirq, c->steal};

		snprintf(id, sizeof(id), "%d", c->id);
		l[0].value = id;
		for (int k = 0; k < 8; k++) {
			l[1].value = modes[k];
			seconds(e, "storekeep_host_cpu_seconds_total",
				"Time each CPU spent in each mode since boot.",
				l, 2, v[k]);
		}
	}
	for (size_t i = 0; r && i < r->ncpu; i++) {
		const struct host_cpu_ratio *c = &r->cpu[i];
		const double v[8] = {c->user,	c->nice, c->system,  c->idle,
				     c->iowait, c->irq,	 c->softirq, c->steal};

		if (c->id < 0)
			snprintf(id, sizeof(id), "all");
		else
			snprintf(id, sizeof(id), "%d", c->id);
		l[0].value = id;
		for (int k = 0; k < 8; k++) {
			l[1].value = modes[k];
			gauge(e, "storekeep_host_cpu_ratio",
			      "Share of the last sampling interval a CPU spent "
			      "in each mode (cpu=\"all\": the whole host).",
			      l, 2, v[k]);
		}
	}
}

static void emit_load_mem(struct em *e, const struct host_sample *s)
{
	if (s->have & HOST_HAVE_LOAD) {
		gauge(e, "storekeep_host_load1", "Load average over 1 minute.",
		      NULL, 0, s->load1);
		gauge(e, "storekeep_host_load5", "Load average over 5 minutes.",
		      NULL, 0, s->load5);
		gauge(e, "storekeep_host_load15",
		      "Load average over 15 minutes.", NULL, 0, s->load15);
		gauge(e, "storekeep_host_tasks_running",
		      "Threads runnable right now.", NULL, 0,
		      (double)s->tasks_running);
		gauge(e, "storekeep_host_tasks", "Threads in the system.", NULL,
		      0, (double)s->tasks);
	}
	if (s->have & HOST_HAVE_MEM) {
		gauge(e, "storekeep_host_memory_total_bytes", "Usable RAM.",
		      NULL, 0, (double)s->mem_total);
		gauge(e, "storekeep_host_memory_free_bytes",
		      "RAM not used for anything.", NULL, 0,
		      (double)s->mem_free);
		gauge(e, "storekeep_host_memory_available_bytes",
		      "RAM available to start new work without swapping "
		      "(MemAvailable).",
		      NULL, 0, (double)s->mem_available);
		gauge(e, "storekeep_host_memory_buffers_bytes",
		      "RAM in block device buffers.", NULL, 0,
		      (double)s->mem_buffers);
		gauge(e, "storekeep_host_memory_cached_bytes",
		      "RAM in the page cache.", NULL, 0, (double)s->mem_cached);
		gauge(e, "storekeep_host_memory_used_ratio",
		      "1 - available / total.", NULL, 0,
		      s->mem_total ? clamp01(1 - (double)s->mem_available /
							 (double)s->mem_total)
				   : 0);
	}
	if (s->have & HOST_HAVE_SWAP) {
		gauge(e, "storekeep_host_swap_total_bytes", "Swap space.", NULL,
		      0, (double)s->swap_total);
		gauge(e, "storekeep_host_swap_free_bytes", "Unused swap space.",
		      NULL, 0, (double)s->swap_free);
		gauge(e, "storekeep_host_swap_used_ratio",
		      "1 - free / total; 0 without swap.", NULL, 0,
		      s->swap_total ? clamp01(1 - (double)s->swap_free /
							  (double)s->swap_total)
				    : 0);
	}
}

static void emit_fs(struct em *e, const struct host_sample *s)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} u[] = {
		{"storekeep_host_filesystem_size_bytes",
		 "Size of the filesystem.",
		 offsetof(struct host_fs, size_bytes)},
		{"storekeep_host_filesystem_free_bytes",
		 "Free space, the part reserved for root included.",
		 offsetof(struct host_fs, free_bytes)},
		{"storekeep_host_filesystem_avail_bytes",
		 "Free space available to unprivileged users.",
		 offsetof(struct host_fs, avail_bytes)},
		{"storekeep_host_filesystem_files", "Inodes in the filesystem.",
		 offsetof(struct host_fs, files)},
		{"storekeep_host_filesystem_files_free", "Free inodes.",
		 offsetof(struct host_fs, files_free)},
	};
	struct metrics_label l[3] = {
		{"device", NULL}, {"fstype", NULL}, {"mount", NULL}};

	for (size_t k = 0; k < sizeof(u) / sizeof(u[0]); k++) {
		for (size_t i = 0; i < s->nfs; i++) {
			const struct host_fs *f = &s->fs[i];

			l[0].value = f->device;
			l[1].value = f->fstype;
			l[2].value = f->mount;
			gauge(e, u[k].name, u[k].help, l, 3,
			      (double)*(const uint64_t *)((const char *)f +
							  u[k].off));
		}
	}
	for (size_t i = 0; i < s->nfs; i++) {
		const struct host_fs *f = &s->fs[i];
		uint64_t used = f->size_bytes - f->free_bytes;

		l[0].value = f->device;
		l[1].value = f->fstype;
		l[2].value = f->mount;
		/* As df's Use%: used over what users could have. */
		gauge(e, "storekeep_host_filesystem_used_ratio",
		      "Used space over used plus available space (df's Use%).",
		      l, 3,
		      used + f->avail_bytes
			      ? clamp01((double)used /
					(double)(used + f->avail_bytes))
			      : 0);
	}
	for (size_t i = 0; i < s->nfs; i++) {
		const struct host_fs *f = &s->fs[i];

		if (!f->files)
			continue;
		l[0].value = f->device;
		l[1].value = f->fstype;
		l[2].value = f->mount;
		gauge(e, "storekeep_host_filesystem_files_used_ratio",
		      "Used inodes over all inodes (absent where inodes are "
		      "not fixed).",
		      l, 3,
		      clamp01(1 - (double)f->files_free / (double)f->files));
	}
	for (size_t i = 0; i < s->nfs; i++) {
		const struct host_fs *f = &s->fs[i];

		l[0].value = f->device;
		l[1].value = f->fstype;
		l[2].value = f->mount;
		gauge(e, "storekeep_host_filesystem_readonly",
		      "1 when the filesystem is mounted read-only.", l, 3,
		      f->readonly ? 1 : 0);
	}
}

static void emit_disk(struct em *e, const struct host_sample *s,
		      const struct host_rates *r)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} u[] =
		{
			{"storekeep_host_disk_reads_total", "Reads completed.",
			 offsetof(struct host_disk, reads)},
			{"storekeep_host_disk_writes_total",
			 "Writes completed.",
			 offsetof(struct host_disk, writes)},
			{"storekeep_host_disk_read_bytes_total", "Bytes read.",
			 offsetof(struct host_disk, read_bytes)},
			{"storekeep_host_disk_written_bytes_total",
			 "Bytes written.",
			 offsetof(struct host_disk, written_bytes)},
		},
	  d[] = {
		  {"storekeep_host_disk_read_seconds_total",
		   "Time spent by all reads (overlapping reads add up).",
		   offsetof(struct host_disk, read_seconds)},
		  {"storekeep_host_disk_write_seconds_total",
		   "Time spent by all writes (overlapping writes add up).",
		   offsetof(struct host_disk, write_seconds)},
		  {"storekeep_host_disk_io_seconds_total",
		   "Time during which the device had I/O in flight.",
		   offsetof(struct host_disk, busy_seconds)},
	  };
	struct metrics_label l = {"device", NULL};

	for (size_t k = 0; k < sizeof(u) / sizeof(u[0]); k++)
		for (size_t i = 0; i < s->ndisk; i++) {
			l.value = s->disk[i].name;
			counter(e, u[k].name, u[k].help, &l, 1,
				*(const uint64_t *)((const char *)&s->disk[i] +
						    u[k].off),
				0);
		}
	for (size_t k = 0; k < sizeof(d) / sizeof(d[0]); k++)
		for (size_t i = 0; i < s->ndisk; i++) {
			l.value = s->disk[i].name;
			seconds(e, d[k].name, d[k].help, &l, 1,
				*(const double *)((const char *)&s->disk[i] +
						  d[k].off));
		}
	for (size_t i = 0; i < s->ndisk; i++) {
		l.value = s->disk[i].name;
		gauge(e, "storekeep_host_disk_io_in_progress",
		      "I/O requests in flight now.", &l, 1,
		      (double)s->disk[i].in_progress);
	}
	for (size_t i = 0; r && i < r->ndisk; i++) {
		l.value = r->disk[i].name;
		gauge(e, "storekeep_host_disk_busy_ratio",
		      "Share of the last sampling interval with I/O in flight.",
		      &l, 1, r->disk[i].busy_ratio);
	}
}

static void emit_net(struct em *e, const struct host_sample *s)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} u[] = {
		{"storekeep_host_network_receive_bytes_total",
		 "Bytes received.", offsetof(struct host_net, rx_bytes)},
		{"storekeep_host_network_receive_packets_total",
		 "Packets received.", offsetof(struct host_net, rx_packets)},
		{"storekeep_host_network_receive_errors_total",
		 "Receive errors.", offsetof(struct host_net, rx_errors)},
		{"storekeep_host_network_receive_drops_total",
		 "Received packets dropped.",
		 offsetof(struct host_net, rx_drops)},
		{"storekeep_host_network_transmit_bytes_total", "Bytes sent.",
		 offsetof(struct host_net, tx_bytes)},
		{"storekeep_host_network_transmit_packets_total",
		 "Packets sent.", offsetof(struct host_net, tx_packets)},
		{"storekeep_host_network_transmit_errors_total",
		 "Transmit errors.", offsetof(struct host_net, tx_errors)},
		{"storekeep_host_network_transmit_drops_total",
		 "Packets dropped on sending.",
		 offsetof(struct host_net, tx_drops)},
	};
	struct metrics_label l = {"interface", NULL};

	for (size_t k = 0; k < sizeof(u) / sizeof(u[0]); k++)
		for (size_t i = 0; i < s->nnet; i++) {
			l.value = s->net[i].name;
			counter(e, u[k].name, u[k].help, &l, 1,
				*(const uint64_t *)((const char *)&s->net[i] +
						    u[k].off),
				0);
		}
}

/* The per-process gauges that come straight from a sample. */
static const struct {
	const char *name, *help;
} proc_gauges[] = {
	{"storekeep_host_process_resident_memory_bytes", "Resident set size."},
	{"storekeep_host_process_virtual_memory_bytes", "Virtual memory size."},
	{"storekeep_host_process_threads", "Threads of the process."},
	{"storekeep_host_process_open_fds",
	 "File descriptors the process has open."},
	{"storekeep_host_process_max_fds",
	 "Soft limit on the process's open file descriptors."},
	{"storekeep_host_process_start_time_seconds",
	 "Start time of the process, Unix seconds."},
};

/* Value k of proc_gauges for p; false when p does not have it. */
static bool proc_gauge(const struct host_proc *p, size_t k, double *v)
{
	if (!p->alive)
		return false;
	switch (k) {
	case 0:
		*v = (double)p->rss_bytes;
		return true;
	case 1:
		*v = (double)p->vm_bytes;
		return true;
	case 2:
		*v = (double)p->threads;
		return true;
	case 3:
		*v = (double)p->open_fds;
		return p->open_fds >= 0;
	case 4:
		*v = (double)p->max_fds;
		return p->max_fds >= 0;
	default:
		*v = p->start_time_seconds;
		return p->start_time_seconds > 0;
	}
}

static void emit_procs(struct em *e, const struct host_sample *s,
		       const struct host_rates *r)
{
	struct metrics_label l = {"process", NULL};
	double v;

	if (s->have & HOST_HAVE_FD) {
		gauge(e, "storekeep_host_file_descriptors_allocated",
		      "File handles allocated in the whole system.", NULL, 0,
		      (double)s->fd_allocated);
		gauge(e, "storekeep_host_file_descriptors_max",
		      "Maximum of file handles in the whole system.", NULL, 0,
		      (double)s->fd_max);
	}
	for (size_t i = 0; i < s->nproc; i++) {
		l.value = s->proc[i].name;
		gauge(e, "storekeep_host_process_up",
		      "1 when the watched process exists, 0 when it does not.",
		      &l, 1, s->proc[i].alive ? 1 : 0);
	}
	for (size_t i = 0; i < s->nproc; i++) {
		if (!s->proc[i].alive)
			continue;
		l.value = s->proc[i].name;
		seconds(e, "storekeep_host_process_cpu_seconds_total",
			"CPU time (user and system) of the process.", &l, 1,
			s->proc[i].cpu_seconds);
	}
	for (size_t i = 0; r && i < r->nproc; i++) {
		l.value = r->proc[i].name;
		gauge(e, "storekeep_host_process_cpu_ratio",
		      "CPU seconds per second over the last sampling interval "
		      "(2 = two cores busy).",
		      &l, 1, r->proc[i].cpu_ratio);
	}
	for (size_t k = 0; k < sizeof(proc_gauges) / sizeof(proc_gauges[0]);
	     k++) {
		for (size_t i = 0; i < s->nproc; i++) {
			if (!proc_gauge(&s->proc[i], k, &v))
				continue;
			l.value = s->proc[i].name;
			gauge(e, proc_gauges[k].name, proc_gauges[k].help, &l,
			      1, v);
		}
	}
}

void host_emit(const struct host_sample *cur, const struct host_rates *rates,
	       host_emit_cb cb, void *ud)
{
	struct em e = {cb, ud};

	emit_cpu(&e, cur, rates);
	emit_load_mem(&e, cur);
	emit_fs(&e, cur);
	emit_disk(&e, cur, rates);
	emit_net(&e, cur);
	emit_procs(&e, cur, rates);
}

/* --- writers -------------------------------------------------------------- */

struct text {
	struct buf *o;
	const char *last; /* name of the family being written */
};

static void text_cb(void *ud, const struct host_metric *m)
{
	struct text *t = ud;

	if (!t->last || strcmp(t->last, m->name) != 0) {
		prom_head(t->o, m->name,
			  m->type == METRICS_COUNTER ? "counter" : "gauge",
			  m->help);
		t->last = m->name;
	}
	buf_appends(t->o, m->name);
	if (m->nlabels) {
		buf_appendc(t->o, '{');
		for (size_t i = 0; i < m->nlabels; i++) {
			if (i)
				buf_appendc(t->o, ',');
			buf_appends(t->o, m->labels[i].name);
			buf_appends(t->o, "=\"");
			prom_label_value(t->o, m->labels[i].value);
			buf_appendc(t->o, '"');
		}
		buf_appendc(t->o, '}');
	}
	buf_appendc(t->o, ' ');
	if (m->type == METRICS_COUNTER)
		prom_decimal(t->o, m->count, m->decimals);
	else
		prom_double(t->o, m->value);
	buf_appendc(t->o, '\n');
}

void host_write_prometheus(const struct host_sample *cur,
			   const struct host_rates *rates, struct buf *out)
{
	struct text t = {out, NULL};

	host_emit(cur, rates, text_cb, &t);
}

struct reg {
	struct metrics *m;
	unsigned shard;
	int err;
};

static void reg_cb(void *ud, const struct host_metric *hm)
{
	struct reg *g = ud;
	struct metrics_desc d = {
		.name = hm->name,
		.help = hm->help,
		.labels = hm->labels,
		.nlabels = hm->nlabels,
		.decimals = hm->decimals,
	};
	int r;

	if (hm->type == METRICS_COUNTER) {
		struct metrics_counter h;

		if (!(r = metrics_counter_reg(g->m, &d, &h)))
			metrics_counter_set(g->m, g->shard, h, hm->count);
	} else {
		struct metrics_gauge h;

		if (!(r = metrics_gauge_reg(g->m, &d, &h)))
			metrics_gauge_set(g->m, g->shard, h, hm->value);
	}
	if (r && !g->err)
		g->err = r;
}

int host_write_metrics(const struct host_sample *cur,
		       const struct host_rates *rates, struct metrics *m,
		       unsigned shard)
{
	struct reg g = {m, shard, 0};

	if (shard >= metrics_shards(m))
		return -EINVAL;
	host_emit(cur, rates, reg_cb, &g);
	return g.err;
}
