/*
 * report-json.c: `giltrace report --json`, the report of report-data.h as
 * one object, its numbers from the model.  See report-output.h and, for
 * the members, docs/commands.md.
 */
#include "report-output.h"

#include <inttypes.h>

#include "findings-output.h"

/* The thread lists' members in a finalization object. */
static const char *const thread_list_keys[REPORT_THREAD_LISTS] = {
	[REPORT_ALIVE] = "alive_at_start",
	[REPORT_HELD] = "held_gil_after",
	[REPORT_WAITED] = "waited_gil_after",
};

static void json_ns_or_null(struct json *j, const char *key, bool known, uint64_t ns)
{
	if (known)
		json_u64(j, key, ns);
	else
		json_null(j, key);
}

/* What the trace lost inside (ring mode, a cut copy, a full disk) and
 * what the model left out because of it. */
static void json_losses(struct json *j, const struct trace *t, const struct model *m)
{
	json_object_begin(j, "lost");
	json_u64(j, "threads", t->threads_with_loss);
	json_u64(j, "chunks", t->chunks_lost);
	json_u64(j, "bytes", t->chunks_lost * t->header.chunk_size);
	json_u64(j, "gil_acquisitions_missing", m->acquisitions_missing);
	json_u64(j, "gil_gaps", m->gil_gaps);
	json_u64(j, "gil_lost_ns", m->lost_ns);
	json_u64(j, "handoffs_not_counted", m->handoffs_not_counted);
	json_array_begin(j, "ranges");
	for (size_t i = 0; i < t->loss_count; i++) {
		const struct trace_loss *l = &t->losses[i];
		json_object_begin(j, NULL);
		json_i64(j, "tid", t->threads[l->thread].tid);
		json_string(j, "kind", trace_loss_kind_name(l->kind));
		json_u64(j, "after_ns", l->from_ns);
		json_ns_or_null(j, "before_ns", l->to_ns != UINT64_MAX, l->to_ns);
		json_u64(j, "chunks", l->chunks);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

static void json_gils(struct json *j, const struct report *r)
{
	char address[32];
	json_array_begin(j, "gils");
	for (size_t i = 0; i < r->gil_count; i++) {
		const struct model_gil *g = r->gils[i].gil;
		json_object_begin(j, NULL);
		json_u64(j, "index", r->gils[i].index);
		snprintf(address, sizeof address, "0x%" PRIx64, g->base);
		json_string(j, "address", address);
		json_bool(j, "main", g->in_runtime);
		json_u64(j, "held_ns", g->held_ns);
		json_u64(j, "idle_ns", g->idle_ns);
		json_u64(j, "lost_ns", g->lost_ns);
		json_u64(j, "acquisitions", g->acquisitions);
		json_u64(j, "acquisitions_missing", g->acquisitions_missing);
		json_u64(j, "gaps", g->gaps);
		if (r->gils[i].enabled[0]) { /* free-threaded builds */
			json_object_begin(j, "enabled");
			json_string(j, "text", r->gils[i].enabled);
			json_u64(j, "times_transient", g->enabled_times);
			if (g->enabled_for_good_ns != UINT64_MAX)
				json_u64(j, "for_good_at_ns", g->enabled_for_good_ns);
			else
				json_null(j, "for_good_at_ns");
			const struct trace_module *mod = g->enabled_for_good_module
			                                         ? trace_module_of(r->t, g->enabled_for_good_module)
			                                         : NULL;
			json_string(j, "for_good_by_module", mod ? mod->path : NULL);
			if (g->enabled_for_good_by >= 0)
				json_i64(j, "for_good_by_tid", r->t->threads[g->enabled_for_good_by].tid);
			else
				json_null(j, "for_good_by_tid");
			json_object_end(j);
		}
		json_object_end(j);
	}
	json_array_end(j);
	if (r->no_gil[0])
		json_string(j, "no_gil", r->no_gil);
}

static void json_threads(struct json *j, const struct report *r)
{
	const struct model *m = r->m;
	json_array_begin(j, "threads");
	for (size_t i = 0; i < r->row_count; i++) {
		int thread = r->rows[i].thread;
		const struct model_thread *th = &m->threads[thread];
		json_object_begin(j, NULL);
		json_i64(j, "tid", th->info->tid);
		json_u64(j, "serial", th->info->serial);
		char label[160];
		json_string(j, "name", model_thread_name(m, thread));
		json_string(j, "native_name", th->info->name[0] ? th->info->name : NULL);
		json_string(j, "label", model_thread_label(m, thread, label, sizeof label));
		json_bool(j, "main", th->is_main);
		if (th->has_start)
			json_i64(j, "parent_tid", th->parent_tid);
		else
			json_null(j, "parent_tid");
		json_u64(j, "first_ns", th->first_ns == UINT64_MAX ? 0 : th->first_ns);
		json_u64(j, "last_ns", th->last_ns);
		json_u64(j, "gil_hold_ns", th->hold_ns);
		json_u64(j, "gil_wait_ns", th->wait_ns);
		json_u64(j, "blocked_ns", th->blocked_ns);
		json_u64(j, "blocks", th->blocks);
		json_u64(j, "acquisitions", th->acquisitions);
		json_array_begin(j, "gils");
		for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++)
			if (th->gils[gi / 64] >> (gi % 64) & 1)
				json_u64(j, NULL, gi);
		json_array_end(j);
		json_u64(j, "contended_acquisitions", th->contended_acquisitions);
		json_u64(j, "drop_requests", th->drop_requests);
		json_u64(j, "forced_switches", th->forced_switches);
		json_u64(j, "takes_abandoned", th->takes_abandoned);
		json_bool(j, "events_lost", th->info->events_lost);
		if (th->exit == THREAD_END_NONE) {
			json_null(j, "exit");
		} else {
			json_object_begin(j, "exit");
			json_string(j, "how", thread_end_name(th->exit));
			json_bool(j, "held_gil", th->exit_held_gil);
			json_u64(j, "at_ns", th->exit_ns);
			json_object_end(j);
		}
		json_object_end(j);
	}
	json_array_end(j);
}

static void json_handoffs(struct json *j, const struct model *m)
{
	json_object_begin(j, "handoffs");
	json_u64(j, "count", m->handoff_count);
	json_object_begin(j, "latency_ns");
	json_u64(j, "p50", m->latency_p50);
	json_u64(j, "p90", m->latency_p90);
	json_u64(j, "p99", m->latency_p99);
	json_u64(j, "max", m->latency_max);
	json_object_end(j);
	json_array_begin(j, "pairs");
	for (size_t i = 0; i < m->pair_count; i++) {
		json_object_begin(j, NULL);
		json_i64(j, "from_tid", m->threads[m->pairs[i].from].info->tid);
		json_i64(j, "to_tid", m->threads[m->pairs[i].to].info->tid);
		json_u64(j, "count", m->pairs[i].count);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

/* A finalization section as an object (key NULL: in an array); with its
 * end when `with_end` (the trace has several). */
static void json_finalization(struct json *j, const char *key, const struct report *r,
                              const struct report_finalization *f, bool with_end)
{
	const struct model *m = r->m;
	const struct replay_epoch *ep = f->epoch ? &f->epoch->epoch : NULL;
	/* none seen: what is known of a Py_FinalizeEx call */
	int thread = ep ? ep->finalizing_thread : m->finalization.finalizing_thread;
	bool enter_seen = ep ? ep->enter_seen : m->finalization.enter_seen;
	bool exit_seen = ep ? ep->exit_seen : m->finalization.exit_seen;
	json_object_begin(j, key);
	json_ns_or_null(j, "start_ns", ep, ep ? ep->start_ns : 0);
	if (with_end)
		json_ns_or_null(j, "end_ns", ep && ep->ended, ep ? ep->end_ns : 0);
	if (thread >= 0)
		json_i64(j, "finalizing_tid", m->threads[thread].info->tid);
	else
		json_null(j, "finalizing_tid");
	json_ns_or_null(j, "py_finalize_enter_ns", enter_seen, ep ? ep->enter_ns : m->finalization.enter_ns);
	json_ns_or_null(j, "py_finalize_exit_ns", exit_seen, ep ? ep->exit_ns : m->finalization.exit_ns);
	for (int i = 0; i < REPORT_THREAD_LISTS; i++) {
		json_array_begin(j, thread_list_keys[i]);
		for (size_t n = 0; n < f->lists[i].count; n++)
			json_i64(j, NULL, m->threads[f->lists[i].threads[n]].info->tid);
		json_array_end(j);
	}
	json_object_end(j);
}

void report_json(struct json *j, const struct report *r)
{
	const struct trace *t = r->t;
	const struct model *m = r->m;
	const struct gtr_file_header *h = &t->header;
	char buf[32];
	json_object_begin(j, NULL);
	json_string(j, "trace", t->path);
	json_string(j, "writer_version", r->writer);
	json_object_begin(j, "interpreter");
	json_string(j, "version", r->version[0] ? r->version : NULL);
	json_string(j, "version_full", h->py_version[0] ? h->py_version : NULL);
	json_string(j, "build", r->build);
	json_bool(j, "shared", h->py_build & GTR_BUILD_SHARED);
	json_bool(j, "debug", h->py_build & GTR_BUILD_DEBUG);
	json_bool(j, "free_threaded", h->py_build & GTR_BUILD_FREE_THREADED);
	/* where the shim took the GIL's field offsets from */
	json_string(j, "gil_layout", h->features & GTR_FEATURE_GIL_DEBUG_OFFSETS ? "debug-offsets" : "table");
	json_bool(j, "internal_capi_calls_seen", h->py_build & GTR_BUILD_PLT_ROUTED);
	json_u64(j, "capi_got_slots", h->capi_got_slots);
	json_string(j, "executable", h->executable);
	json_object_end(j);
	json_object_begin(j, "process");
	json_i64(j, "pid", h->pid);
	json_i64(j, "ppid", h->ppid);
	json_bool(j, "fork_child", h->flags & GTR_FLAG_FORK_CHILD);
	json_string(j, "mode", r->mode);
	json_string(j, "clock", r->clock);
	json_u64(j, "start_realtime_ns", h->start_realtime_ns);
	json_object_end(j);
	json_u64(j, "wall_ns", m->wall_ns);
	json_u64(j, "events", t->event_count);
	findings_json_truncation(j, t);
	findings_json_provoked(j, t);
	json_losses(j, t, m);
	json_gils(j, r);
	json_threads(j, r);
	json_handoffs(j, m);
	json_double(j, "contention_ratio", r->contention_ratio);

	/* the first; every one when the program finalized more than once */
	json_finalization(j, "finalization", r, &r->finalizations[0], false);
	if (r->finalization_count > 1) {
		json_array_begin(j, "finalizations");
		for (size_t k = 0; k < r->finalization_count; k++)
			json_finalization(j, NULL, r, &r->finalizations[k], true);
		json_array_end(j);
	}

	json_array_begin(j, "modules");
	for (size_t i = 0; i < t->module_count; i++) {
		json_object_begin(j, NULL);
		json_string(j, "path", t->modules[i].path);
		snprintf(buf, sizeof buf, "0x%" PRIx64, t->modules[i].load_address);
		json_string(j, "load_address", buf);
		json_string(j, "build_id", t->modules[i].build_id[0] ? t->modules[i].build_id : NULL);
		json_object_end(j);
	}
	json_array_end(j);
	json_array_begin(j, "notes");
	for (size_t i = 0; i < t->note_count; i++)
		json_string(j, NULL, t->notes[i]);
	json_array_end(j);
	json_array_begin(j, "model_errors");
	for (size_t i = 0; i < m->error_count; i++)
		json_string(j, NULL, m->errors[i]);
	json_array_end(j);
	findings_json(j, "findings", m, r->fs);
	json_object_end(j);
}
