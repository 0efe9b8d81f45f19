/*
 * lanes.c: binning spans into columns.  See lanes.h.
 */
#include "lanes.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct binning {
	struct lanes *l;
	double ns_per_column;
	bool *seen;                   /* per thread: alive or marked in the window */
	struct lane_cell **rows;      /* per thread, made at its first span in the
	                                 window: a run of many short threads has
	                                 few in any one window */
	bool oom;
};

static void add_span(void *ctx, int thread, enum lane_state state, uint64_t start, uint64_t end)
{
	struct binning *b = ctx;
	struct lanes *l = b->l;
	if (end <= l->from_ns || start >= l->to_ns)
		return;
	if (start < l->from_ns)
		start = l->from_ns;
	if (end > l->to_ns)
		end = l->to_ns;
	b->seen[thread] = true;
	if (!b->rows[thread] && !(b->rows[thread] = calloc(l->columns, sizeof(struct lane_cell)))) {
		b->oom = true;
		return;
	}
	struct lane_cell *row = b->rows[thread];
	double a = (double)(start - l->from_ns) / b->ns_per_column;
	double z = (double)(end - l->from_ns) / b->ns_per_column;
	size_t first = (size_t)a, last = (size_t)z;
	if (last >= l->columns)
		last = l->columns - 1;
	if (first > last)
		first = last;
	for (size_t c = first; c <= last; c++) {
		double lo = a > (double)c ? a : (double)c;
		double hi = z < (double)(c + 1) ? z : (double)(c + 1);
		if (hi > lo)
			row[c].share[state] += (float)(hi - lo);
	}
}

static void free_rows(struct binning *b, size_t threads)
{
	for (size_t i = 0; b->rows && i < threads; i++)
		free(b->rows[i]);
	free(b->rows);
	free(b->seen);
}

int lanes_build(struct lanes *l, const struct model *m, const struct findings *findings, uint64_t from_ns,
                uint64_t to_ns, size_t columns)
{
	memset(l, 0, sizeof *l);
	l->from_ns = from_ns;
	l->to_ns = to_ns > from_ns ? to_ns : from_ns + 1;
	l->columns = columns ? columns : 1;
	size_t threads = m->thread_count ? m->thread_count : 1;
	struct binning b = { l, (double)(l->to_ns - l->from_ns) / (double)l->columns, calloc(threads, sizeof(bool)),
		             calloc(threads, sizeof(struct lane_cell *)), false };
	struct mark *marks = NULL;
	size_t mark_count = 0;
	l->thread_of_lane = malloc(threads * sizeof(int));
	l->lane_of_thread = malloc(threads * sizeof(int));
	if (!b.seen || !b.rows || !l->thread_of_lane || !l->lane_of_thread)
		goto oom;
	struct span_visitor v = { &b, add_span, NULL };
	if (spans_walk_window(m, &v, findings, l->from_ns, &marks, &mark_count) != 0 || b.oom)
		goto oom;

	/* the marks in the window; their threads get a lane too */
	size_t kept = 0;
	for (size_t i = 0; i < mark_count; i++) {
		if (marks[i].ns < l->from_ns || marks[i].ns > l->to_ns)
			continue;
		if (marks[i].thread >= 0)
			b.seen[marks[i].thread] = true;
		marks[kept++] = marks[i];
	}
	l->marks = marks;
	l->mark_count = kept;
	marks = NULL;

	for (size_t i = 0; i < m->thread_count; i++) {
		l->lane_of_thread[i] = -1;
		if (b.seen[i])
			l->thread_of_lane[l->lane_count++] = (int)i;
	}
	qsort_r(l->thread_of_lane, l->lane_count, sizeof(int), model_thread_order, (void *)m);
	l->cells = malloc((l->lane_count ? l->lane_count : 1) * l->columns * sizeof *l->cells);
	if (!l->cells)
		goto oom;
	for (size_t lane = 0; lane < l->lane_count; lane++) {
		int thread = l->thread_of_lane[lane];
		l->lane_of_thread[thread] = (int)lane;
		if (b.rows[thread]) /* else only marked: absent all along */
			memcpy(&l->cells[lane * l->columns], b.rows[thread], l->columns * sizeof *l->cells);
		else
			memset(&l->cells[lane * l->columns], 0, l->columns * sizeof *l->cells);
	}
	free_rows(&b, m->thread_count);
	return 0;
oom:
	free_rows(&b, m->thread_count);
	free(marks);
	lanes_free(l);
	return -1;
}

void lanes_free(struct lanes *l)
{
	free(l->thread_of_lane);
	free(l->lane_of_thread);
	free(l->cells);
	free(l->marks);
	memset(l, 0, sizeof *l);
}

enum lane_state lanes_dominant(const struct lanes *l, size_t lane, size_t column)
{
	const struct lane_cell *c = lanes_cell(l, lane, column);
	enum lane_state best = LANE_ABSENT;
	float most = 0;
	for (int s = LANE_RELEASED; s < LANE_STATES; s++)
		if (c->share[s] > most) {
			most = c->share[s];
			best = (enum lane_state)s;
		}
	return best;
}

double lanes_x(const struct lanes *l, uint64_t ns)
{
	if (ns <= l->from_ns)
		return 0;
	return (double)(ns - l->from_ns) * (double)l->columns / (double)(l->to_ns - l->from_ns);
}

size_t lanes_column_of(const struct lanes *l, uint64_t ns)
{
	size_t c = (size_t)lanes_x(l, ns);
	return c < l->columns ? c : l->columns - 1;
}
