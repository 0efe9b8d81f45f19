/*
 * cmd-check.c: `giltrace check [--json | --format junit|sarif]
 * [--quiet-if-clean] [--min-severity error|note] PATH...`
 *
 * Findings only, for CI: every PATH is a trace or a folder searched for
 * *.gtr files (a buildbot's artifact folder).  A CI job must never read
 * missing or damaged evidence as clean, so the exit status is 1 when any
 * trace has a finding of severity error; else 2 when a trace was unusable,
 * was incomplete (trace_incomplete: a file cut short, a process that
 * crashed or was killed, a full disk) or a PATH held no trace at all; else
 * 0.  An incomplete trace's findings are still reported: a trace left by a
 * SIGKILL is often the one that matters.  The shim runs `check
 * --quiet-if-clean --min-severity SEVERITY [--suppressions FILE]` on its
 * own trace at exit (its options check_severity= and suppressions=), so
 * quiet means: nothing for a complete trace without a finding shown.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "builtin.h"
#include "ci-output.h"
#include "suppressions.h"
#include "trace-set.h"
#include "findings-output.h"
#include "format.h"
#include "trace.h"
#include "usage.h"

static const char usage_text[] =
        "usage: giltrace check [--json | --format FORMAT] [--quiet-if-clean]\n"
        "                      [--min-severity error|note] [--suppressions FILE] PATH...\n\n"
        "  PATH               a trace, or a folder searched for *.gtr traces\n"
        "  --json             one array of {trace, findings, ...} objects\n"
        "  --format FORMAT    text (the default), json (as --json), junit (JUnit\n"
        "                     XML: a test suite per trace, a failing test case per\n"
        "                     error finding, for buildbot, GitLab, Jenkins) or\n"
        "                     sarif (SARIF 2.1.0, for code-scanning views)\n"
        "  --quiet-if-clean   print nothing for a complete trace without a finding\n"
        "                     to show (an incomplete trace always gets its line)\n"
        "  --min-severity S   show findings of severity S and above: 'note' (the\n"
        "                     default: all) or 'error'; the exit status is the same\n"
        "  --suppressions F   take out the findings F's rules match, one per line:\n"
        "                     ID:PATTERN (a finding id or *, and a glob matched\n"
        "                     against the functions, modules and source files of\n"
        "                     the finding's stack and caller); counted, not shown,\n"
        "                     and not in the exit status\n\n"
        "exit status: 0 every trace complete and without error findings; 1 error\n"
        "findings; 2 no error findings but a trace was unusable or incomplete (cut\n"
        "short, not closed: the process crashed or was killed, out of space), a\n"
        "PATH held no trace, or a usage error\n";

/* What check prints: all findings, or only errors. */
struct check_options {
	bool as_json;
	struct ci_output *ci;        /* --format junit|sarif, else NULL */
	struct suppressions *supp;   /* --suppressions, else NULL */
	bool quiet_if_clean;
	enum severity min_severity;
};

struct check_totals {
	size_t traces, with_errors, incomplete, unusable;
	size_t suppressed;           /* findings a rule took out */
};

/* Keep only the findings of severity min or above (the counts stay). */
static void filter_findings(struct findings *fs, enum severity min)
{
	size_t kept = 0;
	for (size_t i = 0; i < fs->count; i++)
		if (detectors[fs->items[i].kind].severity >= min)
			fs->items[kept++] = fs->items[i];
	fs->count = kept;
}

/* The trace's verdict, as JSON says it. */
static const char *verdict(const struct trace *t, const struct findings *fs)
{
	return fs->errors ? "errors" : trace_incomplete(t) ? "incomplete" : "clean";
}

static void check_json_one(struct json *j, const char *path, const struct trace *t, const struct model *m,
                           const struct findings *fs, size_t suppressed)
{
	json_object_begin(j, NULL);
	json_string(j, "trace", path);
	json_bool(j, "usable", true);
	json_string(j, "verdict", verdict(t, fs));
	json_i64(j, "pid", t->header.pid);
	json_string(j, "python", t->header.py_version[0] ? t->header.py_version : NULL);
	findings_json_truncation(j, t);
	findings_json_provoked(j, t);
	json_object_begin(j, "lost");
	json_u64(j, "threads", t->threads_with_loss);
	json_u64(j, "chunks", t->chunks_lost);
	json_u64(j, "gil_acquisitions_missing", m->acquisitions_missing);
	json_object_end(j);
	json_u64(j, "errors", fs->errors);
	json_u64(j, "notes", fs->notes);
	json_u64(j, "suppressed", suppressed);
	findings_json(j, "findings", m, fs);
	json_object_end(j);
}

static void check_text_one(FILE *out, const char *path, const struct trace *t, const struct model *m,
                           const struct findings *fs, size_t suppressed, const struct check_options *o)
{
	char why[320], d[32], provoked[256];
	bool incomplete = trace_incomplete(t);
	if (!fs->count && !incomplete && o->quiet_if_clean)
		return;
	fprintf(out, "giltrace: %s: pid %d, python %.*s: %zu error%s, %zu note%s%s", path, t->header.pid,
	        (int)strcspn(t->header.py_version, " "), t->header.py_version, fs->errors, fs->errors == 1 ? "" : "s",
	        fs->notes, fs->notes == 1 ? "" : "s",
	        fs->notes && o->min_severity > SEVERITY_NOTE ? " (notes not shown)" : "");
	if (t->threads_with_loss && (t->header.flags & GTR_FLAG_RING))
		fprintf(out, "; ring mode kept only the newest events of %zu thread%s", t->threads_with_loss,
		        t->threads_with_loss == 1 ? "" : "s");
	if (suppressed)
		fprintf(out, "; %zu suppressed (%s)", suppressed, o->supp->path);
	if (trace_provoked(t, provoked, sizeof provoked))
		fprintf(out, "; provoked: %s", provoked);
	/* one line, also when it is all that is printed (the shim's report) */
	if (incomplete)
		fprintf(out, "; TRUNCATED, not clean: %s; events read up to +%s", trace_incomplete_why(t, why, sizeof why),
		        format_duration(d, sizeof d, t->last_event_ns));
	fputc('\n', out);
	if (trace_version_unsupported(t, why, sizeof why))
		fprintf(out, "giltrace: %s: %s\n", path, why);
	findings_print_text(out, m, fs);
}

/* check one trace; its one-line verdict into e->verdict (the tree's) */
static void check_one(struct trace_entry *e, FILE *out, const struct check_options *o, struct json *j,
                      struct check_totals *tot)
{
	const char *path = e->path;
	struct analysis a;
	char err[512];
	tot->traces++;
	if (analysis_open(&a, path, ANALYSIS_WHOLE, err, sizeof err) != 0) {
		print_error("%s", err);
		tot->unusable++;
		snprintf(e->verdict, sizeof e->verdict, "unusable");
		if (o->ci)
			ci_unusable(o->ci, path, err);
		if (o->as_json) {
			json_object_begin(j, NULL);
			json_string(j, "trace", path);
			json_bool(j, "usable", false);
			json_string(j, "verdict", "unusable");
			json_string(j, "error", err);
			json_object_end(j);
		}
		analysis_close(&a);
		return;
	}
	size_t suppressed = suppressions_apply(o->supp, &a.model, &a.findings);
	tot->suppressed += suppressed;
	filter_findings(&a.findings, o->min_severity);
	if (o->ci)
		ci_trace(o->ci, path, &a.model, &a.findings);
	else if (o->as_json)
		check_json_one(j, path, &a.trace, &a.model, &a.findings, suppressed);
	else
		check_text_one(out, path, &a.trace, &a.model, &a.findings, suppressed, o);
	if (a.findings.errors)
		tot->with_errors++;
	else if (trace_incomplete(&a.trace))
		tot->incomplete++;
	snprintf(e->verdict, sizeof e->verdict, "python %.*s, %zu error%s, %zu note%s%s%s",
	         (int)strcspn(a.trace.header.py_version, " "), a.trace.header.py_version, a.findings.errors,
	         a.findings.errors == 1 ? "" : "s", a.findings.notes, a.findings.notes == 1 ? "" : "s",
	         trace_incomplete(&a.trace) ? ", incomplete" : "", a.trace.header.flags & GTR_FLAG_FORK_CHILD ? ", fork child" : "");
	analysis_close(&a);
}

static int check_paths_with(char *const *paths, size_t n, FILE *out, const struct check_options *o)
{
	struct trace_set traces;
	struct check_totals tot = { 0 };
	trace_set_collect(&traces, paths, n);
	size_t missing = traces.missing_count; /* PATHs that could not be read or held no trace */
	for (size_t i = 0; o->ci && i < missing; i++) /* the evidence CI expected is not there: an error */
		ci_unusable(o->ci, traces.missing[i], "no trace could be read there");
	struct json j;
	json_init(&j, out);
	if (o->as_json)
		json_array_begin(&j, NULL);
	/* in the order the processes started */
	for (size_t i = 0; i < traces.count; i++) {
		check_one(&traces.items[i], out, o, &j, &tot);
		fflush(out);
	}
	bool unclean = tot.with_errors || tot.incomplete || tot.unusable || missing;
	if (o->ci) {
		ci_end(o->ci);
	} else if (o->as_json) {
		json_array_end(&j);
		json_finish(&j);
	} else if (tot.traces > 1 && (!o->quiet_if_clean || unclean)) {
		trace_set_print_tree(out, &traces);
		fprintf(out, "giltrace: checked %zu traces: %zu with errors, %zu unusable, %zu incomplete\n", tot.traces,
		        tot.with_errors, tot.unusable, tot.incomplete);
	}
	trace_set_free(&traces);
	if (tot.with_errors)
		return EXIT_FINDINGS;
	return unclean ? EXIT_UNUSABLE : EXIT_CLEAN;
}

int check_paths(char *const *paths, size_t n, FILE *out, bool as_json, bool quiet_if_clean,
                struct suppressions *supp)
{
	struct check_options o = { as_json, NULL, supp, quiet_if_clean, SEVERITY_NOTE };
	return check_paths_with(paths, n, out, &o);
}

int cmd_check(int argc, char **argv)
{
	enum { OPT_MIN_SEVERITY = 256, OPT_FORMAT, OPT_SUPPRESSIONS };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "suppressions", required_argument, NULL, OPT_SUPPRESSIONS },
		{ "quiet-if-clean", no_argument, NULL, 'q' },
		{ "min-severity", required_argument, NULL, OPT_MIN_SEVERITY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct check_options o = { false, NULL, NULL, false, SEVERITY_NOTE };
	struct suppressions supp;
	const char *format = "text";
	char err[600];
	int c;
	while ((c = getopt_long(argc, argv, "jqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			format = "json";
			break;
		case OPT_SUPPRESSIONS:
			if (o.supp)
				suppressions_free(o.supp);
			if (suppressions_load(&supp, optarg, err, sizeof err) != 0) {
				print_error("%s", err);
				return EXIT_UNUSABLE;
			}
			o.supp = &supp;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "text") && strcmp(optarg, "json") && strcmp(optarg, "junit") &&
			    strcmp(optarg, "sarif")) {
				print_error("--format: '%s' is not a format: text, json, junit or sarif", optarg);
				return EXIT_UNUSABLE;
			}
			format = optarg;
			break;
		case 'q':
			o.quiet_if_clean = true;
			break;
		case OPT_MIN_SEVERITY:
			if (strcmp(optarg, "error") == 0) {
				o.min_severity = SEVERITY_ERROR;
			} else if (strcmp(optarg, "note") == 0) {
				o.min_severity = SEVERITY_NOTE;
			} else {
				print_error("--min-severity: '%s' is not a severity: 'error' or 'note'", optarg);
				return EXIT_UNUSABLE;
			}
			break;
		case 'h':
			return usage(usage_text, true);
		default:
			return usage(usage_text, false);
		}
	}
	if (optind >= argc)
		return usage(usage_text, false);
	o.as_json = strcmp(format, "json") == 0;
	if (!strcmp(format, "junit") || !strcmp(format, "sarif")) {
		o.ci = ci_begin(!strcmp(format, "junit") ? CI_JUNIT : CI_SARIF, stdout);
		if (!o.ci)
			die("out of memory");
	}
	int status = check_paths_with(argv + optind, (size_t)(argc - optind), stdout, &o);
	if (o.supp)
		suppressions_free(o.supp);
	return status;
}
