/*
 * cmd-check.c: `giltrace check [--json] [--quiet-if-clean] PATH...`
 *
 * Findings only, for CI: every PATH is a trace or a folder searched for
 * *.gtr files (a buildbot's artifact folder).  Exit status 1 when any trace
 * has a finding of severity error, else 2 when a trace was unusable, else 0.
 * The shim runs `check --quiet-if-clean` on its own trace at exit.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "builtin.h"
#include "findings-output.h"
#include "trace.h"
#include "usage.h"

static const char usage_text[] =
        "usage: giltrace check [--json] [--quiet-if-clean] PATH...\n\n"
        "  PATH               a trace, or a folder searched for *.gtr traces\n"
        "  --json             one array of {trace, findings, ...} objects\n"
        "  --quiet-if-clean   print nothing for a trace without findings\n\n"
        "exit status: 0 no error findings, 1 error findings, 2 a trace was\n"
        "unusable (and no error findings) or usage error\n";

struct path_list {
	char **items;
	size_t count;
	bool oom;
};

static struct path_list *collecting; /* nftw has no user pointer */

static int collect_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	size_t len = strlen(path);
	if (type != FTW_F || len < 4 || strcmp(path + len - 4, ".gtr") != 0)
		return 0;
	char **grown = realloc(collecting->items, (collecting->count + 1) * sizeof *grown);
	char *copy = strdup(path);
	if (!grown || !copy) {
		free(copy);
		if (grown)
			collecting->items = grown;
		collecting->oom = true;
		return 1;
	}
	collecting->items = grown;
	collecting->items[collecting->count++] = copy;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The traces under `path` (itself if it is a file), sorted; -1 if absent. */
static int collect(const char *path, struct path_list *out)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return error("cannot read '%s': %s", path, strerror(errno));
	size_t before = out->count;
	if (!S_ISDIR(st.st_mode)) {
		char **grown = realloc(out->items, (out->count + 1) * sizeof *grown);
		if (!grown || !(grown[out->count] = strdup(path)))
			die("out of memory");
		out->items = grown;
		out->count++;
		return 0;
	}
	collecting = out;
	if (nftw(path, collect_one, 16, FTW_PHYS) != 0 && !out->oom)
		return error("cannot search '%s': %s", path, strerror(errno));
	if (out->oom)
		die("out of memory");
	qsort(out->items + before, out->count - before, sizeof *out->items, by_name);
	if (out->count == before)
		warning("no *.gtr traces under '%s'", path);
	return 0;
}

struct check_totals {
	size_t traces, with_errors, unusable;
};

static void check_one(const char *path, FILE *out, bool as_json, bool quiet_if_clean, struct json *j,
                      struct check_totals *tot)
{
	struct trace t;
	struct model m;
	struct findings fs = { 0 };
	char err[512];
	tot->traces++;
	if (trace_load(&t, path, err, sizeof err) != 0) {
		error("%s", err);
		tot->unusable++;
		if (as_json) {
			json_object_begin(j, NULL);
			json_string(j, "trace", path);
			json_bool(j, "usable", false);
			json_string(j, "error", err);
			json_object_end(j);
		}
		trace_free(&t);
		return;
	}
	if (model_build(&m, &t) != 0 || detect_run(&m, &fs) != 0) {
		error("out of memory analysing '%s'", path);
		tot->unusable++;
	} else if (as_json) {
		json_object_begin(j, NULL);
		json_string(j, "trace", path);
		json_bool(j, "usable", true);
		json_i64(j, "pid", t.header.pid);
		json_string(j, "python", t.header.py_version[0] ? t.header.py_version : NULL);
		json_bool(j, "truncated", t.truncated);
		json_u64(j, "errors", fs.errors);
		json_u64(j, "notes", fs.notes);
		findings_json(j, "findings", &m, &fs);
		json_object_end(j);
	} else if (fs.count || !quiet_if_clean) {
		fprintf(out, "giltrace: %s: pid %d, python %.*s%s: %zu error%s, %zu note%s\n", path, t.header.pid,
		       (int)strcspn(t.header.py_version, " "), t.header.py_version,
		       t.truncated ? ", truncated (the process did not exit normally)" : "", fs.errors,
		       fs.errors == 1 ? "" : "s", fs.notes, fs.notes == 1 ? "" : "s");
		findings_print_text(out, &m, &fs);
	}
	if (fs.errors)
		tot->with_errors++;
	findings_free(&fs);
	model_free(&m);
	trace_free(&t);
}

int check_paths(char *const *paths, size_t n, FILE *out, bool as_json, bool quiet_if_clean)
{
	struct path_list traces = { 0 };
	struct check_totals tot = { 0 };
	for (size_t i = 0; i < n; i++)
		if (collect(paths[i], &traces) != 0)
			tot.unusable++;
	struct json j;
	json_init(&j, out);
	if (as_json)
		json_array_begin(&j, NULL);
	for (size_t i = 0; i < traces.count; i++) {
		check_one(traces.items[i], out, as_json, quiet_if_clean, &j, &tot);
		fflush(out);
		free(traces.items[i]);
	}
	free(traces.items);
	if (as_json) {
		json_array_end(&j);
		json_finish(&j);
	} else if (tot.traces > 1 && (!quiet_if_clean || tot.with_errors || tot.unusable)) {
		fprintf(out, "giltrace: checked %zu traces: %zu with errors, %zu unusable\n", tot.traces,
		        tot.with_errors, tot.unusable);
	}
	if (tot.with_errors)
		return EXIT_FINDINGS;
	return tot.unusable ? EXIT_UNUSABLE : EXIT_CLEAN;
}

int cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quiet-if-clean", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool as_json = false, quiet_if_clean = false;
	int c;
	while ((c = getopt_long(argc, argv, "jqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			as_json = true;
			break;
		case 'q':
			quiet_if_clean = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_CLEAN;
		default:
			fputs(usage_text, stderr);
			return EXIT_UNUSABLE;
		}
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return EXIT_UNUSABLE;
	}
	return check_paths(argv + optind, (size_t)(argc - optind), stdout, as_json, quiet_if_clean);
}
