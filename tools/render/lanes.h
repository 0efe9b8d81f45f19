/*
 * lanes.h: a window of a trace binned into columns, for pictures whose
 * resolution is smaller than the events' (the terminal timeline, the HTML
 * report's SVG).
 *
 * Each (lane, column) cell keeps the fraction of its time the thread spent
 * in each state (spans.h), so that what is below a column is aggregated,
 * never dropped: a renderer shows the dominant state, or the fractions.
 * Lanes are the threads alive or marked in the window, in
 * model_thread_order (grouped by GIL where there are several).
 */
#ifndef GILTRACE_LANES_H
#define GILTRACE_LANES_H

#include <stddef.h>
#include <stdint.h>

#include "spans.h"

struct lane_cell {
	float share[LANE_STATES];     /* fraction of the column per state */
};

struct lanes {
	uint64_t from_ns, to_ns;      /* the window, to_ns > from_ns */
	size_t columns;
	size_t lane_count;
	int *thread_of_lane;          /* model thread index per lane */
	int *lane_of_thread;          /* lane per model thread, -1 not shown */
	struct lane_cell *cells;      /* lane_count * columns, lane-major */
	struct mark *marks;           /* in the window, in time order */
	size_t mark_count;
};

/* Bin [from_ns, to_ns) into `columns` columns; `findings` may be NULL.
 * Returns 0, or -1 when out of memory.  Free with lanes_free(). */
int lanes_build(struct lanes *l, const struct model *m, const struct findings *findings, uint64_t from_ns,
                uint64_t to_ns, size_t columns);
void lanes_free(struct lanes *l);

static inline const struct lane_cell *lanes_cell(const struct lanes *l, size_t lane, size_t column)
{
	return &l->cells[lane * l->columns + column];
}

/* The state that took most of the cell's time (ABSENT if none). */
enum lane_state lanes_dominant(const struct lanes *l, size_t lane, size_t column);
/* A time inside the window as a fractional column (0 to columns): a
 * plot's x. */
double lanes_x(const struct lanes *l, uint64_t ns);
/* The column of a time inside the window. */
size_t lanes_column_of(const struct lanes *l, uint64_t ns);

#endif
