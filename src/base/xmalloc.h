/*
 * xmalloc.h - allocation that never returns NULL.
 *
 * A broker that cannot allocate a few bytes cannot keep its promises
 * either; it aborts with a message instead of spreading NULL checks over
 * every caller. Memory growth is bounded by design elsewhere (caps on
 * bodies, batches, send queues), not by recovering from malloc failure.
 */
#ifndef FM_BASE_XMALLOC_H
#define FM_BASE_XMALLOC_H

#include <stddef.h>

/* All return new memory owned by the caller (free with free()). */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
int xasprintf(char **ret, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
