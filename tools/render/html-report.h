/*
 * html-report.h: `giltrace report --html`: one self-contained page per
 * trace (timeline, statistics, findings).  Design notes in html-report.c.
 */
#ifndef GILTRACE_HTML_REPORT_H
#define GILTRACE_HTML_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "report-data.h"

/* Columns the timeline's window is binned into: enough that zooming in a
 * few times (to about one column per pixel) stays faithful, few enough
 * that the page stays small whatever the number of events. */
#define HTML_REPORT_COLUMNS 3600

struct html_report_window {
	uint64_t from_ns, to_ns;   /* the timeline's window (window.h), from_ns < to_ns */
	const char *chosen_by;     /* for the page: "around finalization", "--from/--to", ... */
};

/* Write the page of report r (report-data.h: its trace, model and
 * findings, worded) to out.  Returns 0, or -1 when out of memory; write
 * errors are left in ferror(out) for the caller. */
int html_report_write(FILE *out, const struct report *r, const struct html_report_window *w);

/* Write s with &, <, >, " and ' as character references and control
 * characters (but tab and newline) as U+FFFD: safe as HTML text and
 * inside a quoted attribute value.  Every string from a trace goes
 * through here. */
void html_escape(FILE *out, const char *s);

/* tools/html/page.css, onerror.js, page.js, NUL-terminated (html-assets.c) */
extern const char html_page_css[], html_onerror_js[], html_page_js[];

#endif
