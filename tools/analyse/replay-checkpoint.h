/*
 * replay-checkpoint.h: the replay's own use of its checkpoints
 * (replay-checkpoint.c); the rest of tools/ sees replay.h.
 */
#ifndef GILTRACE_REPLAY_CHECKPOINT_H
#define GILTRACE_REPLAY_CHECKPOINT_H

#include "replay.h"

/* Before the walk: 0, or -1 when out of memory. */
int checkpoint_start(struct replay_checkpoints *cps, const struct replay *r, uint64_t every);
/* After the event r->at (at ns): one is taken if it is time.  0, or -1
 * when out of memory. */
int checkpoint_take(struct replay_checkpoints *cps, const struct replay *r, const struct trace_walk *walk,
                    uint64_t ns);
/* The latest checkpoint whose last event is before ns, or NULL. */
const struct replay_checkpoint *checkpoint_before(const struct replay_checkpoints *cps, uint64_t ns);
/* Put r (set up, its threads allocated) in the checkpoint's state; the
 * walk from there, or NULL when out of memory. */
struct trace_walk *checkpoint_restore(struct replay *r, struct trace *t, const struct replay_checkpoint *c);

#endif
