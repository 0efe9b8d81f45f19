/*
 * hang-snapshot.h: what run and stress do with a command that outlived its
 * --timeout, or with a process of it that has not exited --exit-timeout
 * after its finalization began: take a snapshot of each traced process
 * concerned (every thread's native stack, with elfutils, as eu-stack does;
 * tools/read/snapshot.h has the file), then end the processes.
 */
#ifndef GILTRACE_HANG_SNAPSHOT_H
#define GILTRACE_HANG_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "snapshot.h"

/* Take the snapshot of pid into TRACE.snapshot.  Returns 0 when it holds
 * the stacks, -1 when it could not be written or holds no stacks (the
 * reason in err: no ptrace permission, the process is gone).  A snapshot
 * without stacks is still written when it can be: the thread list and the
 * reason say something. */
int hang_snapshot_take(pid_t pid, const char *trace_path, enum snapshot_reason reason, uint64_t limit_ns, char *err,
                       size_t errlen);

/* The traces among paths that belong to processes still running that are
 * root or its descendants (their header's pid; the trace is not closed):
 * each gets its snapshot; with `say`, one line per trace on stderr says
 * what was taken.  Returns how many snapshots hold stacks. */
size_t hang_snapshot_traces(char *const *paths, size_t n, pid_t root, enum snapshot_reason reason, uint64_t limit_ns,
                            bool say);

/* A process among the traces at paths, root or a descendant of root, that
 * began finalization at least limit_ns ago (its header's
 * finalizing_mono_ns) and has not exited: its pid, the trace's index in
 * *which; 0 if none. */
pid_t hang_exit_overdue(char *const *paths, size_t n, pid_t root, uint64_t limit_ns, size_t *which);

/* hang_signal_tree(root, sig), then SIGKILL to the tree if root has not
 * ended grace_ns later (at once when sig is SIGKILL). */
void hang_end_tree(pid_t root, int sig, uint64_t grace_ns);

/* Send sig to root and to each of its descendants (found through /proc:
 * a process that left the tree, reparented to init, is not reached). */
void hang_signal_tree(pid_t root, int sig);

#endif
