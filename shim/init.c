/*
 * init.c: the shim's lifecycle, symbol resolution and interpreter probe.
 *
 * Design note.  libgiltrace.so is preloaded into every process of a run
 * (sh, make, gcc as well as python), so it starts DORMANT: the real libc
 * functions are resolved in the constructor and every interposer passes
 * straight through.  The process becomes ACTIVE only when the GIL model
 * recognises CPython's create_gil() signature and the `_PyRuntime` symbol
 * confirms that a CPython runtime is present (gil-model.c calls
 * shim_activate()); only then is a trace file created.  Activating on the
 * GIL rather than in the constructor also covers embedding programs that
 * dlopen libpython late.  At exit (the destructor, or _exit) the trace is
 * closed: a clock pair is written for calibration and the file trimmed.
 * Daemon threads that outlive this keep passing through the wrappers and
 * their events, if any, still land in chunks they already own.
 *
 * What it cannot see: processes that never create a GIL (free-threaded
 * builds with the GIL disabled create one but never lock it), and threads
 * that were started before activation appear without a start event.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "cpython-layout.h"
#include "shim.h"

/* Lifecycle word; see enum shim_state.  Written by the constructor,
 * shim_activate() and the exit paths; read everywhere. */
volatile int shim_state = SHIM_UNINIT;

/* This thread's shim state (initial-exec TLS: no allocation on access). */
SHIM_TLS struct shim_thread shim_self;

/* Interpreter facts, filled by shim_probe_python() before activation. */
struct shim_python shim_python = { .finalizing_offset = -1 };

/* Real functions.  Before the constructor has run (another library's
 * constructor may create threads or locks first) the pointers are NULL and
 * the interposers call shim_resolve_early() first. */
struct shim_real shim_real;

static void *resolve(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p) {
		const char *parts[] = { "cannot resolve ", name, "; giltrace stays off" };
		shim_say("error", parts, 3);
	}
	return p;
}

/* Condition variables are versioned in glibc: a plain dlsym() returns the
 * GLIBC_2.2.5 compatibility version with the old, smaller pthread_cond_t,
 * which would corrupt CPython's condvars.  Ask for the current version, as
 * the callers (linked against it) expect; our unversioned definitions
 * satisfy their GLIBC_2.3.2 references. */
static void *resolve_cond(const char *name)
{
	void *p = dlvsym(RTLD_NEXT, name, "GLIBC_2.3.2");
	return p ? p : resolve(name);
}

static void resolve_all(void)
{
	struct shim_real r;
	r.mutex_init = resolve("pthread_mutex_init");
	r.mutex_lock = resolve("pthread_mutex_lock");
	r.mutex_trylock = resolve("pthread_mutex_trylock");
	r.mutex_unlock = resolve("pthread_mutex_unlock");
	r.cond_init = resolve_cond("pthread_cond_init");
	r.cond_wait = resolve_cond("pthread_cond_wait");
	r.cond_timedwait = resolve_cond("pthread_cond_timedwait");
	r.cond_signal = resolve_cond("pthread_cond_signal");
	r.cond_broadcast = resolve_cond("pthread_cond_broadcast");
	r.create = resolve("pthread_create");
	r.exit = resolve("pthread_exit");
	r.setname_np = resolve("pthread_setname_np");
	r.fork = resolve("fork");
	r.execve = resolve("execve");
	r.execv = resolve("execv");
	r.execvp = resolve("execvp");
	r.execvpe = resolve("execvpe");
	r.fexecve = resolve("fexecve");
	r._exit = resolve("_exit");
	r._Exit = resolve("_Exit");
	r.pause = resolve("pause");
	r.dlopen = resolve("dlopen");
	r.sigaction = resolve("sigaction");
	r.sigaltstack = resolve("sigaltstack");
	r.signal = resolve("signal");
	r.sysv_signal = resolve("sysv_signal");
	r.sem_init = resolve("sem_init");
	r.sem_destroy = resolve("sem_destroy");
	r.sem_wait = resolve("sem_wait");
	r.sem_trywait = resolve("sem_trywait");
	r.sem_timedwait = resolve("sem_timedwait");
	r.sem_clockwait = resolve("sem_clockwait");
	r.sem_post = resolve("sem_post");
	shim_real = r;
}

/* Called by an interposer that runs before the constructor.  Resolution is
 * idempotent and dlsym() does not call back into pthread_mutex_* through
 * the PLT (it uses the dynamic linker's internal locks), so a race between
 * two early threads only resolves twice. */
void shim_resolve_early(void)
{
	if (!shim_real.mutex_lock)
		resolve_all();
}

/* ---- the interpreter probe --------------------------------------------- */

static uint32_t version_hex_from_string(const char *v)
{
	unsigned major = 0, minor = 0, micro = 0;
	if (sscanf(v, "%u.%u.%u", &major, &minor, &micro) < 2)
		return 0;
	return major << 24 | minor << 16 | micro << 8 | 0xf0;
}

/* The offset of the finalizing PyThreadState* inside _PyRuntime, from the
 * version's row (3.8-3.12) or _Py_DebugOffsets (3.13+): cpython-layout.h. */
static long finalizing_offset(const unsigned char *runtime, uint32_t hex)
{
	unsigned minor = hex >> 16 & 0xff;
	if (hex >> 24 != 3)
		return -1;
	for (size_t i = 0; i < sizeof cpython_finalizing_rows / sizeof cpython_finalizing_rows[0]; i++)
		if (minor >= cpython_finalizing_rows[i].first_minor && minor <= cpython_finalizing_rows[i].last_minor)
			return cpython_finalizing_rows[i].offset;
	if (minor >= DEBUG_OFFSETS_FIRST_MINOR && memcmp(runtime, DEBUG_OFFSETS_COOKIE, 8) == 0) {
		uint64_t off;
		memcpy(&off, runtime + DEBUG_OFFSETS_OFF_FINALIZING, sizeof off);
		return off < shim_python.runtime_size ? (long)off : -1;
	}
	return -1;
}

/* The _Py_DebugOffsets row of version `hex`, or NULL. */
static const struct cpython_debug_offsets_row *debug_offsets_row(uint64_t hex)
{
	unsigned minor = hex >> 16 & 0xff;
	if (hex >> 24 != 3)
		return NULL;
	for (size_t i = 0; i < sizeof cpython_debug_offsets_rows / sizeof cpython_debug_offsets_rows[0]; i++)
		if (minor >= cpython_debug_offsets_rows[i].first_minor && minor <= cpython_debug_offsets_rows[i].last_minor)
			return &cpython_debug_offsets_rows[i];
	return NULL;
}

/* The GIL's field offsets and a thread state's interpreter: the tables'
 * (cpython-layout.h), unless the interpreter says otherwise in a
 * _Py_DebugOffsets of a layout we know (3.13+): then its own, and whether
 * the two disagree, for the header. */
static void debug_offsets(const unsigned char *runtime)
{
	unsigned long shift = shim_python.build & GTR_BUILD_FREE_THREADED ? GIL_FREE_THREADED_SHIFT : 0;
	shim_python.gil_off_locked = GIL_OFF_LOCKED + shift;
	shim_python.gil_off_last_holder = GIL_OFF_LAST_HOLDER + shift;
	shim_python.tstate_off_interp = TSTATE_OFF_INTERP;
	uint64_t version, gil, locked, holder, interp, prev, next;
	if (memcmp(runtime, DEBUG_OFFSETS_COOKIE, 8) != 0)
		return;
	memcpy(&version, runtime + DEBUG_OFFSETS_OFF_VERSION, sizeof version);
	const struct cpython_debug_offsets_row *row = debug_offsets_row(version);
	if (!row || (shim_python.runtime_size && row->tstate_interp + sizeof interp > shim_python.runtime_size))
		return;
	memcpy(&gil, runtime + row->gil_state, sizeof gil);
	memcpy(&locked, runtime + row->gil_locked, sizeof locked);
	memcpy(&holder, runtime + row->gil_holder, sizeof holder);
	memcpy(&interp, runtime + row->tstate_interp, sizeof interp);
	memcpy(&prev, runtime + row->tstate_interp - 16, sizeof prev);
	memcpy(&next, runtime + row->tstate_interp - 8, sizeof next);
	/* thread_state {size, prev, next, interp}: the row is where it says
	 * only if prev and next read as PyThreadState's first two fields (a
	 * 3.14 alpha has interp 16 bytes earlier) */
	if (prev == 0 && next == sizeof(void *) && interp == 2 * sizeof(void *))
		shim_python.tstate_off_interp = (unsigned long)interp;
	if (!gil || locked <= gil || holder <= gil || locked - gil >= GIL_SIZE + shift || holder - gil >= GIL_SIZE + shift)
		return; /* not a layout we can use: keep the table's */
	shim_python.gil_offsets_from_debug = true;
	shim_python.gil_offsets_disagree =
	        locked - gil != shim_python.gil_off_locked || holder - gil != shim_python.gil_off_last_holder;
	shim_python.gil_off_locked = (unsigned long)(locked - gil);
	shim_python.gil_off_last_holder = (unsigned long)(holder - gil);
}

bool shim_probe_python(void)
{
	Dl_info info;
	const ElfW(Sym) *sym = NULL;
	void *runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
	if (!runtime)
		return false;
	shim_python.runtime = runtime;
	if (dladdr1(runtime, &info, (void **)&sym, RTLD_DL_SYMENT) && sym)
		shim_python.runtime_size = sym->st_size;
	if (info.dli_fname && strstr(info.dli_fname, "libpython"))
		shim_python.build |= GTR_BUILD_SHARED;

	const unsigned long *py_version = dlsym(RTLD_DEFAULT, "Py_Version");
	const char *(*get_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
	if (get_version) {
		/* Py_GetVersion only formats compile-time strings: safe before
		 * Py_Initialize. */
		snprintf(shim_python.version, sizeof shim_python.version, "%s", get_version());
		for (char *c = shim_python.version; *c; c++)
			if (*c == '\n')
				*c = ' '; /* 3.8 puts the compiler on a second line */
	}
	shim_python.version_hex = py_version ? (uint32_t)*py_version
	                                     : version_hex_from_string(shim_python.version);

	if (dlsym(RTLD_DEFAULT, "_Py_NegativeRefcount") || dlsym(RTLD_DEFAULT, "_Py_RefTotal"))
		shim_python.build |= GTR_BUILD_DEBUG;
	if (memcmp(runtime, DEBUG_OFFSETS_COOKIE, 8) == 0) {
		uint64_t free_threaded;
		memcpy(&free_threaded, (char *)runtime + DEBUG_OFFSETS_OFF_FREE_THREADED, sizeof free_threaded);
		if (free_threaded == 1)
			shim_python.build |= GTR_BUILD_FREE_THREADED;
	}
	shim_python.finalizing_offset = finalizing_offset(runtime, shim_python.version_hex);
	debug_offsets(runtime);
	/* only the name the version has: a failed dlsym allocates */
	shim_python.tstate_unchecked = (void *(*)(void))dlsym(
	        RTLD_DEFAULT, shim_python.version_hex >= 0x030D0000 ? "PyThreadState_GetUnchecked" : "_PyThreadState_UncheckedGet");
	shim_python.main_interp = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyInterpreterState_Main");
	shim_python.is_finalizing = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsFinalizing");
	if (!shim_python.is_finalizing)
		shim_python.is_finalizing = (int (*)(void))dlsym(RTLD_DEFAULT, "_Py_IsFinalizing");
	return true;
}

/* ---- activation and exit ----------------------------------------------- */

bool shim_activate(void)
{
	shim_options_parse(getenv("GILTRACE_OPTIONS"));
	stack_prepare(); /* before the module map is written: it loads libgcc_s */
	pystack_prepare();
	if (!recorder_open()) {
		shim_state = SHIM_STOPPED;
		return false;
	}
	__atomic_store_n(&shim_state, SHIM_ACTIVE, __ATOMIC_RELEASE);
	test_mark_inherited();
	crash_install();
	got_patch_loaded_objects();
	if (shim_options.verbose) {
		const char *parts[] = { "tracing ", shim_python.version[0] ? shim_python.version : "python",
		                        " to ", recorder_path() };
		shim_say("info", parts, 4);
	}
	return true;
}

/* The exit event of the thread that ends the process. */
static uint64_t process_exit_how(void)
{
	return GTR_EXIT_PROCESS | (shim_self.gil_held ? GTR_EXIT_HELD_GIL : 0);
}

void shim_finish(void)
{
	/* A vfork child shares our memory: it must not touch the parent's
	 * trace or state when it calls _exit. */
	if (shim_state != SHIM_ACTIVE || !recorder_owned_by_this_process())
		return;
	int saved_errno = errno;
	if (shim_enter()) {
		gil_model_check_finalizing();
		gil_model_check_enabled();
		shim_leave();
	}
	if (provoking(GTR_PROVOKE_EXIT_DELAY | GTR_PROVOKE_EXIT_DELAY_AFTER_FREE))
		provoke_at_exit(); /* the delays not taken yet: provoke.c */
	if (shim_enter()) {
		recorder_emit(GTR_EV_THREAD_EXIT, (unsigned)process_exit_how(), NULL);
		shim_leave();
	}
	recorder_close();
	shim_state = SHIM_STOPPED;
	if (shim_options.verbose) {
		char n[24];
		const char *parts[] = { "wrote ", shim_format_u64(n, recorder_bytes_used()),
		                        " bytes to ", recorder_path() };
		shim_say("info", parts, 4);
	}
	/* exitcode=: a process with error findings exits with that status, as
	 * a sanitizer's exitcode= does (the program's buffered output flushed
	 * first; the destructors after ours do not run) */
	if (shim_options.check && exit_check_run() == 1 && shim_options.exitcode) {
		/* what exit() would still flush; a stream another thread holds
		 * (a daemon blocked writing) is skipped, not waited for */
		FILE *streams[] = { stdout, stderr };
		for (size_t i = 0; i < 2; i++)
			if (ftrylockfile(streams[i]) == 0) {
				fflush_unlocked(streams[i]);
				funlockfile(streams[i]);
			}
		RESOLVED(_exit);
		shim_real._exit((int)shim_options.exitcode);
	}
	errno = saved_errno;
}

/* async-signal-safe.  _exit() and exec are reachable from a signal handler
 * that interrupted this thread anywhere, holding the recorder's lock
 * included: only stores into the mapping (and, before exec, the removal of
 * a fork child's trace), no lock, no child process. */
static void finish_signal_safe(bool before_exec)
{
	if (shim_state != SHIM_ACTIVE || !recorder_owned_by_this_process())
		return;
	int saved_errno = errno;
	if (shim_enter()) {
		recorder_emit_signal_safe(GTR_EV_THREAD_EXIT, (unsigned)process_exit_how(), NULL);
		shim_leave();
	}
	if (before_exec)
		recorder_close_before_exec();
	else
		recorder_close_signal_safe();
	shim_state = SHIM_STOPPED;
	errno = saved_errno;
}

void shim_finish_signal_safe(void)
{
	finish_signal_safe(false);
}

void shim_before_exec(void)
{
	crash_before_exec(); /* in a fork child too, which has no trace yet */
	finish_signal_safe(true);
}

__attribute__((constructor)) static void shim_constructor(void)
{
	int saved_errno = errno;
	free_resolve();
	shim_resolve_early();
	/* Secure execution (set-uid, set-gid, file capabilities: AT_SECURE):
	 * the environment belongs to a less privileged caller, who must not
	 * choose the files written or the program run at exit.  The shim
	 * stays out of the way entirely, as ld.so drops LD_* variables. */
	if (getauxval(AT_SECURE))
		shim_state = SHIM_STOPPED;
	else if (shim_real.mutex_lock && shim_real.cond_timedwait && shim_real.create)
		shim_state = SHIM_DORMANT;
	else
		shim_state = SHIM_STOPPED;
	errno = saved_errno;
}

__attribute__((destructor)) static void shim_destructor(void)
{
	shim_finish();
}
