/*
 * route.c - which route serves a request: Host and path prefix.
 *
 * Routes are tried in the order of the file and the first match wins, as
 * in HAProxy's use_backend rules, so an operator reads the routing table
 * top to bottom. A host pattern is exact ("shop.example.com") or a suffix
 * ("*.example.com" matches "a.example.com" and "a.b.example.com", not
 * "example.com"); the comparison ignores case and the port. A path prefix
 * matches on segment boundaries: "/checkout" matches "/checkout",
 * "/checkout/pay" and "/checkout?x", not "/checkouts".
 */
#include <string.h>
#include <strings.h>

#include "proxy/proxy_int.h"

static int host_matches(const char *pat, const char *host, size_t hlen)
{
	size_t plen = strlen(pat);

	if (pat[0] == '*' && pat[1] == '.') {
		/* Needs at least one label before the suffix. */
		size_t slen = plen - 1; /* ".example.com" */

		return hlen > slen &&
		       strncasecmp(host + hlen - slen, pat + 1, slen) == 0;
	}
	return hlen == plen && strncasecmp(host, pat, plen) == 0;
}

static int path_matches(const char *prefix, const char *t, size_t tlen)
{
	size_t plen = strlen(prefix);

	if (plen == 1 && prefix[0] == '/')
		return 1;
	if (tlen < plen || memcmp(t, prefix, plen) != 0)
		return 0;
	if (prefix[plen - 1] == '/' || tlen == plen)
		return 1;
	return t[plen] == '/' || t[plen] == '?';
}

const struct cfg_route *route_match(const struct config *cfg,
				    const struct http_msg *m, const char *base,
				    int *none)
{
	const char *host = "", *t = base + m->target.off;
	size_t hlen = 0, tlen = m->target.len;

	*none = 0;
	if (cfg->nroutes == 0)
		return NULL;
	if (m->host_idx >= 0) {
		const struct http_header *h = &m->headers[m->host_idx];
		const char *colon;

		host = base + h->value.off;
		hlen = h->value.len;
		/* Strip the port; an IPv6 literal keeps its brackets. */
		colon = memrchr(host, ':', hlen);
		if (colon && (host[0] != '[' || colon > (const char *)memchr(host, ']', hlen)))
			hlen = (size_t)(colon - host);
	}
	/* An absolute-form target: match on its path. */
	if (tlen && t[0] != '/') {
		const char *p = memmem(t, tlen, "://", 3);

		if (p) {
			const char *slash = memchr(p + 3, '/', tlen - (size_t)(p + 3 - t));

			if (slash) {
				tlen -= (size_t)(slash - t);
				t = slash;
			} else {
				t = "/";
				tlen = 1;
			}
		}
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct cfg_route *r = &cfg->routes[i];
		int hit = r->nhosts == 0;

		for (size_t k = 0; !hit && k < r->nhosts; k++)
			hit = host_matches(r->hosts[k].pattern, host, hlen);
		if (hit && path_matches(r->path, t, tlen))
			return r;
	}
	*none = 1;
	return NULL;
}
