/* scanctl: what the command modules of scanctl share (scanctl.c: the
 * service commands; defs.c: "scanctl defs ..."). */
#ifndef SE_SCANCTL_SCANCTL_H
#define SE_SCANCTL_SCANCTL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

struct json_object;

#define EXIT_FOUND 1 /* something found, refused or failed (stated) */
#define EXIT_USAGE 2 /* usage error, or the service cannot be reached */

struct opts {
	const char *socket;
	bool json;
	enum { MODE_PATH, MODE_FDPASS, MODE_STREAM } mode;
	bool multiscan;
	const struct config *cfg; /* the service's configuration */
};

extern const char *prog;

/* sc_die: print "scanctl: <message>" to stderr and exit with status. */
void sc_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* sc_connect: a connected socket to the service, or sc_die(EXIT_USAGE). */
int sc_connect(const struct opts *o);

/* sc_try_connect: the same, but -errno when the service is not there. */
int sc_try_connect(const struct opts *o);

/* sc_request: send one z-framed command and return its reply, of any
 * length (a JSON document), NUL-terminated in a malloc'd buffer. Dies
 * with a message when the service cannot be reached or breaks off. */
char *sc_request(const struct opts *o, const char *cmd);

/* sc_command: send one z-framed command, read its one reply into out. */
void sc_command(const struct opts *o, const char *cmd, char *out, size_t outlen);

/* sc_print_kv: "key                    value" on one line. */
void sc_print_kv(const char *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sc_jstr / sc_jint: member k of o, "-" / 0 when absent. */
const char *sc_jstr(struct json_object *o, const char *k);
long long sc_jint(struct json_object *o, const char *k);

/* sc_print_json: o pretty-printed on stdout, then put. */
void sc_print_json(struct json_object *o);

/* scanctl_defs: "scanctl defs SUBCOMMAND ...": argv[0] is "defs". */
int scanctl_defs(const struct opts *o, int argc, char **argv);

#endif
