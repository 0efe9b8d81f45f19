/*
 * findings-output.c: findings as text blocks (sanitizer style: what
 * happened, which thread, which thread state, who freed it and when
 * relative to finalization, the C-API call) and as JSON.  Used by check,
 * report and run, and so by the shim's report at exit.
 */
#include "findings-output.h"

#include "docs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "snapshot.h"
#include "symbolize.h"



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

/* "#3 0x7f.. in take_gil Python/ceval_gil.c:302 (libpython3.12.so.1.0+0x1a2b)" */
static void print_frame(FILE *out, unsigned n, const struct frame_info *fi)
{
	fprintf(out, "      #%u 0x%" PRIx64, n, fi->address);
	if (fi->function && fi->file)
		fprintf(out, " in %s %s:%d", fi->function, fi->file, fi->line);
	else if (fi->function)
		fprintf(out, " in %s+0x%" PRIx64, fi->function, fi->function_offset);
	if (fi->module)
		fprintf(out, " (%s+0x%" PRIx64 ")", fi->module, fi->module_offset);
	fputc('\n', out);
}

/* Frame i of a recorded stack, symbolised when there is a symbolizer. */
static void stack_frame(const struct trace_stack *st, uint32_t i, struct symbolizer *sym,
                        struct frame_info *fi)
{
	uint64_t address = st->frames[i];
	if (sym)
		symbolizer_lookup(sym, address, fi);
	else
		*fi = (struct frame_info){ .address = address };
}

static void print_stack(FILE *out, const struct model *m, size_t event, struct symbolizer *sym)
{
	const struct trace *t = m->trace;
	const struct trace_stack *st = trace_stack_of(t, event);
	for (uint32_t i = 0; st && i < st->count; i++) {
		struct frame_info fi;
		stack_frame(st, i, sym, &fi);
		print_frame(out, i, &fi);
	}
}

/* Whether a finding's Python stack was read through its thread state
 * after that was freed: then it shows what the freed block still held. */
static bool py_stack_from_freed(const struct finding *f, const struct trace_py_stack *ps)
{
	return ps && f->tstate && ps->tstate == f->tstate && f->freed && f->freed_ns <= f->ns;
}

/* The Python stack recorded with an event, traceback style but innermost
 * first (the native stack's order), and why it ends where it does.  With
 * no frames, the reason only when the event is the finding's own: a free's
 * thread often had none to read (a native thread, or the very thread state
 * being freed, already scribbled over by a debug allocator). */
static void print_py_stack(FILE *out, const struct model *m, size_t event, bool from_freed, bool own_event)
{
	const struct trace_py_stack *ps = trace_py_stack_of(m->trace, event);
	char why[160];
	if (!ps)
		return;
	trace_py_stack_end_phrase(ps, why, sizeof why);
	if (!ps->count) {
		/* none because it could not be read, not because the thread ran
		 * no Python code (a native thread, or a C-only moment) */
		if (own_event && (ps->end == GTR_PY_STACK_UNREADABLE || ps->end == GTR_PY_STACK_BAD_FRAME ||
		                  ps->end == GTR_PY_STACK_NO_LAYOUT || ps->end == GTR_PY_STACK_BUSY || !ps->end))
			fprintf(out, "    Python stack: %s\n", why);
		return;
	}
	fprintf(out, "    Python stack (innermost first%s):\n",
	        from_freed ? "; read from the freed thread state: what it still held" : "");
	for (uint32_t i = 0; i < ps->count; i++) {
		const struct trace_py_frame *pf = &ps->frames[i];
		if (pf->flags & GTR_PY_FRAME_CODE_UNREADABLE) {
			fprintf(out, "      a frame whose code could not be read\n");
			continue;
		}
		fprintf(out, "      File \"%s%s\", line ", pf->flags & GTR_PY_FRAME_FILE_CUT ? "..." : "", pf->file);
		if (pf->line >= 0)
			fprintf(out, "%d", pf->line);
		else
			fprintf(out, "?");
		fprintf(out, ", in %s%s\n", pf->function, pf->flags & GTR_PY_FRAME_FUNCTION_CUT ? "..." : "");
	}
	if (why[0])
		fprintf(out, "      (%s)\n", why);
}

/* "in Python: poll() at app.py:12, which called PyGILState_Ensure() from
 * ext.so (ext_poll ext.c:88)": the finding's event in a Python
 * developer's terms, then the Python stack.  Whether it had frames. */
const char *finding_python_where(const struct model *m, const struct finding *f, char *buf, size_t size)
{
	const struct trace_py_stack *ps = trace_py_stack_of(m->trace, f->stack_event);
	if (!ps || !ps->count || ps->frames[0].flags & GTR_PY_FRAME_CODE_UNREADABLE)
		return NULL;
	const struct trace_py_frame *pf = &ps->frames[0];
	const char *base = strrchr(pf->file, '/');
	char line[16] = "?";
	if (pf->line >= 0)
		snprintf(line, sizeof line, "%d", pf->line);
	snprintf(buf, size, "%s() at %s:%s%s", pf->function, base ? base + 1 : pf->file, line,
	         py_stack_from_freed(f, ps) ? " (as its freed thread state still held it)" : "");
	return buf;
}

static bool print_py_summary(FILE *out, const struct model *m, const struct finding *f, struct symbolizer *sym)
{
	const struct trace_py_stack *ps = trace_py_stack_of(m->trace, f->stack_event);
	const struct trace_stack *st = trace_stack_of(m->trace, f->stack_event);
	char where[400];
	if (!ps)
		return false;
	if (finding_python_where(m, f, where, sizeof where)) {
		fprintf(out, "    in Python: %s", where);
		/* the C code that made the call: the caller of the C-API
		 * function, else the stack's first frame */
		struct frame_info fi = { 0 };
		if (f->capi && f->caller && sym)
			symbolizer_lookup(sym, f->caller, &fi);
		else if (st && st->count)
			stack_frame(st, 0, sym, &fi);
		if (f->capi)
			fprintf(out, ", which called %s()", trace_capi_name(f->capi));
		else if (fi.function)
			fprintf(out, ", which called %s()", fi.function);
		if (fi.module && fi.file)
			fprintf(out, " from %s (%s:%d)", fi.module, fi.file, fi.line);
		else if (fi.module)
			fprintf(out, " from %s", fi.module);
		fputc('\n', out);
	}
	print_py_stack(out, m, f->stack_event, py_stack_from_freed(f, ps), true);
	return ps->count > 0;
}

bool finding_where(const struct model *m, const struct finding *f, struct symbolizer *sym, struct frame_info *fi)
{
	const struct trace_stack *st = trace_stack_of(m->trace, f->stack_event);
	if (!st || !st->count)
		return false;
	for (uint32_t i = 0; i < st->count; i++) {
		stack_frame(st, i, sym, fi);
		if (fi->file)
			return true;
	}
	stack_frame(st, 0, sym, fi);
	return true;
}

/* A snapshot's frame (symbolised when it was taken) as a frame_info. */
static void snapshot_frame_info(const struct snapshot_frame *sf, struct frame_info *fi)
{
	*fi = (struct frame_info){
		.address = sf->address,
		.module = sf->module,
		.module_offset = sf->module_offset,
		.function = sf->function,
		.function_offset = sf->function_offset,
		.file = sf->file,
		.line = sf->line,
	};
}

/* "thread main (4242)", or for a thread the trace lacks, its tid and name. */
static const char *role_thread(const struct model *m, const struct finding_role *r, const struct snapshot_thread *st,
                               char *buf, size_t size)
{
	if (r->thread >= 0)
		return model_thread_phrase(m, r->thread, buf, size);
	if (st && st->name[0])
		snprintf(buf, size, "thread %s (%d)", st->name, (int)r->tid);
	else
		snprintf(buf, size, "thread %d", (int)r->tid);
	return buf;
}

/* exit-hang: each thread's role and its stack from the snapshot. */
static void print_roles(FILE *out, const struct model *m, const struct finding *f)
{
	const struct snapshot *s = m->trace->snapshot;
	if (!f->roles || !s)
		return;
	char *path = snapshot_path_of(m->trace->path);
	fprintf(out, "    threads when giltrace ended the process (snapshot %s%s):\n", path ? path : "?",
	        s->complete ? "" : ", cut short: threads or frames may be missing");
	free(path);
	if (s->error)
		fprintf(out, "    no stacks: %s\n", s->error);
	for (size_t i = 0; i < f->role_count; i++) {
		const struct finding_role *r = &f->roles[i];
		const struct snapshot_thread *st = snapshot_thread_of(s, r->tid);
		char a[96];
		fprintf(out, "    %s: %s", role_thread(m, r, st, a, sizeof a), r->role);
		if (st)
			fprintf(out, " [kernel: %c%s%s]\n", st->state, st->wchan[0] ? " in " : "", st->wchan);
		else
			fprintf(out, " [not in the snapshot: it had ended]\n");
		for (size_t k = 0; st && k < st->frame_count; k++) {
			struct frame_info fi;
			snapshot_frame_info(&st->frames[k], &fi);
			print_frame(out, (unsigned)k, &fi);
		}
	}
}

/* Where a finding falls among the tests the program marked. */
static const char *const test_when_words[] = {
	[MODEL_TEST_BEFORE_FIRST] = "before the first test (",
	[MODEL_TEST_DURING] = "during test ",
	[MODEL_TEST_BETWEEN] = "after test ",
	[MODEL_TEST_AFTER_LAST] = "at exit, after the last test (",
};
static const char *const test_when_names[] = {
	[MODEL_TEST_BEFORE_FIRST] = "before-first",
	[MODEL_TEST_DURING] = "during",
	[MODEL_TEST_BETWEEN] = "between",
	[MODEL_TEST_AFTER_LAST] = "after-last",
};

void finding_print_text(FILE *out, const struct model *m, const struct finding *f, struct symbolizer *sym)
{
	char a[96], b[96], c[96], d[32];
	const struct detector_info *k = &detectors[f->kind];
	fprintf(out, "==%d== giltrace %s: %s: %s\n", m->trace->header.pid,
	        k->severity == SEVERITY_ERROR ? "ERROR" : "note", k->id, k->title);
	fprintf(out, "    %s %s\n", model_thread_phrase(m, f->thread, a, sizeof a), f->what);
	fprintf(out, "    at +%s, %s\n", format_duration(d, sizeof d, f->ns),
	        relative_to_finalization(f, f->ns, b, sizeof b));
	enum model_test_when when;
	const struct model_test *test = model_test_at(m, f->ns, &when);
	if (test) {
		char name[128];
		snprintf(name, sizeof name, "number %" PRIu64 " (its name was not kept: the trace's metadata log was full)",
		         test->number);
		fprintf(out, "    %s%s%s\n", test_when_words[when], test->id ? test->id : name,
		        when == MODEL_TEST_DURING ? "" : when == MODEL_TEST_BETWEEN ? " ended, before the next one began" : ")");
	}
	bool python = print_py_summary(out, m, f, sym);
	if (f->capi && gtr_capi_subject_is_tstate(f->capi))
		fprintf(out, "    C-API call: %s(0x%" PRIx64 ") from %s\n", trace_capi_name(f->capi), f->tstate,
		        caller_label(m, f->caller, c, sizeof c));
	else if (f->capi)
		fprintf(out, "    C-API call: %s() from %s\n", trace_capi_name(f->capi),
		        caller_label(m, f->caller, c, sizeof c));
	else if (python && f->stack_event != SIZE_MAX && trace_stack_of(m->trace, f->stack_event))
		fprintf(out, "    native stack (innermost first):\n");
	print_stack(out, m, f->stack_event, sym);
	if (f->tstate && f->freed) {
		fprintf(out, "    thread state 0x%" PRIx64 " was freed by %s at +%s, %s%s\n", f->tstate,
		        f->freed_by == f->thread ? "this thread" : model_thread_phrase(m, f->freed_by, a, sizeof a),
		        format_duration(d, sizeof d, f->freed_ns),
		        relative_to_finalization(f, f->freed_ns, b, sizeof b),
		        f->freed_event != SIZE_MAX && trace_stack_of(m->trace, f->freed_event) ? ":" : "");
		print_py_stack(out, m, f->freed_event, false, false);
		print_stack(out, m, f->freed_event, sym);
	} else if (f->tstate) {
		fprintf(out, "    thread state 0x%" PRIx64 " (not freed)\n", f->tstate);
	}
	if (f->other_thread >= 0)
		fprintf(out, "    waiting for: %s\n", model_thread_phrase(m, f->other_thread, a, sizeof a));
	print_roles(out, m, f);
	fprintf(out, "    see %s/findings.md#%s\n", docs_dir(), k->id);
}

char *finding_text(const struct model *m, const struct finding *f, struct symbolizer *sym)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (!mem)
		return NULL;
	finding_print_text(mem, m, f, sym);
	if (fclose(mem) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

void findings_print_problems(FILE *out, struct symbolizer *sym)
{
	const char *const *lines;
	size_t n = sym ? symbolizer_problems(sym, &lines) : 0;
	for (size_t i = 0; i < n; i++)
		fprintf(out, "giltrace: note: stack symbols: %s\n", lines[i]);
}

void findings_print_text(FILE *out, const struct model *m, const struct findings *fs)
{
	struct symbolizer *sym = fs->count ? symbolizer_new(m->trace) : NULL;
	for (size_t i = 0; i < fs->count; i++)
		finding_print_text(out, m, &fs->items[i], sym);
	findings_print_problems(out, sym);
	symbolizer_free(sym);
}

static void json_frame(struct json *j, const struct frame_info *fi)
{
	char buf[32];
	json_object_begin(j, NULL);
	snprintf(buf, sizeof buf, "0x%" PRIx64, fi->address);
	json_string(j, "address", buf);
	json_string(j, "module", fi->module);
	if (fi->module)
		json_u64(j, "module_offset", fi->module_offset);
	else
		json_null(j, "module_offset");
	json_string(j, "function", fi->function);
	json_string(j, "file", fi->file);
	if (fi->line)
		json_i64(j, "line", fi->line);
	else
		json_null(j, "line");
	json_object_end(j);
}

static void json_stack(struct json *j, const char *key, const struct model *m, size_t event, struct symbolizer *sym)
{
	const struct trace *t = m->trace;
	const struct trace_stack *st = trace_stack_of(t, event);
	if (!st) {
		json_null(j, key);
		return;
	}
	json_array_begin(j, key);
	for (uint32_t i = 0; i < st->count; i++) {
		struct frame_info fi;
		stack_frame(st, i, sym, &fi);
		json_frame(j, &fi);
	}
	json_array_end(j);
}

/* A Python stack as {"end", "error", "frames": [{function, file, line}]},
 * null when none was recorded. */
static void json_py_stack(struct json *j, const char *key, const struct model *m, size_t event,
                          const struct finding *f)
{
	const struct trace_py_stack *ps = trace_py_stack_of(m->trace, event);
	static const char *const ends[] = {
		[GTR_PY_STACK_COMPLETE] = "complete",     [GTR_PY_STACK_DEPTH] = "depth",
		[GTR_PY_STACK_ROOM] = "room",             [GTR_PY_STACK_UNREADABLE] = "unreadable",
		[GTR_PY_STACK_NO_THREAD_STATE] = "no-thread-state", [GTR_PY_STACK_NO_LAYOUT] = "no-layout",
		[GTR_PY_STACK_BAD_FRAME] = "bad-frame",    [GTR_PY_STACK_BUSY] = "busy",
	};
	char why[160];
	if (!ps) {
		json_null(j, key);
		return;
	}
	json_object_begin(j, key);
	static const char *const sources[] = {
		[GTR_PY_SOURCE_NONE] = NULL,           [GTR_PY_SOURCE_ARGUMENT] = "argument",
		[GTR_PY_SOURCE_ATTACHED] = "attached", [GTR_PY_SOURCE_BOUND] = "bound",
		[GTR_PY_SOURCE_LAST_USED] = "last-used",
	};
	json_string(j, "end", ps->end && ps->end <= GTR_PY_STACK_BUSY ? ends[ps->end] : "damaged");
	json_string(j, "thread_state", ps->source <= GTR_PY_SOURCE_LAST_USED ? sources[ps->source] : NULL);
	char address[32];
	snprintf(address, sizeof address, "0x%" PRIx64, ps->tstate);
	json_string(j, "thread_state_address", ps->tstate ? address : NULL);
	json_bool(j, "from_freed_thread_state", f && py_stack_from_freed(f, ps));
	trace_py_stack_end_phrase(ps, why, sizeof why);
	json_string(j, "detail", why[0] ? why : NULL);
	json_array_begin(j, "frames");
	for (uint32_t i = 0; i < ps->count; i++) {
		const struct trace_py_frame *pf = &ps->frames[i];
		bool unreadable = pf->flags & GTR_PY_FRAME_CODE_UNREADABLE;
		json_object_begin(j, NULL);
		json_string(j, "function", unreadable ? NULL : pf->function);
		json_string(j, "file", unreadable ? NULL : pf->file);
		if (pf->line >= 0)
			json_i64(j, "line", pf->line);
		else
			json_null(j, "line");
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

/* exit-hang: "snapshot"
 * {path, reason, limit_ns, error, complete} and "threads" [{tid, name,
 * role, in_trace, in_snapshot, kernel_state, wchan, stack}]. */
static void json_roles(struct json *j, const struct model *m, const struct finding *f)
{
	const struct snapshot *s = m->trace->snapshot;
	if (!f->roles || !s)
		return;
	char *path = snapshot_path_of(m->trace->path);
	char state[2] = "";
	json_object_begin(j, "snapshot");
	json_string(j, "path", path);
	json_string(j, "reason", s->reason == SNAPSHOT_FINALIZATION ? "finalization" : "timeout");
	json_u64(j, "limit_ns", s->limit_ns);
	json_string(j, "error", s->error);
	json_bool(j, "complete", s->complete);
	json_object_end(j);
	free(path);
	json_array_begin(j, "threads");
	for (size_t i = 0; i < f->role_count; i++) {
		const struct finding_role *r = &f->roles[i];
		const struct snapshot_thread *st = snapshot_thread_of(s, r->tid);
		json_object_begin(j, NULL);
		json_i64(j, "tid", r->tid);
		json_string(j, "name", r->thread >= 0 ? model_thread_name(m, r->thread) : st && st->name[0] ? st->name : NULL);
		json_string(j, "role", r->role);
		json_bool(j, "in_trace", r->thread >= 0);
		json_bool(j, "in_snapshot", st != NULL);
		state[0] = st ? st->state : '\0';
		json_string(j, "kernel_state", st ? state : NULL);
		json_string(j, "wchan", st && st->wchan[0] ? st->wchan : NULL);
		if (st && st->frame_count) {
			json_array_begin(j, "stack");
			for (size_t k = 0; k < st->frame_count; k++) {
				struct frame_info fi;
				snapshot_frame_info(&st->frames[k], &fi);
				json_frame(j, &fi);
			}
			json_array_end(j);
		} else {
			json_null(j, "stack");
		}
		json_object_end(j);
	}
	json_array_end(j);
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
	struct symbolizer *sym = fs->count ? symbolizer_new(m->trace) : NULL;
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
		enum model_test_when when;
		const struct model_test *test = model_test_at(m, f->ns, &when);
		if (test) {
			json_object_begin(j, "test");
			json_string(j, "id", test->id);
			json_u64(j, "number", test->number);
			json_string(j, "when", test_when_names[when]);
			json_object_end(j);
		} else {
			json_null(j, "test");
		}
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
		json_stack(j, "stack", m, f->stack_event, sym);
		json_py_stack(j, "py_stack", m, f->stack_event, f);
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
				json_stack(j, "freed_stack", m, f->freed_event, sym);
				json_py_stack(j, "freed_py_stack", m, f->freed_event, NULL);
			}
			json_object_end(j);
		} else {
			json_null(j, "tstate");
		}
		json_thread(j, "waiting_for", m, f->other_thread);
		if (f->kind == DETECT_EXIT_LOCK_HELD) {
			snprintf(buf, sizeof buf, "0x%" PRIx64, f->lock);
			json_string(j, "lock", buf);
		}
		json_roles(j, m, f);
		json_object_end(j);
	}
	json_array_end(j);
	const char *const *lines;
	size_t n = sym ? symbolizer_problems(sym, &lines) : 0;
	json_array_begin(j, "symbol_problems");
	for (size_t i = 0; i < n; i++)
		json_string(j, NULL, lines[i]);
	json_array_end(j);
	symbolizer_free(sym);
}

/* "provoked" (the provocations of the run, format 3.4), only in the
 * objects of a provoked run: those of a natural one stay as they were. */
void findings_json_provoked(struct json *j, const struct trace *t)
{
	const struct gtr_file_header *h = &t->header;
	char text[256];
	if (!trace_provoked(t, text, sizeof text))
		return;
	json_object_begin(j, "provoked");
	json_string(j, "text", text);
	if (h->provoke & GTR_PROVOKE_EXIT_DELAY)
		json_u64(j, "exit_delay_ns", h->provoke_exit_delay_ns);
	else
		json_null(j, "exit_delay_ns");
	if (h->provoke & GTR_PROVOKE_EXIT_DELAY_AFTER_FREE)
		json_u64(j, "exit_delay_after_free_ns", h->provoke_after_free_delay_ns);
	else
		json_null(j, "exit_delay_after_free_ns");
	json_bool(j, "poison", h->provoke & GTR_PROVOKE_POISON);
	if (h->provoke & GTR_PROVOKE_JITTER) {
		json_u64(j, "jitter_us", h->provoke_jitter_us);
		json_u64(j, "jitter_seed", h->provoke_jitter_seed);
	} else {
		json_null(j, "jitter_us");
		json_null(j, "jitter_seed");
	}
	json_object_end(j);
}

/* "truncated", why, and up to when the events are complete: the same
 * members in check's and report's objects. */
void findings_json_truncation(struct json *j, const struct trace *t)
{
	const char *ids[TRACE_INCOMPLETE_REASONS];
	char why[320];
	size_t n = trace_incomplete_reasons(t, ids);
	json_bool(j, "truncated", n > 0);
	json_array_begin(j, "truncated_reasons");
	for (size_t i = 0; i < n; i++)
		json_string(j, NULL, ids[i]);
	json_array_end(j);
	json_string(j, "truncated_why", n ? trace_incomplete_why(t, why, sizeof why) : NULL);
	if (n)
		json_u64(j, "truncated_at_ns", t->last_event_ns);
	else
		json_null(j, "truncated_at_ns");
}
