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
 * Speed: a trace has millions of spans, so events are formatted by hand
 * into one large buffer written with fwrite; strings are escaped with
 * json_escape() (json.c), which also turns bytes that are not UTF-8 into
 * U+FFFD so the file stays valid JSON whatever the trace holds.
 */
#include "export-chrome.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "describe.h"
#include "json.h"
#include "spans.h"
#include "trace.h"

/* ---- output buffer ---------------------------------------------------------- */

/* bytes formatted before each fwrite */
#define OUT_BUFFER_SIZE (4u << 20)
/* the most bytes one event without strings takes (with margin) */
#define OUT_EVENT_MAX 512u

struct out {
	FILE *file;
	char *buf, *p, *end;
	uint64_t events;        /* events written so far (for the separators) */
	int error;              /* errno of the first failed write, 0 none */
};

static void out_flush(struct out *o)
{
	size_t n = (size_t)(o->p - o->buf);
	errno = 0;
	if (n && !o->error && fwrite(o->buf, 1, n, o->file) != n)
		o->error = errno ? errno : EIO;
	o->p = o->buf;
}

/* Room for n more bytes at o->p. */
static inline char *out_reserve(struct out *o, size_t n)
{
	if ((size_t)(o->end - o->p) < n)
		out_flush(o);
	return o->p;
}

static inline char *put_mem(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, lit) put_mem((p), (lit), sizeof(lit) - 1)

static inline char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static inline char *put_i64(char *p, int64_t v)
{
	if (v < 0) {
		*p++ = '-';
		return put_u64(p, (uint64_t)0 - (uint64_t)v);
	}
	return put_u64(p, (uint64_t)v);
}

/* ns as microseconds with the nanoseconds as decimals, trailing zeros
 * dropped: 1234567 -> "1234.567", 1234500 -> "1234.5", 1234000 -> "1234" */
static inline char *put_us(char *p, uint64_t ns)
{
	unsigned frac = (unsigned)(ns % 1000);
	p = put_u64(p, ns / 1000);
	if (frac) {
		*p++ = '.';
		*p++ = (char)('0' + frac / 100);
		if ((frac %= 100)) {
			*p++ = (char)('0' + frac / 10);
			if ((frac %= 10))
				*p++ = (char)('0' + frac);
		}
	}
	return p;
}

/* The separator before an event: none before the first. */
static inline char *put_event_start(struct out *o, char *p)
{
	if (o->events++)
		*p++ = ',';
	*p++ = '\n';
	return p;
}

/* A JSON string, quoted and escaped, of any length. */
static void out_string(struct out *o, const char *s)
{
	size_t len = strlen(s);
	*out_reserve(o, 1) = '"';
	o->p++;
	while (len) {
		size_t n = json_piece_length(s, len, 4096);
		o->p = json_escape(out_reserve(o, JSON_ESCAPED_MAX(n)), s, n);
		s += n;
		len -= n;
	}
	*out_reserve(o, 1) = '"';
	o->p++;
}

static void out_literal(struct out *o, const char *s)
{
	size_t n = strlen(s);
	o->p = put_mem(out_reserve(o, n), s, n);
}

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
	char key[80];               /* ,"pid":P,"tid":T,"ts": */
	size_t key_len;
	bool has_held;              /* the last HELD span reported: */
	uint64_t held_start, held_end;
	struct pending_end *pending;
	size_t pending_count, pending_cap;
};

#define NO_FLOW UINT32_MAX

struct exporter {
	const struct model *m;
	struct out out;
	struct export_lane *lanes;
	struct flow *flows;         /* pool of flows with an end still pending */
	uint32_t flow_cap, free_flow;
	uint64_t next_flow_id;      /* the id of the next flow written, from 1 */
	uint64_t spans, flows_written, flows_dropped, instants;
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

static void write_flow(struct exporter *x, const struct flow *f)
{
	struct out *o = &x->out;
	uint64_t id = x->next_flow_id++;
	for (int end = FLOW_OUT; end <= FLOW_IN; end++) {
		const struct export_lane *l = &x->lanes[f->thread[end]];
		char *p = put_event_start(o, out_reserve(o, OUT_EVENT_MAX));
		p = end == FLOW_OUT ? PUT_LIT(p, "{\"ph\":\"s\",\"id\":") : PUT_LIT(p, "{\"ph\":\"f\",\"bp\":\"e\",\"id\":");
		p = put_u64(p, id);
		p = PUT_LIT(p, ",\"name\":\"GIL handoff\",\"cat\":\"gil\"");
		p = put_mem(p, l->key, l->key_len);
		p = put_us(p, f->ts[end]);
		*p++ = '}';
		o->p = p;
	}
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
	if (state == LANE_HELD || state == LANE_WAITING) {
		/* spans.c reports a thread's spans in time order and the
		 * reader keeps each thread's events so: slices never overlap */
		struct out *o = &x->out;
		char *p = put_event_start(o, out_reserve(o, OUT_EVENT_MAX));
		p = state == LANE_HELD ? PUT_LIT(p, "{\"ph\":\"X\",\"name\":\"GIL held\",\"cat\":\"gil\"")
		                       : PUT_LIT(p, "{\"ph\":\"X\",\"name\":\"GIL wait\",\"cat\":\"gil\"");
		p = put_mem(p, l->key, l->key_len);
		p = put_us(p, start_ns);
		p = PUT_LIT(p, ",\"dur\":");
		p = put_us(p, end_ns - start_ns);
		*p++ = '}';
		o->p = p;
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
static void instant_begin(struct exporter *x, const struct mark *k, char scope, const char *name, const char *cat)
{
	struct out *o = &x->out;
	const struct export_lane *l = &x->lanes[k->thread];
	char *p = put_event_start(o, out_reserve(o, OUT_EVENT_MAX));
	p = PUT_LIT(p, "{\"ph\":\"i\",\"s\":\"");
	*p++ = scope;
	p = PUT_LIT(p, "\",\"name\":\"");
	p = put_mem(p, name, strlen(name)); /* names and cats here are plain ASCII */
	p = PUT_LIT(p, "\",\"cat\":\"");
	p = put_mem(p, cat, strlen(cat));
	*p++ = '"';
	p = put_mem(p, l->key, l->key_len);
	p = put_us(p, k->ns);
	o->p = p;
	x->instants++;
}

static void write_mark(struct exporter *x, const struct mark *k, const struct findings *fs)
{
	struct out *o = &x->out;
	char *p;
	if (k->thread < 0 || (size_t)k->thread >= x->m->thread_count)
		return;
	switch (k->kind) {
	case MARK_FINALIZE:
		instant_begin(x, k, 'g', "finalization start", "finalization");
		out_literal(o, "}");
		break;
	case MARK_TSTATE_FREE: {
		char addr[24];
		snprintf(addr, sizeof addr, "0x%" PRIx64, k->tstate);
		instant_begin(x, k, 't', "thread state freed", "tstate");
		out_literal(o, ",\"args\":{\"tstate\":\"");
		out_literal(o, addr);
		out_literal(o, "\"}}");
		break;
	}
	case MARK_THREAD_EXIT:
	case MARK_THREAD_PARK: {
		unsigned arg = k->end_arg;
		bool park = k->kind == MARK_THREAD_PARK;
		instant_begin(x, k, 't', park ? "thread parked" : "thread exit", "thread");
		p = out_reserve(o, OUT_EVENT_MAX);
		p = PUT_LIT(p, ",\"args\":{");
		if (!park) {
			const char *name = trace_exit_how_name(gtr_exit_how(arg));
			p = PUT_LIT(p, "\"how\":\"");
			p = put_mem(p, name, strlen(name));
			p = PUT_LIT(p, "\",");
		}
		p = gtr_exit_held_gil(arg) ? PUT_LIT(p, "\"held_gil\":true}}") : PUT_LIT(p, "\"held_gil\":false}}");
		o->p = p;
		break;
	}
	case MARK_FINDING: {
		const struct finding *f = &fs->items[k->finding];
		const struct detector_info *d = &detectors[f->kind];
		instant_begin(x, k, 't', d->id, "finding");
		out_literal(o, ",\"args\":{\"detector\":\"");
		out_literal(o, d->id);
		out_literal(o, d->severity == SEVERITY_ERROR ? "\",\"severity\":\"error\",\"title\":"
		                                             : "\",\"severity\":\"note\",\"title\":");
		out_string(o, d->title);
		out_literal(o, ",\"what\":");
		out_string(o, f->what);
		out_literal(o, "}}");
		break;
	}
	}
}

/* A metadata event: {"ph":"M","name":name,"pid":..,"tid":tid,"args":{key:
 * and the caller writes the value and the closing braces. */
static void metadata_begin(struct exporter *x, const char *name, int32_t pid, int32_t tid, const char *key)
{
	struct out *o = &x->out;
	char *p = put_event_start(o, out_reserve(o, OUT_EVENT_MAX));
	p = PUT_LIT(p, "{\"ph\":\"M\",\"name\":\"");
	p = put_mem(p, name, strlen(name));
	p = PUT_LIT(p, "\",\"pid\":");
	p = put_i64(p, pid);
	p = PUT_LIT(p, ",\"tid\":");
	p = put_i64(p, tid);
	p = PUT_LIT(p, ",\"args\":{\"");
	p = put_mem(p, key, strlen(key));
	p = PUT_LIT(p, "\":");
	o->p = p;
}

static void write_metadata(struct exporter *x)
{
	const struct model *m = x->m;
	const struct gtr_file_header *h = &m->trace->header;
	struct out *o = &x->out;
	const char *slash = strrchr(h->executable, '/');
	const char *exe = slash ? slash + 1 : h->executable;
	char buf[64];
	metadata_begin(x, "process_name", h->pid, h->pid, "name");
	if (exe[0]) {
		out_string(o, exe);
	} else {
		snprintf(buf, sizeof buf, "\"pid %d\"", (int)h->pid);
		out_literal(o, buf);
	}
	out_literal(o, "}}");
	for (size_t i = 0; i < m->thread_count; i++) {
		int32_t tid = m->threads[i].info->tid;
		metadata_begin(x, "thread_name", h->pid, tid, "name");
		out_string(o, model_thread_label(m, (int)i, buf, sizeof buf));
		out_literal(o, "}}");
		/* the order of the model's threads: first seen first, for catapult */
		metadata_begin(x, "thread_sort_index", h->pid, tid, "sort_index");
		o->p = put_u64(out_reserve(o, 24), i);
		out_literal(o, "}}");
	}
}

static void write_other_data(struct exporter *x, const struct findings *fs)
{
	const struct model *m = x->m;
	const struct trace *t = m->trace;
	const struct gtr_file_header *h = &t->header;
	struct out *o = &x->out;
	char buf[64];
	char *p;
	out_literal(o, "\"otherData\":{\"generator\":\"giltrace export\",\"trace\":");
	out_string(o, t->path);
	out_literal(o, ",\"interpreter\":");
	if (describe_python_version(h, buf, sizeof buf)[0])
		out_string(o, buf);
	else
		out_literal(o, "null");
	out_literal(o, ",\"interpreter_full\":");
	out_string(o, h->py_version);
	out_literal(o, ",\"executable\":");
	out_string(o, h->executable);
	p = out_reserve(o, OUT_EVENT_MAX);
	p = PUT_LIT(p, ",\"pid\":");
	p = put_i64(p, h->pid);
	p = PUT_LIT(p, ",\"truncated\":");
	p = t->truncated ? PUT_LIT(p, "true") : PUT_LIT(p, "false");
	p = PUT_LIT(p, ",\"notes\":");
	p = put_u64(p, t->note_count);
	p = PUT_LIT(p, ",\"trace_events\":");
	p = put_u64(p, t->event_count);
	p = PUT_LIT(p, ",\"wall_us\":");
	p = put_us(p, m->wall_ns);
	p = PUT_LIT(p, ",\"spans\":");
	p = put_u64(p, x->spans);
	p = PUT_LIT(p, ",\"handoffs\":");
	p = put_u64(p, x->flows_written);
	p = PUT_LIT(p, ",\"handoffs_without_arrow\":");
	p = put_u64(p, x->flows_dropped);
	p = PUT_LIT(p, ",\"findings\":");
	p = put_u64(p, fs->count);
	p = PUT_LIT(p, ",\"model_errors\":");
	p = put_u64(p, m->error_count);
	p = PUT_LIT(p, "}");
	o->p = p;
}

/* The whole document.  Returns 0, or -1 when out of memory (o->error says
 * whether a write failed). */
static int export_chrome(struct exporter *x, const struct findings *fs)
{
	const struct model *m = x->m;
	const struct gtr_file_header *h = &m->trace->header;
	struct out *o = &x->out;
	struct mark *marks = NULL;
	size_t mark_count = 0;

	for (size_t i = 0; i < m->thread_count; i++) {
		struct export_lane *l = &x->lanes[i];
		int n = snprintf(l->key, sizeof l->key, ",\"pid\":%d,\"tid\":%d,\"ts\":", (int)h->pid,
		                 (int)m->threads[i].info->tid);
		l->key_len = n > 0 && (size_t)n < sizeof l->key ? (size_t)n : 0;
	}
	out_literal(o, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
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

	out_literal(o, "\n],\n");
	write_other_data(x, fs);
	out_literal(o, "}\n");
	out_flush(o);
	return 0;
}

int export_chrome_write(FILE *file, const struct model *m, const struct findings *fs)
{
	struct exporter x = { .m = m, .free_flow = NO_FLOW, .next_flow_id = 1 };
	int ret = -ENOMEM;
	x.lanes = calloc(m->thread_count ? m->thread_count : 1, sizeof *x.lanes);
	x.out.buf = malloc(OUT_BUFFER_SIZE);
	if (!x.lanes || !x.out.buf)
		goto out;
	x.out.p = x.out.buf;
	x.out.end = x.out.buf + OUT_BUFFER_SIZE;
	x.out.file = file;
	if (export_chrome(&x, fs) == 0)
		ret = x.out.error ? -x.out.error : 0;
out:
	for (size_t i = 0; x.lanes && i < m->thread_count; i++)
		free(x.lanes[i].pending);
	free(x.lanes);
	free(x.flows);
	free(x.out.buf);
	return ret;
}
