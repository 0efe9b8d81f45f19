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
#include <sys/xattr.h>
#include <unistd.h>

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The descriptor a name stands for (/dev/stdout, /dev/stderr, /dev/fd/N,
 * /proc/self/fd/N), or -1.  Such a name is written through the
 * descriptor, keeping its position and append mode (`3>>log`): opened
 * anew by name, the file would be written from its start, or replaced. */
static int descriptor_named(const char *path)
{
	if (!strcmp(path, "/dev/stdout"))
		return STDOUT_FILENO;
	if (!strcmp(path, "/dev/stderr"))
		return STDERR_FILENO;
	static const char *const prefixes[] = { "/dev/fd/", "/proc/self/fd/" };
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		size_t len = strlen(prefixes[i]);
		if (strncmp(path, prefixes[i], len) != 0 || path[len] < '0' || path[len] > '9')
			continue;
		char *end;
		errno = 0;
		long fd = strtol(path + len, &end, 10);
		return *end || errno || fd > INT_MAX ? -1 : (int)fd;
	}
	return -1;
}

/* Where the dangling symbolic link `link` points, as a path from here, or
 * NULL with errno set. */
static char *link_destination(const char *link)
{
	char dest[PATH_MAX];
	ssize_t n = readlink(link, dest, sizeof dest);
	if (n < 0)
		return NULL;
	if ((size_t)n == sizeof dest) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	dest[n] = '\0';
	const char *slash = strrchr(link, '/');
	size_t dir_len = dest[0] != '/' && slash ? (size_t)(slash - link) + 1 : 0;
	char *path = malloc(dir_len + (size_t)n + 1);
	if (path) {
		memcpy(path, link, dir_len);
		memcpy(path + dir_len, dest, (size_t)n + 1);
	}
	return path;
}

/* Whether replacing the existing regular file `target` (`st`) by a new one
 * keeps what a user would expect of writing it: the owner (a rename would
 * make it ours), the other hard links, ACLs and other extended attributes;
 * and whether we may write it at all (a rename needs only the folder). */
static bool replaceable(const char *target, const struct stat *st)
{
	return st->st_uid == geteuid() && st->st_nlink == 1 && faccessat(AT_FDCWD, target, W_OK, AT_EACCESS) == 0 &&
	       listxattr(target, NULL, 0) <= 0;
}

/* A new file in the folder of `target` (so that rename() can replace it),
 * with the permissions and group a plain fopen() would have left: those
 * of the file it replaces (`old`, or NULL), else 0666 less the umask.  The
 * name is short, so that a target whose own name is near NAME_MAX still
 * has one. */
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
	FILE *f = NULL;
	if (fchmod(fd, mode) == 0 && (!old || fchown(fd, (uid_t)-1, old->st_gid) == 0))
		f = fdopen(fd, "w");
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
	if (!path[0] || path[strlen(path) - 1] == '/')
		return print_error("'%s' is not a file name: %s", path, fix), -1;
	struct stat st, in, link;
	bool exists = stat(path, &st) == 0; /* through a link, to what is written */
	if (!exists && errno != ENOENT)
		return print_error("cannot write '%s': %s", path, strerror(errno)), -1;
	if (exists && stat(input_path, &in) == 0 && same_file(&st, &in))
		return print_error("the output '%s' is the trace itself, not overwriting it: %s", path, fix), -1;
	int fd = descriptor_named(path);
	if (fd >= 0) {
		if (fd == STDOUT_FILENO || fd == STDERR_FILENO) {
			o->file = fd == STDOUT_FILENO ? stdout : stderr;
			return 0;
		}
		int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		o->file = copy >= 0 ? fdopen(copy, "w") : NULL;
		if (!o->file) {
			int saved = errno;
			if (copy >= 0)
				close(copy);
			return print_error("cannot write '%s': %s", path, strerror(saved)), -1;
		}
		o->through_descriptor = true;
		return 0;
	}
	bool regular = exists && S_ISREG(st.st_mode);
	struct gtr_file_header header;
	/* only a regular file is read: opening a fifo or a terminal would block */
	if (regular && trace_read_header(path, &header) == 0)
		return print_error("the output '%s' is a trace, not overwriting it: %s", path, fix), -1;

	/* what is written: a link's destination for a regular file or none
	 * yet; anything else (a device, a fifo) by its name */
	bool is_link = lstat(path, &link) == 0 && S_ISLNK(link.st_mode);
	bool target_exists = exists;
	if (regular && is_link) {
		o->target = realpath(path, NULL);
	} else if (!exists && is_link) {
		o->target = link_destination(path);
		target_exists = o->target && lstat(o->target, &link) == 0; /* a chain of links */
	} else {
		o->target = strdup(path);
	}
	if (!o->target)
		return print_error("cannot write '%s': %s", path, strerror(errno)), -1;

	bool replace = regular ? replaceable(o->target, &st) : !target_exists;
	if (replace) {
		o->file = open_temporary(o->target, exists ? &st : NULL, &o->temporary);
		/* no temporary where it would have to be: the folder may not be
		 * written, or the group not kept */
		if (!o->file && errno != EACCES && errno != EPERM && errno != ENAMETOOLONG)
			goto fail;
	}
	if (!o->file) {
		o->file = open_in_place(o->target);
		o->created = !target_exists;
	}
	if (o->file)
		return 0;
fail:
	print_error("cannot write '%s': %s", path, strerror(errno));
	free(o->target);
	return -1;
}

/* Copy the file `from` into the existing `to`, in place; 0 or an errno. */
static int copy_into(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = in < 0 ? -1 : open(to, O_WRONLY | O_CLOEXEC);
	int e = in < 0 || out < 0 ? errno : 0;
	char buf[65536];
	off_t total = 0;
	ssize_t n;
	while (!e && (n = read(in, buf, sizeof buf)) != 0) {
		for (ssize_t done = 0, w; !e && n > 0 && done < n; done += w)
			if ((w = write(out, buf + done, (size_t)(n - done))) < 0)
				e = errno;
		if (n < 0)
			e = errno;
		total += n > 0 ? n : 0;
	}
	if (!e && ftruncate(out, total) != 0)
		e = errno;
	if (out >= 0 && close(out) != 0 && !e)
		e = errno;
	if (in >= 0)
		close(in);
	return e;
}

/* The whole temporary becomes the target: 0 or an errno. */
static int put_in_place(const struct output *o)
{
	if (rename(o->temporary, o->target) == 0)
		return 0;
	int e = errno;
	if (e == EBUSY || e == EXDEV) /* a file bind-mounted there: fill it */
		e = copy_into(o->temporary, o->target);
	unlink(o->temporary);
	return e;
}

int output_close(struct output *o, bool failed)
{
	bool standard = o->file == stdout || o->file == stderr;
	const char *name = o->file == stdout ? "standard output" : o->file == stderr ? "standard error" : o->path;
	/* what is still buffered is written now, so errno names the failure
	 * (ENOSPC, EFBIG, EPIPE); a failure of an earlier write whose data
	 * stdio dropped is known only as EIO */
	errno = 0;
	int write_errno = fflush(o->file) != 0 || ferror(o->file) ? (errno ? errno : EIO) : 0;
	if (!standard) {
		struct stat st;
		int fd = fileno(o->file);
		/* in place: drop what the old file had beyond the result */
		if (!failed && !write_errno && !o->temporary && !o->through_descriptor && fstat(fd, &st) == 0 &&
		    S_ISREG(st.st_mode) && ftruncate(fd, ftello(o->file)) != 0)
			write_errno = errno;
		if (fclose(o->file) != 0 && !write_errno)
			write_errno = errno ? errno : EIO;
	}
	o->file = NULL;
	if (write_errno && !failed) {
		print_error("cannot write '%s': %s", name, strerror(write_errno));
		failed = true;
	}
	if (o->temporary) {
		int e = failed ? (unlink(o->temporary), 0) : put_in_place(o);
		if (e) {
			print_error("cannot write '%s': %s", o->path, strerror(e));
			failed = true;
		}
		free(o->temporary);
		o->temporary = NULL;
	} else if (failed && o->created) {
		unlink(o->target);
	}
	free(o->target);
	o->target = NULL;
	return failed ? -1 : 0;
}
