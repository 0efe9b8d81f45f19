/*
 * cmd-report.c: `giltrace report [--json] TRACE...` and
 * `giltrace report --html OUT.html [--around ...] [--from T] [--to T] TRACE`
 *
 * Per thread: GIL hold and wait time, acquisitions, drop requests, forced
 * switches, how it ended.  Overall: handoffs with latency percentiles, the
 * contention ratio, the finalization timeline, the model's self-check and
 * the findings (detect.c).  The HTML page is html-report.c's; this file
 * only parses its options and chooses its window (window.h).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "analysis.h"
#include "builtin.h"
#include "describe.h"
#include "findings-output.h"
#include "format.h"
#include "html-report.h"
#include "json.h"
#include "model.h"
#include "output.h"
#include "trace.h"
#include "usage.h"
#include "window.h"

static const char usage_text[] =
        "usage: giltrace report [--json] TRACE...\n"
        "       giltrace report --html OUT.html [--around finalize|whole] [--from TIME] [--to TIME] TRACE\n\n"
        "  --json         machine-readable output: one object per trace (an array\n"
        "                 of them when several traces are given)\n"
        "  --html FILE    one self-contained page (no network): a zoomable\n"
        "                 timeline, the statistics and the findings; '-' for stdout\n"
        "  --around WHAT  the timeline's window: 'finalize' (the default when the\n"
        "                 trace has a finalization) or 'whole'\n"
        "  --from TIME, --to TIME\n"
        "                 the timeline's window from/to this time after the trace's\n"
        "                 start, with a unit: 12ms, 1.5s, 300us, 800ns\n\n"
        "exit status: 0 every trace was read, 2 a trace was unusable\n";

/* ---- JSON ----------------------------------------------------------------- */

static void json_tid_list(struct json *j, const char *key, const struct model *m, const int *threads, size_t n)
{
	json_array_begin(j, key);
	for (size_t i = 0; i < n; i++)
		json_i64(j, NULL, m->threads[threads[i]].info->tid);
	json_array_end(j);
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
		if (l->to_ns != UINT64_MAX)
			json_u64(j, "before_ns", l->to_ns);
		else
			json_null(j, "before_ns");
		json_u64(j, "chunks", l->chunks);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

static void report_json(struct json *j, const struct trace *t, const struct model *m, const struct findings *fs)
{
	const struct gtr_file_header *h = &t->header;
	char buf[160];
	json_object_begin(j, NULL);
	json_string(j, "trace", t->path);
	json_object_begin(j, "interpreter");
	describe_python_version(h, buf, sizeof buf);
	json_string(j, "version", buf[0] ? buf : NULL);
	json_string(j, "version_full", h->py_version[0] ? h->py_version : NULL);
	json_string(j, "build", describe_build(h, buf, sizeof buf));
	json_bool(j, "shared", h->py_build & GTR_BUILD_SHARED);
	json_bool(j, "debug", h->py_build & GTR_BUILD_DEBUG);
	json_bool(j, "free_threaded", h->py_build & GTR_BUILD_FREE_THREADED);
	json_bool(j, "internal_capi_calls_seen", h->py_build & GTR_BUILD_PLT_ROUTED);
	json_u64(j, "capi_got_slots", h->capi_got_slots);
	json_string(j, "executable", h->executable);
	json_object_end(j);
	json_object_begin(j, "process");
	json_i64(j, "pid", h->pid);
	json_i64(j, "ppid", h->ppid);
	json_bool(j, "fork_child", h->flags & GTR_FLAG_FORK_CHILD);
	json_string(j, "mode", h->flags & GTR_FLAG_RING ? "ring" : "full");
	json_string(j, "clock", t->clock_is_tsc ? "tsc" : "monotonic");
	json_u64(j, "start_realtime_ns", h->start_realtime_ns);
	json_object_end(j);
	json_u64(j, "wall_ns", m->wall_ns);
	json_u64(j, "events", t->event_count);
	findings_json_truncation(j, t);
	json_losses(j, t, m);

	json_array_begin(j, "gils");
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		const struct model_gil *g = &m->gils[gi];
		if (!g->seen)
			continue;
		json_object_begin(j, NULL);
		json_u64(j, "index", gi);
		snprintf(buf, sizeof buf, "0x%" PRIx64, g->base);
		json_string(j, "address", buf);
		json_bool(j, "main", g->in_runtime);
		json_u64(j, "held_ns", g->held_ns);
		json_u64(j, "idle_ns", g->idle_ns);
		json_u64(j, "lost_ns", g->lost_ns);
		json_u64(j, "acquisitions", g->acquisitions);
		json_u64(j, "acquisitions_missing", g->acquisitions_missing);
		json_u64(j, "gaps", g->gaps);
		json_object_end(j);
	}
	json_array_end(j);

	json_array_begin(j, "threads");
	for (size_t i = 0; i < m->thread_count; i++) {
		const struct model_thread *th = &m->threads[i];
		json_object_begin(j, NULL);
		json_i64(j, "tid", th->info->tid);
		json_u64(j, "serial", th->info->serial);
		json_string(j, "name", model_thread_name(m, (int)i));
		json_bool(j, "main", th->is_main);
		if (th->has_start)
			json_i64(j, "parent_tid", th->parent_tid);
		else
			json_null(j, "parent_tid");
		json_u64(j, "first_ns", th->first_ns == UINT64_MAX ? 0 : th->first_ns);
		json_u64(j, "last_ns", th->last_ns);
		json_u64(j, "gil_hold_ns", th->hold_ns);
		json_u64(j, "gil_wait_ns", th->wait_ns);
		json_u64(j, "acquisitions", th->acquisitions);
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
	json_double(j, "contention_ratio", describe_contention_ratio(m));

	json_object_begin(j, "finalization");
	if (m->finalization.seen)
		json_u64(j, "start_ns", m->finalization.start_ns);
	else
		json_null(j, "start_ns");
	if (m->finalization.finalizing_thread >= 0)
		json_i64(j, "finalizing_tid", m->threads[m->finalization.finalizing_thread].info->tid);
	else
		json_null(j, "finalizing_tid");
	if (m->finalization.enter_seen)
		json_u64(j, "py_finalize_enter_ns", m->finalization.enter_ns);
	else
		json_null(j, "py_finalize_enter_ns");
	if (m->finalization.exit_seen)
		json_u64(j, "py_finalize_exit_ns", m->finalization.exit_ns);
	else
		json_null(j, "py_finalize_exit_ns");
	const struct model_epoch *ep = m->epoch_count ? &m->epochs[0] : &(struct model_epoch){ 0 };
	json_tid_list(j, "alive_at_start", m, ep->alive, ep->alive_count);
	json_tid_list(j, "held_gil_after", m, ep->held, ep->held_count);
	json_tid_list(j, "waited_gil_after", m, ep->waited, ep->waited_count);
	json_object_end(j);

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
	findings_json(j, "findings", m, fs);
	json_object_end(j);
}

/* ---- text ---------------------------------------------------------------- */

static void print_tid_list(const struct model *m, const int *threads, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char label[64];
		printf("%s%s", i ? ", " : " ", model_thread_label(m, threads[i], label, sizeof label));
	}
	puts(n ? "" : " none");
}

/* How much the trace lost inside, and what the statistics leave out. */
static void print_losses(const struct trace *t, const struct model *m)
{
	char d[32];
	if (t->threads_with_loss) {
		printf("  events lost: %zu thread%s", t->threads_with_loss, t->threads_with_loss == 1 ? "" : "s");
		if (t->chunks_lost)
			printf(", %" PRIu64 " chunks (%.1f MiB) or more", t->chunks_lost,
			       (double)(t->chunks_lost * t->header.chunk_size) / (1024.0 * 1024.0));
		printf("%s\n", t->header.flags & GTR_FLAG_RING ? "; ring mode keeps each thread's newest events only" : "");
	}
	if (m->gil_gaps)
		printf("  GIL events missing in %" PRIu64 " places (%" PRIu64 " acquisitions or more): %" PRIu64
		       " handoffs and %s of GIL time across them are not counted\n",
		       m->gil_gaps, m->acquisitions_missing, m->handoffs_not_counted,
		       format_duration(d, sizeof d, m->lost_ns));
}

static void report_text(const struct trace *t, const struct model *m, const struct findings *fs)
{
	const struct gtr_file_header *h = &t->header;
	char v[64], b[64], d1[32], d2[32], d3[32], d4[32], ex[96];
	describe_python_version(h, v, sizeof v);
	describe_build(h, b, sizeof b);
	printf("trace %s\n", t->path);
	printf("  python %s (%s), pid %d%s, %zu threads, %zu events, wall %s, %s mode\n", v[0] ? v : "?", b,
	       h->pid, h->flags & GTR_FLAG_FORK_CHILD ? " (fork child)" : "", m->thread_count, t->event_count,
	       format_duration(d1, sizeof d1, m->wall_ns), h->flags & GTR_FLAG_RING ? "ring" : "full");
	char why[320];
	if (trace_incomplete(t))
		printf("  TRUNCATED: %s;\n"
		       "  every event up to +%s (the last one committed) was read\n",
		       trace_incomplete_why(t, why, sizeof why), format_duration(d1, sizeof d1, t->last_event_ns));
	for (size_t i = 0; i < t->note_count; i++)
		printf("  note: %s\n", t->notes[i]);
	print_losses(t, m);

	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		const struct model_gil *g = &m->gils[gi];
		if (!g->seen)
			continue;
		printf("\nGIL %u%s at 0x%" PRIx64 ": held %s (%.1f%%), idle %s, %" PRIu64 " acquisitions\n", gi,
		       g->in_runtime ? " (main)" : "", g->base, format_duration(d1, sizeof d1, g->held_ns),
		       m->wall_ns ? 100.0 * (double)g->held_ns / (double)m->wall_ns : 0.0,
		       format_duration(d2, sizeof d2, g->idle_ns), g->acquisitions);
		if (g->gaps)
			printf("  lost %s (events missing in %" PRIu64 " places, %" PRIu64 " acquisitions or more)\n",
			       format_duration(d1, sizeof d1, g->lost_ns), g->gaps, g->acquisitions_missing);
	}
	printf("handoffs: %" PRIu64 ", latency p50 %s  p90 %s  p99 %s  max %s\n", m->handoff_count,
	       format_duration(d1, sizeof d1, m->latency_p50), format_duration(d2, sizeof d2, m->latency_p90),
	       format_duration(d3, sizeof d3, m->latency_p99), format_duration(d4, sizeof d4, m->latency_max));
	printf("contention: %.1f%% of acquisitions waited for another holder\n", 100.0 * describe_contention_ratio(m));

	printf("\n  %-8s %-16s %10s %10s %8s %8s %7s  %s\n", "tid", "name", "hold", "wait", "acquire", "drop-req",
	       "forced", "exit");
	for (size_t i = 0; i < m->thread_count; i++) {
		const struct model_thread *th = &m->threads[i];
		const char *name = model_thread_name(m, (int)i);
		printf("  %-8d %-16s %10s %10s %8" PRIu64 " %8" PRIu64 " %7" PRIu64 "  %s%s\n", th->info->tid,
		       name ? name : "-", format_duration(d1, sizeof d1, th->hold_ns),
		       format_duration(d2, sizeof d2, th->wait_ns), th->acquisitions, th->drop_requests,
		       th->forced_switches, describe_thread_exit(th, ex, sizeof ex),
		       th->info->events_lost ? " (older events dropped)" : "");
	}

	printf("\nfinalization: ");
	if (!m->finalization.seen) {
		printf("not seen%s\n", m->finalization.enter_seen ? " (Py_FinalizeEx entered, flag not observed)" : "");
	} else {
		int ft = m->finalization.finalizing_thread;
		printf("started at +%s", format_duration(d1, sizeof d1, m->finalization.start_ns));
		if (ft >= 0)
			printf(" by %s", model_thread_phrase(m, ft, ex, sizeof ex));
		if (m->finalization.enter_seen)
			printf(" (Py_FinalizeEx entered at +%s)", format_duration(d2, sizeof d2, m->finalization.enter_ns));
		const struct model_epoch *ep = &m->epochs[0];
		printf("\n  alive then:");
		print_tid_list(m, ep->alive, ep->alive_count);
		printf("  held the GIL after it:");
		print_tid_list(m, ep->held, ep->held_count);
		printf("  waited for the GIL after it:");
		print_tid_list(m, ep->waited, ep->waited_count);
	}
	if (m->error_count) {
		if (t->note_count)
			printf("\nmodel inconsistencies (expected: the trace is damaged, see the notes above):\n");
		else
			printf("\nmodel self-check FAILED (a giltrace bug, please report it with this trace):\n");
		for (size_t i = 0; i < m->error_count; i++)
			printf("  %s\n", m->errors[i]);
	}
	printf("\nfindings: %zu error%s, %zu note%s\n", fs->errors, fs->errors == 1 ? "" : "s", fs->notes,
	       fs->notes == 1 ? "" : "s");
	fflush(stdout);
	findings_print_text(stdout, m, fs);
}

/* ---- HTML ---------------------------------------------------------------- */

/* How the window was chosen, in the page's words. */
static const char *window_chosen_by(const struct model *m, const struct window_request *r)
{
	bool around_finalize = r->around == WINDOW_FINALIZE || (r->around == WINDOW_AUTO && m->finalization.seen);
	if (r->has_from || r->has_to)
		return around_finalize ? "around finalization, adjusted by --from/--to" : "chosen by --from/--to";
	if (around_finalize)
		return r->around == WINDOW_AUTO ? "around finalization (the default; --around whole for all of it)"
		                                : "around finalization";
	return "the whole run";
}

/* The page of the trace at trace_path, to out: 0, or -1 after a message.
 * A trace cut short gives a page of what could be read. */
static int write_page(FILE *out, const char *out_path, const char *trace_path, const struct window_request *wr)
{
	struct analysis a;
	char err[512];
	int ret = -1;
	if (analysis_open(&a, trace_path, err, sizeof err) != 0) {
		print_error("%s", err);
		goto out;
	}
	const struct model *m = &a.model;
	struct html_report_window w = { 0, 0, window_chosen_by(m, wr) };
	if (window_choose(m, wr, &w.from_ns, &w.to_ns, err, sizeof err) != 0) {
		if (m->wall_ns || wr->around != WINDOW_AUTO || wr->has_from || wr->has_to) {
			print_error("%s", err);
			goto out;
		}
		/* no events at all (a trace cut short at once): an empty timeline */
		w.from_ns = 0;
		w.to_ns = 1;
		w.chosen_by = "no events were read";
	}
	ret = html_report_write(out, m, &a.findings, &w);
	if (ret != 0)
		print_error("out of memory writing '%s'", out_path);
out:
	analysis_close(&a);
	return ret;
}

/* `report --html OUT TRACE`: returns the exit status.  OUT is written
 * whole or not at all (output.h). */
static int report_html(const char *out_path, const char *trace_path, const struct window_request *wr)
{
	struct output out;
	if (output_open(&out, out_path, trace_path,
	                "the page's file name comes first (giltrace report --html OUT.html TRACE)") != 0)
		return EXIT_UNUSABLE;
	bool failed = write_page(out.file, out_path, trace_path, wr) != 0;
	return output_close(&out, failed) == 0 ? EXIT_CLEAN : EXIT_UNUSABLE;
}

int cmd_report(int argc, char **argv)
{
	enum { OPT_HTML = 256, OPT_AROUND, OPT_FROM, OPT_TO };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "html", required_argument, NULL, OPT_HTML },
		{ "around", required_argument, NULL, OPT_AROUND },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "to", required_argument, NULL, OPT_TO },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool as_json = false, around_given = false;
	const char *html_path = NULL;
	struct window_request wr = { .around = WINDOW_AUTO };
	char err[256];
	int c;
	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			as_json = true;
			break;
		case OPT_HTML:
			html_path = optarg;
			break;
		case OPT_AROUND:
			around_given = true;
			if (window_parse_around(optarg, &wr, err, sizeof err) != 0) {
				print_error("%s", err);
				return EXIT_UNUSABLE;
			}
			break;
		case OPT_FROM:
		case OPT_TO:
			if (window_parse_time(optarg, c == OPT_FROM ? &wr.from_ns : &wr.to_ns, err, sizeof err) != 0) {
				print_error("%s %s", c == OPT_FROM ? "--from:" : "--to:", err);
				return EXIT_UNUSABLE;
			}
			*(c == OPT_FROM ? &wr.has_from : &wr.has_to) = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_CLEAN;
		default:
			fputs(usage_text, stderr);
			return EXIT_UNUSABLE;
		}
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return EXIT_UNUSABLE;
	}
	if (html_path && as_json) {
		print_error("--html and --json cannot be combined: run report once with each");
		return EXIT_UNUSABLE;
	}
	if (!html_path && (around_given || wr.has_from || wr.has_to)) {
		print_error("--around, --from and --to choose the window of the HTML timeline: add --html OUT.html");
		return EXIT_UNUSABLE;
	}
	if (html_path && argc - optind != 1) {
		print_error("--html writes the page of one trace, and %d were given: run 'giltrace report --html OUT.html "
		      "TRACE' once per trace",
		      argc - optind);
		return EXIT_UNUSABLE;
	}
	if (html_path)
		return report_html(html_path, argv[optind], &wr);
	int status = EXIT_CLEAN, n = argc - optind, reported = 0;
	struct json j;
	json_init(&j, stdout);
	if (as_json && n > 1)
		json_array_begin(&j, NULL);
	for (int i = optind; i < argc; i++) {
		struct analysis a;
		char err[512];
		if (analysis_open(&a, argv[i], err, sizeof err) != 0) {
			print_error("%s", err);
			status = EXIT_UNUSABLE;
		} else if (as_json) {
			report_json(&j, &a.trace, &a.model, &a.findings);
			reported++;
		} else {
			if (i > optind)
				putchar('\n');
			report_text(&a.trace, &a.model, &a.findings);
		}
		analysis_close(&a);
	}
	if (as_json && n > 1)
		json_array_end(&j);
	if (as_json && (reported || n > 1))
		json_finish(&j);
	return status;
}
