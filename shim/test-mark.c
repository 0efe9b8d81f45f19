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
 * A process started during a test is marked as running that test for its
 * whole life: a fork child's trace begins with the test its parent was
 * running, an exec'd program's with GILTRACE_TEST from its environment
 * (the plugin sets it to the running test's id).
 *
 * What it cannot see: the order of tests run in threads at once, and a
 * child that outlives its test (it stays marked with the test that
 * started it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

static uint32_t next_label, current_label;
/* The running test's id: a fork child's own trace names it again. */
static char current_id[4001];

/* Metadata log bytes that test names leave to module records. */
#define LABELS_LEAVE_FREE (24u * 1024)

/* A test began: its label record and its begin mark.  Inside shim_enter(). */
static uint64_t mark_begin(const char *test_id)
{
	uint64_t label = __atomic_add_fetch(&next_label, 1, __ATOMIC_RELAXED);
	size_t len = strnlen(test_id, sizeof current_id - 1);
	/* a long session's names must not take the modules' room: past that,
	 * the tests keep their numbers, not their names */
	recorder_add_label((uint32_t)label, test_id, len, LABELS_LEAVE_FREE);
	if (test_id != current_id) {
		memcpy(current_id, test_id, len);
		current_id[len] = '\0';
	}
	__atomic_store_n(&current_label, (uint32_t)label, __ATOMIC_RELAXED);
	recorder_emit(GTR_EV_TEST_MARK, 1, &label);
	return label;
}

/* Returns the test's number (1.., the label id; its end: the test ended),
 * or -1 when this process is not being traced. */
SHIM_EXPORT int giltrace_test_mark(const char *test_id, int begin)
{
	if (!test_id || !shim_enter())
		return -1;
	int saved_errno = errno;
	uint64_t label;
	if (begin) {
		label = mark_begin(test_id);
	} else {
		label = __atomic_load_n(&current_label, __ATOMIC_RELAXED);
		__atomic_store_n(&current_label, 0, __ATOMIC_RELAXED);
		recorder_emit(GTR_EV_TEST_MARK, 0, &label);
	}
	errno = saved_errno;
	shim_leave();
	return (int)label;
}

void test_mark_inherited(void)
{
	/* at activation, inside the wrapper that saw the GIL made (the shim
	 * is entered already) */
	const char *test_id = getenv("GILTRACE_TEST");
	if (!test_id || !*test_id)
		return;
	int saved_errno = errno;
	mark_begin(test_id);
	errno = saved_errno;
}

void test_mark_child_trace_opened(void)
{
	if (__atomic_load_n(&current_label, __ATOMIC_RELAXED))
		mark_begin(current_id);
}
