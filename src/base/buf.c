/*
 * buf.c - growable byte buffer (see buf.h). Invariant: cap == 0, or
 * len < cap and data[len] == '\0'.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"

void
fm_buf_reserve(struct fm_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;

	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	/* Only a first allocation is terminated here: callers may have
	 * written past len into reserved room they are about to claim. */
	if (b->cap == 0)
		b->data = xcalloc(1, cap);
	else
		b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void
fm_buf_add(struct fm_buf *b, const void *p, size_t n)
{
	fm_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
fm_buf_addc(struct fm_buf *b, char c)
{
	fm_buf_add(b, &c, 1);
}

void
fm_buf_adds(struct fm_buf *b, const char *s)
{
	fm_buf_add(b, s, strlen(s));
}

void
fm_buf_printf(struct fm_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	fm_buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
fm_buf_reset(struct fm_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *
fm_buf_steal(struct fm_buf *b, size_t *len)
{
	char *p;

	fm_buf_reserve(b, 0);
	p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void
fm_buf_free(struct fm_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
