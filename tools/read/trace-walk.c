/*
 * trace-walk.c: a trace's events, decoded as they are walked and merged
 * across threads.  See trace.h for the contract.
 *
 * Each thread has a cursor: where it is in its chunks, and its next event,
 * decoded, with the stack that follows it.  A binary heap of the cursors,
 * by that event's clock (ties by thread), gives the trace's next event;
 * only one event per thread is ever decoded ahead.  The first walk also
 * records what only the events say: the count, the thread names, the
 * stacks, the losses (when a thread's chunks skip a seq, begin after seq
 * 0 or stop early) and the damage met on the way.
 */
#include "trace.h"
#include "trace-private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The largest record the shim writes (an event of 3 words, a stack of
 * GTR_STACK_MAX_FRAMES and a Python stack), plus the 2 words of slack it
 * keeps: a chunk with less room than this left may have been given up for
 * a new one. */
#define MAX_RECORD_BYTES (8u * (3u + 1u + GTR_STACK_MAX_FRAMES + 1u + GTR_PY_STACK_MAX_WORDS + 2u))

/* What decode_record() consumed. */
enum record { RECORD_EVENT, RECORD_STACK, RECORD_PY_STACK, RECORD_SKIPPED, RECORD_END };

struct cursor {
	uint32_t thread;
	size_t chunk, chunk_end;    /* its chunk being read, and the end of its
	                               range, in trace.chunks */
	const unsigned char *p;     /* that chunk's events */
	size_t off, used;
	uint64_t prev;              /* the clock the next record unwraps from */
	uint64_t floor;             /* the clock of its last entry: its stream
	                               runs forward, the merge relies on it */
	int chunk_last;             /* type of the chunk's last entry, -1 none */
	int last_type;              /* type of the thread's last entry, -1 none */
	uint64_t last_ns;           /* and its time */
	struct trace_event ev[2];   /* its next event, ev[head], and the one the
	                               walk returned last (no copy in between) */
	unsigned head;
	const uint64_t *stack;      /* the head's stack, NULL none */
	uint32_t stack_count;
	const uint64_t *py_stack;   /* the head's Python stack, NULL none */
	uint32_t py_words;
	bool pending;               /* first walk: `loss` waits for its next entry */
	struct trace_loss loss;
};

/* A cursor in the heap, with its head's clock beside it: the comparisons
 * read the heap alone, not the cursors. */
struct heap_slot {
	uint64_t clock;
	size_t cursor;
};

struct trace_walk {
	struct trace *t;
	bool first;                 /* fills in the trace (trace.h) */
	bool done;
	struct cursor *cursors;     /* per thread */
	struct heap_slot *heap;     /* cursors by their head */
	size_t heap_count;
	const struct trace_event *current; /* the event returned last */
	size_t next_index;          /* of the next event returned */
	bool oom;
};

/* Notes are the first walk's: later walks meet the same damage. */
#define WALK_NOTE(w, ...)                                                                          \
	do {                                                                                       \
		if ((w)->first)                                                                    \
			trace_note((w)->t, __VA_ARGS__);                                           \
	} while (0)

static void add_loss(struct trace_walk *w, struct trace_loss loss)
{
	if (trace_add_loss(w->t, loss) != 0)
		w->oom = true;
}

/* The payload words of an event of a type newer than this reader, from the
 * writer's table in the header (minor 2+), or -1 if it did not say.  The
 * first such event of each type is noted: its meaning is unknown here. */
static int newer_type_words(struct trace_walk *w, unsigned type, unsigned arg)
{
	struct trace *t = w->t;
	if (t->header.version_minor < 2 || type >= GTR_EVENT_TYPES_MAX || !t->header.event_words[type])
		return -1;
	if (w->first && !(t->newer_types_noted & (UINT64_C(1) << type))) {
		t->newer_types_noted |= UINT64_C(1) << type;
		trace_note(t, "events of type %u, newer than this giltrace, were skipped (a newer giltrace reads them)",
		           type);
	}
	unsigned words = t->header.event_words[type];
	return (int)(words == GTR_EVENT_WORDS_IN_ARG ? arg : words);
}

/* A chunk read to its end leaves the process's memory: its pages stay in
 * the page cache and come back from the file if a stack in them is read
 * later.  So the walk's memory follows the threads, not the file. */
static void release_chunk(const struct trace *t, size_t i)
{
	static uintptr_t page;
	if (!page)
		page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)t->map + (uintptr_t)(t->header.chunk_area_offset +
	                                                  t->chunks[i].index * t->header.chunk_size);
	uintptr_t end = start + t->header.chunk_size;
	start = (start + page - 1) & ~(page - 1);
	end &= ~(page - 1);
	if (end > start)
		madvise((void *)start, end - start, MADV_DONTNEED);
}

/* Start reading chunk i of the cursor's range; on the first walk, a seq
 * that does not follow the previous chunk's is a loss. */
static void enter_chunk(struct trace_walk *w, struct cursor *c, size_t i)
{
	const struct trace_chunk *ch = &w->t->chunks[i];
	if (w->first) {
		bool first_of_thread = i == w->t->threads[c->thread].first_chunk;
		uint32_t expected = first_of_thread ? 0 : w->t->chunks[i - 1].seq + 1u;
		if (ch->seq != expected) {
			uint64_t missing = first_of_thread ? ch->seq
			                   : ch->seq > w->t->chunks[i - 1].seq ? ch->seq - w->t->chunks[i - 1].seq - 1u
			                                                       : 0;
			if (c->pending) {
				c->loss.chunks += missing; /* after chunks that held no event */
			} else {
				c->loss = (struct trace_loss){ first_of_thread ? TRACE_LOSS_LEADING : TRACE_LOSS_GAP,
					                       c->thread, c->last_type >= 0 ? c->last_ns : 0, 0, missing };
				c->pending = true;
			}
			w->t->threads[c->thread].events_lost = true;
		}
	}
	c->chunk = i;
	c->p = trace_chunk_events(w->t, ch);
	c->off = 0;
	c->used = ch->used;
	c->prev = ch->first_clock;
	c->chunk_last = -1;
}

/* Give up the rest of the chunk (damage: the reason is noted). */
static void skip_rest(struct cursor *c)
{
	c->off = c->used;
}

/* After the thread's last kept chunk: were later events of it lost?  Only
 * where chunks are known to be missing (a cut copy: a thread moves to a
 * new chunk only when its current one is full) or the shim stopped
 * recording (out of space: any thread that had not ended). */
static bool lost_after_last_chunk(const struct trace *t, const struct cursor *c)
{
	if (c->last_type == GTR_EV_THREAD_EXIT || c->last_type == GTR_EV_THREAD_PARK)
		return false;
	if (t->out_of_space)
		return true;
	uint32_t room = t->header.chunk_size - GTR_CHUNK_HEADER_SIZE;
	return t->chunks_in_file < t->header.chunks_allocated && room - t->chunks[c->chunk_end - 1].used < MAX_RECORD_BYTES;
}

/* The thread's chunks are read: a loss still waiting for a next entry, or
 * one after its last chunk, runs to the end of the trace. */
static void thread_ended(struct trace_walk *w, struct cursor *c)
{
	if (!w->first || (!c->pending && !lost_after_last_chunk(w->t, c)))
		return;
	if (!c->pending)
		c->loss = (struct trace_loss){ TRACE_LOSS_TRAILING, c->thread, c->last_type >= 0 ? c->last_ns : 0, 0, 0 };
	c->loss.to_ns = UINT64_MAX;
	c->pending = false;
	add_loss(w, c->loss);
}

/* A record cut short by the end of its chunk. */
static enum record cut_short(struct trace_walk *w, struct cursor *c)
{
	WALK_NOTE(w, "thread %u: event cut short at the end of chunk %llu", w->t->threads[c->thread].serial,
	          (unsigned long long)w->t->chunks[c->chunk].index);
	skip_rest(c);
	return RECORD_SKIPPED;
}

/* The records that are not a plain event: a type newer than this reader or
 * unknown, a clock, a stack.  Consumes all but a usable stack (then
 * RECORD_STACK, with its payload words in *words). */
static enum record decode_unusual(struct trace_walk *w, struct cursor *c, const unsigned char *rec, unsigned type,
                                  unsigned arg, unsigned *words)
{
	const struct trace *t = w->t;
	unsigned long long chunk = (unsigned long long)t->chunks[c->chunk].index;
	if (type >= GTR_EV_COUNT) {
		int n = newer_type_words(w, type, arg);
		if (n >= 0) { /* a type newer than this reader: the writer said its size */
			c->off += 8 + (size_t)n * 8;
			return RECORD_SKIPPED;
		}
	}
	if (type == GTR_EV_NONE || type >= GTR_EV_COUNT) {
		WALK_NOTE(w, "thread %u: unknown event type %u in chunk %llu; the rest of the chunk is skipped",
		          t->threads[c->thread].serial, type, chunk);
		skip_rest(c);
		return RECORD_SKIPPED;
	}
	if ((type == GTR_EV_STACK && (arg == 0 || arg > GTR_STACK_MAX_FRAMES)) ||
	    (type == GTR_EV_PY_STACK && arg < 2) ||
	    (type == GTR_EV_THREAD_PYNAME && (arg == 0 || arg > GTR_PY_NAME_MAX / 8))) {
		WALK_NOTE(w, "thread %u: a %s of %u words in chunk %llu; the rest of the chunk is skipped",
		          t->threads[c->thread].serial, trace_event_name(type), arg, chunk);
		skip_rest(c);
		return RECORD_SKIPPED;
	}
	*words = gtr_event_words(type, arg);
	if (c->off + 8 + *words * 8 > c->used)
		return cut_short(w, c);
	if (type == GTR_EV_CLOCK) {
		memcpy(&c->prev, rec + 8, 8);
		c->off += 8 + *words * 8;
		return RECORD_SKIPPED;
	}
	if (type == GTR_EV_THREAD_PYNAME)
		return RECORD_EVENT;
	if (c->chunk_last < 0 || c->chunk_last == GTR_EV_PY_STACK || (c->chunk_last == GTR_EV_STACK && type == GTR_EV_STACK)) {
		/* the writer puts a stack right after its event (a Python stack
		 * after that), in the same chunk: any other stack is damage */
		WALK_NOTE(w, "thread %u: a stack without its event in chunk %llu; left out",
		          t->threads[c->thread].serial, chunk);
		c->off += 8 + *words * 8;
		return RECORD_SKIPPED;
	}
	return RECORD_STACK;
}

/* What the first walk learns from a kept entry: the end of a loss that
 * waited for it, a thread's name (`words`: a sized event's payload). */
static void first_walk_entry(struct trace_walk *w, struct cursor *c, const struct trace_event *e,
                             const uint64_t *words)
{
	if (c->pending) {
		c->loss.to_ns = e->ns;
		c->pending = false;
		add_loss(w, c->loss);
	}
	if (e->type == GTR_EV_THREAD_NAME) {
		struct trace_thread *th = &w->t->threads[c->thread];
		memcpy(th->name, e->payload, 16);
		th->name[16] = '\0';
		trace_sanitize_string(th->name);
	}
	if (e->type == GTR_EV_THREAD_PYNAME) {
		struct trace_thread *th = &w->t->threads[c->thread];
		size_t len = (size_t)e->arg * 8;
		memcpy(th->py_name, words, len);
		th->py_name[len] = '\0';
		trace_sanitize_string(th->py_name);
	}
}

/* Decode the cursor's next record into *e (an event, or a stack: then
 * *frames and e->arg, its frame count), moving to its next chunk when one
 * is read.  Records that carry nothing (a clock, a newer type) or are
 * damaged are consumed as RECORD_SKIPPED.  The common case, a whole event
 * of a known type, takes one branch to tell. */
static enum record decode_record(struct trace_walk *w, struct cursor *c, struct trace_event *e,
                                 const uint64_t **frames)
{
	struct trace *t = w->t;
	while (c->off + 8 > c->used) {
		release_chunk(t, c->chunk);
		if (c->chunk + 1 >= c->chunk_end)
			return RECORD_END;
		enter_chunk(w, c, c->chunk + 1);
	}
	const unsigned char *rec = c->p + c->off;
	uint64_t word;
	memcpy(&word, rec, 8);
	unsigned type = gtr_event_word_type(word);
	unsigned arg = gtr_event_word_arg(word);
	unsigned words;
	if (__builtin_expect(type - 1u < GTR_EV_COUNT - 1u && !gtr_event_is_sized_by_arg(type) && type != GTR_EV_CLOCK,
	                     1)) {
		words = gtr_event_payload_words[type];
		if (c->off + 8 + words * 8 > c->used)
			return cut_short(w, c);
	} else {
		enum record r = decode_unusual(w, c, rec, type, arg, &words);
		if (r != RECORD_STACK && r != RECORD_EVENT)
			return r;
	}
	uint64_t clock = c->prev + ((gtr_event_word_clock(word) - c->prev) & GTR_CLOCK_MASK);
	c->off += 8 + words * 8;
	if (clock < c->floor) {
		WALK_NOTE(w, "thread %u: chunk %llu goes back in time; the rest of it is skipped",
		          t->threads[c->thread].serial, (unsigned long long)t->chunks[c->chunk].index);
		skip_rest(c);
		return RECORD_SKIPPED;
	}
	c->prev = c->floor = clock;
	e->clock = clock;
	e->ns = trace_clock_ns(t, clock);
	e->thread = c->thread;
	e->type = (uint8_t)type;
	e->arg = (uint8_t)arg;
	e->payload[0] = e->payload[1] = 0;
	if (gtr_event_is_sized_by_arg(type)) {
		*frames = (const uint64_t *)(const void *)(rec + 8); /* 8-aligned: check_header */
	} else {
		/* at most two words (trace-format.h): fixed-size copies */
		_Static_assert(sizeof e->payload == 16, "a payload holds the largest event's words");
		if (words > 0)
			memcpy(&e->payload[0], rec + 8, 8);
		if (words > 1)
			memcpy(&e->payload[1], rec + 16, 8);
	}
	c->chunk_last = c->last_type = (int)type;
	c->last_ns = e->ns;
	if (w->first)
		first_walk_entry(w, c, e, *frames);
	return type == GTR_EV_STACK ? RECORD_STACK : type == GTR_EV_PY_STACK ? RECORD_PY_STACK : RECORD_EVENT;
}

static void orphan_stack(struct trace_walk *w)
{
	if (w->first)
		w->t->stacks_orphaned++; /* its event was cut (a corrupt chunk) */
}

/* Whether the cursor's next record, in its chunk, is of `type`. */
static bool next_is(const struct cursor *c, unsigned type)
{
	uint64_t word;
	return c->off + 8 <= c->used && (memcpy(&word, c->p + c->off, 8), gtr_event_word_type(word) == type);
}

/* Decode the cursor's next event into its head, with the stacks that
 * follow it; false when the thread has no more. */
static bool advance(struct trace_walk *w, struct cursor *c)
{
	struct trace_event e;
	const uint64_t *frames = NULL;
	c->head ^= 1;
	for (;;) {
		enum record r = decode_record(w, c, &c->ev[c->head], &frames);
		if (r == RECORD_END) {
			thread_ended(w, c);
			return false;
		}
		if (r == RECORD_EVENT)
			break;
		if (r == RECORD_STACK || r == RECORD_PY_STACK)
			orphan_stack(w); /* not right after its event */
	}
	c->stack = c->py_stack = NULL;
	/* its native stack, then its Python stack, each with its clock */
	static const struct {
		unsigned type;
		enum record record;
	} trailers[] = { { GTR_EV_STACK, RECORD_STACK }, { GTR_EV_PY_STACK, RECORD_PY_STACK } };
	for (unsigned k = 0; k < 2; k++) {
		if (!next_is(c, trailers[k].type))
			continue;
		enum record r = decode_record(w, c, &e, &frames);
		if (r != trailers[k].record)
			continue;
		if (e.clock != c->ev[c->head].clock) {
			orphan_stack(w);
		} else if (k == 0) {
			c->stack = frames;
			c->stack_count = e.arg;
		} else {
			c->py_stack = frames;
			c->py_words = e.arg;
		}
	}
	return true;
}

/* The merge order: by raw clock (ns may round two ticks to one value),
 * ties by thread. */
static bool before(const struct heap_slot *a, const struct heap_slot *b)
{
	return a->clock < b->clock || (a->clock == b->clock && a->cursor < b->cursor);
}

static void sift_down(struct trace_walk *w, size_t i)
{
	struct heap_slot *heap = w->heap;
	size_t n = w->heap_count;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && before(&heap[l], &heap[m]))
			m = l;
		if (r < n && before(&heap[r], &heap[m]))
			m = r;
		if (m == i)
			return;
		struct heap_slot tmp = heap[i];
		heap[i] = heap[m];
		heap[m] = tmp;
		i = m;
	}
}

/* A walk of t with a cursor and a heap slot per thread, all zero; NULL
 * when out of memory. */
static struct trace_walk *walk_new(struct trace *t)
{
	size_t k = t->thread_count ? t->thread_count : 1;
	struct trace_walk *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->t = t;
	w->cursors = calloc(k, sizeof *w->cursors);
	w->heap = calloc(k, sizeof *w->heap);
	if (!w->cursors || !w->heap) {
		free(w->cursors);
		free(w->heap);
		free(w);
		return NULL;
	}
	return w;
}

struct trace_walk *trace_walk_begin(struct trace *t)
{
	struct trace_walk *w = walk_new(t);
	size_t k = t->thread_count;
	if (!w)
		return NULL;
	w->first = !t->walked;
	if (w->first) {
		/* what the first walk fills in starts empty (again, if an
		 * earlier one ran out of memory) */
		for (size_t i = 0; i < k; i++) {
			t->threads[i].loss_count = 0;
			t->threads[i].events_lost = false;
			t->threads[i].name[0] = t->threads[i].py_name[0] = '\0';
		}
		trace_py_stacks_free(t);
		t->loss_count = t->loss_gaps.count = t->loss_all.count = 0;
		t->chunks_lost = 0;
		t->stack_count = t->stacks_orphaned = 0;
		t->newer_types_noted = 0;
		while (t->note_count > t->notes_at_open)
			free(t->notes[--t->note_count]);
	}
	for (size_t i = 0; i < k; i++) {
		struct cursor *c = &w->cursors[i];
		c->thread = (uint32_t)i;
		c->last_type = -1;
		c->chunk_end = t->threads[i].first_chunk + t->threads[i].chunk_count;
		enter_chunk(w, c, t->threads[i].first_chunk);
		if (!advance(w, c))
			continue;
		/* sift up */
		size_t j = w->heap_count++;
		w->heap[j] = (struct heap_slot){ c->ev[c->head].clock, i };
		while (j && before(&w->heap[j], &w->heap[(j - 1) / 2])) {
			struct heap_slot tmp = w->heap[j];
			w->heap[j] = w->heap[(j - 1) / 2];
			w->heap[(j - 1) / 2] = tmp;
			j = (j - 1) / 2;
		}
	}
	return w;
}

/* The walk reached the end: the first one completes the trace. */
static void walk_done(struct trace_walk *w)
{
	struct trace *t = w->t;
	w->done = true;
	if (!w->first || w->oom)
		return;
	const struct gtr_file_header *h = &t->header;
	t->event_count = w->next_index;
	if (t->stacks_orphaned)
		trace_note(t, "%zu stacks whose events were lost are left out", t->stacks_orphaned);
	if (h->flags & GTR_FLAG_OUT_OF_SPACE)
		trace_note(t, "the traced process ran out of trace space: later events were not recorded");
	if (h->flags & GTR_FLAG_FILE_LOST)
		trace_note(t, "the traced process lost its trace file (renamed, replaced or removed): later events "
		              "were not recorded");
	t->last_event_ns = w->next_index ? w->current->ns : 0;
	t->end_ns = t->last_event_ns;
	if ((h->flags & GTR_FLAG_CLOSED) && h->end.clock > h->start.clock &&
	    trace_clock_ns(t, h->end.clock) > t->end_ns)
		t->end_ns = trace_clock_ns(t, h->end.clock);
	if (trace_collect_losses(t) != 0) {
		w->oom = true;
		return;
	}
	t->walked = true;
}

/* Index the stack of the event being returned. */
static void keep_stack(struct trace_walk *w, const struct cursor *c)
{
	struct trace *t = w->t;
	if (t->stack_count == t->stack_cap) {
		size_t cap = t->stack_cap ? 2 * t->stack_cap : 64;
		struct trace_stack *grown = realloc(t->stacks, cap * sizeof *grown);
		if (!grown) {
			w->oom = true;
			return;
		}
		t->stacks = grown;
		t->stack_cap = cap;
	}
	t->stacks[t->stack_count++] = (struct trace_stack){ w->next_index, c->stack, c->stack_count };
}

const struct trace_event *trace_walk_next(struct trace_walk *w)
{
	if (w->done || w->oom)
		return NULL;
	if (!w->heap_count) {
		walk_done(w);
		return NULL;
	}
	size_t top = w->heap[0].cursor;
	struct cursor *c = &w->cursors[top];
	w->current = &c->ev[c->head];
	c->ev[c->head].index = w->next_index;
	if (w->first && c->stack)
		keep_stack(w, c);
	if (w->first && c->py_stack && trace_keep_py_stack(w->t, w->next_index, c->py_stack, c->py_words) != 0)
		w->oom = true;
	w->next_index++;
	if (advance(w, c))
		w->heap[0].clock = c->ev[c->head].clock;
	else
		w->heap[0] = w->heap[--w->heap_count];
	sift_down(w, 0);
	return w->oom ? NULL : w->current;
}

/* A place: the walk's cursors and heap, copied (the cursors point into
 * the mapping, which outlives every walk). */
struct trace_walk_place {
	size_t next_index;
	size_t heap_count;
	size_t thread_count;
	struct cursor *cursors;    /* in the same block, after the heap */
	struct heap_slot heap[];
};

struct trace_walk_place *trace_walk_tell(const struct trace_walk *w)
{
	size_t k = w->t->thread_count;
	struct trace_walk_place *p = malloc(trace_walk_place_size(w->t));
	if (!p)
		return NULL;
	p->next_index = w->next_index;
	p->heap_count = w->heap_count;
	p->thread_count = k;
	p->cursors = (struct cursor *)(void *)(p->heap + k);
	memcpy(p->heap, w->heap, k * sizeof *w->heap);
	memcpy(p->cursors, w->cursors, k * sizeof *w->cursors);
	return p;
}

size_t trace_walk_place_size(const struct trace *t)
{
	/* cursors hold uint64_t and pointers: the heap before them keeps
	 * them aligned */
	_Static_assert(_Alignof(struct cursor) <= _Alignof(struct heap_slot), "cursors follow the heap, aligned");
	return sizeof(struct trace_walk_place) + t->thread_count * (sizeof(struct heap_slot) + sizeof(struct cursor));
}

struct trace_walk *trace_walk_resume(struct trace *t, const struct trace_walk_place *p)
{
	if (!t->walked || p->thread_count != t->thread_count)
		return NULL;
	struct trace_walk *w = walk_new(t);
	size_t k = t->thread_count;
	if (!w)
		return NULL;
	memcpy(w->cursors, p->cursors, k * sizeof *w->cursors);
	memcpy(w->heap, p->heap, k * sizeof *w->heap);
	w->heap_count = p->heap_count;
	w->next_index = p->next_index;
	return w;
}

int trace_walk_end(struct trace_walk *w)
{
	/* a first walk left early still completes the trace */
	while (w->first && !w->done && trace_walk_next(w))
		;
	int rc = w->oom ? -1 : 0;
	free(w->cursors);
	free(w->heap);
	free(w);
	return rc;
}
