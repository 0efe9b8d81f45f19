/*
 * trace-file.c: creating the trace file, and finding it again.
 *
 * Design note.  The traced program must never notice the trace, and a
 * descriptor is the one thing a program sees of a file it did not open:
 * CPython's test_subprocess lists every descriptor below RLIMIT_NOFILE in
 * a child, daemons close every descriptor from 3 up, and a program that
 * then opens its own file gets the number the trace had.  Moving the
 * descriptor high does not hide it (the scan covers the whole limit), so
 * the shim holds no descriptor at all while the program runs.  The trace
 * is written through its MAP_SHARED mapping, which needs none; the rare
 * operations that need one (growing the file, trimming it at exit, handing
 * it to `giltrace check`) open it again by its absolute name and use the
 * descriptor only if it leads to the same file (device and inode) as the
 * one created.  If the name now leads elsewhere (the program or someone
 * else renamed, replaced or removed it) the shim stops growing the trace
 * and says so in the header (GTR_FLAG_FILE_LOST); what was mapped stays
 * readable under whatever name the file has now.
 *
 * Creation never overwrites: an existing regular file gets a numbered
 * neighbour, anything else (a device, a fifo: output=/dev/full) is an
 * error.  Files are made 0600 and folders 0700 (a trace holds load
 * addresses, paths and thread names).  Folders are walked one component at
 * a time, and a symbolic link in a sticky world-writable folder (/tmp) is
 * followed only if it belongs to us or to the folder's owner, the rule of
 * the kernel's fs.protected_symlinks, so another user cannot point our
 * trace at a file of their choosing even where that sysctl is off.
 *
 * Space is reserved with real blocks before it is mapped (fallocate, or
 * zeros written where the filesystem has no fallocate), never by a sparse
 * extension: a store into a mapped page without blocks behind it is a
 * SIGBUS in the traced program.  Growth that RLIMIT_FSIZE would refuse is
 * not attempted (the kernel would send SIGXFSZ).
 *
 * A process that runs as another user than the one who asked for traces
 * (a child started with subprocess's user=, a daemon that dropped root)
 * cannot write through that user's private folders: it stays untraced,
 * silently, as it is not the process that user asked to trace.  A folder
 * that others may enter but not write (output=/var/log/x.gtr) is an error
 * with its one line, as before.
 *
 * What it cannot prevent: the program closing every descriptor in another
 * thread during the few microseconds a growth holds one (a growth happens
 * every 64 MiB of trace at most).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

#define NAME_ATTEMPTS 1000

/* "dir/name.gtr" + tag -> "dir/name.<tag>.gtr" (before the extension);
 * false if the result does not fit. */
static bool insert_tag(char *out, size_t size, const char *path, const char *tag)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	int n;
	if (!dot || dot == (slash ? slash + 1 : path))
		n = snprintf(out, size, "%s.%s", path, tag);
	else
		n = snprintf(out, size, "%.*s.%s%s", (int)(dot - path), path, tag, dot);
	return n > 0 && (size_t)n < size;
}

static void say_cannot(const char *what, const char *path, const char *why)
{
	const char *parts[] = { what, " '", path, "': ", why,
		                "; tracing is off (set output= in GILTRACE_OPTIONS to a writable path)" };
	shim_say("error", parts, 6);
}

/* Whether following the link `name` in the folder `dir` (stat `dir_st`)
 * is safe: the fs.protected_symlinks rule, applied whatever the sysctl. */
static bool link_may_be_followed(int dir, const struct stat *dir_st, const char *name)
{
	struct stat link;
	if (fstatat(dir, name, &link, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISLNK(link.st_mode))
		return true;
	bool sticky_shared = (dir_st->st_mode & S_ISVTX) && (dir_st->st_mode & S_IWOTH);
	return !sticky_shared || link.st_uid == geteuid() || link.st_uid == dir_st->st_uid;
}

/* Whether the folder is another user's private one (no access for
 * others): then this process runs as another user than the one who asked
 * for traces there (subprocess's user=, a daemon that dropped root). */
static bool private_to_another_user(int dir)
{
	struct stat st;
	return fstat(dir, &st) == 0 && st.st_uid != geteuid() && !(st.st_mode & S_IRWXO);
}

/* An error on the way to the trace: one line, unless the way goes through
 * another user's private folder (see private_to_another_user). */
static void say_cannot_unless_private(int dir, int err, const char *what, const char *path)
{
	if (!(err == EACCES && private_to_another_user(dir)))
		say_cannot(what, path, strerror(err));
}

/* Open the folder that holds `path` (absolute), making missing folders
 * 0700; -1 after an error line.  *leaf points at the file name. */
static int open_parent(const char *path, const char **leaf)
{
	char part[4096];
	const char *s = path + 1;
	int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	while (dir >= 0) {
		const char *slash = strchr(s, '/');
		if (!slash) {
			*leaf = s;
			return dir;
		}
		size_t len = (size_t)(slash - s);
		if (len == 0) { /* "//" */
			s = slash + 1;
			continue;
		}
		memcpy(part, s, len);
		part[len] = '\0';
		struct stat st;
		if (fstat(dir, &st) != 0 || !link_may_be_followed(dir, &st, part)) {
			say_cannot("cannot create trace", path,
			           "a folder on the way is another user's symbolic link in a shared sticky folder");
			close(dir);
			return -1;
		}
		if (mkdirat(dir, part, 0700) != 0 && errno != EEXIST) {
			say_cannot_unless_private(dir, errno, "cannot create the folder of trace", path);
			close(dir);
			return -1;
		}
		int next = openat(dir, part, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (next < 0)
			say_cannot_unless_private(dir, errno, "cannot open the folder of trace", path);
		close(dir);
		dir = next;
		s = slash + 1;
	}
	return -1;
}

int trace_file_create(struct trace_file *f, const char *tmpl, pid_t pid)
{
	char first[4096], candidate[4096], tag[48];
	char expanded[4096];
	bool has_pid = shim_expand_template(expanded, sizeof expanded, tmpl, pid);
	if (expanded[0] == '/') {
		snprintf(first, sizeof first, "%s", expanded);
	} else {
		/* absolute, so that the name still works after a chdir() */
		char cwd[4096];
		if (!getcwd(cwd, sizeof cwd) ||
		    (size_t)snprintf(first, sizeof first, "%s/%s", cwd, expanded) >= sizeof first) {
			say_cannot("cannot create trace", expanded, "the current folder's name is unknown or too long");
			return -1;
		}
	}
	const char *leaf;
	int dir = open_parent(first, &leaf);
	if (dir < 0)
		return -1;
	bool said = false; /* an error line was written */
	int fd = -1;
	for (int attempt = 0; attempt < NAME_ATTEMPTS && fd < 0; attempt++) {
		if (attempt == 0)
			snprintf(candidate, sizeof candidate, "%s", first);
		else {
			if (has_pid)
				snprintf(tag, sizeof tag, "%d", attempt);
			else if (attempt == 1)
				snprintf(tag, sizeof tag, "%d", (int)pid);
			else
				snprintf(tag, sizeof tag, "%d.%d", (int)pid, attempt - 1);
			if (!insert_tag(candidate, sizeof candidate, first, tag))
				break;
		}
		const char *name = candidate + (leaf - first);
		fd = openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST) {
			say_cannot_unless_private(dir, errno, "cannot create trace", candidate);
			said = true;
			break;
		}
		struct stat st;
		if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
			/* never a numbered file beside a device (/dev/full.PID) */
			say_cannot("cannot create trace", candidate, "it exists and is not a regular file");
			said = true;
			break;
		}
	}
	close(dir);
	if (fd < 0) {
		if (!said)
			say_cannot("no free trace file name near", first, "all taken");
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s", candidate);
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	return fd;
}

int trace_file_reopen(const struct trace_file *f, int flags)
{
	int fd = open(f->path, flags | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
		close(fd);
		errno = ESTALE;
		return -1;
	}
	return fd;
}

void trace_file_remove(const struct trace_file *f)
{
	int fd = trace_file_reopen(f, O_RDONLY);
	if (fd >= 0) {
		unlink(f->path);
		close(fd);
	}
}

/* Zeros for filesystems without fallocate (ext2, some FUSE and network
 * filesystems); static, so that growth never needs malloc. */
static const char zeros[64 * 1024];

int trace_file_preallocate(int fd, off_t offset, off_t len)
{
	struct rlimit fsize;
	if (getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)(offset + len) > fsize.rlim_cur)
		return EFBIG; /* the kernel would answer with SIGXFSZ */
	if (fallocate(fd, 0, offset, len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return errno;
	while (len > 0) {
		size_t n = len < (off_t)sizeof zeros ? (size_t)len : sizeof zeros;
		ssize_t w = pwrite(fd, zeros, n, offset);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : ENOSPC;
		offset += w;
		len -= w;
	}
	return 0;
}
