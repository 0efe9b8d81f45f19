/*
 * export-chrome.c: a trace as Chrome trace-event JSON (the "JSON Object
 * Format": an object with traceEvents), which ui.perfetto.dev and
 * chrome://tracing open:
 *
 *   - one track per thread: pid = the traced process, tid = the kernel tid;
 *     "M" events name the process (executable basename) and the threads
 *   - "X" complete events for the GIL-held and waiting spans of spans.c
 *     (RELEASED spans are left out: an empty track says it)
 *   - "i" instants: finalization start (global), thread-state frees, thread
 *     exits and parks, findings (thread scope; args: detector, severity,
 *     what)
 *   - a flow arrow per GIL handoff, from the releasing thread to the
 *     acquiring one (see "Flows" below for how each end binds)
 *
 * Timestamps are microseconds from the trace start with the nanoseconds as
 * decimals ("1234.567", trailing zeros dropped); displayTimeUnit is "ns".
 *
 * Everything is written through json.h, in its compact layout, into one
 * large buffer written with fwrite.  Speed: a trace has millions of spans
 * and handoffs, so those events are written in rooms (json.h), where the
 * writer's position stays in registers and the keys and names are copied
 * as they are, with each thread's pid and tid formatted once.  The strings
 * from the trace (thread names, paths, findings) go through json_string(),
 * which escapes them and turns bytes that are not UTF-8 into U+FFFD, so the
 * file stays valid JSON whatever the trace holds.
 */
#include "export-chrome.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "describe.h"
#include "findings-output.h"
#include "json.h"
#include "spans.h"
#include "trace.h"

/* the JSON formatted before each write (json.h: compact layout) */
#define OUT_BUFFER_SIZE (4u << 20)

/* ---- the exporter -------------------------------------------------------------- */

/*
 * Flows.  A handoff is a v1 flow pair: "s" on the releasing thread, "f"
 * with "bp":"e" on the acquiring thread, the same unique id, name and cat.
 * Both viewers accept it; they bind the ends differently:
 *
 *   - Perfetto (trace_processor json_trace_parser_impl.cc, flow_tracker.cc)
 *     binds an "s", and an "f" with bp "e", to the topmost slice open on the
 *     thread's track when it processes the event, in timestamp order (at
 *     equal timestamps, X events first, longest first, then file order).  A
 *     thread-scope instant is a zero-length slice that stays on top of the
 *     stack until the next slice begins, so a flow end at the release time
 *     would bind to a thread-state free or a finding inside the held span.
 *     Perfetto draws the arrow from the end of the out-slice to the start
 *     of the in-slice whatever the flow's ts.
 *   - chrome://tracing (catapult trace_event_importer) binds both to the
 *     slice that contains the flow's ts (closed intervals; at a boundary the
 *     slice that starts there wins), and draws the arrow between the two
 *     flow timestamps.
 *
 * So each end carries the start time of the HELD span it belongs to: in
 * Perfetto that binds to the held slice itself (it has just begun, and no
 * instant is above it), in catapult the same slice contains it.  (The one
 * exception, an acquirer that already held another GIL, is in
 * flow_settle.)  The cost is that chrome://tracing draws the arrow from
 * the start of the releasing thread's hold rather than from its end.  The
 * flow v2 fields (bind_id, flow_in/flow_out on the X event) were not used:
 * an event has one bind_id, and a held span is usually both the end of one
 * handoff and the start of the next, which v2 can only express as one
 * chain with one id.
 *
 * The ends are known at different times: the handoff is reported when the
 * acquisition is replayed, the acquirer's held span when it ends.  Each end
 * waits in its thread's pending list until the span that contains it is
 * reported; a flow is written when both ends are bound (after both X
 * events, so that even a reader that keeps file order for equal
 * timestamps sees the slice first), and dropped if an end falls outside any
 * held span (a hold of zero length).
 */
enum flow_end { FLOW_OUT = 0, FLOW_IN = 1 };

struct flow {
	int thread[2];              /* releasing, acquiring thread */
	uint64_t ts[2];             /* the bound ends' timestamps */
	uint64_t in_span_end;       /* the end of the acquirer's held span */
	uint8_t bound, settled;     /* bit per end */
	uint32_t next_free;         /* free list link, valid when unused */
};

struct pending_end {
	uint32_t flow;              /* index into exporter.flows */
	uint32_t end;               /* enum flow_end */
	uint64_t ns;                /* the release or the acquisition */
};

struct export_lane {
	int32_t tid;
	struct json_number tid_json; /* tid, formatted for the spans and flows */
	bool has_held;              /* the last HELD span reported: */
	uint64_t held_start, held_end;
	struct pending_end *pending;
	size_t pending_count, pending_cap;
};

#define NO_FLOW UINT32_MAX

struct exporter {
	const struct model *m;
	struct json j;
	int32_t pid;                /* the traced process */
	struct json_number pid_json; /* pid, formatted for the spans and flows */
	struct export_lane *lanes;
	struct flow *flows;         /* pool of flows with an end still pending */
	uint32_t flow_cap, free_flow;
	uint64_t next_flow_id;      /* the id of the next flow written, from 1 */
	uint64_t spans, flows_written, flows_dropped; /* for otherData */
	bool out_of_memory;
};

static uint32_t flow_new(struct exporter *x, int from, int to)
{
	if (x->free_flow == NO_FLOW) {
		uint32_t cap = x->flow_cap ? 2 * x->flow_cap : 64;
		struct flow *grown = cap > x->flow_cap ? realloc(x->flows, cap * sizeof *grown) : NULL;
		if (!grown) {
			x->out_of_memory = true;
			return NO_FLOW;
		}
		for (uint32_t i = x->flow_cap; i < cap; i++)
			grown[i].next_free = i + 1 < cap ? i + 1 : NO_FLOW;
		x->flows = grown;
		x->free_flow = x->flow_cap;
		x->flow_cap = cap;
	}
	uint32_t i = x->free_flow;
	struct flow *f = &x->flows[i];
	x->free_flow = f->next_free;
	*f = (struct flow){ { from, to }, { 0, 0 }, 0, 0, 0, NO_FLOW };
	return i;
}

/* Spans and flows are 10^7 events in a large trace: each is written in a
 * room (json.h), as at most 10 items (its brackets counted) whose keys and
 * strings are names of at most 16 bytes, or numbers. */
#define EVENT_ROOM (10 * JSON_ITEM_ROOM(16, JSON_NUMBER_ROOM))

/* An event: an object on a line of its own in traceEvents. */
JSON_INLINE void event_begin(struct json_cursor *c, const char *ph)
{
	json_c_line_break(c);
	json_c_object_begin(c, NULL);
	json_c_name(c, "ph", ph);
}

/* The thread, "pid" and "tid", and the time of an event on lane l. */
JSON_INLINE void put_where(struct json_cursor *c, const struct exporter *x, const struct export_lane *l,
                           uint64_t ns)
{
	json_c_number(c, "pid", &x->pid_json);
	json_c_number(c, "tid", &l->tid_json);
	json_c_ns_as_us(c, "ts", ns);
}

static void write_flow(struct exporter *x, const struct flow *f)
{
	uint64_t id = x->next_flow_id++;
	struct json_cursor c = json_room(&x->j, 2 * EVENT_ROOM);
	for (int end = FLOW_OUT; end <= FLOW_IN; end++) {
		if (end == FLOW_OUT) {
			event_begin(&c, "s");
		} else {
			event_begin(&c, "f");
			json_c_name(&c, "bp", "e");
		}
		json_c_u64(&c, "id", id);
		json_c_name(&c, "name", "GIL handoff");
		json_c_name(&c, "cat", "gil");
		put_where(&c, x, &x->lanes[f->thread[end]], f->ts[end]);
		json_c_object_end(&c);
	}
	json_room_done(&x->j, &c);
	x->flows_written++;
}

/* One end of flow i is settled: bound to the held span [ts, span_end], or
 * (bound false) lost. */
static void flow_settle(struct exporter *x, uint32_t i, enum flow_end end, bool bound, uint64_t ts,
                        uint64_t span_end)
{
	struct flow *f = &x->flows[i];
	f->settled |= (uint8_t)(1u << end);
	if (bound) {
		f->bound |= (uint8_t)(1u << end);
		f->ts[end] = ts;
		if (end == FLOW_IN)
			f->in_span_end = span_end;
	}
	if (f->settled != 3)
		return;
	/* The acquirer's span begins at the acquisition, after the release,
	 * unless it already held another GIL (one per interpreter, 3.12+):
	 * then the end moves to the start of the releaser's span, which the
	 * acquirer's span also covers, so that the arrow still points
	 * forward.  (Perfetto orders a flow's slices by their start, so it
	 * draws such an arrow backwards all the same.) */
	if (f->bound == 3 && f->ts[FLOW_IN] < f->ts[FLOW_OUT])
		f->ts[FLOW_IN] = f->ts[FLOW_OUT];
	if (f->bound == 3 && f->ts[FLOW_IN] <= f->in_span_end)
		write_flow(x, f);
	else
		x->flows_dropped++;
	f->next_free = x->free_flow;
	x->free_flow = i;
}

static void pending_add(struct exporter *x, int thread, uint32_t flow, enum flow_end end, uint64_t ns)
{
	struct export_lane *l = &x->lanes[thread];
	if (l->pending_count == l->pending_cap) {
		size_t cap = l->pending_cap ? 2 * l->pending_cap : 4;
		struct pending_end *grown = realloc(l->pending, cap * sizeof *grown);
		if (!grown) {
			x->out_of_memory = true;
			flow_settle(x, flow, end, false, 0, 0);
			return;
		}
		l->pending = grown;
		l->pending_cap = cap;
	}
	l->pending[l->pending_count++] = (struct pending_end){ flow, end, ns };
}

/* The span [start, end) of thread was reported: settle the flow ends that
 * fall in it. */
static void pending_settle(struct exporter *x, struct export_lane *l, enum lane_state state, uint64_t start,
                           uint64_t end)
{
	size_t keep = 0;
	for (size_t i = 0; i < l->pending_count; i++) {
		struct pending_end pe = l->pending[i];
		if (state == LANE_HELD && pe.ns >= start && pe.ns <= end)
			flow_settle(x, pe.flow, pe.end, true, start, end);
		else if (pe.ns < end)
			flow_settle(x, pe.flow, pe.end, false, 0, 0); /* not in a held span */
		else
			l->pending[keep++] = pe;
	}
	l->pending_count = keep;
}

static void on_span(void *ctx, int thread, enum lane_state state, uint64_t start_ns, uint64_t end_ns)
{
	struct exporter *x = ctx;
	struct export_lane *l = &x->lanes[thread];
	if (state == LANE_HELD || state == LANE_WAITING || state == LANE_BLOCKED) {
		/* spans.c reports a thread's spans in time order and the
		 * reader keeps each thread's events so: slices never overlap */
		struct json_cursor c = json_room(&x->j, EVENT_ROOM);
		event_begin(&c, "X");
		json_c_name(&c, "name", state == LANE_HELD ? "GIL held" : state == LANE_WAITING ? "GIL wait" : "parking lot");
		json_c_name(&c, "cat", state == LANE_BLOCKED ? "park" : "gil");
		put_where(&c, x, l, start_ns);
		json_c_ns_as_us(&c, "dur", end_ns - start_ns);
		json_c_object_end(&c);
		json_room_done(&x->j, &c);
		x->spans++;
	}
	if (state == LANE_HELD) {
		l->has_held = true;
		l->held_start = start_ns;
		l->held_end = end_ns;
	}
	if (l->pending_count)
		pending_settle(x, l, state, start_ns, end_ns);
}

static void on_handoff(void *ctx, unsigned gil, int from, uint64_t released_ns, int to, uint64_t acquired_ns)
{
	struct exporter *x = ctx;
	(void)gil;
	uint32_t f = flow_new(x, from, to);
	if (f == NO_FLOW)
		return;
	/* The acquirer's held span is still open (it is reported when it
	 * ends); the releaser's usually ended at the release and was
	 * reported then, unless it still holds another GIL. */
	const struct export_lane *r = &x->lanes[from];
	if (r->has_held && r->held_start <= released_ns && released_ns <= r->held_end)
		flow_settle(x, f, FLOW_OUT, true, r->held_start, r->held_end);
	else
		pending_add(x, from, f, FLOW_OUT, released_ns);
	pending_add(x, to, f, FLOW_IN, acquired_ns);
}

/* ---- instants and metadata ---------------------------------------------------- */

/* {"ph":"i","s":scope,"name":name,"cat":cat,"pid":..,"tid":..,"ts":.. and
 * leaves the object open for args. */
static void instant_begin(struct exporter *x, const struct mark *k, const char *scope, const char *name,
                          const char *cat)
{
	json_line_break(&x->j);
	json_object_begin(&x->j, NULL);
	json_string(&x->j, "ph", "i");
	json_string(&x->j, "s", scope);
	json_string(&x->j, "name", name);
	json_string(&x->j, "cat", cat);
	json_i64(&x->j, "pid", x->pid);
	json_i64(&x->j, "tid", x->lanes[k->thread].tid);
	json_ns_as_us(&x->j, "ts", k->ns);
}

static void write_mark(struct exporter *x, const struct mark *k, const struct findings *fs)
{
	struct json *j = &x->j;
	if (k->thread < 0 || (size_t)k->thread >= x->m->thread_count)
		return;
	switch (k->kind) {
	case MARK_FINALIZE:
		instant_begin(x, k, "g", "finalization start", "finalization");
		break;
	case MARK_TSTATE_FREE: {
		char addr[24];
		snprintf(addr, sizeof addr, "0x%" PRIx64, k->tstate);
		instant_begin(x, k, "t", "thread state freed", "tstate");
		json_object_begin(j, "args");
		json_string(j, "tstate", addr);
		json_object_end(j);
		break;
	}
	case MARK_THREAD_EXIT:
	case MARK_THREAD_PARK: {
		unsigned arg = k->end_arg;
		bool park = k->kind == MARK_THREAD_PARK;
		instant_begin(x, k, "t", park ? "thread parked" : "thread exit", "thread");
		json_object_begin(j, "args");
		if (!park)
			json_string(j, "how", trace_exit_how_name(gtr_exit_how(arg)));
		json_bool(j, "held_gil", gtr_exit_held_gil(arg));
		json_object_end(j);
		break;
	}
	case MARK_FINDING: {
		const struct finding *f = &fs->items[k->finding];
		const struct detector_info *d = &detectors[f->kind];
		instant_begin(x, k, "t", d->id, "finding");
		json_object_begin(j, "args");
		json_string(j, "detector", d->id);
		json_string(j, "severity", d->severity == SEVERITY_ERROR ? "error" : "note");
		json_string(j, "title", d->title);
		json_string(j, "what", f->what);
		char where[400];
		json_string(j, "python", finding_python_where(x->m, f, where, sizeof where));
		json_object_end(j);
		break;
	}
	}
	json_object_end(j);
}

/* A metadata event: {"ph":"M","name":name,"pid":..,"tid":tid,"args":{
 * and the caller writes the one member of args and closes both. */
static void metadata_begin(struct exporter *x, const char *name, int32_t tid)
{
	json_line_break(&x->j);
	json_object_begin(&x->j, NULL);
	json_string(&x->j, "ph", "M");
	json_string(&x->j, "name", name);
	json_i64(&x->j, "pid", x->pid);
	json_i64(&x->j, "tid", tid);
	json_object_begin(&x->j, "args");
}

static void write_metadata(struct exporter *x)
{
	const struct model *m = x->m;
	const struct gtr_file_header *h = &m->trace->header;
	struct json *j = &x->j;
	const char *slash = strrchr(h->executable, '/');
	const char *exe = slash ? slash + 1 : h->executable;
	char buf[64];
	metadata_begin(x, "process_name", h->pid);
	if (!exe[0])
		snprintf(buf, sizeof buf, "pid %d", (int)h->pid);
	json_string(j, "name", exe[0] ? exe : buf);
	json_object_end(j);
	json_object_end(j);
	/* the threads in the lanes' order (model_thread_order), for catapult */
	int *order = malloc((m->thread_count ? m->thread_count : 1) * sizeof *order);
	for (size_t i = 0; order && i < m->thread_count; i++)
		order[i] = (int)i;
	if (order)
		qsort_r(order, m->thread_count, sizeof *order, model_thread_order, (void *)m);
	for (size_t rank = 0; rank < m->thread_count; rank++) {
		size_t i = order ? (size_t)order[rank] : rank;
		metadata_begin(x, "thread_name", x->lanes[i].tid);
		json_string(j, "name", model_lane_label(m, (int)i, buf, sizeof buf));
		json_object_end(j);
		json_object_end(j);
		metadata_begin(x, "thread_sort_index", x->lanes[i].tid);
		json_u64(j, "sort_index", rank);
		json_object_end(j);
		json_object_end(j);
	}
	free(order);
}

static void write_other_data(struct exporter *x, const struct findings *fs)
{
	const struct model *m = x->m;
	const struct trace *t = m->trace;
	const struct gtr_file_header *h = &t->header;
	struct json *j = &x->j;
	char buf[64];
	json_object_begin(j, "otherData");
	json_string(j, "generator", "giltrace export");
	json_string(j, "trace", t->path);
	json_string(j, "interpreter", describe_python_version(h, buf, sizeof buf)[0] ? buf : NULL);
	json_string(j, "interpreter_full", h->py_version);
	json_string(j, "executable", h->executable);
	json_i64(j, "pid", h->pid);
	json_bool(j, "truncated", t->truncated);
	json_u64(j, "notes", t->note_count);
	json_u64(j, "trace_events", t->event_count);
	json_ns_as_us(j, "wall_us", m->wall_ns);
	json_u64(j, "spans", x->spans);
	json_u64(j, "handoffs", x->flows_written);
	json_u64(j, "handoffs_without_arrow", x->flows_dropped);
	json_u64(j, "findings", fs->count);
	json_u64(j, "model_errors", m->error_count);
	json_object_end(j);
}

/* The whole document.  Returns 0, or -1 when out of memory (x->j.error
 * says whether a write failed). */
static int export_chrome(struct exporter *x, const struct findings *fs)
{
	const struct model *m = x->m;
	struct json *j = &x->j;
	struct mark *marks = NULL;
	size_t mark_count = 0;

	x->pid = m->trace->header.pid;
	json_number_i64(&x->pid_json, x->pid);
	for (size_t i = 0; i < m->thread_count; i++) {
		x->lanes[i].tid = m->threads[i].info->tid;
		json_number_i64(&x->lanes[i].tid_json, x->lanes[i].tid);
	}
	json_object_begin(j, NULL);
	json_string(j, "displayTimeUnit", "ns");
	json_array_begin(j, "traceEvents");
	write_metadata(x);

	/* spans and flows, in the order spans.c reports them (by end time) */
	const struct span_visitor v = { x, on_span, on_handoff };
	if (spans_walk_marks(m, &v, fs, &marks, &mark_count) != 0)
		return -1;
	for (size_t i = 0; i < m->thread_count; i++) {
		struct export_lane *l = &x->lanes[i];
		for (size_t k = 0; k < l->pending_count; k++)
			flow_settle(x, l->pending[k].flow, l->pending[k].end, false, 0, 0);
		l->pending_count = 0;
	}
	if (x->out_of_memory) {
		free(marks);
		return -1;
	}

	/* the instants after every slice: at equal timestamps a reader that
	 * keeps file order nests them inside the span rather than before it */
	for (size_t i = 0; i < mark_count; i++)
		write_mark(x, &marks[i], fs);
	free(marks);

	json_line_break(j);
	json_array_end(j);
	json_line_break(j);
	write_other_data(x, fs);
	json_object_end(j);
	json_finish(j);
	return 0;
}

int export_chrome_write(FILE *file, const struct model *m, const struct findings *fs)
{
	struct exporter x = { .m = m, .free_flow = NO_FLOW, .next_flow_id = 1 };
	int ret = -ENOMEM;
	char *buf = malloc(OUT_BUFFER_SIZE);
	x.lanes = calloc(m->thread_count ? m->thread_count : 1, sizeof *x.lanes);
	if (!x.lanes || !buf)
		goto out;
	json_init_compact(&x.j, file, buf, OUT_BUFFER_SIZE);
	if (export_chrome(&x, fs) == 0)
		ret = -x.j.error;
out:
	for (size_t i = 0; x.lanes && i < m->thread_count; i++)
		free(x.lanes[i].pending);
	free(x.lanes);
	free(x.flows);
	free(buf);
	return ret;
}
