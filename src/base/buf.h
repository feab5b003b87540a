/*
 * buf.h - a growable byte buffer.
 *
 * Owns its data; fm_buf_free releases it. Appends never fail (xmalloc).
 * data is NUL-terminated at len once allocated, so text can be used as a string.
 */
#ifndef FM_BASE_BUF_H
#define FM_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct fm_buf {
	char *data; /* owned; NUL at data[len] once allocated */
	size_t len; /* bytes in use */
	size_t cap; /* bytes allocated */
};

#define FM_BUF_INIT \
	{ \
		NULL, 0, 0 \
	}

void fm_buf_reserve(struct fm_buf *b, size_t extra);
void fm_buf_add(struct fm_buf *b, const void *p, size_t n);
void fm_buf_addc(struct fm_buf *b, char c);
void fm_buf_adds(struct fm_buf *b, const char *s);
void fm_buf_printf(struct fm_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fm_buf_reset(struct fm_buf *b);
/* Hand the data to the caller (new, free with free()); b is left empty. */
char *fm_buf_steal(struct fm_buf *b, size_t *len);
void fm_buf_free(struct fm_buf *b);

#endif
