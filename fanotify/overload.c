/* overload: fault 18 for the on-access scanner (onaccess.h).
 *
 * The events in flight (read, not yet answered and scanned) are the queue
 * between the listener and the workers. Above OnAccessQueueHigh for
 * OverloadSeconds, or when the kernel reports a queue overflow, fault 18
 * is raised, naming the processes that made the most events (pid,
 * executable, count) so that the admin can exclude a trusted busy program
 * (OnAccessExcludeProcess); while it is raised, permission events for
 * plain opens are answered by the fail policy at once (execs and
 * close-write are still scanned). It clears when the queue has stayed
 * under OnAccessQueueLow, and the policy has had nothing to answer, for
 * OverloadSeconds: while the policy answers events the queue is short
 * because of it, and the storm that filled it is still on.
 *
 * Events per process are counted in a small table, forgotten every
 * OA_PROC_WINDOW_S while there is no overload. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fanotify/onaccess_int.h"
#include "scanengine/faults.h"

#define OA_PROC_WINDOW_S 60
#define TOP		 5
#define PROBES		 8

void oa_overload_note(struct onaccess *oa, pid_t pid)
{
	size_t h = ((size_t)pid * 2654435761u) % OA_PROCS;

	for (size_t i = 0; i < PROBES; i++) {
		struct oa_proc *p = &oa->procs[(h + i) % OA_PROCS];

		if (p->pid == pid || !p->count) {
			p->pid = pid;
			p->count++;
			return;
		}
	}
	/* full here: the busiest processes are in the table already */
}

static int by_count(const void *a, const void *b)
{
	const struct oa_proc *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

/* The busiest processes, for the fault: detail["top"] and a text. */
static struct json_object *top_processes(struct onaccess *oa, char *text, size_t len)
{
	struct oa_proc top[OA_PROCS];
	struct json_object *arr = json_object_new_array();
	size_t n = 0, used = 0;

	for (size_t i = 0; i < OA_PROCS; i++)
		if (oa->procs[i].count)
			top[n++] = oa->procs[i];
	qsort(top, n, sizeof(top[0]), by_count);
	text[0] = '\0';
	for (size_t i = 0; i < n && i < TOP; i++) {
		struct json_object *o = json_object_new_object();
		char link[64], exe[512] = "?";
		ssize_t l;

		snprintf(link, sizeof(link), "/proc/%d/exe", (int)top[i].pid);
		l = readlink(link, exe, sizeof(exe) - 1);
		exe[l > 0 ? l : 1] = '\0';
		json_object_object_add(o, "pid", json_object_new_int(top[i].pid));
		json_object_object_add(o, "exe", json_object_new_string(exe));
		json_object_object_add(o, "count", json_object_new_int64(top[i].count));
		json_object_array_add(arr, o);
		if (used < len)
			used += (size_t)snprintf(text + used, len - used, "%spid %d %s (%u events)",
						 i ? ", " : "", (int)top[i].pid, exe, top[i].count);
	}
	return arr;
}

static void raise_18(struct onaccess *oa, const char *cause)
{
	struct json_object *d = json_object_new_object();
	char top[1024], reason[1400];

	json_object_object_add(d, "top", top_processes(oa, top, sizeof(top)));
	json_object_object_add(d, "in_flight", json_object_new_int((int)oa->inflight));
	json_object_object_add(d, "high", json_object_new_int((int)oa->cfg->oa_queue_high));
	json_object_object_add(d, "overflows", json_object_new_int64((int64_t)oa->n.overflows));
	snprintf(reason, sizeof(reason),
		 "%s; permission events for opens are answered by the fail policy (%s) without "
		 "a scan until it clears; most events from: %s",
		 cause, oa->cfg->oa_fail_policy, top[0] ? top : "?");
	oa->overload = true;
	oa->below_since_ms = 0;
	log_warn("on-access overloaded: %s", reason);
	if (oa->faults)
		faults_raise(oa->faults, FAULT_OVERLOADED, reason, d);
	else
		json_object_put(d);
}

bool oa_overloaded(const struct onaccess *oa)
{
	return oa->overload;
}

void oa_overload_tick(struct onaccess *oa, uint64_t now)
{
	uint64_t hold = oa->cfg->oa_overload_seconds * 1000ULL;

	if (!oa->overload) {
		if (__atomic_exchange_n(&oa->overflowed, false, __ATOMIC_RELAXED)) {
			raise_18(oa, "the kernel's event queue overflowed");
			return;
		}
		if (oa->inflight >= oa->cfg->oa_queue_high) {
			if (!oa->above_since_ms)
				oa->above_since_ms = now;
			else if (now - oa->above_since_ms >= hold) {
				char cause[128];

				snprintf(cause, sizeof(cause),
					 "%u on-access events in flight, over %u for %u s",
					 oa->inflight, oa->cfg->oa_queue_high,
					 oa->cfg->oa_overload_seconds);
				raise_18(oa, cause);
			}
		} else {
			oa->above_since_ms = 0;
		}
		if (!oa->overload && now - oa->window_start_ms >= OA_PROC_WINDOW_S * 1000ULL) {
			memset(oa->procs, 0, sizeof(oa->procs));
			oa->window_start_ms = now;
		}
		return;
	}
	__atomic_store_n(&oa->overflowed, false, __ATOMIC_RELAXED);
	if (oa->inflight >= oa->cfg->oa_queue_low || now - oa->last_bypass_ms < hold) {
		oa->below_since_ms = 0;
		return;
	}
	if (!oa->below_since_ms) {
		oa->below_since_ms = now;
		return;
	}
	if (now - oa->below_since_ms < hold)
		return;
	oa->overload = false;
	oa->above_since_ms = 0;
	memset(oa->procs, 0, sizeof(oa->procs));
	oa->window_start_ms = now;
	log_info("on-access no longer overloaded");
	if (oa->faults)
		faults_clear(oa->faults, FAULT_OVERLOADED,
			     "the on-access queue is back under its low mark");
}
