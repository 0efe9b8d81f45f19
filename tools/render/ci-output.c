/*
 * ci-output.c: JUnit XML and SARIF from check's findings.  See ci-output.h.
 */
#include "ci-output.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docs.h"
#include "findings-output.h"
#include "html-report.h"
#include "symbolize.h"
#include "trace.h"
#include "version.h"

struct ci_output {
	enum ci_format format;
	FILE *out;
	/* JUnit: the suites, written once the totals are known */
	char *body;
	size_t body_len;
	FILE *suites;
	size_t tests, failures, errors;
	/* SARIF: the results, then the notifications */
	struct json j;
	char **unusable;             /* "PATH: why", for the notifications */
	size_t unusable_count;
};

/* ---- XML ------------------------------------------------------------------ */

/* XML escapes as HTML does (html_escape: the five entities, a control
 * character as U+FFFD), so character data and attribute values alike. */
#define xml_escape(out, s) html_escape((out), (s) ? (s) : "")

static void junit_case(struct ci_output *c, const char *classname, const char *name)
{
	fputs("    <testcase classname=\"", c->suites);
	xml_escape(c->suites, classname);
	fputs("\" name=\"", c->suites);
	xml_escape(c->suites, name);
	fputs("\"", c->suites);
	c->tests++;
}

static void junit_trace(struct ci_output *c, const char *path, const struct model *m, const struct findings *fs)
{
	const struct trace *t = m->trace;
	char classname[64], name[640], why[256];
	bool incomplete = trace_incomplete(t);
	snprintf(classname, sizeof classname, "giltrace.pid%d", (int)t->header.pid);
	fputs("  <testsuite name=\"", c->suites);
	xml_escape(c->suites, path);
	fprintf(c->suites, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%d\">\n",
	        fs->count + (fs->errors ? 0 : 1), fs->errors, incomplete && !fs->errors);
	struct symbolizer *sym = fs->count ? symbolizer_new(t) : NULL;
	for (size_t i = 0; i < fs->count; i++) {
		const struct finding *f = &fs->items[i];
		const struct detector_info *k = &detectors[f->kind];
		char label[96];
		snprintf(name, sizeof name, "%s: %s %s", k->id, model_thread_phrase(m, f->thread, label, sizeof label),
		         f->what);
		junit_case(c, classname, name);
		char *text = finding_text(m, f, sym);
		if (k->severity == SEVERITY_ERROR) {
			fputs(">\n      <failure type=\"", c->suites);
			xml_escape(c->suites, k->id);
			fputs("\" message=\"", c->suites);
			xml_escape(c->suites, k->title);
			fputs("\">", c->suites);
			xml_escape(c->suites, text);
			fputs("</failure>\n    </testcase>\n", c->suites);
			c->failures++;
		} else {
			fputs(">\n      <system-out>", c->suites);
			xml_escape(c->suites, text);
			fputs("</system-out>\n    </testcase>\n", c->suites);
		}
		free(text);
	}
	symbolizer_free(sym);
	if (!fs->errors) {
		/* the trace's own case: passes when complete, like check's status */
		junit_case(c, classname, "no error findings");
		if (incomplete) {
			fputs(">\n      <error type=\"incomplete\" message=\"", c->suites);
			xml_escape(c->suites, trace_incomplete_why(t, why, sizeof why));
			fputs("\"/>\n    </testcase>\n", c->suites);
			c->errors++;
		} else {
			fputs("/>\n", c->suites);
		}
	}
	fputs("  </testsuite>\n", c->suites);
}

static void junit_unusable(struct ci_output *c, const char *path, const char *why)
{
	fputs("  <testsuite name=\"", c->suites);
	xml_escape(c->suites, path);
	fputs("\" tests=\"1\" failures=\"0\" errors=\"1\">\n", c->suites);
	junit_case(c, "giltrace", "the trace can be read");
	fputs(">\n      <error type=\"unusable\" message=\"", c->suites);
	xml_escape(c->suites, why);
	fputs("\"/>\n    </testcase>\n  </testsuite>\n", c->suites);
	c->errors++;
}

static void junit_end(struct ci_output *c)
{
	fclose(c->suites);
	fprintf(c->out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	                "<testsuites name=\"giltrace\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\">\n",
	        c->tests, c->failures, c->errors);
	fwrite(c->body, 1, c->body_len, c->out);
	fputs("</testsuites>\n", c->out);
	free(c->body);
}

/* ---- SARIF ---------------------------------------------------------------- */

static void sarif_begin(struct ci_output *c)
{
	struct json *j = &c->j;
	char uri[4200];
	json_init(j, c->out);
	json_object_begin(j, NULL);
	json_string(j, "$schema", "https://json.schemastore.org/sarif-2.1.0.json");
	json_string(j, "version", "2.1.0");
	json_array_begin(j, "runs");
	json_object_begin(j, NULL);
	json_object_begin(j, "tool");
	json_object_begin(j, "driver");
	json_string(j, "name", "giltrace");
	json_string(j, "version", GILTRACE_VERSION);
	/* file URIs only for a documentation folder that was found (absolute) */
	bool docs = docs_dir()[0] == '/';
	snprintf(uri, sizeof uri, "file://%s/findings.md", docs_dir());
	if (docs)
		json_string(j, "informationUri", uri);
	json_array_begin(j, "rules");
	for (unsigned k = 0; k < DETECT_COUNT; k++) {
		json_object_begin(j, NULL);
		json_string(j, "id", detectors[k].id);
		json_object_begin(j, "shortDescription");
		json_string(j, "text", detectors[k].title);
		json_object_end(j);
		snprintf(uri, sizeof uri, "file://%s/findings.md#%s", docs_dir(), detectors[k].id);
		if (docs)
			json_string(j, "helpUri", uri);
		json_object_begin(j, "defaultConfiguration");
		json_string(j, "level", detectors[k].severity == SEVERITY_ERROR ? "error" : "note");
		json_object_end(j);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
	json_object_end(j);
	json_array_begin(j, "results");
}

static void sarif_location(struct json *j, const struct frame_info *fi)
{
	char name[512];
	json_array_begin(j, "locations");
	json_object_begin(j, NULL);
	if (fi->file) {
		json_object_begin(j, "physicalLocation");
		json_object_begin(j, "artifactLocation");
		char uri[4200];
		snprintf(uri, sizeof uri, "%s%s", fi->file[0] == '/' ? "file://" : "", fi->file);
		json_string(j, "uri", uri);
		json_object_end(j);
		if (fi->line > 0) {
			json_object_begin(j, "region");
			json_i64(j, "startLine", fi->line);
			json_object_end(j);
		}
		json_object_end(j);
	}
	json_array_begin(j, "logicalLocations");
	json_object_begin(j, NULL);
	if (fi->function)
		snprintf(name, sizeof name, "%s", fi->function);
	else
		snprintf(name, sizeof name, "%s+0x%" PRIx64, fi->module ? fi->module : "?", fi->module_offset);
	json_string(j, "fullyQualifiedName", name);
	json_string(j, "kind", fi->function ? "function" : "module");
	json_object_end(j);
	json_array_end(j);
	json_object_end(j);
	json_array_end(j);
}

static void sarif_trace(struct ci_output *c, const char *path, const struct model *m, const struct findings *fs)
{
	struct json *j = &c->j;
	const struct trace *t = m->trace;
	char why[256];
	if (!fs->errors && trace_incomplete(t)) /* as check's status 2: the run was not whole */
		ci_unusable(c, path, trace_incomplete_why(t, why, sizeof why));
	struct symbolizer *sym = fs->count ? symbolizer_new(t) : NULL;
	for (size_t i = 0; i < fs->count; i++) {
		const struct finding *f = &fs->items[i];
		const struct detector_info *k = &detectors[f->kind];
		char label[96], message[800];
		snprintf(message, sizeof message, "%s %s (pid %d)", model_thread_phrase(m, f->thread, label, sizeof label),
		         f->what, (int)t->header.pid);
		json_object_begin(j, NULL);
		json_string(j, "ruleId", k->id);
		json_u64(j, "ruleIndex", f->kind);
		json_string(j, "level", k->severity == SEVERITY_ERROR ? "error" : "note");
		json_object_begin(j, "message");
		json_string(j, "text", message);
		json_object_end(j);
		struct frame_info fi;
		if (finding_where(m, f, sym, &fi))
			sarif_location(j, &fi);
		json_object_begin(j, "properties");
		json_string(j, "trace", path);
		json_i64(j, "pid", t->header.pid);
		json_i64(j, "tid", f->thread >= 0 ? t->threads[f->thread].tid : 0);
		json_u64(j, "atNs", f->ns);
		json_object_end(j);
		json_object_end(j);
	}
	symbolizer_free(sym);
}

static void sarif_end(struct ci_output *c)
{
	struct json *j = &c->j;
	json_array_end(j); /* results */
	json_array_begin(j, "invocations");
	json_object_begin(j, NULL);
	json_bool(j, "executionSuccessful", c->unusable_count == 0);
	json_array_begin(j, "toolExecutionNotifications");
	for (size_t i = 0; i < c->unusable_count; i++) {
		json_object_begin(j, NULL);
		json_string(j, "level", "error");
		json_object_begin(j, "message");
		json_string(j, "text", c->unusable[i]);
		json_object_end(j);
		json_object_end(j);
		free(c->unusable[i]);
	}
	json_array_end(j);
	json_object_end(j);
	json_array_end(j);
	json_object_end(j); /* the run */
	json_array_end(j);  /* runs */
	json_object_end(j);
	json_finish(j);
	free(c->unusable);
}

/* ---- both ----------------------------------------------------------------- */

struct ci_output *ci_begin(enum ci_format format, FILE *out)
{
	struct ci_output *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->format = format;
	c->out = out;
	if (format == CI_JUNIT) {
		c->suites = open_memstream(&c->body, &c->body_len);
		if (!c->suites) {
			free(c);
			return NULL;
		}
	} else {
		sarif_begin(c);
	}
	return c;
}

void ci_trace(struct ci_output *c, const char *path, const struct model *m, const struct findings *fs)
{
	if (c->format == CI_JUNIT)
		junit_trace(c, path, m, fs);
	else
		sarif_trace(c, path, m, fs);
}

void ci_unusable(struct ci_output *c, const char *path, const char *why)
{
	if (c->format == CI_JUNIT) {
		junit_unusable(c, path, why);
		return;
	}
	char **grown = realloc(c->unusable, (c->unusable_count + 1) * sizeof *grown);
	size_t len = strlen(path) + strlen(why) + 3;
	char *line = grown ? malloc(len) : NULL;
	if (grown)
		c->unusable = grown;
	if (!line)
		return;
	snprintf(line, len, "%s: %s", path, why);
	c->unusable[c->unusable_count++] = line;
}

void ci_end(struct ci_output *c)
{
	if (c->format == CI_JUNIT)
		junit_end(c);
	else
		sarif_end(c);
	free(c);
}
