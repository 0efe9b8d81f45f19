/*
 * snapshot.c: reading the hang snapshot beside a trace.  See snapshot.h
 * for the format.
 *
 * The file comes from outside like the trace: its size is bounded, every
 * number is checked, every string sanitised, and what is beyond the
 * limits (threads, frames) is left out rather than refused.  A file cut
 * short (giltrace killed while writing it: it is written under a
 * temporary name and renamed, so only a copy can be cut) is read as far
 * as it goes and marked incomplete.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace.h"

/* A snapshot of 4096 threads of 128 frames each is about 10 MiB. */
#define SNAPSHOT_MAX_BYTES (32u << 20)
#define MAX_FIELDS 9

char *snapshot_path_of(const char *trace_path)
{
	size_t n = strlen(trace_path);
	char *p = malloc(n + sizeof SNAPSHOT_SUFFIX);
	if (p) {
		memcpy(p, trace_path, n);
		memcpy(p + n, SNAPSHOT_SUFFIX, sizeof SNAPSHOT_SUFFIX);
	}
	return p;
}

/* The whole file, NUL-terminated, at most SNAPSHOT_MAX_BYTES; NULL with
 * errno set (ENOENT: there is none). */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SNAPSHOT_MAX_BYTES) {
		int saved = fstat(fd, &st) != 0 ? errno : S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		close(fd);
		errno = saved;
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!buf) {
		errno = ENOMEM;
		return NULL;
	}
	buf[got] = '\0';
	*len = got;
	return buf;
}

/* Split a line at tabs, in place; returns the number of fields. */
static size_t split(char *line, char *fields[MAX_FIELDS])
{
	size_t n = 0;
	fields[n++] = line;
	for (char *s = line; *s && n < MAX_FIELDS; s++)
		if (*s == '\t') {
			*s = '\0';
			fields[n++] = s + 1;
		}
	return n;
}

static bool parse_u64(const char *text, int base, uint64_t *v)
{
	char *end;
	errno = 0;
	if (!*text || *text == '-')
		return false;
	*v = strtoull(text, &end, base);
	return !*end && !errno;
}

/* A copy of a field, sanitised; NULL for "-" (unknown) or out of memory. */
static char *field_string(const char *text, bool *oom)
{
	if (!strcmp(text, "-"))
		return NULL;
	char *copy = strdup(text);
	if (!copy)
		*oom = true;
	else
		trace_sanitize_string(copy);
	return copy;
}

static void copy_field(char *out, size_t size, const char *text)
{
	snprintf(out, size, "%s", text);
	trace_sanitize_string(out);
}

static int add_thread(struct snapshot *s, char **f, size_t n)
{
	uint64_t tid;
	if (n < 5 || !parse_u64(f[1], 10, &tid) || tid == 0 || tid > INT32_MAX)
		return 0; /* a thread we cannot name: its frames go with the previous one's skip */
	if (s->thread_count >= SNAPSHOT_MAX_THREADS)
		return 0;
	struct snapshot_thread *grown = realloc(s->threads, (s->thread_count + 1) * sizeof *grown);
	if (!grown)
		return -1;
	s->threads = grown;
	struct snapshot_thread *t = &s->threads[s->thread_count++];
	memset(t, 0, sizeof *t);
	t->tid = (int32_t)tid;
	copy_field(t->name, sizeof t->name, strcmp(f[2], "-") ? f[2] : "");
	t->state = f[3][0] >= 'A' && f[3][0] <= 'z' && !f[3][1] ? f[3][0] : '?';
	copy_field(t->wchan, sizeof t->wchan, strcmp(f[4], "-") && strcmp(f[4], "0") ? f[4] : "");
	return 1;
}

static int add_frame(struct snapshot *s, char **f, size_t n)
{
	if (!s->thread_count || n < 8)
		return 0;
	struct snapshot_thread *t = &s->threads[s->thread_count - 1];
	if (t->frame_count >= SNAPSHOT_MAX_FRAMES)
		return 0;
	struct snapshot_frame fr = { 0 };
	uint64_t line = 0;
	if (!parse_u64(f[1], 16, &fr.address))
		return 0;
	if (strcmp(f[3], "-"))
		parse_u64(f[3], 16, &fr.module_offset);
	if (strcmp(f[5], "-"))
		parse_u64(f[5], 16, &fr.function_offset);
	if (strcmp(f[7], "-") && parse_u64(f[7], 10, &line) && line <= INT32_MAX)
		fr.line = (int)line;
	bool oom = false;
	fr.module = field_string(f[2], &oom);
	fr.function = field_string(f[4], &oom);
	fr.file = field_string(f[6], &oom);
	struct snapshot_frame *grown = oom ? NULL : realloc(t->frames, (t->frame_count + 1) * sizeof *grown);
	if (!grown) {
		free(fr.module);
		free(fr.function);
		free(fr.file);
		return -1;
	}
	t->frames = grown;
	t->frames[t->frame_count++] = fr;
	return 1;
}

static int parse(struct snapshot *s, char *buf, char *err, size_t errlen)
{
	char *next = buf, *f[MAX_FIELDS];
	bool first = true;
	while (next && *next) {
		char *line = next;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else if (!first)
			break; /* a last line without its newline was cut */
		size_t n = split(line, f);
		uint64_t v;
		if (first) {
			if (n < 2 || strcmp(f[0], SNAPSHOT_MAGIC) || !parse_u64(f[1], 10, &v)) {
				snprintf(err, errlen, "not a giltrace snapshot");
				return -1;
			}
			if (v != SNAPSHOT_VERSION) {
				snprintf(err, errlen, "snapshot version %" PRIu64 ", this giltrace reads %d", v,
				         SNAPSHOT_VERSION);
				return -1;
			}
			first = false;
			continue;
		}
		int rc = 0;
		if (!strcmp(f[0], "pid") && n >= 2 && parse_u64(f[1], 10, &v) && v <= INT32_MAX)
			s->pid = (int32_t)v;
		else if (!strcmp(f[0], "reason") && n >= 2)
			s->reason = !strcmp(f[1], "finalization") ? SNAPSHOT_FINALIZATION : SNAPSHOT_TIMEOUT;
		else if (!strcmp(f[0], "limit_ns") && n >= 2 && parse_u64(f[1], 10, &v))
			s->limit_ns = v;
		else if (!strcmp(f[0], "taken_realtime_ns") && n >= 2 && parse_u64(f[1], 10, &v))
			s->taken_realtime_ns = v;
		else if (!strcmp(f[0], "error") && n >= 2 && !s->error) {
			bool oom = false;
			s->error = field_string(f[1], &oom);
			rc = oom ? -1 : 0;
		} else if (!strcmp(f[0], "thread"))
			rc = add_thread(s, f, n);
		else if (!strcmp(f[0], "frame"))
			rc = add_frame(s, f, n);
		else if (!strcmp(f[0], "end"))
			s->complete = true;
		if (rc < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	if (first) {
		snprintf(err, errlen, "the snapshot is empty");
		return -1;
	}
	return 0;
}

int snapshot_read(const char *trace_path, struct snapshot *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	char *path = snapshot_path_of(trace_path);
	if (!path) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	size_t len = 0;
	char *buf = slurp(path, &len);
	if (!buf) {
		int saved = errno;
		if (saved != ENOENT)
			snprintf(err, errlen, "cannot read '%s': %s", path,
			         saved == EFBIG ? "too large for a snapshot" : strerror(saved));
		free(path);
		return saved == ENOENT ? 0 : -1;
	}
	free(path);
	int rc = parse(s, buf, err, errlen);
	free(buf);
	if (rc != 0) {
		snapshot_free(s);
		return -1;
	}
	return 1;
}

void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->thread_count; i++) {
		struct snapshot_thread *t = &s->threads[i];
		for (size_t k = 0; k < t->frame_count; k++) {
			free(t->frames[k].module);
			free(t->frames[k].function);
			free(t->frames[k].file);
		}
		free(t->frames);
	}
	free(s->threads);
	free(s->error);
	memset(s, 0, sizeof *s);
}

const struct snapshot_thread *snapshot_thread_of(const struct snapshot *s, int32_t tid)
{
	for (size_t i = 0; s && i < s->thread_count; i++)
		if (s->threads[i].tid == tid)
			return &s->threads[i];
	return NULL;
}
