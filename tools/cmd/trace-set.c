/*
 * trace-set.c: the traces a command was pointed at, ordered as processes.
 * See trace-set.h.
 */
#include "trace-set.h"

#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "format.h"
#include "trace.h"
#include "usage.h"

static struct trace_set *collecting; /* nftw has no user pointer */

static void add(struct trace_set *s, const char *path)
{
	struct trace_entry *grown = realloc(s->items, (s->count + 1) * sizeof *grown);
	char *copy = strdup(path);
	if (!grown || !copy)
		die("out of memory");
	s->items = grown;
	s->items[s->count++] = (struct trace_entry){ .path = copy, .parent = -1 };
}

static int collect_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	size_t len = strlen(path);
	if (type == FTW_F && len >= 4 && strcmp(path + len - 4, ".gtr") == 0)
		add(collecting, path);
	return 0;
}

/* The traces under `path` (itself if it is a file); false if none. */
static bool collect(struct trace_set *s, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		print_error("cannot read '%s': %s", path, strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		add(s, path);
		return true;
	}
	size_t before = s->count;
	s->folders = true;
	collecting = s;
	if (nftw(path, collect_one, 16, FTW_PHYS) != 0) { /* what was found so far is kept */
		print_error("cannot search all of '%s': %s", path, strerror(errno));
		return s->count > before;
	}
	if (s->count == before) {
		print_error("no *.gtr traces under '%s': nothing to read there (point giltrace at the folder the traces "
		            "were written to: GILTRACE_OPTIONS=output=DIR/%%p.gtr, or giltrace run -o)",
		            path);
		return false;
	}
	return true;
}

static void read_header(struct trace_entry *e)
{
	struct gtr_file_header h;
	if (trace_read_header(e->path, &h) != 0)
		return;
	e->header_ok = true;
	e->pid = h.pid;
	e->ppid = h.ppid;
	e->start_realtime_ns = h.start_realtime_ns;
}

/* Started first first; unreadable headers last, by name. */
static int by_start(const void *a, const void *b)
{
	const struct trace_entry *x = a, *y = b;
	if (x->header_ok != y->header_ok)
		return x->header_ok ? -1 : 1;
	if (x->header_ok && x->start_realtime_ns != y->start_realtime_ns)
		return x->start_realtime_ns < y->start_realtime_ns ? -1 : 1;
	return strcmp(x->path, y->path);
}

void trace_set_collect(struct trace_set *s, char *const *paths, size_t n)
{
	memset(s, 0, sizeof *s);
	for (size_t i = 0; i < n; i++) {
		if (collect(s, paths[i]))
			continue;
		char **grown = realloc(s->missing, (s->missing_count + 1) * sizeof *grown);
		if (!grown || !(grown[s->missing_count] = strdup(paths[i])))
			die("out of memory");
		s->missing = grown;
		s->missing_count++;
	}
	for (size_t i = 0; i < s->count; i++)
		read_header(&s->items[i]);
	if (s->count)
		qsort(s->items, s->count, sizeof *s->items, by_start);
	/* the parent: the latest process with that pid that started before
	 * (pids are reused) */
	for (size_t i = 0; i < s->count; i++) {
		struct trace_entry *e = &s->items[i];
		for (size_t k = i; e->header_ok && k-- > 0;)
			if (s->items[k].header_ok && s->items[k].pid == e->ppid) {
				e->parent = (int)k;
				e->depth = s->items[k].depth + 1;
				break;
			}
	}
}

size_t *trace_set_tree_order(const struct trace_set *s)
{
	size_t *order = malloc((s->count ? s->count : 1) * sizeof *order), n = 0;
	size_t *stack = malloc((s->count ? s->count : 1) * sizeof *stack);
	if (!order || !stack)
		die("out of memory");
	for (size_t root = 0; root < s->count; root++) {
		if (s->items[root].parent >= 0)
			continue;
		size_t top = 0;
		stack[top++] = root;
		while (top) {
			size_t i = stack[--top];
			order[n++] = i;
			/* a parent comes before its children: pushed last first,
			 * they are taken in start order */
			for (size_t k = s->count; k-- > i + 1;)
				if (s->items[k].parent == (int)i)
					stack[top++] = k;
		}
	}
	free(stack);
	return order;
}

void trace_set_started(const struct trace_set *s, const struct trace_entry *e, char *buf, size_t size)
{
	uint64_t first = s->count && s->items[0].header_ok ? s->items[0].start_realtime_ns : 0;
	if (!e->header_ok)
		snprintf(buf, size, "?");
	else
		format_duration(buf, size, e->start_realtime_ns >= first ? e->start_realtime_ns - first : 0);
}

void trace_set_print_tree(FILE *out, const struct trace_set *s)
{
	if (s->count < 2)
		return;
	size_t *order = trace_set_tree_order(s);
	fprintf(out, "giltrace: %zu processes, in the order they started (a child under its parent):\n", s->count);
	for (size_t j = 0; j < s->count; j++) {
		const struct trace_entry *e = &s->items[order[j]];
		char at[32];
		trace_set_started(s, e, at, sizeof at);
		fprintf(out, "  %*s", (int)(2 * e->depth), "");
		if (e->header_ok)
			fprintf(out, "pid %d at +%s: %s (%s)\n", e->pid, at, e->verdict, e->path);
		else
			fprintf(out, "%s: %s\n", e->path, e->verdict);
	}
	free(order);
}

void trace_set_free(struct trace_set *s)
{
	for (size_t i = 0; i < s->count; i++)
		free(s->items[i].path);
	free(s->items);
	for (size_t i = 0; i < s->missing_count; i++)
		free(s->missing[i]);
	free(s->missing);
	memset(s, 0, sizeof *s);
}
