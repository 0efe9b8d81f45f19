/*
 * test-mark.c: marks a program puts in its own trace: where each test began
 * and ended (the pytest plugin, pytest-giltrace/, calls this through
 * ctypes), so that a finding can be attributed to the test that was
 * running.
 *
 * Design note.  giltrace_test_mark() is the shim's one function meant to be
 * called by the traced program, and the only exported symbol that is not an
 * interposer: a program that never calls it is not affected.  The test's id
 * goes into the metadata log once (a label record), the begin and the end
 * are events of the calling thread.  Tests run one at a time in a process
 * (pytest): an end closes the last begin.
 *
 * What it cannot see: tests of other processes (each process's plugin
 * marks its own trace), and the order of tests run in threads at once.
 */
#include <string.h>

#include "shim.h"

static uint32_t next_label, current_label;

/* Returns 0 when recorded, -1 when this process is not being traced. */
SHIM_EXPORT int giltrace_test_mark(const char *test_id, int begin)
{
	if (!test_id || !shim_enter())
		return -1;
	uint64_t label;
	if (begin) {
		label = __atomic_add_fetch(&next_label, 1, __ATOMIC_RELAXED);
		size_t len = strnlen(test_id, 4000);
		struct {
			struct gtr_meta_label head;
			char text[4008];
		} r = { 0 };
		size_t total = (sizeof r.head + len + 1 + 7) & ~(size_t)7;
		r.head.rec.type = GTR_META_LABEL;
		r.head.rec.size = (uint16_t)total;
		r.head.id = (uint32_t)label;
		memcpy(r.text, test_id, len);
		recorder_add_meta(&r, total);
		__atomic_store_n(&current_label, (uint32_t)label, __ATOMIC_RELAXED);
	} else {
		label = __atomic_load_n(&current_label, __ATOMIC_RELAXED);
	}
	recorder_emit(GTR_EV_TEST_MARK, begin ? 1 : 0, &label);
	shim_leave();
	return 0;
}
