/*
 * cmd-report.c: `giltrace report [--json] TRACE...` and
 * `giltrace report --html OUT.html [--around ...] [--from T] [--to T] TRACE`
 *
 * Per thread: GIL hold and wait time, acquisitions, drop requests, forced
 * switches, how it ended.  Overall: handoffs with latency percentiles, the
 * contention ratio, each finalization, the model's self-check and the
 * findings (detect.c).  What a report says is report-data.c's, worded
 * once; report-text.c, report-json.c and html-report.c lay it out.  This
 * file parses the options, chooses the page's window (window.h) and
 * calls them.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "builtin.h"
#include "html-index.h"
#include "html-report.h"
#include "json.h"
#include "output.h"
#include "report-data.h"
#include "report-output.h"
#include "trace-set.h"
#include "usage.h"
#include "window.h"

static const char usage_text[] =
        "usage: giltrace report [--json] TRACE|FOLDER...\n"
        "       giltrace report --html OUT.html [--around finalize|whole] [--from TIME] [--to TIME]\n"
        "                       TRACE|FOLDER...\n\n"
        "  --json         machine-readable output: one object per trace (an array\n"
        "                 of them when several traces are given)\n"
        "  FOLDER         its *.gtr traces; several traces are reported in the\n"
        "                 order their processes started, then as a process tree\n"
        "  --html FILE    one self-contained page (no network): a zoomable\n"
        "                 timeline, the statistics and the findings; '-' for stdout;\n"
        "                 of several processes (a folder), a page each beside FILE\n"
        "                 (FILE-PID.html) and FILE lists them as a tree\n"
        "  --around WHAT  the timeline's window: 'finalize' (the default when the\n"
        "                 trace has a finalization) or 'whole'\n"
        "  --from TIME, --to TIME\n"
        "                 the timeline's window from/to this time after the trace's\n"
        "                 start, with a unit: 12ms, 1.5s, 300us, 800ns\n\n"
        "exit status: 0 every trace was read, 2 a trace was unusable\n";

/* ---- HTML ---------------------------------------------------------------- */

/* How the window was chosen, in the page's words. */
static const char *window_chosen_by(const struct model *m, const struct window_request *r)
{
	bool around_finalize = r->around == WINDOW_FINALIZE || (r->around == WINDOW_AUTO && m->finalization.seen);
	if (r->has_from || r->has_to)
		return around_finalize ? "around finalization, adjusted by --from/--to" : "chosen by --from/--to";
	if (around_finalize)
		return r->around == WINDOW_AUTO ? "around finalization (the default; --around whole for all of it)"
		                                : "around finalization";
	return "the whole run";
}

/* A process's one line in the process tree (trace-set.h), from its report:
 * "python 3.11.2, 4 threads, 0 errors, 0 notes". */
static void report_verdict(const struct report *r, char *buf, size_t size)
{
	size_t threads = r->m->thread_count;
	snprintf(buf, size, "python %s, %zu thread%s, %s", r->version[0] ? r->version : "?", threads,
	         threads == 1 ? "" : "s", r->findings_count);
}

/* The page of the trace at trace_path, to out: 0, or -1 after a message.
 * A trace cut short gives a page of what could be read.  verdict (may be
 * NULL) gets its one line for an index page. */
static int write_page(FILE *out, const char *out_path, const char *trace_path, const struct window_request *wr,
                      char *verdict, size_t size)
{
	struct analysis a;
	char err[512];
	int ret = -1;
	if (analysis_open(&a, trace_path, ANALYSIS_WINDOWS, err, sizeof err) != 0) {
		print_error("%s", err);
		goto out;
	}
	const struct model *m = &a.model;
	struct html_report_window w = { 0, 0, window_chosen_by(m, wr) };
	if (window_choose(m, wr, &w.from_ns, &w.to_ns, err, sizeof err) != 0) {
		if (m->wall_ns || wr->around != WINDOW_AUTO || wr->has_from || wr->has_to) {
			print_error("%s", err);
			goto out;
		}
		/* no events at all (a trace cut short at once): an empty timeline */
		w.from_ns = 0;
		w.to_ns = 1;
		w.chosen_by = "no events were read";
	}
	struct report r;
	ret = report_build(&r, &a) == 0 ? html_report_write(out, &r, &w) : -1;
	if (ret != 0)
		print_error("out of memory writing '%s'", out_path);
	else if (verdict)
		report_verdict(&r, verdict, size);
	report_free(&r);
out:
	analysis_close(&a);
	return ret;
}

/* `report --html OUT TRACE`: returns the exit status.  OUT is written
 * whole or not at all (output.h). */
static int report_html(const char *out_path, const char *trace_path, const struct window_request *wr,
                       char *verdict, size_t size)
{
	struct output out;
	if (output_open(&out, out_path, trace_path,
	                "the page's file name comes first (giltrace report --html OUT.html TRACE)") != 0)
		return EXIT_UNUSABLE;
	bool failed = write_page(out.file, out_path, trace_path, wr, verdict, size) != 0;
	return output_close(&out, failed) == 0 ? EXIT_CLEAN : EXIT_UNUSABLE;
}

/* `report --html OUT.html FOLDER|TRACE...` of several processes: a page
 * per trace beside OUT (OUT-PID.html), and OUT lists them as a tree. */
static int report_html_many(const char *out_path, const struct trace_set *set, const struct window_request *wr)
{
	size_t stem = strlen(out_path);
	if (stem > 5 && strcmp(out_path + stem - 5, ".html") == 0)
		stem -= 5;
	size_t *order = trace_set_tree_order(set);
	struct html_index_row *rows = calloc(set->count ? set->count : 1, sizeof *rows);
	char (*text)[4][4200] = calloc(set->count ? set->count : 1, sizeof *text);
	if (!rows || !text)
		die("out of memory");
	int status = set->missing_count ? EXIT_UNUSABLE : EXIT_CLEAN;
	size_t pages = 0;
	for (size_t j = 0; j < set->count; j++) {
		const struct trace_entry *e = &set->items[order[j]];
		char *page = text[j][0], *process = text[j][1], *started = text[j][2], *verdict = text[j][3];
		if (e->header_ok)
			snprintf(process, 4200, "pid %d", e->pid);
		else
			snprintf(process, 4200, "%s", e->path);
		snprintf(page, 4200, "%.*s-%s%d.html", (int)stem, out_path, e->header_ok ? "" : "trace",
		         e->header_ok ? e->pid : (int)j);
		trace_set_started(set, e, started, 4200);
		snprintf(verdict, 4200, "unusable");
		bool ok = report_html(page, e->path, wr, verdict, 4200) == EXIT_CLEAN;
		if (!ok)
			status = EXIT_UNUSABLE;
		pages += ok;
		const char *slash = strrchr(page, '/');
		rows[j] = (struct html_index_row){ e->depth, process, started, verdict, ok ? (slash ? slash + 1 : page) : NULL,
			                           e->path };
	}
	struct output out;
	if (!pages) { /* nothing to list: no index either (each trace said why) */
		status = EXIT_UNUSABLE;
	} else if (output_open(&out, out_path, set->items[0].path,
	                       "the page's file name comes first (giltrace report --html OUT.html FOLDER)") != 0) {
		status = EXIT_UNUSABLE;
	} else {
		html_index_write(out.file, rows, set->count);
		if (output_close(&out, false) != 0)
			status = EXIT_UNUSABLE;
	}
	free(text);
	free(rows);
	free(order);
	return status;
}

int cmd_report(int argc, char **argv)
{
	enum { OPT_HTML = 256, OPT_AROUND, OPT_FROM, OPT_TO };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "html", required_argument, NULL, OPT_HTML },
		{ "around", required_argument, NULL, OPT_AROUND },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "to", required_argument, NULL, OPT_TO },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool as_json = false, around_given = false;
	const char *html_path = NULL;
	struct window_request wr = { .around = WINDOW_AUTO };
	char err[256];
	int c;
	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			as_json = true;
			break;
		case OPT_HTML:
			html_path = optarg;
			break;
		case OPT_AROUND:
			around_given = true;
			if (window_parse_around(optarg, &wr, err, sizeof err) != 0) {
				print_error("%s", err);
				return EXIT_UNUSABLE;
			}
			break;
		case OPT_FROM:
		case OPT_TO:
			if (window_parse_time(optarg, c == OPT_FROM ? &wr.from_ns : &wr.to_ns, err, sizeof err) != 0) {
				print_error("%s %s", c == OPT_FROM ? "--from:" : "--to:", err);
				return EXIT_UNUSABLE;
			}
			*(c == OPT_FROM ? &wr.has_from : &wr.has_to) = true;
			break;
		case 'h':
			return usage(usage_text, true);
		default:
			return usage(usage_text, false);
		}
	}
	if (optind >= argc)
		return usage(usage_text, false);
	if (html_path && as_json) {
		print_error("--html and --json cannot be combined: run report once with each");
		return EXIT_UNUSABLE;
	}
	if (!html_path && (around_given || wr.has_from || wr.has_to)) {
		print_error("--around, --from and --to choose the window of the HTML timeline: add --html OUT.html");
		return EXIT_UNUSABLE;
	}
	/* traces and folders of them, in the order the processes started */
	struct trace_set set;
	trace_set_collect(&set, argv + optind, (size_t)(argc - optind));
	if (html_path) {
		int page_status;
		if (set.count == 1 && !set.folders && argc - optind == 1)
			page_status = report_html(html_path, set.items[0].path, &wr, NULL, 0);
		else if (set.count)
			page_status = report_html_many(html_path, &set, &wr);
		else
			page_status = EXIT_UNUSABLE;
		trace_set_free(&set);
		return page_status;
	}
	int status = set.missing_count ? EXIT_UNUSABLE : EXIT_CLEAN, reported = 0;
	size_t n = set.count;
	/* an array for several traces, or a folder's (however many it holds) */
	bool as_array = n > 1 || argc - optind > 1 || set.folders;
	struct json j;
	json_init(&j, stdout);
	if (as_json && as_array)
		json_array_begin(&j, NULL);
	for (size_t i = 0; i < n; i++) {
		struct trace_entry *e = &set.items[i];
		struct analysis a;
		struct report r = { 0 };
		char err[512];
		snprintf(e->verdict, sizeof e->verdict, "unusable");
		if (analysis_open(&a, e->path, ANALYSIS_WHOLE, err, sizeof err) != 0) {
			print_error("%s", err);
			status = EXIT_UNUSABLE;
		} else if (report_build(&r, &a) != 0) {
			print_error("out of memory reporting on '%s'", e->path);
			status = EXIT_UNUSABLE;
		} else if (as_json) {
			report_json(&j, &r);
			reported++;
		} else {
			if (i > 0)
				putchar('\n');
			report_print_text(stdout, &r);
			report_verdict(&r, e->verdict, sizeof e->verdict);
		}
		report_free(&r);
		analysis_close(&a);
	}
	if (!as_json && n > 1) {
		putchar('\n');
		trace_set_print_tree(stdout, &set);
	}
	if (as_json && as_array)
		json_array_end(&j);
	if (as_json && (reported || as_array))
		json_finish(&j);
	trace_set_free(&set);
	return status;
}
