/*
 * test-detect.c: unit tests of the replay's finalization epochs and of the
 * detectors on hand-made traces (built with AddressSanitizer and UBSan by
 * make check).  Each test lists its events (thread, type, arg, clock,
 * payload), writes them as a trace, and checks the findings and epochs.
 * Thread 0 is the main thread (tid 100 = pid), thread i has tid 100 + i;
 * clocks are ns, and the trace starts at clock 1000 (times in findings
 * are clock - 1000).
 */
#include "fake-trace.h"

#include <string.h>

#include "detect.h"
#include "model.h"
#include "replay.h"
#include "snapshot.h"
#include "spans.h"
#include "trace.h"

static int passed, failed;

/* thread states: main's in the first and the second runtime, a daemon's,
 * a thread's of the second runtime */
#define TS_MAIN 0xa000u
#define TS_MAIN2 0xa800u
#define TS_DAEMON 0xb000u
#define TS_OTHER 0xc000u

struct ev {
	unsigned thread, type, arg;
	uint64_t clock, a, b;
};

/* Write evs (each thread's in time order) as a closed trace ending at
 * end_clock, or an unclosed one (the process died) if end_clock is 0, and
 * load it. */
static int load(struct trace *t, const struct ev *evs, size_t n, unsigned threads, uint64_t end_clock)
{
	struct fake f;
	fake_init(&f, end_clock ? GTR_FLAG_CLOSED : 0);
	if (end_clock)
		f.h->end = (struct gtr_clock_pair){ end_clock, end_clock };
	struct gtr_chunk_header *chunks[8];
	for (unsigned i = 0; i < threads && i < 8; i++)
		chunks[i] = fake_chunk(&f, i + 1, (int32_t)(100 + i), 0, 1000);
	for (size_t i = 0; i < n; i++)
		fake_event(chunks[evs[i].thread], evs[i].type, evs[i].arg, evs[i].clock, evs[i].a, evs[i].b);
	char err[256];
	return trace_open(t, fake_write(&f, 0), err, sizeof err);
}

/* The findings of kind k, counted; *first gets the first one. */
static size_t count_kind(const struct findings *fs, enum detector k, const struct finding **first)
{
	size_t n = 0;
	for (size_t i = 0; i < fs->count; i++)
		if (fs->items[i].kind == k && !n++ && first)
			*first = &fs->items[i];
	return n;
}

#define CALL(th, fn, clk, subject) { th, GTR_EV_CAPI_CALL, GTR_CAPI_##fn, clk, subject, 0 }
#define RETURN(th, fn, clk, result) { th, GTR_EV_CAPI_RETURN, GTR_CAPI_##fn, clk, result, 0 }
#define TAKE(th, clk) { th, GTR_EV_GIL_TAKE_BEGIN, 0, clk, 0, 0 }
#define ACQUIRE(th, clk, ts, sw) { th, GTR_EV_GIL_ACQUIRE, 0, clk, ts, sw }
#define RELEASE(th, clk) { th, GTR_EV_GIL_RELEASE, 0, clk, 0, 0 }
#define FINALIZING(th, clk, on, ts) { th, GTR_EV_FINALIZING, on, clk, ts, 0 }
#define FREE(th, clk, ts) { th, GTR_EV_TSTATE_FREE, 0, clk, ts, 0 }
#define EXIT(th, clk, how) { th, GTR_EV_THREAD_EXIT, how, clk, 0, 0 }

/* Finalize once: a daemon thread that held TS_DAEMON takes the GIL back
 * with it after Py_FinalizeEx freed it, and returns to its caller. */
static const struct ev finalize_once[] = {
	{ 1, GTR_EV_THREAD_START, 0, 1100, 100, 0 },
	TAKE(1, 1200), ACQUIRE(1, 1210, TS_DAEMON, 1), RELEASE(1, 1300),
	TAKE(0, 1400), ACQUIRE(0, 1410, TS_MAIN, 2),
	CALL(0, Py_FinalizeEx, 1500, 0),
	FINALIZING(0, 1600, 1, TS_MAIN),
	FREE(0, 1700, TS_DAEMON),
	RELEASE(0, 1800),
	CALL(1, PyEval_RestoreThread, 1900, TS_DAEMON),
	TAKE(1, 1910), ACQUIRE(1, 1920, TS_DAEMON, 3),
	RETURN(1, PyEval_RestoreThread, 1930, 0),
	RELEASE(1, 2000),
	TAKE(0, 2100), ACQUIRE(0, 2110, TS_MAIN, 4),
	RETURN(0, Py_FinalizeEx, 2200, 0),
	EXIT(0, 2300, GTR_EXIT_PROCESS | GTR_EXIT_HELD_GIL),
};

static int test_finalize_once(void)
{
	int ok = 1;
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, finalize_once, sizeof finalize_once / sizeof finalize_once[0], 2, 2400) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(fs.errors == 1 && fs.notes == 0 && count_kind(&fs, DETECT_FREED_TSTATE_USE, &x) == 1);
	if (x) {
		CHECK(x->thread == 1 && x->ns == 930 && x->tstate == TS_DAEMON);
		CHECK(x->freed && x->freed_ns == 700 && x->freed_by == 0);
		CHECK(x->capi == GTR_CAPI_PyEval_RestoreThread);
		CHECK(x->finalizing && x->fin_seen && x->fin_start_ns == 600);
	}
	/* the main thread finalizes: its own GIL use after the flag is none */
	CHECK(m.finalization.seen && m.finalization.start_ns == 600 && m.finalization.finalizing_thread == 0);
	CHECK(m.finalization.enter_seen && m.finalization.enter_ns == 500);
	CHECK(m.finalization.exit_seen && m.finalization.exit_ns == 1200);
	CHECK(m.epoch_count == 1 && m.epochs[0].held_count == 1 && m.epochs[0].held[0] == 1);
	struct replay r;
	CHECK(replay_run(&r, &t, NULL, 0) == 0);
	CHECK(r.epoch_count == 1 && r.finalizing && !r.epochs[0].ended);
	CHECK(r.epochs[0].finalizing_thread == 0 && r.epochs[0].noticed_by == 0);
	replay_free(&r);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* The same daemon thread, on 3.9-3.12's path: take_gil's check after
 * acquiring drops the GIL and ends it (pthread_exit).  A note, no error. */
static int test_finalize_once_exit_in_take_gil(void)
{
	int ok = 1;
	struct ev evs[sizeof finalize_once / sizeof finalize_once[0]];
	memcpy(evs, finalize_once, sizeof evs);
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (evs[i].thread == 1 && evs[i].clock == 1930)
			evs[i] = (struct ev)RELEASE(1, 1930);
		else if (evs[i].thread == 1 && evs[i].clock == 2000)
			evs[i] = (struct ev)EXIT(1, 2000, GTR_EXIT_PTHREAD_EXIT);
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 2400) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(fs.errors == 0 && fs.notes == 1 && count_kind(&fs, DETECT_EXIT_IN_TAKE_GIL, &x) == 1);
	if (x)
		CHECK(x->thread == 1 && x->ns == 1000 && x->capi == GTR_CAPI_PyEval_RestoreThread && x->freed);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* An embedding program finalizes, initialises a new runtime, and finalizes
 * it.  Thread 1 is a daemon thread of the first runtime, blocked in C with
 * TS_DAEMON, which the first finalization freed; thread 2 belongs to the
 * second runtime.  The second flag is noticed by thread 2 while the main
 * thread holds the GIL with the thread state the flag names. */
static const struct ev reinit[] = {
	TAKE(1, 1100), ACQUIRE(1, 1110, TS_DAEMON, 1), RELEASE(1, 1200),
	TAKE(0, 1300), ACQUIRE(0, 1310, TS_MAIN, 2),
	CALL(0, Py_FinalizeEx, 1400, 0),
	FINALIZING(0, 1500, 1, TS_MAIN),
	FREE(0, 1600, TS_DAEMON),
	RETURN(0, Py_FinalizeEx, 1800, 0),
	CALL(0, Py_Initialize, 1900, 0),
	ACQUIRE(0, 1950, TS_MAIN2, 3),
	RETURN(0, Py_Initialize, 2000, 0),
	RELEASE(0, 2150),
	/* the second runtime: thread 2 runs while nothing finalizes */
	{ 2, GTR_EV_THREAD_START, 0, 2100, 100, 0 },
	CALL(2, PyEval_RestoreThread, 2200, TS_OTHER),
	TAKE(2, 2210), ACQUIRE(2, 2220, TS_OTHER, 4),
	RETURN(2, PyEval_RestoreThread, 2230, 0),
	RELEASE(2, 2300),
	TAKE(0, 2340), ACQUIRE(0, 2350, TS_MAIN2, 5),
	CALL(0, Py_FinalizeEx, 2450, 0),
	FINALIZING(2, 2500, 1, TS_MAIN2),
	FREE(0, 2600, TS_OTHER),
	RELEASE(0, 2700),
	/* thread 2 is ended on its way in (a note) */
	CALL(2, PyEval_RestoreThread, 2710, TS_OTHER),
	TAKE(2, 2720), ACQUIRE(2, 2730, TS_OTHER, 6), RELEASE(2, 2740),
	EXIT(2, 2750, GTR_EXIT_PTHREAD_EXIT),
	/* the main thread finalizes on: no finding */
	TAKE(0, 2800), ACQUIRE(0, 2810, TS_MAIN2, 7), RELEASE(0, 2850),
	/* the daemon thread wakes with the thread state freed in the first
	 * finalization, and goes on */
	CALL(1, PyEval_RestoreThread, 2760, TS_DAEMON),
	TAKE(1, 2770), ACQUIRE(1, 2860, TS_DAEMON, 8),
	RETURN(1, PyEval_RestoreThread, 2870, 0),
	RETURN(0, Py_FinalizeEx, 2900, 0),
	EXIT(0, 3000, GTR_EXIT_PROCESS),
};

/* What a visitor is told: epochs begun and ended, thread ends. */
struct told {
	char log[64];
	size_t len;
};

static void told_begin(void *ctx, const struct replay *r, size_t epoch)
{
	struct told *x = ctx;
	if (x->len + 3 < sizeof x->log)
		x->len += (size_t)snprintf(x->log + x->len, sizeof x->log - x->len, "B%zu%c", epoch,
		                           r->finalizing ? ' ' : '!');
}

static void told_end(void *ctx, const struct replay *r, size_t epoch)
{
	struct told *x = ctx;
	if (x->len + 3 < sizeof x->log)
		x->len += (size_t)snprintf(x->log + x->len, sizeof x->log - x->len, "E%zu%c", epoch,
		                           r->finalizing ? '!' : ' ');
}

static void told_thread_end(void *ctx, const struct replay *r, int thread, const struct trace_event *e)
{
	struct told *x = ctx;
	(void)r;
	if (x->len + 3 < sizeof x->log)
		x->len += (size_t)snprintf(x->log + x->len, sizeof x->log - x->len, "T%d%c", thread,
		                           e->type == GTR_EV_THREAD_EXIT ? ' ' : '!');
}

static int test_reinitialise_and_finalize_again(void)
{
	int ok = 1;
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, reinit, sizeof reinit / sizeof reinit[0], 3, 3100) == 0);
	struct replay r;
	CHECK(replay_run(&r, &t, NULL, 0) == 0);
	CHECK(r.epoch_count == 2);
	if (r.epoch_count == 2) {
		const struct replay_epoch *a = &r.epochs[0], *b = &r.epochs[1];
		CHECK(a->start_ns == 500 && a->ended && a->end_ns == 1000 && a->finalizing_thread == 0);
		CHECK(a->enter_seen && a->enter_ns == 400 && a->exit_seen && a->exit_ns == 800);
		CHECK(b->start_ns == 1500 && !b->ended && b->noticed_by == 2 && b->finalizing_thread == 0);
		CHECK(b->enter_seen && b->enter_ns == 1450 && b->exit_seen && b->exit_ns == 1900);
	}
	replay_free(&r);
	/* the visitors hear of both epochs, in order, and of thread 2's exit
	 * (not of the main thread's process exit) */
	struct told told = { "", 0 };
	const struct replay_visitor tv = {
		.ctx = &told, .epoch_begin = told_begin, .epoch_end = told_end, .thread_end = told_thread_end
	};
	const struct replay_visitor *tvs[] = { &tv };
	CHECK(replay_run(&r, &t, tvs, 1) == 0);
	CHECK(strcmp(told.log, "B0 E0 B1 T2 ") == 0);
	replay_free(&r);

	CHECK(analyse(&t, &m, &fs, 0) == 0);
	/* thread 2's run in the second runtime is no finding; its end in the
	 * second finalization is a note; the main thread's none */
	const struct finding *x = NULL, *y = NULL;
	CHECK(count_kind(&fs, DETECT_EXIT_IN_TAKE_GIL, &x) == 1);
	if (x)
		CHECK(x->thread == 2 && x->ns == 1750 && x->fin_start_ns == 1500);
	CHECK(count_kind(&fs, DETECT_GIL_AFTER_FINALIZE, NULL) == 0);
	/* the daemon's thread state, freed in the first, used in the second */
	CHECK(count_kind(&fs, DETECT_FREED_TSTATE_USE, &y) == 1);
	if (y) {
		CHECK(y->thread == 1 && y->ns == 1870 && y->tstate == TS_DAEMON);
		CHECK(y->freed && y->freed_ns == 600 && y->freed_by == 0);
		CHECK(y->finalizing && y->fin_start_ns == 1500);
	}
	CHECK(fs.count == 2);
	/* the report's finalization is the first */
	CHECK(m.finalization.seen && m.finalization.start_ns == 500 && m.finalization.finalizing_thread == 0);
	/* and it knows both: thread 2's run in the second runtime is after the
	 * first and before the second began */
	CHECK(m.epoch_count == 2);
	if (m.epoch_count == 2) {
		const struct model_epoch *a = &m.epochs[0], *b = &m.epochs[1];
		CHECK(a->epoch.start_ns == 500 && a->epoch.ended && b->epoch.start_ns == 1500 && !b->epoch.ended);
		CHECK(a->alive_count == 2 && a->alive[0] == 0 && a->alive[1] == 1);
		CHECK(a->held_count == 1 && a->held[0] == 2 && a->waited_count == 1 && a->waited[0] == 2);
		CHECK(b->alive_count == 3);
		CHECK(b->held_count == 2 && b->held[0] == 1 && b->held[1] == 2);
		CHECK(b->waited_count == 2 && b->waited[0] == 1 && b->waited[1] == 2);
	}

	/* a mark per epoch, by the thread that noticed it */
	struct mark *marks = NULL;
	size_t n = 0, finalize = 0;
	CHECK(marks_collect(&m, &fs, &marks, &n) == 0);
	for (size_t i = 0; i < n; i++)
		if (marks[i].kind == MARK_FINALIZE) {
			CHECK(finalize != 0 || (marks[i].ns == 500 && marks[i].thread == 0));
			CHECK(finalize != 1 || (marks[i].ns == 1500 && marks[i].thread == 2));
			finalize++;
		}
	CHECK(finalize == 2);
	free(marks);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* The daemon thread wakes in the second runtime before it finalizes: a
 * use of a freed thread state, while the runtime was not finalizing. */
static int test_freed_in_first_runtime_used_in_second(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(1, 1100), ACQUIRE(1, 1110, TS_DAEMON, 1), RELEASE(1, 1200),
		TAKE(0, 1300), ACQUIRE(0, 1310, TS_MAIN, 2),
		FINALIZING(0, 1500, 1, TS_MAIN),
		FREE(0, 1600, TS_DAEMON),
		RETURN(0, Py_InitializeEx, 2000, 0),
		RELEASE(0, 2100),
		CALL(1, PyEval_RestoreThread, 2200, TS_DAEMON),
		TAKE(1, 2210), ACQUIRE(1, 2220, TS_DAEMON, 3),
		EXIT(0, 2500, GTR_EXIT_PROCESS),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 2600) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(fs.count == 1 && count_kind(&fs, DETECT_FREED_TSTATE_USE, &x) == 1);
	if (x) {
		CHECK(x->thread == 1 && x->ns == 1200 && !x->finalizing && x->fin_seen && x->fin_start_ns == 500);
		CHECK(strstr(x->what, "while the runtime was not finalizing") != NULL);
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* The flag cleared (arg 0) ends an epoch: a thread's GIL use after it is
 * not watched. */
static int test_flag_cleared_ends_the_epoch(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(0, 1100), ACQUIRE(0, 1110, TS_MAIN, 1),
		FINALIZING(0, 1200, 1, TS_MAIN),
		FINALIZING(0, 1300, 0, 0),
		RELEASE(0, 1400),
		CALL(1, PyEval_RestoreThread, 1500, TS_OTHER),
		TAKE(1, 1510), ACQUIRE(1, 1520, TS_OTHER, 2),
		RETURN(1, PyEval_RestoreThread, 1530, 0),
		RELEASE(1, 1600),
		EXIT(0, 1700, GTR_EXIT_PROCESS),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 1800) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	CHECK(fs.count == 0);
	struct replay r;
	CHECK(replay_run(&r, &t, NULL, 0) == 0);
	CHECK(r.epoch_count == 1 && r.epochs[0].ended && r.epochs[0].end_ns == 300 && !r.finalizing);
	replay_free(&r);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* The other detectors, one event sequence each. */
static int test_exit_holding_gil(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(1, 1100), ACQUIRE(1, 1110, TS_OTHER, 1),
		EXIT(1, 1200, GTR_EXIT_RETURN | GTR_EXIT_HELD_GIL),
		/* the process exit holding it is no finding */
		EXIT(0, 1300, GTR_EXIT_PROCESS | GTR_EXIT_HELD_GIL),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 1400) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(fs.count == 1 && count_kind(&fs, DETECT_EXIT_HOLDING_GIL, &x) == 1);
	if (x)
		CHECK(x->thread == 1 && x->ns == 200 && x->tstate == TS_OTHER && !x->fin_seen);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

static int test_gilstate_after_finalize(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(0, 1100), ACQUIRE(0, 1110, TS_MAIN, 1),
		FINALIZING(0, 1200, 1, TS_MAIN),
		/* C code of an extension (no module holds the caller) */
		CALL(1, PyGILState_Ensure, 1300, 0),
		CALL(1, PyGILState_Ensure, 1400, 0),
		EXIT(0, 1500, GTR_EXIT_PROCESS | GTR_EXIT_HELD_GIL),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 1600) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	/* each call is one; the thread still in take_gil at the exit, a note */
	CHECK(count_kind(&fs, DETECT_GILSTATE_AFTER_FINALIZE, &x) == 2);
	if (x)
		CHECK(x->thread == 1 && x->ns == 300 && x->capi == GTR_CAPI_PyGILState_Ensure && x->finalizing);
	CHECK(count_kind(&fs, DETECT_EXIT_IN_TAKE_GIL, NULL) == 1 && fs.count == 3);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

static int test_parked_at_exit(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(1, 1050), ACQUIRE(1, 1060, TS_OTHER, 1), RELEASE(1, 1070),
		TAKE(0, 1100), ACQUIRE(0, 1110, TS_MAIN, 2),
		FINALIZING(0, 1200, 1, TS_MAIN),
		TAKE(1, 1300),
		{ 1, GTR_EV_THREAD_PARK, 0, 1310, 0, 0 },
		EXIT(0, 1500, GTR_EXIT_PROCESS | GTR_EXIT_HELD_GIL),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 1600) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(fs.count == 1 && fs.errors == 0 && count_kind(&fs, DETECT_PARKED_AT_EXIT, &x) == 1);
	if (x)
		CHECK(x->thread == 1 && x->ns == 310 && x->tstate == TS_OTHER);
	CHECK(m.threads[1].exit == THREAD_END_PARKED && m.threads[1].exit_ns == 310);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* The holder waits in drop_gil for a forced switch to the thread that
 * asked for the GIL, but that thread exited (gh-96387); the trace ends
 * in the wait: the process hung. */
static int test_switch_wait_on_dead_thread(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(0, 1100), ACQUIRE(0, 1110, TS_MAIN, 1),
		TAKE(1, 1200), { 1, GTR_EV_GIL_WAIT_BEGIN, 0, 1210, 0, 0 },
		{ 1, GTR_EV_GIL_DROP_REQUEST, 0, 1300, 0, 0 },
		{ 1, GTR_EV_GIL_TAKE_ABANDON, 0, 1400, 0, 0 },
		EXIT(1, 1410, GTR_EXIT_PTHREAD_EXIT),
		RELEASE(0, 1500),
		{ 0, GTR_EV_GIL_FORCED_SWITCH_BEGIN, 0, 1510, 0, 0 },
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 0) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(fs.count == 1 && count_kind(&fs, DETECT_SWITCH_WAIT_ON_DEAD_THREAD, &x) == 1);
	if (x) {
		CHECK(x->thread == 0 && x->ns == 510 && x->other_thread == 1);
		CHECK(strstr(x->what, "the process hung") != NULL);
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A freed thread state's block handed out again (TSTATE_REUSE) is a new
 * thread state: the thread that used the old one is no user of it. */
static int test_reused_block_is_no_use(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(1, 1100), ACQUIRE(1, 1110, TS_OTHER, 1), RELEASE(1, 1200),
		FREE(0, 1300, TS_OTHER),
		{ 0, GTR_EV_TSTATE_REUSE, 0, 1400, TS_OTHER, 336 },
		CALL(1, PyEval_RestoreThread, 1500, TS_OTHER),
		TAKE(1, 1510), ACQUIRE(1, 1520, TS_OTHER, 2),
		RETURN(1, PyEval_RestoreThread, 1530, 0),
		EXIT(0, 1600, GTR_EXIT_PROCESS),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 1700) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	CHECK(fs.count == 0);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	/* without the reuse, the same calls are a use of the freed one */
	struct ev without[sizeof evs / sizeof evs[0] - 1];
	for (size_t i = 0, k = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (evs[i].type != GTR_EV_TSTATE_REUSE)
			without[k++] = evs[i];
	CHECK(load(&t, without, sizeof without / sizeof without[0], 2, 1700) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	CHECK(fs.count == 1 && count_kind(&fs, DETECT_FREED_TSTATE_USE, NULL) == 1);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* ---- crashes ---------------------------------------------------------------------- */

#define CRASH(th, clk, sig, code, addr) { th, GTR_EV_CRASH, gtr_crash_arg(sig, GTR_CRASH_DEFAULT), clk, \
	                                  gtr_crash_word(0x401000, code), addr }

/* Analyse evs of an unclosed trace (the process died); 0 on a load error. */
static int crash_findings(const struct ev *evs, size_t n, struct findings *fs, struct model *m, struct trace *t)
{
	if (load(t, evs, n, 2, 0) != 0)
		return 0;
	return analyse(t, m, fs, 0) == 0;
}

/* A SIGSEGV outside finalization is `crash`, with its signal and address. */
static int test_crash(void)
{
	int ok = 1;
	struct ev evs[] = {
		TAKE(1, 1100), ACQUIRE(1, 1110, TS_OTHER, 1),
		CRASH(1, 1200, 11, 1, 0),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(crash_findings(evs, sizeof evs / sizeof evs[0], &fs, &m, &t));
	const struct finding *x = NULL;
	CHECK(fs.count == 1 && fs.errors == 1 && count_kind(&fs, DETECT_CRASH, &x) == 1);
	if (x) {
		CHECK(x->thread == 1 && x->ns == 200 && !x->finalizing);
		CHECK(strstr(x->what, "got SIGSEGV (SEGV_MAPERR) at address 0x0") != NULL);
		CHECK(strstr(x->what, "while holding the GIL") != NULL);
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A daemon thread that crashes during finalization, without the GIL and
 * not in take_gil: crash-at-exit, naming what the main thread did; no
 * guess that the thread with the freed thread state died. */
static int test_crash_at_exit(void)
{
	int ok = 1;
	struct ev evs[] = {
		TAKE(1, 1100), ACQUIRE(1, 1110, TS_DAEMON, 1), RELEASE(1, 1200),
		TAKE(0, 1300), ACQUIRE(0, 1310, TS_MAIN, 2),
		CALL(0, Py_FinalizeEx, 1400, 0),
		FINALIZING(0, 1500, 1, TS_MAIN),
		FREE(0, 1600, TS_DAEMON),
		CRASH(1, 1700, 11, 1, 0),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(crash_findings(evs, sizeof evs / sizeof evs[0], &fs, &m, &t));
	const struct finding *x = NULL;
	CHECK(fs.count == 1 && count_kind(&fs, DETECT_CRASH_AT_EXIT, &x) == 1);
	if (x) {
		CHECK(x->thread == 1 && x->finalizing && x->fin_start_ns == 500);
		CHECK(strstr(x->what, "thread 100 was finalizing, holding the GIL") != NULL);
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A fault inside a freed thread state's block is its use; the crash
 * names it. */
static int test_crash_in_freed_tstate(void)
{
	int ok = 1;
	struct ev evs[] = {
		TAKE(1, 1100), ACQUIRE(1, 1110, TS_DAEMON, 1), RELEASE(1, 1200),
		TAKE(0, 1300), ACQUIRE(0, 1310, TS_MAIN, 2),
		CALL(0, Py_FinalizeEx, 1400, 0),
		FINALIZING(0, 1500, 1, TS_MAIN),
		FREE(0, 1600, TS_DAEMON),
		CRASH(1, 1700, 7, 2, TS_DAEMON + 16),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(crash_findings(evs, sizeof evs / sizeof evs[0], &fs, &m, &t));
	const struct finding *x = NULL;
	CHECK(fs.count == 1 && count_kind(&fs, DETECT_FREED_TSTATE_USE, &x) == 1);
	if (x) {
		CHECK(x->thread == 1 && x->tstate == TS_DAEMON && x->freed && x->freed_by == 0);
		CHECK(strstr(x->what, "got SIGBUS (BUS_ADRERR)") != NULL && strstr(x->what, "inside it") != NULL);
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A thread that runs on after its crash (its handler recovered): none. */
static int test_crash_recovered(void)
{
	int ok = 1;
	struct ev evs[] = {
		TAKE(1, 1100), ACQUIRE(1, 1110, TS_OTHER, 1),
		CRASH(1, 1200, 11, 1, 0),
		RELEASE(1, 1300), TAKE(1, 1400), ACQUIRE(1, 1410, TS_OTHER, 2),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(crash_findings(evs, sizeof evs / sizeof evs[0], &fs, &m, &t));
	CHECK(fs.count == 0 && fs.errors == 0 && fs.notes == 0);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A hang snapshot of pid 100 with threads 100 and, if `both`, 101 (no
 * frames), as run --timeout leaves beside the trace: set on t, which
 * frees it. */
static void give_snapshot(struct trace *t, bool both)
{
	struct snapshot *s = calloc(1, sizeof *s);
	struct snapshot_thread *th = calloc(2, sizeof *th);
	if (!s || !th)
		abort();
	th[0] = (struct snapshot_thread){ .tid = 100, .state = 'S' };
	th[1] = (struct snapshot_thread){ .tid = 101, .state = 'S' };
	*s = (struct snapshot){ .pid = 100, .limit_ns = 10000000000u, .complete = true, .threads = th,
		                .thread_count = both ? 2 : 1 };
	t->snapshot = s;
}

/* exit-hang, gh-96387 shape: the events of the switch-wait test, and the
 * snapshot giltrace took before it ended the process. */
static int test_exit_hang_gh96387(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(0, 1100), ACQUIRE(0, 1110, TS_MAIN, 1),
		TAKE(1, 1200), { 1, GTR_EV_GIL_WAIT_BEGIN, 0, 1210, 0, 0 },
		{ 1, GTR_EV_GIL_DROP_REQUEST, 0, 1300, 0, 0 },
		{ 1, GTR_EV_GIL_TAKE_ABANDON, 0, 1400, 0, 0 },
		EXIT(1, 1410, GTR_EXIT_PTHREAD_EXIT),
		RELEASE(0, 1500),
		{ 0, GTR_EV_GIL_FORCED_SWITCH_BEGIN, 0, 1510, 0, 0 },
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 0) == 0);
	give_snapshot(&t, false);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(count_kind(&fs, DETECT_EXIT_HANG, &x) == 1 && count_kind(&fs, DETECT_SWITCH_WAIT_ON_DEAD_THREAD, NULL) == 1);
	if (x) {
		CHECK(x->thread == 0 && x->other_thread == 1);
		CHECK(strstr(x->what, "gh-96387") && strstr(x->what, "switch_cond"));
		/* the snapshot's thread, then the thread it waits for, which ended */
		CHECK(x->role_count == 2 && x->roles[0].tid == 100 && strstr(x->roles[0].role, "switch_cond"));
		CHECK(x->roles[1].tid == 101 && x->roles[1].thread == 1 && strstr(x->roles[1].role, "drop request"));
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* exit-hang, bpo-36469 shape: a daemon thread takes the GIL after
 * finalization began and keeps it; the finalizing thread waits for it. */
static int test_exit_hang_bpo36469(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(1, 1050), ACQUIRE(1, 1060, TS_DAEMON, 1), RELEASE(1, 1070),
		TAKE(0, 1100), ACQUIRE(0, 1110, TS_MAIN, 2),
		CALL(0, Py_FinalizeEx, 1200, 0),
		FINALIZING(0, 1300, 1, TS_MAIN),
		RELEASE(0, 1400),
		TAKE(1, 1500), ACQUIRE(1, 1510, TS_DAEMON, 3),
		TAKE(0, 1600), { 0, GTR_EV_GIL_WAIT_BEGIN, 0, 1610, 0, 0 },
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 0) == 0);
	give_snapshot(&t, true);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(count_kind(&fs, DETECT_EXIT_HANG, &x) == 1);
	if (x) {
		CHECK(x->thread == 0 && x->other_thread == 1);
		CHECK(strstr(x->what, "bpo-36469") != NULL);
		CHECK(x->role_count == 2 && strstr(x->roles[0].role, "waits for the GIL"));
		CHECK(strstr(x->roles[1].role, "holds the GIL") != NULL);
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A trace that stops without a snapshot is no hang: no exit-hang. */
static int test_no_snapshot_no_exit_hang(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		TAKE(0, 1100), ACQUIRE(0, 1110, TS_MAIN, 1),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 1, 0) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	CHECK(count_kind(&fs, DETECT_EXIT_HANG, NULL) == 0);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* bpo-23309 / gh-129536: a daemon thread (tid 101) owns a buffered
 * stream's lock when finalization begins; the must-exit check ends it
 * (pthread_exit) holding the lock; the finalizing thread waits 1 s for it,
 * times out, and Py_FatalError aborts.  exit-lock-held names both. */
#define LOCK_ADDR 0x5000u
#define LOCK_WAIT(th, clk, owner, timeout_us) { th, GTR_EV_LOCK_WAIT_BEGIN, 1, clk, LOCK_ADDR, (uint64_t)(owner) | (uint64_t)(timeout_us) << 32 }
#define LOCK_END(th, clk, end) { th, GTR_EV_LOCK_WAIT_END, end, clk, LOCK_ADDR, 0 }
#define LOCK_HELD(th, clk, at) { th, GTR_EV_LOCK_HELD, at, clk, LOCK_ADDR, 0 }

static int lock_case(const struct ev *evs, size_t n, uint64_t end_clock, size_t want, const char *want_text)
{
	int ok = 1;
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, n, 2, end_clock) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(count_kind(&fs, DETECT_EXIT_LOCK_HELD, &x) == want);
	if (x) {
		CHECK(x->thread == 0 && x->other_thread == 1 && x->lock == LOCK_ADDR);
		CHECK(strstr(x->what, "gh-129536") != NULL);
		CHECK(strstr(x->what, "the finalizing thread") != NULL);
		if (want_text && !strstr(x->what, want_text)) {
			fprintf(stderr, "  what: %s\n", x->what);
			ok = 0;
		}
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

static int test_exit_lock_held(void)
{
	const struct ev evs[] = {
		{ 1, GTR_EV_THREAD_START, 0, 1100, 100, 0 },
		TAKE(1, 1200), ACQUIRE(1, 1210, TS_DAEMON, 1), RELEASE(1, 1300),
		TAKE(0, 1400), ACQUIRE(0, 1410, TS_MAIN, 2),
		FINALIZING(0, 1600, 1, TS_MAIN),
		RELEASE(0, 1700),
		LOCK_WAIT(0, 1710, 101, 1000000),
		TAKE(1, 1800), LOCK_HELD(1, 1810, GTR_LOCK_HELD_AT_EXIT), EXIT(1, 1820, GTR_EXIT_PTHREAD_EXIT),
		LOCK_END(0, 1001710, GTR_LOCK_TIMED_OUT),
		{ 0, GTR_EV_CRASH, gtr_crash_arg(6, GTR_CRASH_DEFAULT), 1001800, gtr_crash_word(0x1234, -6), 100 },
	};
	int ok = lock_case(evs, sizeof evs / sizeof evs[0], 0, 1, "CPython ended at +810 ns holding it (pthread_exit at a must-exit check)");
	/* the same waits, but the owner releases the lock: no finding */
	struct ev clean[sizeof evs / sizeof evs[0]];
	memcpy(clean, evs, sizeof clean);
	for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++) {
		if (clean[i].type == GTR_EV_LOCK_HELD)
			clean[i] = (struct ev)RELEASE(1, 1810);
		else if (clean[i].type == GTR_EV_LOCK_WAIT_END)
			clean[i] = (struct ev)LOCK_END(0, 1900, GTR_LOCK_ACQUIRED);
		else if (clean[i].type == GTR_EV_CRASH)
			clean[i] = (struct ev)EXIT(0, 2000, GTR_EXIT_PROCESS);
	}
	ok &= lock_case(clean, sizeof clean / sizeof clean[0], 2100, 0, NULL);
	return ok;
}

/* An untimed wait that never ends (the process died in it, the owner
 * still running): a finding at the wait's begin; an interrupted wait that
 * goes on is one wait. */
static int test_exit_lock_held_wait_never_ends(void)
{
	static const struct ev evs[] = {
		{ 1, GTR_EV_THREAD_START, 0, 1100, 100, 0 },
		TAKE(0, 1400), ACQUIRE(0, 1410, TS_MAIN, 2),
		FINALIZING(0, 1600, 1, TS_MAIN),
		RELEASE(0, 1700),
		{ 0, GTR_EV_LOCK_WAIT_BEGIN, 0, 1710, LOCK_ADDR, 101 },
		LOCK_END(0, 1720, GTR_LOCK_INTERRUPTED),
		{ 0, GTR_EV_LOCK_WAIT_BEGIN, 0, 1730, LOCK_ADDR, 101 },
		TAKE(1, 1800),
	};
	return lock_case(evs, sizeof evs / sizeof evs[0], 0, 1, "which was still running");
}

/* PEP 788 (3.15): a guard made and never closed before Py_FinalizeEx is an
 * error at the guard; one closed is none; a guard made after the call
 * cannot hold it. */
static int test_guard_never_closed(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		CALL(1, PyInterpreterGuard_FromCurrent, 1100, 0), RETURN(1, PyInterpreterGuard_FromCurrent, 1110, 0x9000),
		CALL(1, PyInterpreterGuard_FromCurrent, 1120, 0), RETURN(1, PyInterpreterGuard_FromCurrent, 1130, 0x9100),
		CALL(1, PyInterpreterGuard_Close, 1140, 0x9100),
		CALL(0, Py_FinalizeEx, 1200, 0),
		CALL(1, PyInterpreterGuard_FromView, 1300, 0x7000), RETURN(1, PyInterpreterGuard_FromView, 1310, 0x9200),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 0) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(count_kind(&fs, DETECT_GUARD_NEVER_CLOSED, &x) == 1 && fs.count == 1);
	if (x) {
		CHECK(x->thread == 1 && x->ns == 110 && x->capi == GTR_CAPI_PyInterpreterGuard_FromCurrent);
		CHECK(strstr(x->what, "guard 0x9000") && strstr(x->what, "thread 100 (main) entered Py_FinalizeEx"));
	}
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* Ensure twice, release twice: balanced; a third release is one too many.
 * A failed Ensure (NULL) opens nothing; its release is one too many too. */
static int test_tstate_release_unbalanced(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		CALL(1, PyThreadState_Ensure, 1100, 0x9000), RETURN(1, PyThreadState_Ensure, 1110, 0x5000),
		CALL(1, PyThreadState_EnsureFromView, 1120, 0x7000), RETURN(1, PyThreadState_EnsureFromView, 1130, 0x5100),
		CALL(1, PyThreadState_Release, 1140, 0x5100),
		CALL(1, PyThreadState_Release, 1150, 0x5000),
		CALL(1, PyThreadState_Release, 1160, 0x5000),
		CALL(2, PyThreadState_Ensure, 1200, 0x9000), RETURN(2, PyThreadState_Ensure, 1210, 0),
		CALL(2, PyThreadState_Release, 1220, 0),
		EXIT(0, 1300, GTR_EXIT_PROCESS),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 3, 1400) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(count_kind(&fs, DETECT_TSTATE_RELEASE_UNBALANCED, &x) == 2 && fs.count == 2);
	if (x)
		CHECK(x->thread == 1 && x->ns == 160 && strstr(x->what, "PyThreadState_Release(0x5000)"));
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* EnsureFromView refused (NULL) once finalization began: a note; refused
 * before, it is only an error of the caller's own (no finding). */
static int test_ensure_refused_at_exit(void)
{
	int ok = 1;
	static const struct ev evs[] = {
		CALL(1, PyThreadState_EnsureFromView, 1100, 0x7000), RETURN(1, PyThreadState_EnsureFromView, 1110, 0),
		TAKE(0, 1150), ACQUIRE(0, 1160, TS_MAIN, 1),
		FINALIZING(0, 1200, 1, TS_MAIN),
		CALL(1, PyThreadState_EnsureFromView, 1300, 0x7000), RETURN(1, PyThreadState_EnsureFromView, 1310, 0),
		CALL(1, PyInterpreterGuard_FromView, 1320, 0x7000), RETURN(1, PyInterpreterGuard_FromView, 1330, 0),
		EXIT(0, 1400, GTR_EXIT_PROCESS | GTR_EXIT_HELD_GIL),
	};
	struct trace t;
	struct model m;
	struct findings fs;
	CHECK(load(&t, evs, sizeof evs / sizeof evs[0], 2, 1500) == 0);
	CHECK(analyse(&t, &m, &fs, 0) == 0);
	const struct finding *x = NULL;
	CHECK(count_kind(&fs, DETECT_ENSURE_REFUSED_AT_EXIT, &x) == 2 && fs.errors == 0 && fs.count == 2);
	if (x)
		CHECK(x->thread == 1 && x->ns == 310 && x->capi == GTR_CAPI_PyThreadState_EnsureFromView && x->finalizing);
	findings_free(&fs);
	model_free(&m);
	trace_close(&t);
	return ok;
}

int main(void)
{
	int (*const tests[])(void) = {
		test_finalize_once,
		test_finalize_once_exit_in_take_gil,
		test_reinitialise_and_finalize_again,
		test_freed_in_first_runtime_used_in_second,
		test_flag_cleared_ends_the_epoch,
		test_exit_holding_gil,
		test_gilstate_after_finalize,
		test_parked_at_exit,
		test_switch_wait_on_dead_thread,
		test_reused_block_is_no_use,
		test_crash,
		test_crash_at_exit,
		test_crash_in_freed_tstate,
		test_crash_recovered,
		test_exit_hang_gh96387,
		test_exit_hang_bpo36469,
		test_no_snapshot_no_exit_hang,
		test_exit_lock_held,
		test_exit_lock_held_wait_never_ends,
		test_guard_never_closed,
		test_tstate_release_unbalanced,
		test_ensure_refused_at_exit,
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		tests[i]() ? passed++ : failed++;
	fake_unlink();
	printf("detect: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
