/*
 * crash.c: fatal signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT),
 * recorded before the process dies of them.
 *
 * Design note.  The flakes giltrace hunts end in a crash (bpo-39877,
 * gh-110052: a daemon thread touches its freed thread state during
 * finalization), and a trace that just stops says nothing of which thread
 * died or where.  At activation the shim installs its own handler for the
 * five crash signals and keeps what was installed before as the
 * program's.  From then on sigaction(), signal(), bsd_signal() and
 * sysv_signal() on those signals read and write the program's disposition
 * in a table here and never touch the kernel's, so that the shim keeps its
 * place in front whatever the program (faulthandler, signal.signal, a C
 * extension) installs later, and every query returns what the program set,
 * not the shim's handler (tests/test_trust.py).
 *
 * The handler records one GTR_EV_CRASH event on the thread that got the
 * signal: the signal, si_code, the faulting address (si_addr; for a signal
 * sent with kill/raise, the sender's pid), the instruction pointer from
 * the ucontext, and a native stack whose frame 0 is that instruction.
 * Then it does what the kernel would have done with the program's
 * disposition: a program handler is called with the mask it asked for
 * (sa_mask, the signal itself unless SA_NODEFER) and SA_RESETHAND resets
 * the program's disposition first; SIG_DFL puts the kernel's default back
 * and lets the signal happen again (a fault re-executes the faulting
 * instruction, with the same siginfo and core; a sent signal is sent again
 * with tgkill and arrives when the handler returns), so that the process
 * ends by the same signal and status as without giltrace; SIG_IGN ignores
 * a sent signal and, like the kernel, not a fault.  faulthandler's handler
 * (SA_NODEFER) restores the previous disposition and raises the signal
 * again from inside itself: that nested delivery comes back here and is
 * not recorded twice (a self-sent signal while the handler runs).
 *
 * Before the crash event, one LOCK_HELD event per PyThread lock the
 * thread owns (lock-table.c: a scan of loads), if its chunk has room.
 *
 * Only async-signal-safe means in the handler: stores into this thread's
 * chunk (recorder_emit_crash_signal_safe, which at worst tries the
 * allocation lock, never waits for it), sigaction, sigprocmask, tgkill,
 * write.  The stack: glibc's backtrace() is not async-signal-safe on its
 * first call (it dlopens libgcc_s); stack_prepare() makes that call at
 * activation when stacks are on, after which libgcc's unwinder takes no
 * lock and allocates nothing (glibc 2.35+'s _dl_find_object; stack.c).
 * With stacks=none it was never loaded, and only the instruction pointer
 * is recorded.  The unwinder reads the crashed thread's stack, which may
 * be garbage: a SIGSEGV or SIGBUS inside the walk jumps back out of it
 * (siglongjmp) and the crash is recorded with what was walked so far.
 * The thread's Python stack follows, as faulthandler would print it
 * (pystack.c: every read through process_vm_readv, no lock, no
 * allocation).
 *
 * Each thread the shim sees start (and the activating thread) gets an
 * alternate signal stack of its own (64 KiB and a guard page), unless it
 * has one already, so that a stack overflow still reaches the handler.  A
 * program's sigaltstack() replaces it as usual; queries do not show the
 * shim's (it reads as disabled), and when the program disables its own the
 * shim's comes back (faulthandler restores what it found: "disabled").
 * The stack is unmapped when the thread ends (return or pthread_exit).
 *
 * What it cannot do: see a program that installs its handler with the raw
 * rt_sigaction system call, or through libc's own symbol (ctypes'
 * CDLL("libc.so.6").sigaction), which replaces the shim's handler: such a
 * crash is not recorded, and the program's handler works as without
 * giltrace.  /proc/self/status (SigCgt) shows the five signals caught.  A
 * program handler that leaves by siglongjmp leaves this thread's nesting
 * count up, after which self-sent crash signals on it are not recorded
 * (faults still are).  A thread ended by cancellation keeps its alternate
 * stack mapped.  glibc's abort() resets SIGABRT with its internal
 * sigaction, bypassing the table, after the first raise was recorded.  A
 * crash during exit: the process that dies of a signal runs no destructor,
 * so its trace is left not closed and the at-exit check (exit-check.c)
 * does not run.  The handler prints nothing: the process's stderr is the
 * program's, and CPython's own tests of crashes (test_faulthandler,
 * test_subprocess's abort) compare it; `giltrace run` and `giltrace check`
 * report the crash from the trace.
 */
#include <errno.h>
#include <execinfo.h>
#include <setjmp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "shim.h"

/* The signals the shim records; their index is a bit of `installed`. */
static const int crash_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
#define CRASH_SIGNALS (sizeof crash_signals / sizeof crash_signals[0])

/* The program's disposition of each crash signal, as the kernel would
 * hold it without the shim.  Two slots each: a writer fills the one not
 * current and then flips `current`, so that the handler, which takes no
 * lock, never reads a half-written one.  Writers hold program_lock (the
 * handler's own SA_RESETHAND write does not: it may interrupt a writer). */
static struct {
	struct sigaction slot[2];
	int current;
} program[CRASH_SIGNALS];
static pthread_mutex_t program_lock = PTHREAD_MUTEX_INITIALIZER;

/* Bit i: the shim's handler holds crash_signals[i] in the kernel; set at
 * activation, cleared when the handler gives the signal its default back. */
static unsigned installed;

/* The sa_flags bits glibc adds to every sigaction (SA_RESTORER) and its
 * restorer, learnt at installation, so that a query returns exactly what
 * the kernel would have returned for the program's own installation. */
static int glibc_flags;
static void (*glibc_restorer)(void);

#define ALTSTACK_SIZE (64u * 1024)
/* The page size, set at installation (the guard below each stack). */
static size_t page_size;

/* This thread's alternate stack mapping (guard page first), or NULL. */
static SHIM_TLS char *altstack_map;
/* How deep this thread is in the handler (a program handler raising again). */
static SHIM_TLS unsigned handler_depth;
/* The last crash recorded on this thread: a fault that happens again
 * after the program's handler returned is recorded once. */
static SHIM_TLS int last_sig;
static SHIM_TLS uint64_t last_ip, last_addr;
/* While the stack walk runs: where a fault inside it jumps back to. */
static SHIM_TLS sigjmp_buf *walk_escape;

static int crash_index(int sig)
{
	for (unsigned i = 0; i < CRASH_SIGNALS; i++)
		if (crash_signals[i] == sig)
			return (int)i;
	return -1;
}

static bool is_installed(int i)
{
	return i >= 0 && (__atomic_load_n(&installed, __ATOMIC_ACQUIRE) & 1u << i);
}

/* async-signal-safe */
static void program_get(int i, struct sigaction *out)
{
	int c = __atomic_load_n(&program[i].current, __ATOMIC_ACQUIRE);
	memcpy(out, &program[i].slot[c], sizeof *out);
}

/* async-signal-safe; writers hold program_lock (but the handler). */
static void program_put(int i, const struct sigaction *act)
{
	int next = !__atomic_load_n(&program[i].current, __ATOMIC_ACQUIRE);
	struct sigaction *s = &program[i].slot[next];
	memcpy(s, act, sizeof *s);
	/* what the kernel keeps of a sigaction: these two never blocked,
	 * and glibc's restorer */
	sigdelset(&s->sa_mask, SIGKILL);
	sigdelset(&s->sa_mask, SIGSTOP);
	s->sa_flags |= glibc_flags;
	if (glibc_flags)
		s->sa_restorer = glibc_restorer;
	__atomic_store_n(&program[i].current, next, __ATOMIC_RELEASE);
}

static bool is_function(const struct sigaction *a)
{
	return a->sa_handler != SIG_DFL && a->sa_handler != SIG_IGN;
}

/* ---- the handler ------------------------------------------------------------ */

/* async-signal-safe (see the design note for backtrace).  frames[0] is the
 * interrupted instruction, then its callers as the unwinder finds them
 * through the signal frame; just the instruction if unwinding is off or
 * does not get back to it. */
static unsigned walk_stack(uint64_t ip, uint64_t *frames)
{
	unsigned max = shim_options.stack_depth ? shim_options.stack_depth : 1;
	frames[0] = ip;
	if (!shim_options.stacks || max < 2)
		return 1; /* libgcc_s was not loaded at activation: no backtrace() now */
	void *raw[GTR_STACK_MAX_FRAMES + 8];
	volatile int n = 0;
	sigjmp_buf escape;
	sigset_t faults, old;
	sigemptyset(&faults);
	sigaddset(&faults, SIGSEGV);
	sigaddset(&faults, SIGBUS);
	pthread_sigmask(SIG_BLOCK, NULL, &old);
	if (sigsetjmp(escape, 0) == 0) {
		walk_escape = &escape;
		pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
		n = backtrace(raw, (int)max + 8);
	}
	walk_escape = NULL;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	int k = 0;
	while (k < n && (uint64_t)(uintptr_t)raw[k] != ip)
		k++; /* the shim's handler and the signal trampoline */
	if (k == n)
		return 1;
	unsigned kept = 0;
	for (; k < n && kept < max; k++)
		frames[kept++] = (uint64_t)(uintptr_t)raw[k];
	return kept;
}

/* async-signal-safe: the crash event and its stack, once per crash. */
static void record_crash(int sig, const siginfo_t *info, const ucontext_t *uc, unsigned disposition,
                         bool kernel_sent)
{
	uint64_t ip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
	uint64_t addr = kernel_sent ? (uint64_t)(uintptr_t)info->si_addr : (uint64_t)(uint32_t)info->si_pid;
	if (sig == last_sig && ip == last_ip && addr == last_addr)
		return; /* the same fault again, after the program's handler returned */
	uint64_t payload[2] = { gtr_crash_word(ip, info->si_code), addr };
	uint64_t frames[GTR_STACK_MAX_FRAMES];
	unsigned n = walk_stack(ip, frames);
	/* where the thread was in Python (faulthandler's traceback, read
	 * through process_vm_readv: a fault-free read on this stack too) */
	const uint64_t *py = NULL;
	unsigned py_words = shim_options.stacks ? pystack_capture_begin(0, true, &py) : 0;
	/* inside the shim from here: a wrapper reached now records nothing.  An
	 * event the interrupted shim code had not committed is overwritten. */
	uint8_t was_in_shim = shim_self.in_shim;
	shim_self.in_shim = 1;
	/* the PyThread locks it owns, into room its chunk has (no wait, no
	 * allocation): what another thread may be waiting for */
	lock_table_report_held_signal_safe();
	if (recorder_emit_crash_signal_safe(gtr_crash_arg((unsigned)sig, disposition), payload, frames, n, py,
	                                    py_words)) {
		last_sig = sig;
		last_ip = ip;
		last_addr = addr;
	}
	if (py_words)
		pystack_capture_end(py);
	shim_self.in_shim = was_in_shim;
}

static void crash_handler(int sig, siginfo_t *info, void *context)
{
	if (walk_escape) {
		/* a fault inside the stack walk of the crash being recorded */
		sigjmp_buf *escape = walk_escape;
		walk_escape = NULL;
		siglongjmp(*escape, 1);
	}
	int saved_errno = errno;
	ucontext_t *uc = context;
	int i = crash_index(sig);
	if (i < 0)
		return; /* cannot happen: installed for the crash signals only */
	struct sigaction act;
	program_get(i, &act);
	/* si_code > 0: the kernel raised it for a fault (SI_KERNEL included);
	 * <= 0: kill, tgkill, raise, sigqueue */
	bool kernel_sent = info->si_code > 0;
	bool self_sent = !kernel_sent && info->si_pid == getpid();
	unsigned disposition = is_function(&act)            ? GTR_CRASH_HANDLER
	                       : act.sa_handler == SIG_IGN ? GTR_CRASH_IGNORED
	                                                   : GTR_CRASH_DEFAULT;
	if (!(handler_depth && self_sent))
		record_crash(sig, info, uc, disposition, kernel_sent);
	handler_depth++;
	if (disposition == GTR_CRASH_IGNORED && !kernel_sent)
		goto out;
	if (disposition == GTR_CRASH_HANDLER) {
		if (act.sa_flags & SA_RESETHAND) {
			struct sigaction dfl;
			memset(&dfl, 0, sizeof dfl);
			dfl.sa_handler = SIG_DFL;
			sigemptyset(&dfl.sa_mask);
			program_put(i, &dfl);
		}
		/* the mask the kernel would have set for the program's handler */
		sigset_t mask = uc->uc_sigmask;
		for (int s = 1; s < NSIG; s++)
			if (sigismember(&act.sa_mask, s) == 1)
				sigaddset(&mask, s);
		if (!(act.sa_flags & SA_NODEFER))
			sigaddset(&mask, sig);
		pthread_sigmask(SIG_SETMASK, &mask, NULL);
		errno = saved_errno;
		if (act.sa_flags & SA_SIGINFO)
			act.sa_sigaction(sig, info, context);
		else
			act.sa_handler(sig);
		saved_errno = errno;
		goto out; /* returning restores the interrupted mask, as the kernel would */
	}
	/* SIG_DFL, or SIG_IGN for a fault (the kernel forces the default then):
	 * the kernel's default back, and the signal again */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	__atomic_and_fetch(&installed, ~(1u << i), __ATOMIC_ACQ_REL);
	shim_real.sigaction(sig, &dfl, NULL);
	if (!kernel_sent)
		syscall(SYS_tgkill, getpid(), gettid(), sig); /* blocked here: arrives on return */
	/* a fault: returning re-executes the faulting instruction */
out:
	handler_depth--;
	errno = saved_errno;
}

/* ---- installation ------------------------------------------------------------- */

void crash_install(void)
{
	int saved_errno = errno;
	long ps = sysconf(_SC_PAGESIZE);
	page_size = ps > 0 ? (size_t)ps : 4096;
	struct sigaction ours;
	memset(&ours, 0, sizeof ours);
	ours.sa_sigaction = crash_handler;
	sigemptyset(&ours.sa_mask);
	ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
	unsigned mask = 0;
	shim_real.mutex_lock(&program_lock);
	for (unsigned i = 0; i < CRASH_SIGNALS; i++) {
		struct sigaction before, now;
		if (shim_real.sigaction(crash_signals[i], &ours, &before) != 0)
			continue;
		if (!glibc_flags && shim_real.sigaction(crash_signals[i], NULL, &now) == 0) {
			glibc_flags = now.sa_flags & ~ours.sa_flags;
			glibc_restorer = now.sa_restorer;
		}
		if (before.sa_sigaction == crash_handler) { /* cannot happen: one activation */
			memset(&before, 0, sizeof before);
			before.sa_handler = SIG_DFL;
		}
		program[i].slot[0] = before;
		program[i].current = 0;
		mask |= 1u << i;
	}
	__atomic_store_n(&installed, mask, __ATOMIC_RELEASE);
	shim_real.mutex_unlock(&program_lock);
	errno = saved_errno;
	crash_thread_begins();
}

/* async-signal-safe; writes no memory (a vfork child shares it). */
void crash_before_exec(void)
{
	for (unsigned i = 0; i < CRASH_SIGNALS; i++) {
		if (!is_installed((int)i))
			continue;
		struct sigaction act;
		program_get((int)i, &act);
		if (act.sa_handler == SIG_IGN) /* exec keeps SIG_IGN, resets handlers */
			shim_real.sigaction(crash_signals[i], &act, NULL);
	}
}

/* ---- alternate signal stacks ---------------------------------------------------- */

void crash_thread_begins(void)
{
	if (altstack_map || !__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
		return;
	int saved_errno = errno;
	stack_t cur;
	if (shim_real.sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
		goto out; /* the program's own */
	char *m = mmap(NULL, page_size + ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		goto out;
	stack_t ss = { .ss_sp = m + page_size, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
	if (mprotect(m, page_size, PROT_NONE) != 0 || shim_real.sigaltstack(&ss, NULL) != 0) {
		munmap(m, page_size + ALTSTACK_SIZE);
		goto out;
	}
	altstack_map = m;
out:
	errno = saved_errno;
}

void crash_thread_ends(void)
{
	if (!altstack_map)
		return;
	int saved_errno = errno;
	stack_t cur;
	if (shim_real.sigaltstack(NULL, &cur) != 0)
		goto out;
	if (cur.ss_sp == altstack_map + page_size && !(cur.ss_flags & SS_DISABLE)) {
		stack_t off = { .ss_flags = SS_DISABLE };
		if ((cur.ss_flags & SS_ONSTACK) || shim_real.sigaltstack(&off, NULL) != 0)
			goto out; /* running on it (pthread_exit in a handler): it stays */
	}
	munmap(altstack_map, page_size + ALTSTACK_SIZE);
	altstack_map = NULL;
out:
	errno = saved_errno;
}

/* ---- the program's view -------------------------------------------------------- */

SHIM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	RESOLVED(sigaction);
	int i = crash_index(sig);
	if (!is_installed(i))
		return shim_real.sigaction(sig, act, oact);
	struct sigaction old;
	shim_real.mutex_lock(&program_lock);
	if (is_installed(i)) {
		program_get(i, &old);
		if (act)
			program_put(i, act);
	}
	shim_real.mutex_unlock(&program_lock);
	if (!is_installed(i)) /* the handler gave it back to the kernel meanwhile */
		return shim_real.sigaction(sig, act, oact);
	if (oact)
		*oact = old;
	return 0;
}

/* signal(), bsd_signal(), sysv_signal() on a crash signal: what glibc's
 * would pass to sigaction, through the table. */
static sighandler_t set_handler(int sig, sighandler_t handler, int flags)
{
	struct sigaction act, old;
	if (handler == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&act, 0, sizeof act);
	act.sa_handler = handler;
	sigemptyset(&act.sa_mask);
	if (!(flags & SA_NODEFER))
		sigaddset(&act.sa_mask, sig);
	act.sa_flags = flags;
	if (sigaction(sig, &act, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}

SHIM_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	RESOLVED(signal);
	if (!is_installed(crash_index(sig)))
		return shim_real.signal(sig, handler);
	return set_handler(sig, handler, SA_RESTART); /* BSD semantics, glibc's */
}

SHIM_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

SHIM_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	RESOLVED(sysv_signal);
	if (!is_installed(crash_index(sig)))
		return shim_real.sysv_signal(sig, handler);
	return set_handler(sig, handler, SA_RESETHAND | SA_NODEFER);
}

SHIM_EXPORT int sigaltstack(const stack_t *ss, stack_t *old)
{
	RESOLVED(sigaltstack);
	if (!altstack_map)
		return shim_real.sigaltstack(ss, old);
	char *ours = altstack_map + page_size;
	stack_t cur;
	int rc = shim_real.sigaltstack(ss, &cur);
	if (rc != 0)
		return rc;
	int saved_errno = errno;
	if (old) {
		*old = cur;
		if (cur.ss_sp == ours && !(cur.ss_flags & (SS_ONSTACK | SS_DISABLE)))
			*old = (stack_t){ .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
	}
	if (ss && (ss->ss_flags & SS_DISABLE)) {
		stack_t mine = { .ss_sp = ours, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
		shim_real.sigaltstack(&mine, NULL);
	}
	errno = saved_errno;
	return 0;
}
