/*
 * findings-output.c: findings as text blocks (sanitizer style: what
 * happened, which thread, which thread state, who freed it and when
 * relative to finalization, the C-API call) and as JSON.  Used by check,
 * report and run, and so by the shim's report at exit.
 */
#include "findings-output.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "format.h"

#define DOCS "docs/findings.md#"

/* "thread 1234 (main)" */
static const char *thread_label(const struct model *m, int thread, char *buf, size_t size)
{
	if (thread < 0) {
		snprintf(buf, size, "an unknown thread");
		return buf;
	}
	const char *name = model_thread_name(m, thread);
	if (name)
		snprintf(buf, size, "thread %d (%s)", m->threads[thread].info->tid, name);
	else
		snprintf(buf, size, "thread %d", m->threads[thread].info->tid);
	return buf;
}

/* "0x7f...a0 (_bz2.cpython-311-x86_64-linux-gnu.so+0x1a2b)" */
static const char *caller_label(const struct model *m, uint64_t caller, char *buf, size_t size)
{
	const struct trace_module *mod = trace_module_of(m->trace, caller);
	if (!mod) {
		snprintf(buf, size, "0x%" PRIx64, caller);
		return buf;
	}
	const char *base = strrchr(mod->path, '/');
	snprintf(buf, size, "%s+0x%" PRIx64, base ? base + 1 : mod->path, caller - mod->load_address);
	return buf;
}

/* "+1.20 ms after finalization began" / "0.50 ms before ..." */
static const char *relative_to_finalization(const struct finding *f, uint64_t ns, char *buf, size_t size)
{
	char d[32];
	if (!f->fin_seen && !f->finalizing) {
		snprintf(buf, size, "finalization had not begun");
		return buf;
	}
	if (ns >= f->fin_start_ns)
		snprintf(buf, size, "%s after finalization began", format_duration(d, sizeof d, ns - f->fin_start_ns));
	else
		snprintf(buf, size, "%s before finalization began", format_duration(d, sizeof d, f->fin_start_ns - ns));
	return buf;
}

void finding_print_text(FILE *out, const struct model *m, const struct finding *f)
{
	char a[96], b[96], c[96], d[32];
	const struct detector_info *k = &detectors[f->kind];
	fprintf(out, "==%d== giltrace %s: %s: %s\n", m->trace->header.pid,
	        k->severity == SEVERITY_ERROR ? "ERROR" : "note", k->id, k->title);
	fprintf(out, "    %s %s\n", thread_label(m, f->thread, a, sizeof a), f->what);
	fprintf(out, "    at +%s, %s\n", format_duration(d, sizeof d, f->ns),
	        relative_to_finalization(f, f->ns, b, sizeof b));
	if (f->capi && detect_capi_takes_tstate(f->capi))
		fprintf(out, "    C-API call: %s(0x%" PRIx64 ") from %s\n", trace_capi_name(f->capi), f->tstate,
		        caller_label(m, f->caller, c, sizeof c));
	else if (f->capi)
		fprintf(out, "    C-API call: %s() from %s\n", trace_capi_name(f->capi),
		        caller_label(m, f->caller, c, sizeof c));
	if (f->tstate && f->freed) {
		fprintf(out, "    thread state 0x%" PRIx64 " was freed by %s at +%s, %s\n", f->tstate,
		        f->freed_by == f->thread ? "this thread" : thread_label(m, f->freed_by, a, sizeof a),
		        format_duration(d, sizeof d, f->freed_ns),
		        relative_to_finalization(f, f->freed_ns, b, sizeof b));
	} else if (f->tstate) {
		fprintf(out, "    thread state 0x%" PRIx64 " (not freed)\n", f->tstate);
	}
	if (f->other_thread >= 0)
		fprintf(out, "    waiting for: %s\n", thread_label(m, f->other_thread, a, sizeof a));
	fprintf(out, "    see " DOCS "%s\n", k->id);
}

void findings_print_text(FILE *out, const struct model *m, const struct findings *fs)
{
	for (size_t i = 0; i < fs->count; i++)
		finding_print_text(out, m, &fs->items[i]);
}

static void json_thread(struct json *j, const char *key, const struct model *m, int thread)
{
	if (thread < 0) {
		json_null(j, key);
		return;
	}
	json_object_begin(j, key);
	json_i64(j, "tid", m->threads[thread].info->tid);
	json_string(j, "name", model_thread_name(m, thread));
	json_object_end(j);
}

void findings_json(struct json *j, const char *key, const struct model *m, const struct findings *fs)
{
	char buf[96];
	json_array_begin(j, key);
	for (size_t i = 0; i < fs->count; i++) {
		const struct finding *f = &fs->items[i];
		const struct detector_info *k = &detectors[f->kind];
		json_object_begin(j, NULL);
		json_string(j, "id", k->id);
		json_string(j, "severity", k->severity == SEVERITY_ERROR ? "error" : "note");
		json_string(j, "title", k->title);
		json_string(j, "what", f->what);
		json_u64(j, "at_ns", f->ns);
		json_thread(j, "thread", m, f->thread);
		json_bool(j, "finalizing", f->finalizing);
		if (f->fin_seen)
			json_i64(j, "since_finalization_ns", (int64_t)(f->ns - f->fin_start_ns));
		else
			json_null(j, "since_finalization_ns");
		if (f->capi) {
			json_object_begin(j, "call");
			json_string(j, "function", trace_capi_name(f->capi));
			snprintf(buf, sizeof buf, "0x%" PRIx64, f->caller);
			json_string(j, "caller", buf);
			json_string(j, "caller_location", caller_label(m, f->caller, buf, sizeof buf));
			json_object_end(j);
		} else {
			json_null(j, "call");
		}
		if (f->tstate) {
			json_object_begin(j, "tstate");
			snprintf(buf, sizeof buf, "0x%" PRIx64, f->tstate);
			json_string(j, "address", buf);
			json_bool(j, "freed", f->freed);
			if (f->freed) {
				json_u64(j, "freed_at_ns", f->freed_ns);
				json_thread(j, "freed_by", m, f->freed_by);
				if (f->fin_seen)
					json_i64(j, "freed_since_finalization_ns", (int64_t)f->freed_ns - (int64_t)f->fin_start_ns);
				else
					json_null(j, "freed_since_finalization_ns");
			}
			json_object_end(j);
		} else {
			json_null(j, "tstate");
		}
		json_thread(j, "waiting_for", m, f->other_thread);
		json_object_end(j);
	}
	json_array_end(j);
}
