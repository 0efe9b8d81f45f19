/*
 * wrap-lifecycle.c: thread and process lifecycle interposers.
 *
 * Design note.  What finalization does to a thread shows in how the thread
 * ends, so each way out is recorded with whether the thread still held a
 * GIL: returning from its start routine (seen through a trampoline that
 * pthread_create installs), pthread_exit() (PyThread_exit_thread in 3.8 ..
 * 3.13.7, the must-exit path of take_gil), pause() (PyThread_hang_thread,
 * 3.13.8+ and 3.14: the thread parks forever), _exit()/_Exit() and the
 * library destructor (the process ends).  fork() without exec gives the
 * child a trace of its own; the parent records the child's pid.  dlopen()
 * adds newly loaded objects to the module map, and pthread_setname_np()
 * gives threads their names (CPython 3.14 names its threads).
 *
 * What it cannot see: threads started before the process activated (they
 * have no start event, and end without one if they return), threads killed
 * by the process ending (they have no exit event: the process exit is
 * recorded by the thread that called exit), and processes made by vfork or
 * posix_spawn, which exec at once and are traced afresh if they are python.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

/* What the trampoline needs; malloc'd by the creator, freed by the thread. */
struct thread_start {
	void *(*start_routine)(void *);
	void *arg;
	int32_t parent_tid;
};

/* A thread's end (exit or park), with a stack when it may explain a
 * finding: while finalizing (a must-exit check ended it) or holding a GIL. */
static void record_thread_end(unsigned type, unsigned how)
{
	if (!shim_enter())
		return;
	int saved_errno = errno;
	gil_model_check_finalizing();
	unsigned arg = how | (shim_self.gil_held ? GTR_EXIT_HELD_GIL : 0);
	stack_emit_if((gil_model_finalizing() || shim_self.gil_held) && stack_wanted(STACKS_EXIT), type, arg, NULL);
	errno = saved_errno;
	shim_leave();
}

static void *thread_trampoline(void *p)
{
	struct thread_start start = *(struct thread_start *)p;
	free(p);
	if (shim_enter()) {
		uint64_t parent = (uint64_t)start.parent_tid;
		recorder_emit(GTR_EV_THREAD_START, 0, &parent);
		shim_leave();
	}
	void *result = start.start_routine(start.arg);
	record_thread_end(GTR_EV_THREAD_EXIT, GTR_EXIT_RETURN);
	return result;
}

SHIM_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start_routine)(void *),
                               void *arg)
{
	RESOLVED(create);
	if (shim_state != SHIM_ACTIVE)
		return shim_real.create(thread, attr, start_routine, arg);
	int saved_errno = errno;
	struct thread_start *start = malloc(sizeof *start);
	errno = saved_errno;
	if (!start)
		return shim_real.create(thread, attr, start_routine, arg);
	start->start_routine = start_routine;
	start->arg = arg;
	start->parent_tid = gettid();
	int rc = shim_real.create(thread, attr, thread_trampoline, start);
	if (rc != 0) {
		free(start);
		errno = saved_errno;
	}
	return rc;
}

SHIM_EXPORT void pthread_exit(void *retval)
{
	RESOLVED(exit);
	record_thread_end(GTR_EV_THREAD_EXIT, GTR_EXIT_PTHREAD_EXIT);
	shim_real.exit(retval);
}

SHIM_EXPORT int pause(void)
{
	RESOLVED(pause);
	record_thread_end(GTR_EV_THREAD_PAUSE, 0);
	return shim_real.pause();
}

SHIM_EXPORT int pthread_setname_np(pthread_t thread, const char *name)
{
	RESOLVED(setname_np);
	int rc = shim_real.setname_np(thread, name);
	if (rc == 0 && pthread_equal(thread, pthread_self()) && shim_enter()) {
		uint64_t payload[2] = { 0, 0 };
		size_t len = strnlen(name, sizeof payload);
		memcpy(payload, name, len); /* NUL-padded, not terminated at 16 */
		recorder_emit(GTR_EV_THREAD_NAME, 0, payload);
		shim_leave();
	}
	return rc;
}

SHIM_EXPORT pid_t fork(void)
{
	RESOLVED(fork);
	if (shim_state != SHIM_ACTIVE)
		return shim_real.fork();
	pid_t pid = shim_real.fork();
	int saved_errno = errno;
	if (pid == 0) {
		tstate_table_reset_in_child();
		recorder_reopen_in_child();
		gil_model_after_fork_child();
	} else if (pid > 0 && shim_enter()) {
		uint64_t child = (uint64_t)pid;
		recorder_emit(GTR_EV_FORK, 0, &child);
		shim_leave();
	}
	errno = saved_errno;
	return pid;
}

SHIM_EXPORT void *dlopen(const char *file, int mode)
{
	RESOLVED(dlopen);
	void *handle = shim_real.dlopen(file, mode);
	if (handle && shim_enter()) {
		int saved_errno = errno;
		recorder_note_modules();
		got_patch_loaded_objects();
		errno = saved_errno;
		shim_leave();
	}
	return handle;
}

SHIM_EXPORT void _exit(int status)
{
	RESOLVED(_exit);
	shim_finish();
	shim_real._exit(status);
}

SHIM_EXPORT void _Exit(int status)
{
	RESOLVED(_Exit);
	shim_finish();
	shim_real._Exit(status);
}
