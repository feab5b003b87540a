/*
 * static.c - serving the web console's files from the web root.
 *
 * Owns nothing across requests. Only plain files directly under the root
 * whose names are made of [A-Za-z0-9._-] and do not start with '.' are
 * served, so no path can leave the root ('..', '/', encoded or not) and
 * no hidden file is exposed; symlinks are not followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "http/http.h"
#include "http/reply.h"

#define STATIC_MAX (4 * 1024 * 1024) /* bytes: console files are small */

static const struct {
	const char *ext;
	const char *ctype;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".yaml", "text/yaml; charset=utf-8"},
};

static const char *
content_type(const char *name)
{
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]);
	     i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].ctype;
	return "application/octet-stream";
}

static int
safe_name(const char *name)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyz"
	                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

	return name[0] != '\0' && name[0] != '.' &&
	    name[strspn(name, ok)] == '\0';
}

/* Read the regular file at fd (at most STATIC_MAX bytes) into out. */
static int
read_file(int fd, struct fm_buf *out)
{
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > STATIC_MAX)
		return -FM_E_NOT_FOUND;
	fm_buf_reserve(out, (size_t)st.st_size);
	while ((n = read(fd, out->data + out->len,
	            (size_t)st.st_size - out->len)) > 0)
		out->len += (size_t)n;
	out->data[out->len] = '\0';
	return n < 0 ? fm_err_from_errno(errno) : 0;
}

int
fm_h_static(struct fm_req *r)
{
	const char *name = fm_req_param(r, "file");
	char *path = NULL;
	int fd = -1, err = -FM_E_NOT_FOUND;

	if (name == NULL)
		name = "index.html";
	if (!safe_name(name))
		goto done;
	if (xasprintf(&path, "%s/%s", r->h->web_root, name) < 0)
		goto done;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto done;
	fm_buf_reset(&r->out);
	err = read_file(fd, &r->out);
done:
	if (fd >= 0)
		close(fd);
	free(path);
	if (err != 0) {
		fm_reply_error(r, FM_HC_NOT_FOUND, "no such file: %s", name);
		return FM_H_DONE;
	}
	r->status = MHD_HTTP_OK;
	r->ctype = content_type(name);
	return FM_H_DONE;
}
