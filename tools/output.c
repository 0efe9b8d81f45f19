/*
 * output.c: writing a command's result whole or not at all.  See output.h.
 */
#include "output.h"

#include "trace.h"
#include "usage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool same_file(const struct stat *a, const char *b)
{
	struct stat sb;
	return stat(b, &sb) == 0 && a->st_dev == sb.st_dev && a->st_ino == sb.st_ino;
}

/* A new file next to `path` (so that rename() can replace path), with the
 * permissions a plain fopen() would have left it: those of the file it
 * replaces (`old`, or NULL), else 0666 less the umask. */
static FILE *open_temporary(const char *path, const struct stat *old, char **name)
{
	size_t n = strlen(path) + sizeof ".giltrace-XXXXXX";
	char *tmp = malloc(n);
	if (!tmp)
		return NULL;
	snprintf(tmp, n, "%s.giltrace-XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		free(tmp);
		return NULL;
	}
	mode_t mode = old ? old->st_mode & 07777 : 0666;
	if (!old) {
		mode_t mask = umask(0);
		umask(mask);
		mode &= ~mask;
	}
	FILE *f = fchmod(fd, mode) == 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		int saved = errno;
		close(fd);
		unlink(tmp);
		free(tmp);
		errno = saved;
		return NULL;
	}
	*name = tmp;
	return f;
}

int output_open(struct output *o, const char *path, const char *input_path, const char *fix)
{
	*o = (struct output){ .path = path };
	if (!strcmp(path, "-")) {
		o->file = stdout;
		return 0;
	}
	struct stat st;
	bool exists = lstat(path, &st) == 0;
	if (exists && same_file(&st, input_path))
		return error("the output '%s' is the trace itself, not overwriting it: %s", path, fix), -1;
	struct gtr_file_header header;
	if (exists && trace_read_header(path, &header) == 0)
		return error("the output '%s' is a trace, not overwriting it: %s", path, fix), -1;
	if (!exists || S_ISREG(st.st_mode))
		o->file = open_temporary(path, exists ? &st : NULL, &o->temporary);
	if (!o->file && exists && (!S_ISREG(st.st_mode) || errno == EACCES || errno == EPERM))
		o->file = fopen(path, "w"); /* a device, fifo or symbolic link, or a
		                              * file in a folder we may not write: in place */
	if (!o->file)
		return error("cannot write '%s': %s", path, strerror(errno)), -1;
	return 0;
}

int output_close(struct output *o, bool failed)
{
	const char *name = o->file == stdout ? "standard output" : o->path;
	/* fflush() retries what is buffered, so errno names the failure
	 * (ENOSPC, EPIPE ...) even when an earlier write failed */
	errno = 0;
	int write_errno = fflush(o->file) != 0 || ferror(o->file) ? (errno ? errno : EIO) : 0;
	if (o->file != stdout && fclose(o->file) != 0 && !write_errno)
		write_errno = errno ? errno : EIO;
	o->file = NULL;
	if (write_errno && !failed) {
		error("cannot write '%s': %s", name, strerror(write_errno));
		failed = true;
	}
	if (o->temporary) {
		if (!failed && rename(o->temporary, o->path) != 0) {
			error("cannot write '%s': %s", o->path, strerror(errno));
			failed = true;
		}
		if (failed)
			unlink(o->temporary);
		free(o->temporary);
		o->temporary = NULL;
	}
	return failed ? -1 : 0;
}
