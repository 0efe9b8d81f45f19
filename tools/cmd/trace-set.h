/*
 * trace-set.h: the traces a command was pointed at, as processes.
 *
 * check and report take traces and folders (searched for *.gtr: a
 * buildbot's artifact folder, `giltrace run -o 'DIR/%p.gtr'`).  A set of
 * them is one run of several processes: each trace's header names its
 * pid, its parent's pid and when it started, so the set is ordered by
 * start time and each process placed under its parent (when the parent's
 * trace is in the set): the process tree the outputs show.
 */
#ifndef GILTRACE_TRACE_SET_H
#define GILTRACE_TRACE_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct trace_entry {
	char *path;
	bool header_ok;              /* the header could be read: */
	int32_t pid, ppid;
	uint64_t start_realtime_ns;
	int parent;                  /* index in the set of its parent's trace, -1 */
	unsigned depth;              /* 0 for a process whose parent is not in the set */
	char verdict[320];           /* the command's one line about it, for the tree */
};

struct trace_set {
	struct trace_entry *items;   /* in the order the processes started */
	size_t count;
	bool folders;                /* a path was a folder (its traces, however many) */
	char **missing;              /* the paths that were absent or held no trace */
	size_t missing_count;
};

/* Collect the traces of paths (a folder: its *.gtr, recursively), read
 * their headers and order them; a path without a trace gets one error
 * line (print_error) and is listed in `missing`.  Dies when out of memory. */
void trace_set_collect(struct trace_set *s, char *const *paths, size_t n);
/* The tree's order: each process followed by its children (in start
 * order), the roots in start order; an array of s->count indices to free.
 * Dies when out of memory. */
size_t *trace_set_tree_order(const struct trace_set *s);
/* When e started after the set's first process ("+64.76 ms"), or "?". */
void trace_set_started(const struct trace_set *s, const struct trace_entry *e, char *buf, size_t size);
/* The tree: one line per process, indented under its parent, with its
 * start from the first one's and its verdict.  For sets of two or more. */
void trace_set_print_tree(FILE *out, const struct trace_set *s);
void trace_set_free(struct trace_set *s);

#endif
