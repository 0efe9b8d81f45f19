/*
 * html-index.h: `giltrace report --html OUT.html FOLDER`: the page of a
 * run of several processes, their tree with a link to each one's own page
 * (html-report.h, one per trace, beside OUT.html).
 */
#ifndef GILTRACE_HTML_INDEX_H
#define GILTRACE_HTML_INDEX_H

#include <stddef.h>
#include <stdio.h>

struct html_index_row {
	unsigned depth;            /* 0 for a process whose parent is not listed */
	const char *process;       /* "pid 12" or the trace's name */
	const char *started;       /* "+64.76 ms" after the first process */
	const char *verdict;       /* "python 3.11.2, 4 threads, 1 error, 0 notes" */
	const char *href;          /* its page, relative to the index; NULL none */
	const char *trace;
};

/* The page, self-contained (no network), to out; rows in tree order. */
void html_index_write(FILE *out, const struct html_index_row *rows, size_t n);

#endif
