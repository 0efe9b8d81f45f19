/*
 * cmd-export.c: `giltrace export [--format chrome] -o OUT.json TRACE`
 *
 * The command: its options, the output file (output.h: a result replaces
 * an older one only once it is whole) and the reader's notes.  The
 * exporter itself is tools/render/export-chrome.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "builtin.h"
#include "export-chrome.h"
#include "format.h"
#include "output.h"
#include "usage.h"

static const char usage_text[] =
        "usage: giltrace export [--format chrome] -o OUT.json TRACE\n\n"
        "  -f, --format FORMAT  the output format; the only one is 'chrome' (the\n"
        "                       default): Chrome trace-event JSON, for ui.perfetto.dev\n"
        "                       and chrome://tracing\n"
        "  -o, --output FILE    where to write the JSON; '-' for standard output\n\n"
        "One track per thread with its GIL-held and waiting spans, an arrow per\n"
        "GIL handoff, marks for finalization, thread-state frees, thread exits and\n"
        "findings.  A damaged trace exports what could be read, with notes on\n"
        "stderr.\n\n"
        "exit status: 0 the trace was exported, 2 it was unusable, the output could\n"
        "not be written, or a usage error\n";

static void print_trace_notes(const struct trace *t)
{
	char d[32];
	fflush(stdout);
	for (size_t i = 0; i < t->note_count; i++)
		fprintf(stderr, "giltrace: note: '%s': %s\n", t->path, t->notes[i]);
	if (t->truncated)
		fprintf(stderr,
		        "giltrace: note: '%s' is truncated (the process did not exit normally): "
		        "every event up to +%s was exported\n",
		        t->path, format_duration(d, sizeof d, t->last_event_ns));
}

/* The trace at `path` as Chrome JSON to `file` (named out_name):
 * 0, or -1 after a message. */
static int export_trace(FILE *file, const char *out_name, const char *path)
{
	struct analysis a;
	char err[512];
	if (analysis_open(&a, path, ANALYSIS_WHOLE, err, sizeof err) != 0) {
		analysis_close(&a);
		return print_error("%s", err), -1;
	}
	print_trace_notes(&a.trace);
	const struct model *m = &a.model;
	if (m->error_count)
		warning("'%s': %zu model inconsistenc%s (see 'giltrace report %s')", path, m->error_count,
		        m->error_count == 1 ? "y" : "ies", path);
	int ret = export_chrome_write(file, m, &a.findings);
	if (ret == -ENOMEM)
		print_error("out of memory exporting '%s'", path);
	else if (ret != 0)
		print_error("cannot write '%s': %s", file == stdout ? "standard output" : out_name, strerror(-ret));
	analysis_close(&a);
	return ret == 0 ? 0 : -1;
}

int cmd_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *format = "chrome", *output = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'h':
			return usage(usage_text, true);
		default: /* getopt said which option */
			return usage(usage_text, false);
		}
	}
	if (strcmp(format, "chrome") != 0)
		die("unknown format '%s': the only format is 'chrome' (Chrome trace-event JSON, "
		    "for ui.perfetto.dev and chrome://tracing)",
		    format);
	if (!output)
		die("no output file: add -o OUT.json (or -o - for standard output)");
	if (argc - optind != 1)
		die("%s; usage: giltrace export [--format chrome] -o OUT.json TRACE",
		    argc == optind ? "no TRACE given" : "give exactly one TRACE (export them one at a time)");
	const char *path = argv[optind];

	struct output out;
	if (output_open(&out, output, path, "name the export with -o OUT.json") != 0)
		return EXIT_UNUSABLE;
	bool failed = export_trace(out.file, output, path) != 0;
	return output_close(&out, failed) == 0 ? EXIT_CLEAN : EXIT_UNUSABLE;
}
