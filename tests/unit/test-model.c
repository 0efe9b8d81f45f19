/*
 * test-model.c: unit tests of the trace reader and the GIL model on
 * hand-made traces (built with AddressSanitizer and UBSan by make check).
 * Each test writes a trace file event by event, loads it, and checks what
 * the reader and the model make of it, including their self-checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/wait.h>

#include "fake-trace.h"
#include "lanes.h"
#include "model.h"
#include "spans.h"
#include "trace.h"

static int passed, failed;

/* Two threads hand the GIL back and forth: tid 100 (main) and 101. */
static struct fake two_threads(uint32_t flags)
{
	struct fake f;
	fake_init(&f, flags);
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	fake_event(a, GTR_EV_GIL_TAKE_BEGIN, 0, 1000, 0, 0);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1010, 0xaaa, 1);
	fake_event(b, GTR_EV_THREAD_START, 0, 1100, 100, 0);
	fake_event(b, GTR_EV_GIL_TAKE_BEGIN, 0, 1200, 0, 0);
	fake_event(b, GTR_EV_GIL_WAIT_BEGIN, 0, 1201, 0, 0);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 2000, 0, 0);
	fake_event(b, GTR_EV_GIL_WAIT_SIGNALED, 0, 2050, 0, 0);
	fake_event(b, GTR_EV_GIL_ACQUIRE, 0, 2100, 0xbbb, 2);
	fake_event(a, GTR_EV_GIL_TAKE_BEGIN, 0, 2200, 0, 0);
	fake_event(b, GTR_EV_GIL_RELEASE, 0, 3000, 0, 0);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 3300, 0xaaa, 3);
	fake_event(b, GTR_EV_THREAD_EXIT, GTR_EXIT_RETURN, 3500, 0, 0);
	fake_event(a, GTR_EV_FINALIZING, 1, 4000, 0xaaa, 0);
	fake_event(a, GTR_EV_THREAD_EXIT, GTR_EXIT_PROCESS | GTR_EXIT_HELD_GIL, 5000, 0, 0);
	return f;
}

static int test_handoffs_and_holds(void)
{
	int ok = 1;
	struct fake f = two_threads(GTR_FLAG_CLOSED);
	f.h->end = (struct gtr_clock_pair){ 6000, 6000 };
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.thread_count == 2 && t.event_count == 14 && !t.truncated);
	CHECK(model_build(&m, &t) == 0);
	CHECK(m.error_count == 0);
	CHECK(m.wall_ns == 5000);
	CHECK(m.handoff_count == 2);
	CHECK(m.latency_max == 300 && m.latency_p50 == 100);
	CHECK(m.threads[0].acquisitions == 2 && m.threads[1].acquisitions == 1);
	CHECK(m.threads[1].contended_acquisitions == 1);
	/* held [10,1000) + [2300,5000] by main, [1100,2000) by 101 */
	CHECK(m.threads[0].hold_ns == 990 + 2700);
	CHECK(m.threads[1].hold_ns == 900);
	CHECK(m.gils[0].held_ns + m.gils[0].idle_ns == m.wall_ns);
	CHECK(m.threads[1].wait_ns == 900);
	CHECK(m.finalization.seen && m.finalization.start_ns == 3000 && m.finalization.finalizing_thread == 0);
	CHECK(m.epoch_count == 1 && m.epochs[0].alive_count == 1 && m.epochs[0].alive[0] == 0);
	CHECK(m.threads[0].exit == THREAD_END_PROCESS && m.threads[0].exit_held_gil);
	CHECK(m.threads[1].exit == THREAD_END_RETURN && m.threads[1].has_start && m.threads[1].parent_tid == 100);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* The self-check: a second acquisition while the GIL is held is reported. */
static int test_overlap_is_a_model_error(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_event(b, GTR_EV_GIL_ACQUIRE, 0, 1500, 0xbbb, 2);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 2000, 0, 0);
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(model_build(&m, &t) == 0);
	CHECK(m.error_count >= 1);
	CHECK(m.error_count && strstr(m.errors[0], "while thread 100 held it"));
	model_free(&m);
	trace_close(&t);
	return ok;
}

static int test_truncated_trace(void)
{
	int ok = 1;
	struct fake f = two_threads(0); /* never closed: killed */
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.truncated && t.last_event_ns == 4000);
	CHECK(t.not_closed && !t.cut_short && trace_incomplete(&t));
	const char *ids[TRACE_INCOMPLETE_REASONS];
	CHECK(trace_incomplete_reasons(&t, ids) == 1 && strcmp(ids[0], "not_closed") == 0);
	trace_close(&t);
	return ok;
}

static int test_file_cut_short(void)
{
	int ok = 1;
	struct fake f = two_threads(GTR_FLAG_CLOSED);
	struct trace t;
	char err[256];
	/* keep the header, the metadata and the first chunk only */
	CHECK(open_walked(&t, fake_write(&f, GTR_HEADER_SIZE + META + CHUNK + 100), err, sizeof err) == 0);
	CHECK(t.thread_count == 1 && t.event_count == 7);
	CHECK(t.note_count >= 1 && strstr(t.notes[0], "cut short"));
	/* issue 10 item 11: closed, yet incomplete evidence */
	char why[320];
	CHECK(t.cut_short && !t.not_closed && trace_incomplete(&t));
	CHECK(strstr(trace_incomplete_why(&t, why, sizeof why), "1 of its 2 chunks"));
	trace_close(&t);
	return ok;
}

static int test_corrupt_event_keeps_earlier_ones(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 1100, 0, 0);
	fake_event(a, 250, 0, 1200, 0, 0);                 /* unknown type */
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1300, 0xaaa, 1);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	fake_event(b, GTR_EV_GIL_TAKE_BEGIN, 0, 1000, 0, 0);
	b->used = 12;                                      /* not a multiple of 8 */
	struct gtr_chunk_header *c = fake_chunk(&f, 3, 102, 0, 1000);
	c->magic = 0xdeadbeef;
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.thread_count == 2 && t.event_count == 3);
	CHECK(t.note_count == 3);
	trace_close(&t);
	return ok;
}

/* A type newer than the reader, in a minor-2 trace: the header's
 * event_words say its size, so it is skipped and reading goes on (with one
 * note per type); without the table the reader stops at it. */
static int test_newer_event_type_is_skipped(void)
{
	int ok = 1;
	for (int with_table = 0; with_table < 2; with_table++) {
		struct fake f;
		fake_init(&f, GTR_FLAG_CLOSED);
		f.h->version_minor = with_table ? 2 : 1;
		if (with_table) {
			for (unsigned type = 1; type < GTR_EV_COUNT; type++)
				f.h->event_words[type] = gtr_event_words_entry(type);
			f.h->event_words[60] = 2;
		}
		struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
		fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
		uint64_t *p = (uint64_t *)((char *)a + GTR_CHUNK_HEADER_SIZE + a->used);
		for (int k = 0; k < 2; k++, p += 3) { /* two events of type 60, 2 words each */
			p[0] = gtr_event_word(60, 0, 1100 + k);
			p[1] = p[2] = 0x6060;
			a->used += 24;
		}
		fake_event(a, GTR_EV_GIL_RELEASE, 0, 1200, 0, 0);
		struct trace t;
		char err[256];
		CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
		CHECK(t.event_count == (with_table ? 2u : 1u));
		CHECK(t.note_count == 1);
		CHECK(!with_table || walked[1].type == GTR_EV_GIL_RELEASE);
		trace_close(&t);
	}
	return ok;
}

static int test_clock_wraps_past_48_bits(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	uint64_t far = (UINT64_C(1) << 48) + 5000;
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_event(a, GTR_EV_CLOCK, 0, far, far, 0);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, far, 0, 0);
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.event_count == 2 && walked[1].ns == far - 1000);
	trace_close(&t);
	return ok;
}

static int test_ring_mode_lost_events(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED | GTR_FLAG_RING);
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 7, 1000);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 1000, 0, 0); /* its acquire was overwritten */
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1100, 0xaaa, 1);
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.threads[0].events_lost);
	CHECK(model_build(&m, &t) == 0 && m.error_count == 0);
	model_free(&m);
	trace_close(&t);
	return ok;
}

static void count_handoff(void *ctx, unsigned gil, int from, uint64_t released, int to, uint64_t acquired)
{
	(void)gil, (void)from, (void)released, (void)to, (void)acquired;
	++*(int *)((void **)ctx)[0];
}

static void ignore_span(void *ctx, int thread, enum lane_state state, uint64_t start, uint64_t end)
{
	(void)ctx, (void)thread, (void)state, (void)start, (void)end;
}

static void sum_held(void *ctx, int thread, enum lane_state state, uint64_t start, uint64_t end)
{
	if (state == LANE_HELD && thread < 4)
		((uint64_t *)ctx)[thread] += end - start;
}

/* Whether the drawn holds (spans.c) add up to the model's, per thread. */
static bool spans_hold_as_model(const struct model *m)
{
	uint64_t held[4] = { 0 };
	struct span_visitor v = { held, sum_held, NULL };
	if (spans_walk(m, &v) != 0)
		return false;
	for (size_t i = 0; i < m->thread_count && i < 4; i++)
		if (held[i] != m->threads[i].hold_ns)
			return false;
	return true;
}

/* The drawn handoffs (spans.c) are the model's. */
static int spans_handoffs(const struct model *m)
{
	int n = 0;
	void *ctx[1] = { &n };
	struct span_visitor v = { ctx, ignore_span, count_handoff };
	return spans_walk(m, &v) == 0 ? n : -1;
}

/* Issue 10 item 12: a ring trace kept 101's release at +0.1 us and 102's
 * acquisition at +900 us, after its older chunks were reused; the switch
 * numbers (1, then 500) say 498 acquisitions came between.  No handoff of
 * 899.9 us is invented, and the time between is lost, not idle. */
static int test_ring_gap_is_no_handoff(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED | GTR_FLAG_RING);
	f.h->end = (struct gtr_clock_pair){ 1000000, 1000000 };
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	struct gtr_chunk_header *c = fake_chunk(&f, 3, 102, 5, 900000); /* seqs 0-4 reused */
	fake_event(b, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xbbb, 1);
	fake_event(b, GTR_EV_GIL_RELEASE, 0, 1100, 0, 0);
	fake_event(c, GTR_EV_GIL_ACQUIRE, 0, 901000, 0xccc, 500);
	fake_event(c, GTR_EV_GIL_RELEASE, 0, 902000, 0, 0);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 903000, 0xaaa, 501); /* next: a real handoff */
	fake_event(a, GTR_EV_THREAD_EXIT, GTR_EXIT_PROCESS | GTR_EXIT_HELD_GIL, 904000, 0, 0);
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(!trace_incomplete(&t) && t.threads_with_loss == 1 && t.chunks_lost == 5);
	CHECK(t.loss_count == 1 && t.losses[0].kind == TRACE_LOSS_LEADING && t.losses[0].to_ns == 900000);
	CHECK(model_build(&m, &t) == 0 && m.error_count == 0);
	CHECK(m.handoff_count == 1 && m.latency_max == 1000); /* 102 -> 100 only */
	CHECK(m.handoffs_not_counted == 1 && m.gil_gaps == 1 && m.acquisitions_missing == 498);
	CHECK(m.gils[0].lost_ns == 900000 - 100 && m.gils[0].gaps == 1);
	CHECK(m.gils[0].held_ns + m.gils[0].idle_ns + m.gils[0].lost_ns == m.wall_ns);
	CHECK(spans_handoffs(&m) == 1 && spans_hold_as_model(&m));
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A gap in one thread's own chunks (seq 0, then 2) may hide it taking the
 * GIL again with the same thread state, which moves no switch number: the
 * next acquisition by another thread is no handoff from the kept release. */
static int test_own_gap_hides_a_reacquisition(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	f.h->end = (struct gtr_clock_pair){ 10000, 10000 };
	struct gtr_chunk_header *a0 = fake_chunk(&f, 1, 100, 0, 1000);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	struct gtr_chunk_header *a2 = fake_chunk(&f, 1, 100, 2, 6000);
	fake_event(a0, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_event(a0, GTR_EV_GIL_RELEASE, 0, 1100, 0, 0);
	fake_event(b, GTR_EV_GIL_ACQUIRE, 0, 5000, 0xbbb, 2);
	fake_event(b, GTR_EV_GIL_RELEASE, 0, 5100, 0, 0);
	fake_event(a2, GTR_EV_GIL_TAKE_BEGIN, 0, 6000, 0, 0);
	fake_event(a2, GTR_EV_GIL_ACQUIRE, 0, 6050, 0xaaa, 3);
	fake_event(a2, GTR_EV_GIL_RELEASE, 0, 7000, 0, 0);
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.loss_count == 1 && t.losses[0].kind == TRACE_LOSS_GAP && t.losses[0].chunks == 1);
	CHECK(t.losses[0].from_ns == 100 && t.losses[0].to_ns == 5000);
	CHECK(trace_lost_within(&t, 100, 4000, false) && !trace_lost_within(&t, 5000, 6000, true));
	CHECK(trace_thread_lost_within(&t, 0, 4000, 4100) && !trace_thread_lost_within(&t, 1, 0, 9000));
	CHECK(model_build(&m, &t) == 0 && m.error_count == 0);
	/* 100 -> 101 at 4000 crosses 100's gap (100 may have taken the GIL
	 * again there); so does 101 -> 100 at 5050 (100 may have taken it
	 * in its gap, then again: one switch) */
	CHECK(m.handoff_count == 0 && m.handoffs_not_counted == 2);
	CHECK(m.gil_gaps == 2 && m.acquisitions_missing == 0);
	CHECK(m.gils[0].held_ns + m.gils[0].idle_ns + m.gils[0].lost_ns == m.wall_ns);
	CHECK(spans_handoffs(&m) == 0);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A ring thread whose first kept event is a release: it held the GIL for
 * an unknown part of the time since the GIL was last known free. */
static int test_release_of_a_lost_acquisition(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED | GTR_FLAG_RING);
	f.h->end = (struct gtr_clock_pair){ 10000, 10000 };
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 3, 3000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 2000, 0, 0);
	fake_event(b, GTR_EV_GIL_RELEASE, 0, 3000, 0, 0);
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(model_build(&m, &t) == 0 && m.error_count == 0);
	CHECK(m.gils[0].held_ns == 1000 && m.gils[0].lost_ns == 1000);
	CHECK(m.gils[0].held_ns + m.gils[0].idle_ns + m.gils[0].lost_ns == m.wall_ns);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* Out of space: a thread that had not ended lost its later events, so its
 * hold is known only to its last event, and no handoff crosses the gap. */
static int test_out_of_space_tail(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED | GTR_FLAG_OUT_OF_SPACE);
	f.h->end = (struct gtr_clock_pair){ 10000, 10000 };
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_event(a, GTR_EV_GIL_DROP_REQUEST, 0, 2000, 0, 0); /* its last kept event */
	fake_event(b, GTR_EV_GIL_TAKE_BEGIN, 0, 1500, 0, 0);
	fake_event(b, GTR_EV_GIL_ACQUIRE, 0, 5000, 0xbbb, 2);
	fake_event(b, GTR_EV_GIL_RELEASE, 0, 5500, 0, 0);
	fake_event(b, GTR_EV_THREAD_EXIT, GTR_EXIT_RETURN, 6000, 0, 0);
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(trace_incomplete(&t) && t.out_of_space && !t.not_closed && !t.cut_short);
	CHECK(t.loss_count == 1 && t.losses[0].kind == TRACE_LOSS_TRAILING && t.losses[0].thread == 0);
	CHECK(model_build(&m, &t) == 0 && m.error_count == 0);
	CHECK(m.threads[0].hold_ns == 1000 && m.handoff_count == 0 && m.gil_gaps == 1);
	CHECK(spans_hold_as_model(&m));
	CHECK(m.gils[0].held_ns + m.gils[0].idle_ns + m.gils[0].lost_ns == m.wall_ns);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A hostile clock past 2^64 ns after the start: times stop at 2^63 ns
 * instead of an undefined conversion (found by the fuzzer, UBSan). */
static int test_clock_far_past_start(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, UINT64_MAX - 10);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, UINT64_MAX - 10, 0xaaa, 1);
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.event_count == 1 && walked[0].ns == UINT64_C(1) << 63);
	trace_close(&t);
	return ok;
}

/* 101 handoffs with latencies 1..101 ns in shuffled order: nearest-rank
 * percentiles are the 51st, 91st, 100th and 101st smallest. */
static int test_latency_percentiles(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	uint64_t now = 1000;
	for (unsigned i = 0; i < 101; i++) {
		unsigned latency = 1 + (i * 37) % 101; /* a permutation of 1..101 */
		struct gtr_chunk_header *from = i % 2 ? b : a, *to = i % 2 ? a : b;
		if (i == 0)
			fake_event(from, GTR_EV_GIL_ACQUIRE, 0, now, 1, 0);
		fake_event(from, GTR_EV_GIL_RELEASE, 0, now += 10, 0, 0);
		fake_event(to, GTR_EV_GIL_ACQUIRE, 0, now += latency, 2, 0);
	}
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(model_build(&m, &t) == 0 && m.error_count == 0);
	CHECK(m.handoff_count == 101);
	CHECK(m.latency_p50 == 51 && m.latency_p90 == 91 && m.latency_p99 == 100 && m.latency_max == 101);
	model_free(&m);
	trace_close(&t);
	return ok;
}

static int test_unusable_files(void)
{
	int ok = 1;
	struct trace t;
	char err[256];
	struct fake f;

	fake_init(&f, 0);
	CHECK(open_walked(&t, fake_write(&f, 0) /* valid */, err, sizeof err) == 0);
	trace_close(&t);

	fake_init(&f, 0);
	f.h->version_major = 9;
	CHECK(trace_open(&t, fake_write(&f, 0), err, sizeof err) == -1 && strstr(err, "format 9."));
	trace_close(&t);

	fake_init(&f, 0);
	f.h->chunk_size = 12345;
	CHECK(trace_open(&t, fake_write(&f, 0), err, sizeof err) == -1 && strstr(err, "corrupt header"));
	trace_close(&t);

	fake_init(&f, 0);
	f.h->meta_used = 1u << 30;
	CHECK(trace_open(&t, fake_write(&f, 0), err, sizeof err) == -1);
	trace_close(&t);

	fake_init(&f, 0);
	CHECK(trace_open(&t, fake_write(&f, 100), err, sizeof err) == -1 && strstr(err, "truncated inside its header"));
	trace_close(&t);

	fake_init(&f, 0);
	memcpy(f.h->magic, "NOTATRCE", 8);
	CHECK(trace_open(&t, fake_write(&f, 0), err, sizeof err) == -1 && strstr(err, "not a giltrace trace"));
	trace_close(&t);
	return ok;
}


/* A stack belongs to the event before it on its thread, even when another
 * thread has an event with the same clock; it is not an event itself. */
static int test_stacks_attach_to_their_event(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	const uint64_t frames[3] = { 0x401000, 0x402000, 0x403000 };
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_event(a, GTR_EV_CAPI_CALL, GTR_CAPI_PyGILState_Ensure, 1500, 0, 0x401000);
	fake_stack(a, 1500, frames, 3);
	fake_event(b, GTR_EV_TSTATE_FREE, 0, 1500, 0xbbb, 0);
	fake_stack(b, 1500, frames + 1, 2);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 1600, 0, 0);
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.event_count == 4 && t.stack_count == 2 && t.note_count == 0);
	for (size_t i = 0; i < t.event_count; i++) {
		const struct trace_stack *st = trace_stack_of(&t, i);
		const struct trace_event *e = &walked[i];
		CHECK(e->type != GTR_EV_STACK);
		if (e->type == GTR_EV_CAPI_CALL)
			CHECK(st && st->count == 3 && st->frames[2] == 0x403000);
		else if (e->type == GTR_EV_TSTATE_FREE)
			CHECK(st && st->count == 2 && st->frames[0] == 0x402000);
		else
			CHECK(!st);
	}
	trace_close(&t);
	return ok;
}

/* Hostile stacks: a count of 0 or past the maximum ends the chunk; a stack
 * whose event was lost (a ring chunk starting with it) is left out. */
static int test_bad_stacks(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED | GTR_FLAG_RING);
	const uint64_t frames[2] = { 1, 2 };
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_stack(a, 1000, frames, 0);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 1100, 0, 0);
	struct gtr_chunk_header *b = fake_chunk(&f, 2, 101, 0, 1000);
	fake_event(b, GTR_EV_GIL_TAKE_BEGIN, 0, 1000, 0, 0);
	fake_stack(b, 1000, frames, 2);
	b->used -= 8;                                      /* cut inside the stack */
	struct gtr_chunk_header *c = fake_chunk(&f, 3, 102, 4, 1200);
	fake_stack(c, 1200, frames, 2);                    /* its event was overwritten */
	fake_event(c, GTR_EV_GIL_TAKE_BEGIN, 0, 1300, 0, 0);
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.event_count == 3 && t.stack_count == 0);
	CHECK(t.note_count == 3);
	trace_close(&t);
	return ok;
}

/* Python stacks (PY_STACK) follow the native stack of their event, or the
 * event itself; a thread's Python name (THREAD_PYNAME) names it.  A frame
 * whose lengths run past the payload ends its stack as damaged, never a
 * read beyond it. */
static int test_python_stacks_and_names(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	const uint64_t frames[2] = { 0x401000, 0x402000 };
	/* "poll" in "/a.py" line 12 (9 bytes of names: two words), then
	 * "run" in "/t.py" line 7 (8 bytes: one word) */
	uint64_t py_ok[7] = { gtr_py_stack_word(GTR_PY_STACK_COMPLETE, 2, GTR_PY_SOURCE_ATTACHED, 0), 0xaaa,
		              gtr_py_frame_word(12, 4, 5, 0), 0, 0,
		              gtr_py_frame_word(7, 3, 5, GTR_PY_FRAME_QUALIFIED), 0 };
	memcpy(&py_ok[3], "poll/a.py", 9);
	memcpy(&py_ok[6], "run/t.py", 8);
	uint64_t bad[4] = { gtr_py_stack_word(GTR_PY_STACK_COMPLETE, 2, 0, 0), 0, gtr_py_frame_word(1, 4000, 4000, 0), 0 };
	uint64_t name[3] = { 0 };
	memcpy(name, "worker-\xc3\xa9-1", 11);
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 1000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 1000, 0xaaa, 1);
	fake_words(a, GTR_EV_THREAD_PYNAME, 1100, name, 2);
	fake_event(a, GTR_EV_CAPI_CALL, GTR_CAPI_PyGILState_Ensure, 1500, 0, 0x401000);
	fake_stack(a, 1500, frames, 2);
	fake_words(a, GTR_EV_PY_STACK, 1500, py_ok, 7);
	fake_event(a, GTR_EV_TSTATE_FREE, 0, 1600, 0xbbb, 0);
	fake_words(a, GTR_EV_PY_STACK, 1600, bad, 4); /* no native stack; lengths past the end */
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 1700, 0, 0);
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.event_count == 5 && t.stack_count == 1 && t.py_stack_count == 2 && t.note_count == 0);
	CHECK(strcmp(t.threads[0].py_name, "worker-\xc3\xa9-1") == 0);
	const struct trace_py_stack *ps = trace_py_stack_of(&t, 2);
	CHECK(ps && ps->end == GTR_PY_STACK_COMPLETE && ps->count == 2 && ps->tstate == 0xaaa);
	CHECK(ps && strcmp(ps->frames[0].function, "poll") == 0 && strcmp(ps->frames[0].file, "/a.py") == 0 &&
	      ps->frames[0].line == 12);
	CHECK(ps && strcmp(ps->frames[1].function, "run") == 0 && ps->frames[1].flags == GTR_PY_FRAME_QUALIFIED);
	ps = trace_py_stack_of(&t, 3);
	CHECK(ps && ps->end == 0 && ps->count == 0);
	CHECK(!trace_py_stack_of(&t, 4));
	trace_close(&t);
	return ok;
}

/* A corrupt chunk whose clocks go back before its thread's previous chunk
 * is cut there: each thread's stream stays in time order. */
static int test_chunk_going_back_in_time(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	struct gtr_chunk_header *a = fake_chunk(&f, 1, 100, 0, 5000);
	fake_event(a, GTR_EV_GIL_ACQUIRE, 0, 5000, 0xaaa, 1);
	fake_event(a, GTR_EV_GIL_RELEASE, 0, 6000, 0, 0);
	struct gtr_chunk_header *b = fake_chunk(&f, 1, 100, 1, 2000);
	fake_event(b, GTR_EV_GIL_ACQUIRE, 0, 2000, 0xaaa, 2);
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.event_count == 2 && t.note_count == 1);
	trace_close(&t);
	return ok;
}

struct span_check {
	const struct model *m;
	uint64_t last_end[2];
	uint64_t held[2], waited[2];
	uint64_t held_from[2], held_to[2];
	int handoffs;
	int ok;
};

static void check_span(void *ctx, int thread, enum lane_state state, uint64_t start, uint64_t end)
{
	struct span_check *c = ctx;
	int ok = 1;
	CHECK(thread >= 0 && thread < 2 && start < end);
	CHECK(c->last_end[thread] == 0 || start == c->last_end[thread]); /* contiguous, in order */
	c->last_end[thread] = end;
	if (state == LANE_HELD) {
		c->held[thread] += end - start;
		/* never two holders at once */
		int other = !thread;
		CHECK(end <= c->held_from[other] || start >= c->held_to[other] || !c->held_to[other]);
		c->held_from[thread] = start;
		c->held_to[thread] = end;
	}
	if (state == LANE_WAITING)
		c->waited[thread] += end - start;
	c->ok &= ok;
}

static void check_handoff(void *ctx, unsigned gil, int from, uint64_t released, int to, uint64_t acquired)
{
	struct span_check *c = ctx;
	int ok = 1;
	CHECK(gil == 0 && from != to && released <= acquired);
	CHECK((from == 0 && released == 1000 && acquired == 1100) || (from == 1 && released == 2000 && acquired == 2300));
	c->handoffs++;
	c->ok &= ok;
}

/* The renderers' intervals add up to the model's numbers. */
static int test_spans_and_lanes_add_up(void)
{
	int ok = 1;
	struct fake f = two_threads(GTR_FLAG_CLOSED);
	f.h->end = (struct gtr_clock_pair){ 6000, 6000 };
	struct trace t;
	struct model m;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(model_build(&m, &t) == 0);
	struct span_check c = { .m = &m, .ok = 1 };
	struct span_visitor v = { &c, check_span, check_handoff };
	CHECK(spans_walk(&m, &v) == 0 && c.ok);
	CHECK(c.held[0] == m.threads[0].hold_ns && c.held[1] == m.threads[1].hold_ns);
	CHECK(c.waited[0] == m.threads[0].wait_ns && c.waited[1] == m.threads[1].wait_ns);
	CHECK(c.handoffs == 2);
	CHECK(c.last_end[0] == m.wall_ns && c.last_end[1] == 2500); /* 101 exits at 2500 */

	struct mark *marks;
	size_t n;
	CHECK(marks_collect(&m, NULL, &marks, &n) == 0);
	CHECK(n == 2 && marks[0].kind == MARK_THREAD_EXIT && marks[0].thread == 1 && marks[1].kind == MARK_FINALIZE &&
	      marks[1].ns == 3000);
	free(marks);

	/* 10 columns of 500 ns: column 2 ([1000,1500)) is 101's wait then hold */
	struct lanes l;
	CHECK(lanes_build(&l, &m, NULL, 0, 5000, 10) == 0);
	CHECK(l.lane_count == 2 && l.thread_of_lane[0] == 0);
	const struct lane_cell *cell = lanes_cell(&l, 1, 2);
	CHECK(cell->share[LANE_WAITING] > 0.19f && cell->share[LANE_WAITING] < 0.21f);
	CHECK(cell->share[LANE_HELD] > 0.79f && cell->share[LANE_HELD] < 0.81f);
	CHECK(lanes_dominant(&l, 1, 2) == LANE_HELD && lanes_dominant(&l, 1, 9) == LANE_ABSENT);
	CHECK(lanes_dominant(&l, 0, 9) == LANE_HELD);
	CHECK(lanes_column_of(&l, 2600) == 5 && l.mark_count == 2);
	lanes_free(&l);
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A window drawn from a checkpoint is the window drawn from the start:
 * the same lanes, cells and marks, wherever the window begins. */
static int test_window_from_checkpoint(void)
{
	int ok = 1;
	struct fake f = two_threads(GTR_FLAG_CLOSED);
	f.h->end = (struct gtr_clock_pair){ 6000, 6000 };
	struct trace t;
	struct model m;
	struct replay r;
	struct replay_visitor v;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(model_begin(&m, &t, &v) == 0);
	const struct replay_visitor *vs[] = { &v };
	struct replay_options opt = { .take = &m.checkpoints, .take_every = 2 };
	CHECK(replay_run_with(&r, &t, vs, 1, &opt) == 0 && model_end(&m, &r) == 0);
	replay_free(&r);
	CHECK(m.checkpoints.count >= 5);
	const uint64_t froms[] = { 0, 500, 1100, 1250, 2050, 2300, 3100, 4500 };
	for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++) {
		struct lanes a, b;
		CHECK(lanes_build(&a, &m, NULL, froms[i], 5000, 7) == 0);
		struct replay_checkpoints kept = m.checkpoints;
		m.checkpoints.count = 0; /* from the start */
		CHECK(lanes_build(&b, &m, NULL, froms[i], 5000, 7) == 0);
		m.checkpoints = kept;
		CHECK(a.lane_count == b.lane_count && a.mark_count == b.mark_count);
		CHECK(memcmp(a.thread_of_lane, b.thread_of_lane, a.lane_count * sizeof(int)) == 0);
		CHECK(memcmp(a.cells, b.cells, a.lane_count * a.columns * sizeof *a.cells) == 0);
		CHECK(a.mark_count == 0 || memcmp(a.marks, b.marks, a.mark_count * sizeof *a.marks) == 0);
		lanes_free(&a);
		lanes_free(&b);
	}
	model_free(&m);
	trace_close(&t);
	return ok;
}

/* A closed trace without a single event is not clean evidence: it says
 * so once walked, and a trace with events does not. */
static int test_empty_trace_is_incomplete(void)
{
	int ok = 1;
	struct fake f;
	fake_init(&f, GTR_FLAG_CLOSED);
	struct trace t;
	char err[256];
	const char *ids[TRACE_INCOMPLETE_REASONS], *why;
	char buf[512];
	CHECK(trace_open(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(!trace_incomplete(&t)); /* not known before the walk */
	trace_close(&t);
	fake_init(&f, GTR_FLAG_CLOSED);
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	CHECK(t.event_count == 0 && trace_incomplete(&t));
	CHECK(trace_incomplete_reasons(&t, ids) == 1 && strcmp(ids[0], "empty") == 0);
	why = trace_incomplete_why(&t, buf, sizeof buf);
	CHECK(strstr(why, "no event") != NULL);
	trace_close(&t);
	struct fake g = two_threads(GTR_FLAG_CLOSED);
	CHECK(open_walked(&t, fake_write(&g, 0), err, sizeof err) == 0);
	CHECK(t.event_count > 0 && !trace_incomplete(&t));
	trace_close(&t);
	return ok;
}

/* Walks repeat: the second gives the same events in the same order and
 * adds no note; the first one's notes and count are final. */
static int test_second_walk_is_the_same(void)
{
	int ok = 1;
	struct fake f = two_threads(GTR_FLAG_CLOSED);
	/* damage, so that there is a note to repeat */
	struct gtr_chunk_header *c = fake_chunk(&f, 3, 102, 0, 100);
	fake_event(c, GTR_EV_GIL_TAKE_BEGIN, 0, 150, 0, 0);
	fake_event(c, 60, 0, 160, 0, 0);
	struct trace t;
	char err[256];
	CHECK(open_walked(&t, fake_write(&f, 0), err, sizeof err) == 0);
	size_t notes = t.note_count, count = t.event_count;
	struct trace_event first[64];
	memcpy(first, walked, sizeof first);
	CHECK(notes == 1 && count == 15);
	struct trace_walk *w = trace_walk_begin(&t);
	const struct trace_event *e;
	size_t n = 0;
	while (w && (e = trace_walk_next(w))) {
		CHECK(e->index == n);
		CHECK(n < count && memcmp(e, &first[n], sizeof *e) == 0);
		n++;
	}
	CHECK(w && trace_walk_end(w) == 0);
	CHECK(n == count && t.note_count == notes && t.event_count == count);
	trace_close(&t);
	return ok;
}

/* A trace truncated by someone else while it is read stops the command
 * with a reason and exit status 2, not a SIGBUS. */
static int test_file_shrinking_under_the_reader(void)
{
	int ok = 1;
	struct fake f = two_threads(GTR_FLAG_CLOSED);
	const char *path = fake_write(&f, 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct trace t;
		char err[256];
		if (!freopen("/dev/null", "w", stderr)) /* the reason is the reader's to say */
			_exit(3);
		if (trace_open(&t, path, err, sizeof err) != 0 || truncate(path, GTR_HEADER_SIZE + META) != 0)
			_exit(3);
		struct trace_walk *w = trace_walk_begin(&t);
		while (w && trace_walk_next(w))
			;
		_exit(0); /* read what is no longer there: must not get here */
	}
	int status = 0;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	return ok;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Past LATENCIES_EXACT values the percentiles come from the histogram:
 * within 1/1024 of the exact ones (sorted), the maximum exact; below it,
 * exact. */
static int test_latencies_past_exact(void)
{
	int ok = 1;
	const size_t counts[] = { 1000, LATENCIES_EXACT + 12345 };
	const unsigned pcts[] = { 1, 50, 90, 99, 100 };
	for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		size_t n = counts[c];
		struct latencies l = { 0 };
		uint64_t *sorted = malloc(n * sizeof *sorted);
		uint64_t x = 88172645463325252u;
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13; /* xorshift: values over 0 .. 2^30 */
			x ^= x >> 7;
			x ^= x << 17;
			sorted[i] = (x >> 34) % (i % 3 ? 5000 : 1u << 30);
			CHECK(latencies_add(&l, sorted[i]) == 0);
		}
		qsort(sorted, n, sizeof *sorted, cmp_u64);
		uint64_t got[5];
		latencies_percentiles(&l, pcts, got, 5);
		CHECK(latencies_exact(&l) == (n <= LATENCIES_EXACT));
		for (size_t i = 0; i < 5; i++) {
			size_t rank = (n * pcts[i] + 99) / 100;
			uint64_t want = sorted[rank ? rank - 1 : 0];
			uint64_t diff = got[i] > want ? got[i] - want : want - got[i];
			if (latencies_exact(&l) || pcts[i] == 100 || want < 2048)
				CHECK(diff == 0);
			else
				CHECK(diff <= want / 1024);
		}
		latencies_free(&l);
		free(sorted);
	}
	return ok;
}

int main(void)
{
	int (*const tests[])(void) = {
		test_handoffs_and_holds, test_overlap_is_a_model_error, test_truncated_trace,
		test_file_cut_short,     test_corrupt_event_keeps_earlier_ones, test_clock_wraps_past_48_bits,
		test_ring_mode_lost_events, test_latency_percentiles, test_unusable_files,
		test_stacks_attach_to_their_event, test_bad_stacks, test_python_stacks_and_names,
		test_spans_and_lanes_add_up,
		test_chunk_going_back_in_time, test_ring_gap_is_no_handoff, test_own_gap_hides_a_reacquisition,
		test_release_of_a_lost_acquisition, test_out_of_space_tail, test_clock_far_past_start,
		test_newer_event_type_is_skipped, test_latencies_past_exact,
		test_second_walk_is_the_same, test_file_shrinking_under_the_reader, test_window_from_checkpoint,
		test_empty_trace_is_incomplete,
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		tests[i]() ? passed++ : failed++;
	fake_unlink();
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
