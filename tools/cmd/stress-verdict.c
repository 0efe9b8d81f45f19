/*
 * stress-verdict.c: whether a stress run failed, why, and the summary.
 *
 * A run's files are named by its number: the shim writes each python
 * process's trace as run-N.PID.gtr (output=DIR/run-N.%p.gtr; a pid taken
 * twice gets run-N.PID.K.gtr), and the loop sends its stdout and stderr to
 * run-N.log.  Each trace is analysed here, in-process (analysis_open, as
 * check does), while the next runs go on.
 *
 * Failures are grouped by signature, which must be the same from one run
 * to the next for the same bug: the finding's id, its C-API call and its
 * top frames as function names (or module+offset), never addresses (ASLR
 * moves them); else "timeout", "signal SIGSEGV", "exit status 3", "trace
 * unusable", "no trace".
 */
#include "stress.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis.h"
#include "json.h"
#include "snapshot.h"
#include "symbolize.h"
#include "usage.h"

/* Frames of a finding's stack in its signature: enough to tell two call
 * sites apart, few enough to group the same bug reached from elsewhere. */
#define SIGNATURE_FRAMES 3

static const char *const reason_ids[] = {
	[REASON_PASSED] = "passed",
	[REASON_FINDING] = "finding",
	[REASON_TIMEOUT] = "timeout",
	[REASON_SIGNAL] = "signal",
	[REASON_STATUS] = "status",
	[REASON_TRACE_UNUSABLE] = "trace-unusable",
	[REASON_NO_TRACE] = "no-trace",
};

static void *must(void *p)
{
	if (!p)
		die("out of memory");
	return p;
}

static __attribute__((format(printf, 1, 2))) char *must_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	return s;
}

/* ---- a run's files ---------------------------------------------------------------- */

/* Whether `name` is one of run `number`'s traces: run-N.PID.gtr or
 * run-N.PID.K.gtr. */
static bool is_trace_of(const char *name, const char *prefix)
{
	size_t p = strlen(prefix), len = strlen(name);
	if (strncmp(name, prefix, p) != 0 || len < p + 5 || strcmp(name + len - 4, ".gtr") != 0)
		return false;
	const char *s = name + p, *end = name + len - 4;
	bool digit = false;
	int dots = 0;
	for (; s < end; s++) {
		if (*s >= '0' && *s <= '9') {
			digit = true;
		} else if (*s == '.' && digit && dots == 0) {
			dots++;
			digit = false;
		} else {
			return false;
		}
	}
	return digit;
}

/* The pid a run's trace name gives (run-N.PID...). */
static long pid_of_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strchr(slash ? slash : path, '.');
	return dot ? strtol(dot + 1, NULL, 10) : -1;
}

/* The leader's pid, first by compare_traces (qsort has no context). */
static long sort_leader;

/* The run's own process first, then by name. */
static int compare_traces(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	bool xl = pid_of_name(x) == sort_leader, yl = pid_of_name(y) == sort_leader;
	if (xl != yl)
		return xl ? -1 : 1;
	return strcmp(x, y);
}

/* See stress.h. */
char **stress_run_traces(const char *dir, unsigned long number, pid_t leader, size_t *n)
{
	char prefix[32];
	snprintf(prefix, sizeof prefix, "run-%lu.", number);
	char **paths = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		warning("cannot list '%s': %s", dir, strerror(errno));
		return NULL;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_trace_of(de->d_name, prefix))
			continue;
		paths = must(realloc(paths, (*n + 1) * sizeof *paths));
		paths[(*n)++] = must_printf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	sort_leader = leader;
	if (*n > 1)
		qsort(paths, *n, sizeof *paths, compare_traces);
	return paths;
}

static char *log_path(const char *dir, unsigned long number)
{
	return must_printf("%s/run-%lu.log", dir, number);
}

void stress_discard(const struct stress_session *s, unsigned long number)
{
	size_t n;
	char **traces = stress_run_traces(s->dir, number, 0, &n);
	for (size_t i = 0; i < n; i++) {
		unlink(traces[i]);
		free(traces[i]);
	}
	free(traces);
	char *log = log_path(s->dir, number);
	unlink(log);
	free(log);
}

/* ---- the verdict ---------------------------------------------------------------------- */

/* "gilstate-after-finalize (PyGILState_Ensure)": the finding's label. */
static char *finding_label(const struct finding *f)
{
	const char *id = detectors[f->kind].id;
	return f->capi ? must_printf("%s (%s)", id, trace_capi_name(f->capi)) : must_printf("%s", id);
}

/* The label, then " at " and the top frames of the finding's stack, the
 * shim's own frames left out (they are giltrace's, not the program's). */
static char *finding_signature(const struct analysis *a, const struct finding *f, const char *label)
{
	const struct trace_stack *st = trace_stack_of(&a->trace, f->stack_event);
	if (!st || !st->count)
		return must_printf("%s", label);
	struct symbolizer *sym = must(symbolizer_new(&a->trace));
	char frames[3 * 160] = "";
	size_t len = 0;
	unsigned shown = 0;
	for (uint32_t i = 0; i < st->count && shown < SIGNATURE_FRAMES; i++) {
		struct frame_info fi;
		symbolizer_lookup(sym, st->frames[i], &fi);
		if (fi.module && !strcmp(fi.module, "libgiltrace.so"))
			continue;
		char one[160];
		if (fi.function)
			snprintf(one, sizeof one, "%s", fi.function);
		else if (fi.module)
			snprintf(one, sizeof one, "%s+0x%" PRIx64, fi.module, fi.module_offset);
		else
			snprintf(one, sizeof one, "?");
		int n = snprintf(frames + len, sizeof frames - len, "%s%s", shown ? ", " : "", one);
		if (n < 0 || (size_t)n >= sizeof frames - len)
			break;
		len += (size_t)n;
		shown++;
	}
	symbolizer_free(sym);
	return shown ? must_printf("%s at %s", label, frames) : must_printf("%s", label);
}

/* What the traces say: the first error finding's label and signature,
 * and whether a trace was unusable (why, in *unusable). */
struct traces_verdict {
	char *label, *signature;
	char *unusable;
	uint64_t jitter_seed;        /* provoke=jitter's, 0 none */
};

static void analyse_traces(char **traces, size_t n, struct traces_verdict *v)
{
	for (size_t i = 0; i < n; i++) {
		struct analysis a;
		char err[512];
		if (analysis_open(&a, traces[i], ANALYSIS_WHOLE, err, sizeof err) != 0) {
			if (!v->unusable)
				v->unusable = must_printf("%s", err);
			analysis_close(&a);
			continue;
		}
		if ((a.trace.header.provoke & GTR_PROVOKE_JITTER) && !v->jitter_seed)
			v->jitter_seed = a.trace.header.provoke_jitter_seed;
		for (size_t k = 0; k < a.findings.count && !v->label; k++) {
			const struct finding *f = &a.findings.items[k];
			if (detectors[f->kind].severity != SEVERITY_ERROR)
				continue;
			v->label = finding_label(f);
			v->signature = finding_signature(&a, f, v->label);
		}
		/* A trace not closed is that of a process killed (often on
		 * purpose, by the program's own tests): only a file cut short
		 * or a disk that filled up hides what the run did. */
		if (!v->unusable && (a.trace.cut_short || (a.trace.header.flags & GTR_FLAG_OUT_OF_SPACE))) {
			char why[320];
			v->unusable = must_printf("%s: %s", traces[i], trace_incomplete_why(&a.trace, why, sizeof why));
		}
		analysis_close(&a);
	}
}

static void add_reason(struct failure *f, char *text)
{
	f->reasons = must(realloc(f->reasons, (f->reason_count + 1) * sizeof *f->reasons));
	f->reasons[f->reason_count++] = text;
}

/* "signal SIGSEGV" */
static char *signal_text(int sig)
{
	const char *abbrev = sigabbrev_np(sig);
	return abbrev ? must_printf("signal SIG%s", abbrev) : must_printf("signal %d", sig);
}

/* Remove a log that holds nothing; true if it is still there. */
static bool log_worth_keeping(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return false;
	if (st.st_size > 0)
		return true;
	unlink(path);
	return false;
}

bool stress_judge(const struct stress_session *s, const struct run_end *e, struct stress_results *res)
{
	size_t n;
	char **traces = stress_run_traces(s->dir, e->number, e->pid, &n);
	struct traces_verdict v = { 0 };
	analyse_traces(traces, n, &v);

	struct failure f = { .run = e->number, .pid = e->pid, .duration_ns = e->duration_ns,
		             .jitter_seed = v.jitter_seed };
	bool signalled = WIFSIGNALED(e->wstatus) && !e->timed_out;
	bool bad_status = WIFEXITED(e->wstatus) && WEXITSTATUS(e->wstatus) != s->expect_status && !e->timed_out;
	/* every reason, in the order of enum run_reason: the first is the
	 * run's signature */
	if (v.label) {
		f.reason = REASON_FINDING;
		f.label = v.label;
		f.signature = v.signature;
		add_reason(&f, must_printf("%s", v.signature));
	}
	/* label (for grouping) and text (with the detail) of each */
	struct {
		bool applies;
		enum run_reason reason;
		const char *label;
	} others[] = {
		{ e->timed_out, REASON_TIMEOUT, e->exit_hung ? "exit timeout" : "timeout" },
		{ signalled, REASON_SIGNAL, NULL },
		{ bad_status, REASON_STATUS, NULL },
		{ v.unusable != NULL, REASON_TRACE_UNUSABLE, "trace unusable" },
		{ n == 0, REASON_NO_TRACE, "no trace" },
	};
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		if (!others[i].applies)
			continue;
		char *label = others[i].reason == REASON_SIGNAL ? signal_text(WTERMSIG(e->wstatus))
		              : others[i].reason == REASON_STATUS
		                      ? must_printf("exit status %d", WEXITSTATUS(e->wstatus))
		                      : must_printf("%s", others[i].label);
		add_reason(&f, others[i].reason == REASON_TRACE_UNUSABLE ? must_printf("%s: %s", label, v.unusable)
		                                                           : must_printf("%s", label));
		if (f.reason == REASON_PASSED) {
			f.reason = others[i].reason;
			f.label = label;
			f.signature = must_printf("%s", label);
		} else {
			free(label);
		}
	}
	free(v.unusable);

	bool failed = f.reason != REASON_PASSED;
	char *log = log_path(s->dir, e->number);
	res->runs++;
	if (!failed && !s->keep_all) {
		for (size_t i = 0; i < n; i++)
			unlink(traces[i]);
		unlink(log);
	}
	if (!failed) {
		for (size_t i = 0; i < n; i++)
			free(traces[i]);
		free(traces);
		free(log);
		return false;
	}
	f.traces = traces;
	f.trace_count = n;
	f.log = log_worth_keeping(log) ? log : (free(log), NULL);
	if (res->failed == res->cap) {
		res->cap = res->cap ? 2 * res->cap : 16;
		res->failures = must(realloc(res->failures, res->cap * sizeof *res->failures));
	}
	res->failures[res->failed++] = f;
	return true;
}

void stress_results_free(struct stress_results *res)
{
	for (size_t i = 0; i < res->failed; i++) {
		struct failure *f = &res->failures[i];
		free(f->label);
		free(f->signature);
		for (size_t k = 0; k < f->reason_count; k++)
			free(f->reasons[k]);
		free(f->reasons);
		for (size_t k = 0; k < f->trace_count; k++)
			free(f->traces[k]);
		free(f->traces);
		free(f->log);
	}
	free(res->failures);
	memset(res, 0, sizeof *res);
}

/* ---- the summary ---------------------------------------------------------------------- */

/* Failures with one signature (or, for the headline, one label): the
 * first is the example. */
struct group {
	const char *key;
	const struct failure *first;
	size_t count;
};

/* Groups of res by signature (by_label false) or label, most frequent
 * first, ties in order of first appearance.  *n groups, malloc'ed. */
static struct group *group_failures(const struct stress_results *res, bool by_label, size_t *n)
{
	struct group *g = must(calloc(res->failed ? res->failed : 1, sizeof *g));
	*n = 0;
	for (size_t i = 0; i < res->failed; i++) {
		const struct failure *f = &res->failures[i];
		const char *key = by_label ? f->label : f->signature;
		size_t k = 0;
		while (k < *n && strcmp(g[k].key, key))
			k++;
		if (k == *n)
			g[(*n)++] = (struct group){ key, f, 0 };
		g[k].count++;
	}
	/* stable: insertion sort on count */
	for (size_t i = 1; i < *n; i++) {
		struct group x = g[i];
		size_t k = i;
		for (; k > 0 && g[k - 1].count < x.count; k--)
			g[k] = g[k - 1];
		g[k] = x;
	}
	return g;
}

/* "3m12s", "1h02m", "12.3s" */
static const char *short_duration(char *buf, size_t size, uint64_t ns)
{
	uint64_t s = ns / 1000000000u;
	if (s < 60)
		snprintf(buf, size, "%.1fs", (double)ns / 1e9);
	else if (s < 3600)
		snprintf(buf, size, "%um%02us", (unsigned)(s / 60), (unsigned)(s % 60));
	else
		snprintf(buf, size, "%uh%02um", (unsigned)(s / 3600), (unsigned)(s / 60 % 60));
	return buf;
}

static double rate_of(const struct stress_results *res, const struct stress_summary *sum)
{
	return sum->elapsed_ns ? (double)res->runs * 1e9 / (double)sum->elapsed_ns : 0;
}
/* The snapshot beside a kept trace (a run that outlived --timeout), or
 * NULL; free() it. */
static char *kept_snapshot(const char *trace)
{
	char *path = snapshot_path_of(trace);
	if (path && access(path, F_OK) != 0) {
		free(path);
		path = NULL;
	}
	return path;
}


void stress_print_text(FILE *out, const struct stress_results *res, const struct stress_summary *sum)
{
	char d[32];
	fprintf(out, "giltrace stress: %zu/%lu runs failed in %s (%.1f runs/s, %u at a time)%s%s", res->failed,
	        res->runs, short_duration(d, sizeof d, sum->elapsed_ns), rate_of(res, sum), sum->jobs,
	        sum->interrupted ? ", interrupted" : "", sum->until_fail_hit ? ", stopped at the first failure" : "");
	size_t n;
	struct group *labels = group_failures(res, true, &n);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s %zu %s", i ? "," : ":", labels[i].count, labels[i].key);
	fputc('\n', out);
	free(labels);

	struct group *groups = group_failures(res, false, &n);
	for (size_t i = 0; i < n; i++) {
		const struct failure *f = groups[i].first;
		fprintf(out, "  %zu  %s\n", groups[i].count, groups[i].key);
		fprintf(out, "      e.g. run %lu (pid %d", f->run, (int)f->pid);
		if (f->jitter_seed) /* the schedule again: --provoke jitter,seed=N */
			fprintf(out, ", jitter seed=%" PRIu64, f->jitter_seed);
		fputs("):", out);
		for (size_t k = 0; k < f->trace_count; k++) {
			char *snapshot = kept_snapshot(f->traces[k]);
			fprintf(out, " %s%s%s", f->traces[k], snapshot ? " " : "", snapshot ? snapshot : "");
			free(snapshot);
		}
		if (f->log)
			fprintf(out, " %s", f->log);
		if (!f->trace_count && !f->log)
			fprintf(out, " no file kept");
		fputc('\n', out);
	}
	free(groups);
	if (sum->dir)
		fprintf(out, "giltrace stress: kept in %s\n", sum->dir);
}

static void json_failure_files(struct json *j, const struct failure *f)
{
	json_array_begin(j, "traces");
	for (size_t k = 0; k < f->trace_count; k++)
		json_string(j, NULL, f->traces[k]);
	json_array_end(j);
	json_array_begin(j, "snapshots");
	for (size_t k = 0; k < f->trace_count; k++) {
		char *snapshot = kept_snapshot(f->traces[k]);
		if (snapshot)
			json_string(j, NULL, snapshot);
		free(snapshot);
	}
	json_array_end(j);
	json_string(j, "log", f->log);
}

void stress_print_json(FILE *out, const struct stress_results *res, const struct stress_summary *sum)
{
	struct json j;
	json_init(&j, out);
	json_object_begin(&j, NULL);
	json_u64(&j, "runs", res->runs);
	json_u64(&j, "failed", res->failed);
	json_u64(&j, "elapsed_ns", sum->elapsed_ns);
	json_u64(&j, "jobs", sum->jobs);
	json_bool(&j, "interrupted", sum->interrupted);
	json_bool(&j, "stopped_at_first_failure", sum->until_fail_hit);
	json_string(&j, "output_dir", sum->dir);
	size_t n;
	struct group *groups = group_failures(res, false, &n);
	json_array_begin(&j, "groups");
	for (size_t i = 0; i < n; i++) {
		const struct failure *f = groups[i].first;
		json_object_begin(&j, NULL);
		json_string(&j, "signature", groups[i].key);
		json_string(&j, "label", f->label);
		json_string(&j, "reason", reason_ids[f->reason]);
		json_u64(&j, "count", groups[i].count);
		json_array_begin(&j, "runs");
		for (size_t k = 0; k < res->failed; k++)
			if (!strcmp(res->failures[k].signature, groups[i].key))
				json_u64(&j, NULL, res->failures[k].run);
		json_array_end(&j);
		json_object_begin(&j, "example");
		json_u64(&j, "run", f->run);
		json_i64(&j, "pid", f->pid);
		json_failure_files(&j, f);
		json_object_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	free(groups);
	json_array_begin(&j, "failures");
	for (size_t i = 0; i < res->failed; i++) {
		const struct failure *f = &res->failures[i];
		json_object_begin(&j, NULL);
		json_u64(&j, "run", f->run);
		json_i64(&j, "pid", f->pid);
		json_string(&j, "reason", reason_ids[f->reason]);
		json_string(&j, "signature", f->signature);
		json_string(&j, "label", f->label);
		json_array_begin(&j, "reasons");
		for (size_t k = 0; k < f->reason_count; k++)
			json_string(&j, NULL, f->reasons[k]);
		json_array_end(&j);
		json_u64(&j, "duration_ns", f->duration_ns);
		if (f->jitter_seed)
			json_u64(&j, "jitter_seed", f->jitter_seed);
		json_failure_files(&j, f);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}
