/*
 * hang-snapshot.h: what run and stress do with a command that outlived its
 * --timeout: take a snapshot of every traced process of it (every thread's
 * native stack, with elfutils, as eu-stack does; tools/read/snapshot.h has
 * the file), then end the processes.
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

/* Send sig to root and to each of its descendants (found through /proc:
 * a process that left the tree, reparented to init, is not reached). */
void hang_signal_tree(pid_t root, int sig);

#endif
