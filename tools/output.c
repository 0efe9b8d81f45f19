/*
 * output.c: writing a command's result whole or not at all.  See output.h.
 */
#include "output.h"

#include "trace.h"
#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool same_file(const struct stat *a, const char *b)
{
	struct stat sb;
	return stat(b, &sb) == 0 && a->st_dev == sb.st_dev && a->st_ino == sb.st_ino;
}

/* A new file in the folder of `target` (so that rename() can replace it),
 * with the permissions a plain fopen() would have left: those of the file
 * it replaces (`old`, or NULL), else 0666 less the umask.  The name is
 * short, so that a target whose own name is near NAME_MAX still has one. */
static FILE *open_temporary(const char *target, const struct stat *old, char **name)
{
	const char *slash = strrchr(target, '/');
	size_t dir_len = slash ? (size_t)(slash - target) + 1 : 0;
	size_t n = dir_len + sizeof ".giltrace-XXXXXX";
	char *tmp = malloc(n);
	if (!tmp)
		return NULL;
	snprintf(tmp, n, "%.*s.giltrace-XXXXXX", (int)dir_len, target);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		free(tmp);
		return NULL;
	}
	mode_t mode = old ? old->st_mode & 0777 : 0666; /* never set-id bits */
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

/* The file itself, not truncated until output_close(): a run that fails
 * before writing leaves it as it was. */
static FILE *open_in_place(const char *target)
{
	int fd = open(target, O_WRONLY | O_CREAT | O_NOCTTY | O_CLOEXEC, 0666);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return f;
}

int output_open(struct output *o, const char *path, const char *input_path, const char *fix)
{
	*o = (struct output){ .path = path };
	if (!strcmp(path, "-")) {
		o->file = stdout;
		return 0;
	}
	struct stat st, link;
	bool exists = stat(path, &st) == 0; /* through a link, to what is written */
	if (exists && same_file(&st, input_path))
		return error("the output '%s' is the trace itself, not overwriting it: %s", path, fix), -1;
	struct stat out_st;
	if (exists && fstat(STDOUT_FILENO, &out_st) == 0 && st.st_dev == out_st.st_dev && st.st_ino == out_st.st_ino) {
		o->file = stdout; /* /dev/stdout: as '-', keeping the shell's >> */
		return 0;
	}
	struct gtr_file_header header;
	bool regular = exists && S_ISREG(st.st_mode);
	/* only a regular file is read: opening a fifo or a terminal would block */
	if (regular && trace_read_header(path, &header) == 0)
		return error("the output '%s' is a trace, not overwriting it: %s", path, fix), -1;

	bool is_link = lstat(path, &link) == 0 && S_ISLNK(link.st_mode);
	/* a regular file is replaced where it is; anything else is opened by
	 * its name */
	o->target = regular && is_link ? realpath(path, NULL) : strdup(path);
	if (!o->target)
		return error("cannot write '%s': %s", path, strerror(errno)), -1;
	/* a rename would hand someone else's file to us, split hard links, or
	 * put a file where a dangling link was */
	bool replace = exists ? regular && st.st_uid == geteuid() && st.st_nlink == 1 &&
	                                faccessat(AT_FDCWD, o->target, W_OK, AT_EACCESS) == 0
	                      : !is_link;
	if (replace)
		o->file = open_temporary(o->target, exists ? &st : NULL, &o->temporary);
	if (!o->file) {
		/* a device, fifo, shared file or dangling link; or no temporary
		 * could be made in the folder */
		o->file = open_in_place(o->target);
		o->created = o->file && !exists;
	}
	if (!o->file) {
		error("cannot write '%s': %s", path, strerror(errno));
		free(o->target);
		return -1;
	}
	return 0;
}

int output_close(struct output *o, bool failed)
{
	const char *name = o->file == stdout ? "standard output" : o->path;
	/* what is still buffered is written now, so errno names the failure
	 * (ENOSPC, EFBIG, EPIPE); a failure of an earlier write whose data
	 * stdio dropped is known only as EIO */
	errno = 0;
	int write_errno = fflush(o->file) != 0 || ferror(o->file) ? (errno ? errno : EIO) : 0;
	struct stat st;
	if (!failed && !write_errno && o->file != stdout && !o->temporary && fstat(fileno(o->file), &st) == 0 &&
	    S_ISREG(st.st_mode) && ftruncate(fileno(o->file), ftello(o->file)) != 0)
		write_errno = errno; /* in place: what the old file had beyond the result */
	if (o->file != stdout && fclose(o->file) != 0 && !write_errno)
		write_errno = errno ? errno : EIO;
	o->file = NULL;
	if (write_errno && !failed) {
		error("cannot write '%s': %s", name, strerror(write_errno));
		failed = true;
	}
	if (o->temporary) {
		if (!failed && rename(o->temporary, o->target) != 0) {
			error("cannot write '%s': %s", o->path, strerror(errno));
			failed = true;
		}
		if (failed)
			unlink(o->temporary);
		free(o->temporary);
		o->temporary = NULL;
	} else if (failed && o->created) {
		unlink(o->target);
	}
	free(o->target);
	o->target = NULL;
	return failed ? -1 : 0;
}
