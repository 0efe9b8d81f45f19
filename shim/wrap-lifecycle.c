/*
 * wrap-lifecycle.c: thread and process lifecycle interposers.
 *
 * Design note.  What finalization does to a thread shows in how the thread
 * ends, so each way out is recorded with whether the thread still held a
 * GIL: returning from its start routine (seen through a trampoline that
 * pthread_create installs), pthread_exit() (PyThread_exit_thread in 3.8 ..
 * 3.13.7, the must-exit path of take_gil), pause() (PyThread_hang_thread,
 * 3.13.8+ and 3.14: the thread parks forever), _exit()/_Exit() and the
 * library destructor (the process ends).  A fork child gets a trace of its
 * own when it first records something (recorder.c), so that a child that
 * execs at once leaves none; the parent records the child's pid.  The exec
 * family closes the trace of a process that had one, and removes a fork
 * child's (async-signal-safe: exec may follow fork in a threaded program,
 * or run in a handler); if the exec fails the process goes on untraced.  dlopen()
 * adds newly loaded objects to the module map, and pthread_setname_np()
 * gives threads their names (CPython 3.14 names its threads); each dlopen
 * also records which object the thread loaded (MODULE_LOAD: the import
 * that turned a free-threaded build's GIL on).  A thread created by one
 * that holds a subinterpreter's GIL carries that interpreter to its start
 * event (gh-59956, wrap-capi.c), and a threading.Thread its Python name
 * (pystack.c).  Each thread
 * started while tracing gets an alternate signal stack for the crash
 * handler at its start and gives it back at its end (crash.c).  A thread
 * that ends or parks owning PyThread locks gets one LOCK_HELD event per
 * lock first (lock-table.c: the daemon thread of bpo-23309 / gh-129536,
 * ended holding a buffered stream's lock).
 *
 * What it cannot see: threads started before the process activated (they
 * have no start event, and end without one if they return), threads killed
 * by the process ending (they have no exit event: the process exit is
 * recorded by the thread that called exit), and processes made by vfork or
 * posix_spawn, which exec at once and are traced afresh if they are python.
 */
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

/* What the trampoline needs; malloc'd by the creator, freed by the thread. */
struct thread_start {
	void *(*start_routine)(void *);
	void *arg;
	int32_t parent_tid;
	uintptr_t creator_interp, main_interp; /* a subinterpreter's thread */
	unsigned py_name_len;      /* threading.Thread.name, 0 none (pystack.c) */
	uint64_t py_name[GTR_PY_NAME_MAX / 8];
};

/* A thread's end (exit or park), with a stack when it may explain a
 * finding: while finalizing (a must-exit check ended it) or holding a GIL;
 * before it, one event per PyThread lock it owns (lock-table.c). */
static void record_thread_end(unsigned type, unsigned how)
{
	if (!shim_enter())
		return;
	int saved_errno = errno;
	gil_model_check_finalizing();
	unsigned arg = how | (shim_self.gil_held ? GTR_EXIT_HELD_GIL : 0);
	/* the PyThread locks it still owns, before its end: nobody can
	 * release them now (bpo-23309, gh-129536) */
	lock_table_report_held(type == GTR_EV_THREAD_PARK ? GTR_LOCK_HELD_AT_PARK : GTR_LOCK_HELD_AT_EXIT);
	stack_emit_if((gil_model_finalizing() || shim_self.gil_held) && stack_wanted(STACKS_EXIT), type, arg, NULL);
	if (type == GTR_EV_THREAD_EXIT)
		recorder_thread_ends();
	errno = saved_errno;
	shim_leave();
}

static void *thread_trampoline(void *p)
{
	/* only what the thread needs for its whole life stays on its stack */
	const struct thread_start *start = p;
	void *(*start_routine)(void *) = start->start_routine;
	void *arg = start->arg;
	crash_thread_begins();
	if (shim_enter()) {
		uint64_t parent = (uint64_t)start->parent_tid;
		recorder_emit(GTR_EV_THREAD_START, 0, &parent);
		if (start->creator_interp) {
			uint64_t interps[2] = { start->creator_interp, start->main_interp };
			recorder_emit(GTR_EV_THREAD_INTERP, GTR_INTERP_OF_CREATOR, interps);
			shim_self.creator_interp = start->creator_interp;
		}
		if (start->py_name_len)
			pystack_record_name(start->py_name, start->py_name_len);
		shim_leave();
	}
	int saved_errno = errno;
	free(p);
	errno = saved_errno;
	void *result = start_routine(arg);
	record_thread_end(GTR_EV_THREAD_EXIT, GTR_EXIT_RETURN);
	crash_thread_ends();
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
	/* a subinterpreter's thread: its PyGILState_Ensure calls are watched
	 * (gh-59956, wrap-capi.c) */
	start->creator_interp = start->main_interp = 0;
	if (!shim_self.gil_held || !capi_current_interp(&start->creator_interp, &start->main_interp) ||
	    start->creator_interp == start->main_interp)
		start->creator_interp = 0;
	/* threading.Thread.start(): the Thread's name, while its creator
	 * holds the GIL (or, free-threaded, is attached) */
	memset(start->py_name, 0, sizeof start->py_name);
	start->py_name_len = shim_options.py_stack_depth &&
	                                     (shim_self.gil_held || shim_python.build & GTR_BUILD_FREE_THREADED)
	                             ? pystack_thread_name(arg, (char *)start->py_name, sizeof start->py_name)
	                             : 0;
	errno = saved_errno;
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
	crash_thread_ends();
	shim_real.exit(retval);
}

SHIM_EXPORT int pause(void)
{
	RESOLVED(pause);
	record_thread_end(GTR_EV_THREAD_PARK, 0);
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
		pystack_after_fork_child();
		lock_table_after_fork_child();
		provoke_reset_in_child();
		recorder_forget_parent_in_child();
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
		/* which object this thread loaded: a free-threaded build's import
		 * of a module without Py_mod_gil enables the GIL next (replay.c) */
		struct link_map *map;
		if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map) {
			uint64_t base = map->l_addr;
			recorder_emit(GTR_EV_MODULE_LOAD, 0, &base);
		}
		errno = saved_errno;
		shim_leave();
	}
	return handle;
}

SHIM_EXPORT void _exit(int status)
{
	RESOLVED(_exit);
	shim_finish_signal_safe();
	shim_real._exit(status);
}

SHIM_EXPORT void _Exit(int status)
{
	RESOLVED(_Exit);
	shim_finish_signal_safe();
	shim_real._Exit(status);
}

/* ---- exec ---------------------------------------------------------------------
 * glibc's execl* and execv* call __execve internally, not through the PLT,
 * so each entry point is wrapped; the variadic ones collect their
 * arguments and go through the vector ones. */

SHIM_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	RESOLVED(execve);
	shim_before_exec();
	return shim_real.execve(path, argv, envp);
}

SHIM_EXPORT int execv(const char *path, char *const argv[])
{
	RESOLVED(execv);
	shim_before_exec();
	return shim_real.execv(path, argv);
}

SHIM_EXPORT int execvp(const char *file, char *const argv[])
{
	RESOLVED(execvp);
	shim_before_exec();
	return shim_real.execvp(file, argv);
}

SHIM_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	RESOLVED(execvpe);
	shim_before_exec();
	return shim_real.execvpe(file, argv, envp);
}

SHIM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	RESOLVED(fexecve);
	shim_before_exec();
	return shim_real.fexecve(fd, argv, envp);
}

/* In an execl* wrapper: `argv`, a stack array of arg0 and the variadic
 * arguments up to their NULL (async-signal-safe, as glibc's own execl),
 * and `ap` left after that NULL (execle's envp follows). */
#define EXECL_ARGV(arg0, argv, ap)                                                                         \
	size_t argc_ = 1;                                                                                  \
	va_list ap;                                                                                        \
	va_start(ap, arg0);                                                                                \
	while (va_arg(ap, const char *))                                                                   \
		argc_++;                                                                                   \
	va_end(ap);                                                                                        \
	const char *argv[argc_ + 1];                                                                       \
	argv[0] = arg0;                                                                                    \
	va_start(ap, arg0);                                                                                \
	for (size_t i_ = 1; i_ <= argc_; i_++)                                                             \
		argv[i_] = va_arg(ap, const char *)

SHIM_EXPORT int execl(const char *path, const char *arg0, ...)
{
	EXECL_ARGV(arg0, argv, ap);
	va_end(ap);
	return execv(path, (char *const *)argv);
}

SHIM_EXPORT int execlp(const char *file, const char *arg0, ...)
{
	EXECL_ARGV(arg0, argv, ap);
	va_end(ap);
	return execvp(file, (char *const *)argv);
}

SHIM_EXPORT int execle(const char *path, const char *arg0, ...)
{
	EXECL_ARGV(arg0, argv, ap);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, (char *const *)argv, envp);
}
