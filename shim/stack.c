/*
 * stack.c: native stacks at the events that explain a finding.
 *
 * Design note.  A finding names a C-API call; the user needs the C code
 * that made it.  At a few rare events the shim records the calling
 * thread's native stack right after the event (GTR_EV_STACK): C-API calls
 * that look wrong when they are made (while finalizing, or with a thread
 * state the shim does not know as alive), Py_FinalizeEx entries, the
 * finalizing flag's flip, thread-state frees, and thread exits or parks
 * while finalizing or holding the GIL.  The option `stacks=` chooses them;
 * ordinary GIL handoffs and C-API calls never pay for a stack by default.
 *
 * The unwinder is glibc's backtrace(): libgcc's DWARF unwinder over
 * .eh_frame, which works without frame pointers (Debian's optimised
 * python3.11 keeps none).  Its first call loads libgcc_s, which allocates;
 * stack_prepare() makes that call at activation, so it happens in CPython
 * processes only and never inside free().  Afterwards a capture takes no
 * lock and allocates nothing: libgcc finds unwind tables through
 * _dl_find_object (glibc 2.35+).  tests/test_stacks.py checks that no
 * malloc happens in a capture.  The leading frames inside the shim are
 * left out, so frame 0 is the code that called into the shim; frames of
 * the shim further down (a wrapper the interpreter called through, the
 * thread trampoline) stay, since they are where the calls went.  Addresses are recorded
 * raw; giltrace symbolises them offline (tools/read/symbolize.c).
 *
 * The Python stack of the same moment follows the native one (pystack.c).
 *
 * What it cannot see: frames beyond code without unwind information
 * (hand-written assembly, JIT code).
 */
#include <execinfo.h>
#include <link.h>

#include "shim.h"

/* The shim's own code, whose leading frames are left out of stacks; set by
 * stack_prepare() (0, 0 if it was not found: nothing is left out). */
static uintptr_t shim_lo, shim_hi;

static int find_shim(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	uintptr_t probe = (uintptr_t)data;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		if (a < lo)
			lo = a;
		if (a + ph->p_memsz > hi)
			hi = a + ph->p_memsz;
	}
	if (probe < lo || probe >= hi)
		return 0;
	shim_lo = lo;
	shim_hi = hi;
	return 1;
}

void stack_prepare(void)
{
	void *warm[4];
	dl_iterate_phdr(find_shim, (void *)(uintptr_t)stack_prepare);
	if (shim_options.stacks)
		backtrace(warm, 4); /* loads libgcc_s now, not in free() later */
}

bool stack_wanted(unsigned events)
{
	return (shim_options.stacks & events) != 0;
}

void stack_emit_if(bool with_stack, unsigned type, unsigned arg, const uint64_t *payload)
{
	if (unlikely(with_stack))
		stack_emit_at(type, arg, payload, shim_clock_now());
	else
		recorder_emit(type, arg, payload);
}

void stack_emit_at(unsigned type, unsigned arg, const uint64_t *payload, uint64_t now)
{
	/* room for the shim's own frames (at most a few) on top of the depth */
	void *raw[GTR_STACK_MAX_FRAMES + 8];
	uint64_t frames[GTR_STACK_MAX_FRAMES];
	int n = backtrace(raw, (int)shim_options.stack_depth + 8);
	unsigned kept = 0;
	int i = 0;
	while (i < n && (uintptr_t)raw[i] - shim_lo < shim_hi - shim_lo)
		i++;
	for (; i < n && kept < shim_options.stack_depth; i++)
		frames[kept++] = (uint64_t)(uintptr_t)raw[i];
	const uint64_t *py = NULL;
	/* a call that attaches (or releases) the thread state it is handed:
	 * the frames are that thread state's, freed or not; other calls on a
	 * thread state (Clear, Delete, Swap to a new one) are about another's */
	uintptr_t tstate = type == GTR_EV_CAPI_CALL && payload &&
	                                   (arg == GTR_CAPI_PyEval_RestoreThread || arg == GTR_CAPI_PyEval_AcquireThread ||
	                                    arg == GTR_CAPI_PyEval_ReleaseThread)
	                           ? payload[0]
	                           : 0;
	unsigned py_words = pystack_capture_begin(tstate, false, &py);
	recorder_emit_with_stack_at(type, arg, payload, frames, kept, py, py_words, now);
	if (py_words)
		pystack_capture_end(py);
}
