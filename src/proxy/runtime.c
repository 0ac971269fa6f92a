/*
 * runtime.c - config snapshots turned into live pools, backends and
 * per-worker views, and the shared health state of a backend.
 *
 * A backend is identified by (pool, name, address). A reload that keeps
 * that triple keeps the backend object, so its health, ejection, drain
 * and counters carry on; weight and max_conns are read from the config of
 * the view, so changing them needs no new object. A backend the new file
 * drops stays alive until the last view and request that use it are
 * gone.
 *
 * Eligibility is computed where a backend is picked, from atomics: up
 * (active checks), not drained (admin), not ejected (passive). Slow start
 * scales the weight by the time since the backend became eligible again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "proxy/proxy_int.h"

static struct backend *backend_new(const char *pool,
				   const struct cfg_backend *cb, size_t nworkers,
				   int health_enabled)
{
	struct backend *b = calloc(1, sizeof(*b));
	char id[256];
	int n;

	SK_ASSERT(b != NULL);
	atomic_init(&b->refs, 1);
	b->pool = strdup(pool);
	b->name = strdup(cb->name);
	b->addr = cb->addr;
	b->addr.text = strdup(cb->addr.text);
	SK_ASSERT(b->pool && b->name && b->addr.text);
	n = snprintf(id, sizeof(id), "%s/%s", pool, cb->name);
	b->id_hash = balance_hash(id, (size_t)n < sizeof(id) ? (size_t)n
							       : sizeof(id) - 1);
	atomic_init(&b->up, 1);
	b->nworkers = nworkers;
	if (posix_memalign((void **)&b->ws, 64, nworkers * sizeof(*b->ws)) != 0)
		SK_ASSERT(!"out of memory");
	memset(b->ws, 0, nworkers * sizeof(*b->ws));
	pthread_mutex_init(&b->last_lock, NULL);
	snprintf(b->last_check, sizeof(b->last_check), "%s",
		 health_enabled ? "pending" : "disabled");
	return b;
}

void backend_unref(struct backend *b)
{
	if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	SK_ASSERT(b->hc == NULL);
	pthread_mutex_destroy(&b->last_lock);
	free(b->ws);
	free(b->pool);
	free(b->name);
	free(b->addr.text);
	free(b);
}

static int same_backend(const struct backend *b, const char *pool,
			const struct cfg_backend *cb)
{
	return strcmp(b->pool, pool) == 0 && strcmp(b->name, cb->name) == 0 &&
	       b->addr.salen == cb->addr.salen &&
	       memcmp(&b->addr.sa, &cb->addr.sa, cb->addr.salen) == 0;
}

/* Registers the per-route series. Registering again (a reload) returns the
 * same handles; series of routes a reload dropped keep their last values. */
static void register_route(struct metrics *reg, struct rmetrics *m,
			   const char *route, const char *pool)
{
	static const char *const cls[6] = {"other", "1xx", "2xx",
					   "3xx",   "4xx", "5xx"};
	struct metrics_label l[3] = {{"route", route}, {"pool", pool}, {NULL, NULL}};
	struct metrics_desc d = {
		.name = "storekeep_http_request_duration_seconds",
		.help = "Time from a request's first byte to the end of its "
			"response, by route.",
		.labels = l,
		.nlabels = 2,
		.decimals = METRICS_US_TO_S,
	};

	memset(m, 0, sizeof(*m));
	if (reg == NULL)
		return;
	(void)metrics_hist_reg(reg, &d, &m->duration);
	d.name = "storekeep_route_responses_total";
	d.help = "Responses sent to clients, by route and status class.";
	d.nlabels = 3;
	d.decimals = 0;
	l[2].name = "class";
	for (int k = 0; k < 6; k++) {
		l[2].value = cls[k];
		(void)metrics_counter_reg(reg, &d, &m->responses[k]);
	}
}

struct runtime *runtime_new(struct config *cfg, struct runtime *prev,
			    size_t nworkers, struct metrics *reg)
{
	struct runtime *rt = calloc(1, sizeof(*rt));

	SK_ASSERT(rt != NULL);
	atomic_init(&rt->refs, 1);
	rt->cfg = config_ref(cfg);
	rt->request_metrics = cfg->monitor.request_metrics;
	rt->npools = cfg->npools;
	rt->pools = calloc(rt->npools, sizeof(*rt->pools));
	SK_ASSERT(rt->pools != NULL);
	for (size_t i = 0; i < rt->npools; i++) {
		const struct cfg_pool *cp = &cfg->pools[i];
		struct rpool *rp = &rt->pools[i];

		rp->cfg = cp;
		rp->n = cp->nbackends;
		rp->bs = calloc(rp->n, sizeof(*rp->bs));
		SK_ASSERT(rp->bs != NULL);
		for (size_t k = 0; k < rp->n; k++) {
			struct backend *found = NULL;

			for (size_t pi = 0; prev && !found && pi < prev->npools; pi++)
				for (size_t pk = 0; pk < prev->pools[pi].n; pk++)
					if (same_backend(prev->pools[pi].bs[pk],
							 cp->name,
							 &cp->backends[k])) {
						found = prev->pools[pi].bs[pk];
						break;
					}
			if (found) {
				atomic_fetch_add(&found->refs, 1);
				rp->bs[k] = found;
			} else {
				rp->bs[k] = backend_new(cp->name, &cp->backends[k],
							nworkers,
							cp->health.enabled);
			}
			/* With checks off a backend is up by definition. */
			if (!cp->health.enabled)
				atomic_store(&rp->bs[k]->up, 1);
		}
	}
	rt->route_m = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*rt->route_m));
	SK_ASSERT(rt->route_m != NULL);
	if (cfg->nroutes == 0)
		register_route(reg, &rt->route_m[0], "default", cfg->pools[0].name);
	for (size_t i = 0; i < cfg->nroutes; i++)
		register_route(reg, &rt->route_m[i], cfg->routes[i].name,
			       cfg->routes[i].pool);
	return rt;
}

void runtime_ref(struct runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
}

void runtime_unref(struct runtime *rt)
{
	if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
		return;
	for (size_t i = 0; i < rt->npools; i++) {
		for (size_t k = 0; k < rt->pools[i].n; k++)
			backend_unref(rt->pools[i].bs[k]);
		free(rt->pools[i].bs);
	}
	free(rt->pools);
	free(rt->route_m);
	config_unref(rt->cfg);
	free(rt);
}

/* --- worker views --------------------------------------------------------- */

struct wview *wview_new(struct worker *w, struct runtime *rt)
{
	struct wview *v = calloc(1, sizeof(*v));

	SK_ASSERT(v != NULL);
	v->refs = 1;
	v->w = w;
	v->rt = rt; /* takes the caller's reference */
	v->npools = rt->npools;
	v->pools = calloc(v->npools, sizeof(*v->pools));
	SK_ASSERT(v->pools != NULL);
	for (size_t i = 0; i < v->npools; i++) {
		struct wpool *wp = &v->pools[i];
		const struct rpool *rp = &rt->pools[i];

		wp->cfg = rp->cfg;
		wp->view = v;
		wp->n = rp->n;
		wp->wbs = calloc(wp->n, sizeof(*wp->wbs));
		wp->nodes = calloc(wp->n, sizeof(*wp->nodes));
		SK_ASSERT(wp->wbs != NULL && wp->nodes != NULL);
		balance_state_init(&wp->bst, (uint64_t)(w->id + 1) * 0x9e3779b97f4a7c15ull ^
						     clock_mono_ns());
		for (size_t k = 0; k < wp->n; k++) {
			struct wbackend *wb = &wp->wbs[k];

			wb->b = rp->bs[k];
			wb->cfg = &rp->cfg->backends[k];
			wb->wp = wp;
			wb->st = &wb->b->ws[w->id];
			wb->max_conns = wb->cfg->max_conns ? wb->cfg->max_conns
							   : rp->cfg->max_conns;
			wp->nodes[k].id_hash = wb->b->id_hash;
		}
	}
	return v;
}

void wview_unref(struct wview *v)
{
	if (v == NULL || --v->refs > 0)
		return;
	upstream_close_idle_view(v);
	for (size_t i = 0; i < v->npools; i++) {
		SK_ASSERT(v->pools[i].qlen == 0);
		free(v->pools[i].wbs);
		free(v->pools[i].nodes);
	}
	free(v->pools);
	runtime_unref(v->rt);
	free(v);
}

void worker_reload(struct worker *w)
{
	struct runtime *rt = proxy_runtime_get(w->proxy);
	struct wview *old = w->view, *nv;

	if (old && old->rt == rt) {
		runtime_unref(rt);
		return;
	}
	nv = wview_new(w, rt);
	/* Keep what an unchanged backend had: idle connections, balancing
	 * position and latency estimate. */
	for (size_t i = 0; old && i < nv->npools; i++) {
		struct wpool *np = &nv->pools[i];

		for (size_t k = 0; k < np->n; k++) {
			struct wbackend *nb = &np->wbs[k];

			for (size_t oi = 0; oi < old->npools; oi++) {
				struct wpool *op = &old->pools[oi];

				for (size_t ok = 0; ok < op->n; ok++) {
					struct wbackend *ob = &op->wbs[ok];

					if (ob->b != nb->b)
						continue;
					nb->idle = ob->idle;
					nb->nidle = ob->nidle;
					ob->idle = NULL;
					ob->nidle = 0;
					for (struct bconn *bc = nb->idle; bc; bc = bc->next)
						bc->wb = nb;
					nb->ewma_us = ob->ewma_us;
					nb->ewma_at_us = ob->ewma_at_us;
					np->nodes[k].cur_weight =
						op->nodes[ok].cur_weight;
				}
			}
		}
	}
	w->view = nv;
	if (old) {
		/* Queued requests stay on the old view's queue until they go
		 * or time out; they keep it alive. */
		wview_unref(old);
	}
}

/* --- eligibility and passive health --------------------------------------- */

uint32_t backend_weight(const struct backend *b, const struct cfg_pool *pool,
			const struct cfg_backend *bc, uint64_t now_ms)
{
	uint32_t w = atomic_load_explicit(&b->weight_override,
					  memory_order_relaxed);
	uint64_t since, until;

	if (!atomic_load_explicit(&b->up, memory_order_relaxed) ||
	    atomic_load_explicit(&b->drain, memory_order_relaxed))
		return 0;
	until = atomic_load_explicit(&b->eject_until_ms, memory_order_relaxed);
	if (now_ms < until)
		return 0;
	/* Weights are scaled by 16 so slow start can ramp smoothly. */
	w = (w ? w : bc->weight) * 16;
	if (pool->slow_start_ms) {
		since = atomic_load_explicit(&b->up_since_ms,
					     memory_order_relaxed);
		if (until > since)
			since = until;
		if (since && now_ms < since + pool->slow_start_ms) {
			uint64_t part = (uint64_t)w * (now_ms - since) /
					pool->slow_start_ms;

			w = part < 1 ? 1 : (uint32_t)part;
		}
	}
	return w;
}

void backend_failure(struct backend *b, const struct cfg_pool *pool,
		     uint64_t now_ms)
{
	uint32_t streak = atomic_fetch_add(&b->fail_streak, 1) + 1;
	uint32_t n;
	uint64_t ms;

	if (pool->passive.failures == 0 || streak < pool->passive.failures)
		return;
	if (now_ms < atomic_load(&b->eject_until_ms))
		return; /* already out */
	atomic_store(&b->fail_streak, 0);
	n = atomic_fetch_add(&b->eject_count, 1);
	ms = pool->passive.eject_ms;
	while (n-- > 0 && ms < pool->passive.max_eject_ms)
		ms *= 2;
	if (ms > pool->passive.max_eject_ms)
		ms = pool->passive.max_eject_ms;
	atomic_store(&b->eject_until_ms, now_ms + ms);
	counter_add(&b->ejections, 1);
	log_warn("backend ejected", "pool=%s backend=%s failures=%u eject_ms=%llu",
		 b->pool, b->name, streak, (unsigned long long)ms);
}

void backend_success(struct backend *b)
{
	if (atomic_load_explicit(&b->fail_streak, memory_order_relaxed))
		atomic_store_explicit(&b->fail_streak, 0, memory_order_relaxed);
	if (atomic_load_explicit(&b->eject_count, memory_order_relaxed))
		atomic_store_explicit(&b->eject_count, 0, memory_order_relaxed);
}
