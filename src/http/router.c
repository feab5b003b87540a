/*
 * router.c - matching requests against the route table (see router.h).
 *
 * Owns nothing but the match's copy of the path. A match walks the pattern
 * and the path segment by segment; no allocation happens per route, only
 * one copy of the path per request, cut in place at the '/' separators so
 * that parameter values are NUL-terminated strings.
 */
#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "http/router.h"

/* Length of the segment starting at s (up to '/' or the end). */
static size_t
seg_len(const char *s)
{
	return strcspn(s, "/");
}

static int
is_param(const char *seg, size_t len)
{
	return len >= 2 && seg[0] == '{' && seg[len - 1] == '}';
}

/* Does path match pattern? On success records the parameters in m
 * (values as offsets into path, cut later). */
static int
pattern_match(const char *pattern, const char *path, struct fm_route_match *m,
    size_t *offs)
{
	const char *p = pattern, *q = path;

	m->nparams = 0;
	while (*p == '/' && *q == '/') {
		size_t pl = seg_len(++p), ql = seg_len(++q);

		if (is_param(p, pl)) {
			if (ql == 0 || m->nparams == FM_ROUTE_MAX_PARAMS)
				return 0;
			m->names[m->nparams] = p + 1;
			m->name_lens[m->nparams] = pl - 2;
			offs[m->nparams++] = (size_t)(q - path);
		} else if (pl != ql || memcmp(p, q, pl) != 0) {
			return 0;
		}
		p += pl;
		q += ql;
	}
	return *p == '\0' && *q == '\0';
}

static int
method_matches(const char *route_method, const char *method)
{
	if (strcmp(route_method, method) == 0)
		return 1;
	return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

static void
allow_add(char *allow, const char *method)
{
	size_t len = strlen(allow), add = strlen(method);

	if (strstr(allow, method) != NULL)
		return;
	if (len + add + 3 > FM_ROUTE_ALLOW_LEN)
		return;
	if (len > 0) {
		memcpy(allow + len, ", ", 2);
		len += 2;
	}
	memcpy(allow + len, method, add + 1);
}

/* Cut the path copy at each parameter's end and point values at them. */
static void
bind_params(struct fm_route_match *m, const size_t *offs)
{
	for (size_t i = 0; i < m->nparams; i++) {
		char *v = m->path + offs[i];

		v[seg_len(v)] = '\0';
		m->values[i] = v;
	}
}

enum fm_route_status
fm_router_match(const struct fm_route *routes, size_t n, const char *method,
    const char *path, struct fm_route_match *m)
{
	size_t offs[FM_ROUTE_MAX_PARAMS];
	int path_seen = 0;

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		if (!pattern_match(routes[i].pattern, path, m, offs))
			continue;
		if (method_matches(routes[i].method, method)) {
			m->route = &routes[i];
			m->path = xstrdup(path);
			bind_params(m, offs);
			return FM_ROUTE_FOUND;
		}
		path_seen = 1;
		allow_add(m->allow, routes[i].method);
		if (strcmp(routes[i].method, "GET") == 0)
			allow_add(m->allow, "HEAD");
	}
	m->nparams = 0;
	return path_seen ? FM_ROUTE_BAD_METHOD : FM_ROUTE_NOT_FOUND;
}

const char *
fm_route_param(const struct fm_route_match *m, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < m->nparams; i++)
		if (m->name_lens[i] == len &&
		    memcmp(m->names[i], name, len) == 0)
			return m->values[i];
	return NULL;
}

void
fm_route_match_free(struct fm_route_match *m)
{
	free(m->path);
	m->path = NULL;
}
