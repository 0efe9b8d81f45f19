/*
 * cmd-dump.c: `giltrace dump TRACE`: the header, then every event in time
 * order, one line each (with its raw stack, if it has one).  For debugging
 * giltrace itself and for grep.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "trace.h"
#include "usage.h"

static const char usage_text[] = "usage: giltrace dump TRACE\n\n"
                                 "exit status: 0 the trace was read, 2 it was unusable\n";

static void print_details(const struct trace *t, const struct trace_event *e)
{
	switch (e->type) {
	case GTR_EV_GIL_ACQUIRE:
		printf(" gil=%u tstate=0x%" PRIx64 " switch=%" PRIu64, e->arg, e->payload[0], e->payload[1]);
		break;
	case GTR_EV_GIL_HELD_AT_FORK:
		printf(" gil=%u tstate=0x%" PRIx64, e->arg, e->payload[0]);
		break;
	case GTR_EV_THREAD_START:
		printf(" parent=%" PRId64, (int64_t)e->payload[0]);
		break;
	case GTR_EV_THREAD_EXIT:
	case GTR_EV_THREAD_PARK: {
		if (e->type == GTR_EV_THREAD_EXIT)
			printf(" how=%s", trace_exit_how_name(gtr_exit_how(e->arg)));
		printf(" held_gil=%s", gtr_exit_held_gil(e->arg) ? "yes" : "no");
		break;
	}
	case GTR_EV_THREAD_NAME: {
		char name[17];
		memcpy(name, e->payload, 16);
		name[16] = '\0';
		trace_sanitize_string(name);
		printf(" name=\"%s\"", name);
		break;
	}
	case GTR_EV_FORK:
		printf(" child=%" PRId64, (int64_t)e->payload[0]);
		break;
	case GTR_EV_FINALIZING:
		printf(" %s tstate=0x%" PRIx64, e->arg ? "set" : "cleared", e->payload[0]);
		break;
	case GTR_EV_CAPI_CALL:
		printf(" fn=%s subject=0x%" PRIx64 " caller=0x%" PRIx64, trace_capi_name(e->arg), e->payload[0],
		       e->payload[1]);
		break;
	case GTR_EV_CAPI_RETURN:
		printf(" fn=%s result=0x%" PRIx64, trace_capi_name(e->arg), e->payload[0]);
		break;
	case GTR_EV_TSTATE_FREE:
		printf(" tstate=0x%" PRIx64, e->payload[0]);
		break;
	case GTR_EV_TSTATE_REUSE:
		printf(" tstate=0x%" PRIx64 " size=%" PRIu64, e->payload[0], e->payload[1]);
		break;
	case GTR_EV_CRASH: {
		char a[32], b[32];
		unsigned sig = gtr_crash_signal(e->arg);
		int code = gtr_crash_si_code(e->payload[0]);
		printf(" signal=%s code=%s ip=0x%" PRIx64 " %s=0x%" PRIx64 " disposition=%s",
		       trace_signal_name(sig, a, sizeof a), trace_si_code_name(sig, code, b, sizeof b),
		       gtr_crash_ip(e->payload[0]), code > 0 ? "addr" : "sender", e->payload[1],
		       trace_crash_disposition_name(gtr_crash_disposition(e->arg)));
		break;
	}
	case GTR_EV_LOCK_WAIT_BEGIN:
		printf(" lock=0x%" PRIx64 " owner=%" PRId32, e->payload[0], gtr_lock_wait_owner(e->payload[1]));
		if (e->arg)
			printf(" timeout_us=%" PRIu64, gtr_lock_wait_timeout_us(e->payload[1]));
		break;
	case GTR_EV_LOCK_WAIT_END:
		printf(" lock=0x%" PRIx64 " result=%s", e->payload[0], trace_lock_wait_end_name(e->arg));
		break;
	case GTR_EV_LOCK_HELD:
		printf(" lock=0x%" PRIx64 " at=%s", e->payload[0], trace_lock_held_at_name(e->arg));
		break;
	case GTR_EV_GIL_ENABLED:
		if (e->payload[0] == GTR_GIL_ENABLED_FOR_GOOD)
			printf(" gil=%u enabled=for-good", e->arg);
		else
			printf(" gil=%u enabled=%" PRIu64, e->arg, e->payload[0]);
		break;
	case GTR_EV_TEST_MARK: {
		const char *label = trace_label_text(t, e->payload[0]);
		printf(" %s test=%s", e->arg ? "begin" : "end", label ? label : "?");
		break;
	}
	case GTR_EV_BLOCK_BEGIN:
		printf(" sem=0x%" PRIx64 "%s", e->payload[0], e->arg ? " timed" : "");
		break;
	case GTR_EV_BLOCK_END:
		printf(" result=%s", trace_lock_wait_end_name(e->arg));
		break;
	case GTR_EV_MODULE_LOAD: {
		const struct trace_module *mod = trace_module_of(t, e->payload[0]);
		printf(" base=0x%" PRIx64 " path=%s", e->payload[0], mod && mod->path ? mod->path : "?");
		break;
	}
	case GTR_EV_THREAD_INTERP:
		printf(" %s interp=0x%" PRIx64 " main=0x%" PRIx64,
		       e->arg == GTR_INTERP_OF_CREATOR ? "creator's" : "after-ensure", e->payload[0], e->payload[1]);
		break;
	default:
		if (e->type <= GTR_EV_GIL_HELD_AT_FORK)
			printf(" gil=%u", e->arg);
		break;
	}
}

int cmd_dump(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
		return usage(usage_text, c == 'h');
	if (optind + 1 != argc)
		return usage(usage_text, false);
	struct trace t;
	char err[512];
	if (trace_open(&t, argv[optind], err, sizeof err) != 0) {
		trace_close(&t);
		die("%s", err);
	}
	/* the header lines say what the trace holds and what damage it has,
	 * which only a walk finds: one to count, one to print */
	struct trace_walk *w = trace_walk_begin(&t);
	if (!w || trace_walk_end(w) != 0)
		die("cannot read trace '%s': out of memory", t.path);
	const struct gtr_file_header *h = &t.header;
	printf("# trace %s: format %u.%u, pid %d, ppid %d, python %s\n", t.path, h->version_major,
	       h->version_minor, h->pid, h->ppid, h->py_version[0] ? h->py_version : "?");
	printf("# %zu threads, %zu events, clock %s, %s%s\n", t.thread_count, t.event_count,
	       t.clock_is_tsc ? "tsc" : "monotonic", h->flags & GTR_FLAG_RING ? "ring" : "full",
	       t.truncated ? ", truncated" : ", closed");
	for (size_t i = 0; i < t.gil_count; i++)
		printf("# gil %u at 0x%" PRIx64 "%s\n", t.gils[i].index, t.gils[i].base,
		       t.gils[i].in_runtime ? " (in _PyRuntime)" : "");
	for (size_t i = 0; i < t.note_count; i++)
		printf("# note: %s\n", t.notes[i]);
	w = trace_walk_begin(&t);
	if (!w)
		die("cannot read trace '%s': out of memory", t.path);
	const struct trace_event *e;
	while ((e = trace_walk_next(w))) {
		printf("%14.9f %7d %s", (double)e->ns / 1e9, t.threads[e->thread].tid, trace_event_name(e->type));
		print_details(&t, e);
		const struct trace_stack *st = trace_stack_of(&t, e->index);
		for (uint32_t f = 0; st && f < st->count; f++)
			printf("%s0x%" PRIx64, f ? "," : " stack=", st->frames[f]);
		const struct trace_py_stack *ps = trace_py_stack_of(&t, e->index);
		if (ps) {
			char why[160];
			printf(" py-stack=");
			for (uint32_t f = 0; f < ps->count; f++)
				printf("%s%s@%s:%d", f ? "," : "", ps->frames[f].function, ps->frames[f].file,
				       ps->frames[f].line);
			if (*trace_py_stack_end_phrase(ps, why, sizeof why))
				printf("%s(%s)", ps->count ? "," : "", why);
		}
		if (e->type == GTR_EV_THREAD_PYNAME) /* the reader keeps the last */
			printf(" last=%s", t.threads[e->thread].py_name);
		putchar('\n');
	}
	trace_walk_end(w);
	trace_close(&t);
	return EXIT_CLEAN;
}
