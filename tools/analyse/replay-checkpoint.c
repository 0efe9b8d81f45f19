/*
 * replay-checkpoint.c: places a replay can start again from, taken along
 * the analysis's replay, so that a view of a window of the trace (the
 * timeline, the HTML report: by default the last moments around
 * finalization) replays from shortly before the window instead of from
 * the beginning.  See replay.h.
 *
 * A checkpoint is the replay's state after an event (its threads, GILs,
 * finalization epochs and pending Py_FinalizeEx call) and the walk's
 * place there (trace_walk_tell).  One is taken every `every` events; their
 * memory is bounded (CHECKPOINT_BUDGET): when they would pass it, every
 * other one is dropped and the distance doubles.  The replay keeps its
 * lanes while checkpoints are taken, since the views resumed from them
 * draw lanes.
 */
#include "replay-checkpoint.h"

#include <stdlib.h>
#include <string.h>

#define CHECKPOINT_EVERY (UINT64_C(1) << 20)   /* events, at first */
#define CHECKPOINT_BUDGET ((size_t)16 << 20)   /* bytes for all of them */
#define CHECKPOINT_MAX 64

struct replay_checkpoint {
	uint64_t ns;                  /* of the last event replayed */
	size_t at;                    /* its index */
	struct trace_walk_place *place;
	/* every field of struct replay that the replay changes as it goes */
	struct replay_thread *threads;
	struct replay_gil gils[REPLAY_MAX_GILS];
	struct replay_epoch *epochs;
	size_t epoch_count;
	bool finalizing;
	struct replay_finalize_call finalize_call;
};

static void checkpoint_free(struct replay_checkpoint *c)
{
	free(c->place);
	free(c->threads);
	free(c->epochs);
}

void replay_checkpoints_free(struct replay_checkpoints *cps)
{
	for (size_t i = 0; i < cps->count; i++)
		checkpoint_free(&cps->items[i]);
	free(cps->items);
	memset(cps, 0, sizeof *cps);
}

/* The capacity the replay's epoch array has for `count` epochs (it grows
 * at 2^n - 1: begin_epoch in replay.c). */
static size_t epoch_capacity(size_t count)
{
	size_t cap = 1;
	while (cap < count)
		cap = 2 * cap + 1;
	return cap;
}

int checkpoint_start(struct replay_checkpoints *cps, const struct replay *r, uint64_t every)
{
	memset(cps, 0, sizeof *cps);
	cps->every = every ? every : CHECKPOINT_EVERY;
	size_t each = sizeof(struct replay_checkpoint) + r->thread_count * sizeof *r->threads +
	              trace_walk_place_size(r->trace);
	size_t max = CHECKPOINT_BUDGET / each;
	cps->max = max < 2 ? 2 : max > CHECKPOINT_MAX ? CHECKPOINT_MAX : max;
	cps->items = calloc(cps->max, sizeof *cps->items);
	return cps->items ? 0 : -1;
}

/* Keep every other checkpoint (those at multiples of twice the distance). */
static void thin(struct replay_checkpoints *cps)
{
	size_t kept = 0;
	for (size_t i = 0; i < cps->count; i++) {
		if (i % 2 == 1)
			cps->items[kept++] = cps->items[i];
		else
			checkpoint_free(&cps->items[i]);
	}
	cps->count = kept;
	cps->every *= 2;
}

int checkpoint_take(struct replay_checkpoints *cps, const struct replay *r, const struct trace_walk *walk,
                    uint64_t ns)
{
	if (cps->count == cps->max)
		thin(cps);
	if ((r->at + 1) % cps->every != 0)
		return 0; /* thinned: not at a multiple of the new distance */
	struct replay_checkpoint *c = &cps->items[cps->count];
	memset(c, 0, sizeof *c);
	c->ns = ns;
	c->at = r->at;
	c->place = trace_walk_tell(walk);
	c->threads = malloc((r->thread_count ? r->thread_count : 1) * sizeof *c->threads);
	c->epochs = malloc(epoch_capacity(r->epoch_count) * sizeof *c->epochs);
	if (!c->place || !c->threads || !c->epochs) {
		checkpoint_free(c);
		return -1;
	}
	memcpy(c->threads, r->threads, r->thread_count * sizeof *c->threads);
	memcpy(c->gils, r->gils, sizeof c->gils);
	if (r->epoch_count)
		memcpy(c->epochs, r->epochs, r->epoch_count * sizeof *c->epochs);
	c->epoch_count = r->epoch_count;
	c->finalizing = r->finalizing;
	c->finalize_call = r->finalize_call;
	cps->count++;
	return 0;
}

const struct replay_checkpoint *checkpoint_before(const struct replay_checkpoints *cps, uint64_t ns)
{
	const struct replay_checkpoint *found = NULL;
	for (size_t i = 0; cps && i < cps->count && cps->items[i].ns < ns; i++)
		found = &cps->items[i];
	return found;
}

struct trace_walk *checkpoint_restore(struct replay *r, struct trace *t, const struct replay_checkpoint *c)
{
	struct replay_epoch *epochs = malloc(epoch_capacity(c->epoch_count) * sizeof *epochs);
	if (!epochs)
		return NULL;
	if (c->epoch_count)
		memcpy(epochs, c->epochs, c->epoch_count * sizeof *epochs);
	free(r->epochs);
	r->epochs = epochs;
	r->epoch_count = c->epoch_count;
	memcpy(r->threads, c->threads, r->thread_count * sizeof *r->threads);
	memcpy(r->gils, c->gils, sizeof r->gils);
	r->at = c->at;
	r->finalizing = c->finalizing;
	r->finalize_call = c->finalize_call;
	return trace_walk_resume(t, c->place);
}
