/*
 * report-data.c: what `giltrace report` says of one trace, worded once.
 * See report-data.h.
 */
#include "report-data.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "describe.h"
#include "format.h"

const struct report_column_info report_columns[REPORT_COLUMNS] = {
	[REPORT_COL_TID] = { "tid", "tid", true },
	[REPORT_COL_NAME] = { "name", "name", false },
	[REPORT_COL_HOLD] = { "hold", "hold", true },
	[REPORT_COL_WAIT] = { "wait", "wait", true },
	[REPORT_COL_BLOCKED] = { "blocked in the parking lot", "blocked", true },
	[REPORT_COL_ACQUISITIONS] = { "acquisitions", "acquire", true },
	[REPORT_COL_DROP_REQUESTS] = { "drop requests", "drop-req", true },
	[REPORT_COL_FORCED_SWITCHES] = { "forced switches", "forced", true },
	[REPORT_COL_GILS] = { "GILs taken", "gils", false },
	[REPORT_COL_EXIT] = { "exit", "exit", false },
};

static const char *const thread_list_labels[REPORT_THREAD_LISTS] = {
	[REPORT_ALIVE] = "alive then",
	[REPORT_HELD] = "held the GIL after it",
	[REPORT_WAITED] = "waited for the GIL after it",
};

static void word_interpreter(struct report *r)
{
	const struct trace *t = r->t;
	const struct gtr_file_header *h = &t->header;
	char wall[32];
	describe_python_version(h, r->version, sizeof r->version);
	snprintf(r->build, sizeof r->build, "%s%s%s%s", h->py_build & GTR_BUILD_SHARED ? "shared" : "static",
	         h->py_build & GTR_BUILD_DEBUG ? ", debug" : "",
	         h->py_build & GTR_BUILD_FREE_THREADED ? ", free-threaded" : "",
	         h->py_build & GTR_BUILD_PLT_ROUTED ? ", internal C-API calls seen" : "");
	snprintf(r->python, sizeof r->python, "%s (%s)", r->version[0] ? r->version : "?", r->build);
	r->provoked = trace_provoked(t, r->provoked_buf, sizeof r->provoked_buf);
	r->writer = trace_writer_version(t, r->writer_buf, sizeof r->writer_buf);
	r->mode = h->flags & GTR_FLAG_RING ? "ring" : "full";
	r->clock = t->clock_is_tsc ? "tsc" : "monotonic";
	snprintf(r->process, sizeof r->process, "pid %d%s, %zu threads, %zu events, wall %s, %s mode", h->pid,
	         h->flags & GTR_FLAG_FORK_CHILD ? " (fork child)" : "", r->m->thread_count, t->event_count,
	         format_duration(wall, sizeof wall, r->m->wall_ns), r->mode);
}

/* Whether the evidence is complete, how much the trace lost inside (ring
 * mode, a cut copy, a full disk), and what the statistics leave out. */
static void word_completeness(struct report *r)
{
	const struct trace *t = r->t;
	const struct model *m = r->m;
	char d[32];
	r->truncated = trace_incomplete(t);
	if (r->truncated) {
		trace_incomplete_why(t, r->truncated_why, sizeof r->truncated_why);
		snprintf(r->truncated_read, sizeof r->truncated_read,
		         "every event up to +%s (the last one committed) was read",
		         format_duration(d, sizeof d, t->last_event_ns));
	}
	if (t->threads_with_loss) {
		char chunks[96] = "";
		if (t->chunks_lost)
			snprintf(chunks, sizeof chunks, ", %" PRIu64 " chunks (%.1f MiB) or more", t->chunks_lost,
			         (double)(t->chunks_lost * t->header.chunk_size) / (1024.0 * 1024.0));
		snprintf(r->losses[r->loss_count++], sizeof r->losses[0], "events lost: %zu thread%s%s%s",
		         t->threads_with_loss, t->threads_with_loss == 1 ? "" : "s", chunks,
		         t->header.flags & GTR_FLAG_RING ? "; ring mode keeps each thread's newest events only" : "");
	}
	if (m->gil_gaps)
		snprintf(r->losses[r->loss_count++], sizeof r->losses[0],
		         "GIL events missing in %" PRIu64 " places (%" PRIu64 " acquisitions or more): %" PRIu64
		         " handoffs and %s of GIL time across them are not counted",
		         m->gil_gaps, m->acquisitions_missing, m->handoffs_not_counted,
		         format_duration(d, sizeof d, m->lost_ns));
}

/* Who enabled a free-threaded build's GIL for good (replay.c's gil_enabled). */
static void word_enabled_for_good(const struct report *r, const struct model_gil *g, char *buf, size_t size)
{
	char d[32], who[96];
	const char *at = format_duration(d, sizeof d, g->enabled_for_good_ns);
	const struct trace_module *mod =
	        g->enabled_for_good_module ? trace_module_of(r->t, g->enabled_for_good_module) : NULL;
	if (g->enabled_for_good_by < 0)
		snprintf(buf, size,
		         "free-threaded build: the GIL was enabled for good at +%s, with no import enabling it first: "
		         "PYTHON_GIL=1 or -X gil=1",
		         at);
	else if (mod && mod->path)
		snprintf(buf, size,
		         "free-threaded build: the GIL was enabled for good at +%s by %s importing %s, an extension "
		         "module that does not declare Py_mod_gil_not_used",
		         at, model_thread_phrase(r->m, g->enabled_for_good_by, who, sizeof who), mod->path);
	else
		snprintf(buf, size,
		         "free-threaded build: the GIL was enabled for good at +%s by an import of %s (a built-in "
		         "module, or one whose load the trace does not hold) that does not declare "
		         "Py_mod_gil_not_used",
		         at, model_thread_phrase(r->m, g->enabled_for_good_by, who, sizeof who));
}

/* A free-threaded build's GIL: disabled, enabled now and then (while an
 * extension module is imported), or
 * enabled for good (PYTHON_GIL=1, or a module that does not declare
 * Py_mod_gil_not_used). */
static void word_enabled(const struct report *r, const struct model_gil *g, char *buf, size_t size)
{
	if (r->t->header.version_minor < 7)
		snprintf(buf, size, "free-threaded build: whether the GIL was enabled is not recorded (a trace "
		                    "older than format 3.7)");
	else if (!g->enabled_times && g->enabled_for_good_ns == UINT64_MAX)
		snprintf(buf, size, "free-threaded build: the GIL stayed disabled");
	else if (g->enabled_for_good_ns != UINT64_MAX)
		word_enabled_for_good(r, g, buf, size);
	else
		snprintf(buf, size,
		         "free-threaded build: the GIL is disabled; it was enabled %" PRIu64 " time%s, for a while "
		         "(imports of extension modules: the acquisitions above)",
		         g->enabled_times, g->enabled_times == 1 ? "" : "s");
}

static int word_gils(struct report *r)
{
	const struct model *m = r->m;
	char d1[32], d2[32];
	size_t seen = 0;
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++)
		seen += m->gils[gi].seen;
	r->gils = calloc(seen ? seen : 1, sizeof *r->gils);
	if (!r->gils)
		return -1;
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		const struct model_gil *g = &m->gils[gi];
		if (!g->seen)
			continue;
		struct report_gil *rg = &r->gils[r->gil_count++];
		rg->index = gi;
		rg->gil = g;
		snprintf(rg->line, sizeof rg->line,
		         "GIL %u%s at 0x%" PRIx64 ": held %s (%.1f%%), idle %s, %" PRIu64 " acquisitions", gi,
		         g->in_runtime ? " (main)" : "", g->base, format_duration(d1, sizeof d1, g->held_ns),
		         m->wall_ns ? 100.0 * (double)g->held_ns / (double)m->wall_ns : 0.0,
		         format_duration(d2, sizeof d2, g->idle_ns), g->acquisitions);
		if (g->gaps)
			snprintf(rg->lost, sizeof rg->lost,
			         "lost %s (events missing in %" PRIu64 " places, %" PRIu64 " acquisitions or more)",
			         format_duration(d1, sizeof d1, g->lost_ns), g->gaps, g->acquisitions_missing);
		if (r->t->header.py_build & GTR_BUILD_FREE_THREADED)
			word_enabled(r, g, rg->enabled, sizeof rg->enabled);
	}
	if (!seen && (r->t->header.py_build & GTR_BUILD_FREE_THREADED))
		snprintf(r->no_gil, sizeof r->no_gil,
		         "free-threaded build: no GIL was seen: threads ran without one, no handoff to report");
	return 0;
}

static void word_handoffs(struct report *r)
{
	const struct model *m = r->m;
	static const char *const names[4] = { "p50", "p90", "p99", "max" };
	const uint64_t ns[4] = { m->latency_p50, m->latency_p90, m->latency_p99, m->latency_max };
	char d[32];
	snprintf(r->handoffs, sizeof r->handoffs, "handoffs: %" PRIu64 ", latency", m->handoff_count);
	for (int i = 0; i < 4; i++)
		snprintf(r->latency[i], sizeof r->latency[i], "%s %s", names[i], format_duration(d, sizeof d, ns[i]));
	r->contention_ratio = m->acquisitions ? (double)m->contended_acquisitions / (double)m->acquisitions : 0.0;
	snprintf(r->contention, sizeof r->contention, "contention: %.1f%% of acquisitions waited for another holder",
	         100.0 * r->contention_ratio);
}

/* "pthread_exit holding GIL at +12.3 ms", "running at end", and whether
 * the thread's older events were dropped. */
static void word_exit(const struct model_thread *th, char *buf, size_t size)
{
	char at[32];
	const char *dropped = th->info->events_lost ? " (older events dropped)" : "";
	if (th->exit == THREAD_END_NONE)
		snprintf(buf, size, "running at end%s", dropped);
	else
		snprintf(buf, size, "%s%s at +%s%s", thread_end_name(th->exit), th->exit_held_gil ? " holding GIL" : "",
		         format_duration(at, sizeof at, th->exit_ns), dropped);
}

/* "0", "0,1", "-": the GILs a thread acquired, by index. */
static void word_gils_taken(const struct model_thread *th, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS && len < size; gi++) {
		if (!(th->gils[gi / 64] >> (gi % 64) & 1))
			continue;
		int n = snprintf(buf + len, size - len, "%s%u", len ? "," : "", gi);
		len = n < 0 ? size : len + (size_t)n;
	}
	if (!buf[0])
		snprintf(buf, size, "-");
}

static int word_threads(struct report *r)
{
	const struct model *m = r->m;
	r->rows = calloc(m->thread_count ? m->thread_count : 1, sizeof *r->rows);
	if (!r->rows)
		return -1;
	r->row_count = m->thread_count;
	for (size_t i = 0; i < m->thread_count; i++)
		r->rows[i].thread = (int)i;
	/* grouped by GIL where there are several, as the lanes are; the
	 * comparator reads the row's first member, its thread */
	_Static_assert(offsetof(struct report_thread_row, thread) == 0, "rows sort by their thread");
	qsort_r(r->rows, r->row_count, sizeof *r->rows, model_thread_order, (void *)m);
	for (size_t i = 0; i < m->thread_count; i++) {
		struct report_thread_row *row = &r->rows[i];
		const struct model_thread *th = &m->threads[row->thread];
		const char *name = model_thread_name(m, row->thread);
		char (*cell)[REPORT_CELL_SIZE] = row->cell;
		snprintf(cell[REPORT_COL_TID], REPORT_CELL_SIZE, "%d", th->info->tid);
		snprintf(cell[REPORT_COL_NAME], REPORT_CELL_SIZE, "%s", name ? name : "-");
		format_duration(cell[REPORT_COL_HOLD], REPORT_CELL_SIZE, th->hold_ns);
		format_duration(cell[REPORT_COL_WAIT], REPORT_CELL_SIZE, th->wait_ns);
		format_duration(cell[REPORT_COL_BLOCKED], REPORT_CELL_SIZE, th->blocked_ns);
		snprintf(cell[REPORT_COL_ACQUISITIONS], REPORT_CELL_SIZE, "%" PRIu64, th->acquisitions);
		snprintf(cell[REPORT_COL_DROP_REQUESTS], REPORT_CELL_SIZE, "%" PRIu64, th->drop_requests);
		snprintf(cell[REPORT_COL_FORCED_SWITCHES], REPORT_CELL_SIZE, "%" PRIu64, th->forced_switches);
		word_gils_taken(th, cell[REPORT_COL_GILS], REPORT_CELL_SIZE);
		word_exit(th, cell[REPORT_COL_EXIT], REPORT_CELL_SIZE);
	}
	for (int c = 0; c < REPORT_COLUMNS; c++)
		r->column_shown[c] = c == REPORT_COL_GILS      ? r->gil_count > 1
		                     : c == REPORT_COL_BLOCKED ? m->blocks > 0
		                                               : true;
	return 0;
}

/* The labels of threads, ", "-separated, or "none": a string to free, or
 * NULL when out of memory. */
static char *thread_labels(const struct model *m, const int *threads, size_t count)
{
	char *text = NULL, label[64];
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (!mem)
		return NULL;
	for (size_t i = 0; i < count; i++)
		fprintf(mem, "%s%s", i ? ", " : "", model_thread_label(m, threads[i], label, sizeof label));
	if (!count)
		fputs("none", mem);
	if (fclose(mem) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Epoch k of the model's, or none seen when m has none. */
static int word_finalization(struct report *r, struct report_finalization *f, size_t k)
{
	const struct model *m = r->m;
	char d1[32], d2[32], who[96];
	if (!m->epoch_count) {
		snprintf(f->heading, sizeof f->heading, "finalization");
		snprintf(f->said, sizeof f->said, "not seen%s",
		         m->finalization.enter_seen ? " (Py_FinalizeEx entered, flag not observed)" : "");
		return 0;
	}
	const struct model_epoch *me = &m->epochs[k];
	const struct replay_epoch *ep = &me->epoch;
	f->epoch = me;
	if (m->epoch_count > 1)
		snprintf(f->heading, sizeof f->heading, "finalization %zu of %zu", k + 1, m->epoch_count);
	else
		snprintf(f->heading, sizeof f->heading, "finalization");
	snprintf(f->said, sizeof f->said, "started at +%s%s%s%s%s%s", format_duration(d1, sizeof d1, ep->start_ns),
	         ep->finalizing_thread >= 0 ? " by " : "",
	         ep->finalizing_thread >= 0 ? model_thread_phrase(m, ep->finalizing_thread, who, sizeof who) : "",
	         ep->enter_seen ? " (Py_FinalizeEx entered at +" : "",
	         ep->enter_seen ? format_duration(d2, sizeof d2, ep->enter_ns) : "", ep->enter_seen ? ")" : "");
	const int *lists[REPORT_THREAD_LISTS] = { me->alive, me->held, me->waited };
	const size_t counts[REPORT_THREAD_LISTS] = { me->alive_count, me->held_count, me->waited_count };
	for (int i = 0; i < REPORT_THREAD_LISTS; i++) {
		struct report_threads *l = &f->lists[i];
		l->label = thread_list_labels[i];
		l->threads = lists[i];
		l->count = counts[i];
		if (!(l->text = thread_labels(m, lists[i], counts[i])))
			return -1;
	}
	if (m->epoch_count > 1 && ep->ended)
		snprintf(f->ended, sizeof f->ended, "ended at +%s: Python was initialised again",
		         format_duration(d1, sizeof d1, ep->end_ns));
	return 0;
}

int report_build(struct report *r, const struct analysis *a)
{
	memset(r, 0, sizeof *r);
	r->t = &a->trace;
	r->m = &a->model;
	r->fs = &a->findings;
	const struct model *m = r->m;
	word_interpreter(r);
	word_completeness(r);
	if (word_gils(r) != 0)
		return -1;
	word_handoffs(r);
	if (word_threads(r) != 0)
		return -1;
	size_t sections = m->epoch_count ? m->epoch_count : 1;
	r->finalizations = calloc(sections, sizeof *r->finalizations);
	if (!r->finalizations)
		return -1;
	r->finalization_count = sections;
	for (size_t k = 0; k < sections; k++)
		if (word_finalization(r, &r->finalizations[k], k) != 0)
			return -1;
	if (m->error_count)
		r->model_errors_heading =
		        r->t->note_count ? "model inconsistencies (expected: the trace is damaged, see the notes above):"
		                         : "model self-check FAILED (a giltrace bug, please report it with this trace):";
	const struct findings *fs = r->fs;
	snprintf(r->findings_count, sizeof r->findings_count, "%zu error%s, %zu note%s", fs->errors,
	         fs->errors == 1 ? "" : "s", fs->notes, fs->notes == 1 ? "" : "s");
	return 0;
}

void report_free(struct report *r)
{
	for (size_t k = 0; k < r->finalization_count; k++)
		for (int i = 0; i < REPORT_THREAD_LISTS; i++)
			free(r->finalizations[k].lists[i].text);
	free(r->finalizations);
	free(r->rows);
	free(r->gils);
	memset(r, 0, sizeof *r);
}
