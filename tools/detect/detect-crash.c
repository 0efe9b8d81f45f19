/*
 * detect-crash.c: what a crash (GTR_EV_CRASH: the shim's handler saw a
 * fatal signal) says, from what the detectors know at that moment.  See
 * detect.c's design note.
 */
#include "detect-walk.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The bytes of a thread state (docs/cpython-internals.md §4), from the
 * traced interpreter's version; the largest default build's if unknown. */
static uint64_t tstate_size(const struct trace *t)
{
	unsigned minor = t->header.py_version_hex >> 16 & 0xff;
	if (t->header.py_version_hex >> 24 != 3)
		return 1024;
	if (t->header.py_build & GTR_BUILD_FREE_THREADED)
		return 17816;
	switch (minor) {
	case 8:
	case 9:
		return 264;
	case 10:
		return 280;
	case 11:
		return 360;
	case 12:
		return 288;
	case 13:
		return 336;
	default:
		return minor >= 14 ? 936 : 1024;
	}
}

/* The freed thread state whose block holds addr (with the 16 bytes a
 * debug allocator puts before it), or NULL. */
static const struct tstate_life *freed_block_holding(const struct walk *w, uint64_t addr)
{
	uint64_t size = tstate_size(w->t);
	for (size_t i = 0; i < w->life_cap; i++) {
		const struct tstate_life *l = &w->lives[i];
		if (l->addr && l->freed && addr + 16 >= l->addr && addr < l->addr + size)
			return l;
	}
	return NULL;
}

/* "got SIGSEGV (SEGV_MAPERR) at address 0x0, instruction libx.so+0x12" */
static void describe_crash(const struct walk *w, const struct trace_event *e, char *buf, size_t size)
{
	char a[32], b[32], where[160];
	unsigned sig = gtr_crash_signal(e->arg);
	int code = gtr_crash_si_code(e->payload[0]);
	uint64_t ip = gtr_crash_ip(e->payload[0]);
	const struct trace_module *mod = trace_module_of(w->t, ip);
	const char *base = mod ? strrchr(mod->path, '/') : NULL;
	if (mod)
		snprintf(where, sizeof where, "%s+0x%" PRIx64, base ? base + 1 : mod->path, ip - mod->load_address);
	else
		snprintf(where, sizeof where, "0x%" PRIx64, ip);
	const char *name = trace_signal_name(sig, a, sizeof a), *code_name = trace_si_code_name(sig, code, b, sizeof b);
	if (code > 0)
		snprintf(buf, size, "got %s (%s) at address 0x%" PRIx64 ", instruction %s", name, code_name,
		         e->payload[1], where);
	else if (e->payload[1] == (uint64_t)(uint32_t)w->t->header.pid)
		snprintf(buf, size, "got %s (%s, raised by the process itself: abort() or raise()) at instruction %s",
		         name, code_name, where);
	else
		snprintf(buf, size, "got %s (%s, sent by pid %" PRIu64 ") at instruction %s", name, code_name,
		         e->payload[1], where);
}

/* What thread i was doing at the crash, for crash-at-exit; "" if it had
 * not started or had ended. */
static const char *thread_doing(const struct walk *w, size_t i, uint64_t ns, char *buf, size_t size)
{
	const struct replay_thread *rt = &w->r->threads[i];
	const struct thread_state *ts = &w->threads[i];
	const struct replay_epoch *ep = replay_open_epoch(w->r);
	char entry[64];
	if (rt->first_ns == UINT64_MAX || rt->first_ns > ns)
		return "";
	if (rt->exit == THREAD_END_PARKED)
		return "parked (pause)";
	if (rt->exit != THREAD_END_NONE && rt->exit != THREAD_END_PROCESS)
		return "";
	const char *gil = rt->holding >= 0 ? ", holding the GIL" : rt->waiting ? ", waiting in take_gil" : "";
	if (ep && (int)i == replay_epoch_thread(ep)) {
		snprintf(buf, size, "was finalizing%s", gil);
	} else if (ts->watch == WATCH_ENTERING || ts->watch == WATCH_ACQUIRED || ts->watch == WATCH_RELEASED) {
		walk_describe_entry(ts, entry, sizeof entry);
		snprintf(buf, size, "had entered %s after finalization began%s%s", entry,
		         walk_freed_life(w, ts->watch_tstate ? ts->watch_tstate : ts->tstate) ? " with a freed thread state"
		                                                                   : "",
		         gil);
	} else {
		snprintf(buf, size, "%s", rt->holding >= 0 ? "held the GIL" : rt->waiting ? "waited in take_gil"
		                                           : "ran without the GIL (or was blocked)");
	}
	return buf;
}

void detect_crash(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	bool fault = gtr_crash_si_code(e->payload[0]) > 0;
	uint64_t addr = e->payload[1];
	uint64_t own = ts->watch_tstate ? ts->watch_tstate : ts->tstate;
	const struct tstate_life *hit = fault ? freed_block_holding(w, addr) : NULL;
	const char *how = "at an address inside it";
	if (!hit && fault && addr >> 32 == 0xddddddddu && walk_used_after_free(w, ts, own)) {
		hit = walk_freed_life(w, own);
		how = "at an address made of a debug build's freed-memory bytes (0xdd)";
	}
	/* provoke=poison filled every freed thread state with GTR_POISON_WORD:
	 * a pointer read from one leads near that address */
	bool poisoned = fault && (w->t->header.provoke & GTR_PROVOKE_POISON) && addr - GTR_POISON_WORD < GTR_POISON_REACH;
	if (!hit && poisoned && walk_used_after_free(w, ts, own)) {
		hit = walk_freed_life(w, own);
		how = "at an address made of the poison provoke=poison fills freed thread states with (0x5a5a5a5a5a5a)";
	}
	if (!hit && walk_watched(w, thread, e->ns) && ts->watch != WATCH_NONE && walk_used_after_free(w, ts, own)) {
		hit = walk_freed_life(w, own);
		how = "on its way into the GIL with it after finalization began";
	}
	char crash[256];
	describe_crash(w, e, crash, sizeof crash);
	enum detector kind = hit ? DETECT_FREED_TSTATE_USE : finalizing_at(w, e->ns) ? DETECT_CRASH_AT_EXIT : DETECT_CRASH;
	struct finding *x = walk_add_finding(w, kind, thread, e->ns);
	if (!x)
		return;
	x->stack_event = walk_with_stack(w, w->at, SIZE_MAX);
	ts->crash_finding = w->out->count - 1;
	w->crashes++;
	ts->watch = WATCH_DONE; /* the crash says it: nothing more at the end */
	const char *gil = w->r->threads[thread].holding >= 0 ? " while holding the GIL" : "";
	if (hit) {
		walk_with_tstate(w, x, hit->addr);
		snprintf(x->what, sizeof x->what, "%s%s, a freed thread state's use: %s", crash, gil, how);
		ts->reported_error = true;
		return;
	}
	walk_with_tstate(w, x, own);
	if (kind == DETECT_CRASH) {
		snprintf(x->what, sizeof x->what, "%s%s%s", crash, gil,
		         poisoned ? ", an address made of the poison provoke=poison fills freed thread states with" : "");
		return;
	}
	size_t len = (size_t)snprintf(x->what, sizeof x->what, "%s%s; the other threads:", crash, gil);
	size_t listed = 0, left = 0;
	for (size_t i = 0; i < w->r->thread_count; i++) {
		char doing[160], item[200];
		if ((int)i == thread || !*thread_doing(w, i, e->ns, doing, sizeof doing))
			continue;
		int n = snprintf(item, sizeof item, "%s thread %d %s", listed ? ";" : "", w->t->threads[i].tid, doing);
		if (n > 0 && len + (size_t)n + 24 < sizeof x->what) {
			memcpy(x->what + len, item, (size_t)n + 1);
			len += (size_t)n;
			listed++;
		} else {
			left++;
		}
	}
	if (left)
		snprintf(x->what + len, sizeof x->what - len, "%s and %zu more", listed ? ";" : "", left);
	else if (!listed)
		snprintf(x->what + len, sizeof x->what - len, " none alive");
}

/* The thread ran on after its crash: the signal was not fatal. */
void detect_crash_recovered(struct walk *w, struct thread_state *ts)
{
	struct finding *x = &w->out->items[ts->crash_finding];
	if (detectors[x->kind].severity == SEVERITY_ERROR)
		w->out->errors--;
	else
		w->out->notes--;
	x->kind = DETECT_DROPPED;
	ts->crash_finding = SIZE_MAX;
	w->crashes--;
}

