/*
 * test-mark.c: marks a program puts in its own trace: where each test began
 * and ended (the pytest plugin, pytest-giltrace/, calls this through
 * ctypes), so that a finding can be attributed to the test that was
 * running.
 *
 * Design note.  giltrace_test_mark() is the shim's one function meant to be
 * called by the traced program, and the only exported symbol that is not an
 * interposer: a program that never calls it is not affected.  The test's id
 * goes into the metadata log once (a label record) while that leaves room
 * for the modules, the begin and the end are events of the calling thread
 * and carry the test's number, which the caller gets back.  Tests run one at a time in a process
 * (pytest): an end closes the last begin.
 *
 * What it cannot see: tests of other processes (each process's plugin
 * marks its own trace), and the order of tests run in threads at once.
 */
#include <errno.h>
#include <string.h>

#include "shim.h"

static uint32_t next_label, current_label;

/* Metadata log bytes that test names leave to module records. */
#define LABELS_LEAVE_FREE (24u * 1024)

/* Returns the test's number (1.., the label id; its end: the test ended),
 * or -1 when this process is not being traced. */
SHIM_EXPORT int giltrace_test_mark(const char *test_id, int begin)
{
	if (!test_id || !shim_enter())
		return -1;
	int saved_errno = errno;
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
		/* a long session's names must not take the modules' room: past
		 * that, the tests keep their numbers, not their names */
		recorder_add_meta_leaving(&r, total, LABELS_LEAVE_FREE);
		__atomic_store_n(&current_label, (uint32_t)label, __ATOMIC_RELAXED);
	} else {
		label = __atomic_load_n(&current_label, __ATOMIC_RELAXED);
	}
	recorder_emit(GTR_EV_TEST_MARK, begin ? 1 : 0, &label);
	errno = saved_errno;
	shim_leave();
	return (int)label;
}
