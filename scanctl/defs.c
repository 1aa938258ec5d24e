/* defs: "scanctl defs ...": verify, install, list, history, rollback and
 * build definitions. install, list, history and rollback work on the
 * definitions store (<StateDirectory>/defs) directly and need root;
 * install and rollback then ask the running service to RELOAD and wait
 * until it scans with the new generation. */
#include "common/util.h"
#include "defs/build.h"
#include "defs/install.h"
#include "defs/store.h"
#include "defs/validate.h"
#include "scanctl/scanctl.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#define STORE_SUBDIR   "defs"
#define RELOAD_WAIT_MS 600000 /* a big set loads for minutes on a small host */

static void defs_usage(FILE *f)
{
	fprintf(f, "Usage: scanctl [--json] defs COMMAND [ARGS]\n"
		   "\n"
		   "  verify [--force STAGE,...] FILE...\n"
		   "         run every validation stage over FILE... as they would be\n"
		   "         installed on top of the active set; activate nothing\n"
		   "  install [--force STAGE,...] FILE...\n"
		   "         validate, activate as a new generation, have the service\n"
		   "         reload; a refused set goes to quarantine (root)\n"
		   "  list   the generations kept, their databases (root)\n"
		   "  history [-n N]\n"
		   "         installs, refusals and rollbacks, oldest first (root)\n"
		   "  rollback [GENERATION]\n"
		   "         activate GENERATION (default: the one before the active\n"
		   "         one) and have the service reload (root)\n"
		   "  build --name NAME --version N [--sign-cert CRT --sign-key KEY\n"
		   "        [--chain CRT]] [--builder WHO] -o OUT.cud SIGFILE...\n"
		   "         pack signature files (.hdb .hsb .ndb .ldb ...) into a .cud\n"
		   "         container with a correct .info; with a certificate and key\n"
		   "         also OUT.cud.sign (ClamAV 1.5 format)\n"
		   "\n"
		   "FILE: .cvd, .cld, .cud or a signature file; FILE.sign beside it (or\n"
		   "given as an argument) is its signature. STAGE: format, integrity,\n"
		   "authenticity, compatibility, unpack, test-load, canary; --force runs a\n"
		   "stage but records its failure instead of refusing (root only).\n");
}

/* ---- output ---- */

static const char *jget_str(struct json_object *o, const char *k, const char *def)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, k, &v) && json_object_get_string(v)
		       ? json_object_get_string(v)
		       : def;
}

/* The stage table of a validator report. */
static void print_stages(struct json_object *result)
{
	struct json_object *stages;

	if (!json_object_object_get_ex(result, "stages", &stages))
		return;
	printf("%-14s %-8s %9s  %s\n", "STAGE", "RESULT", "TIME", "DETAIL");
	for (size_t i = 0; i < json_object_array_length(stages); i++) {
		struct json_object *st = json_object_array_get_idx(stages, i);
		const char *status = jget_str(st, "status", "?");

		if (!strcmp(status, "not run"))
			printf("%-14s %-8s %9s\n", jget_str(st, "stage", "?"), "-", "");
		else
			printf("%-14s %-8s %6lld ms  %s\n", jget_str(st, "stage", "?"), status,
			       sc_jint(st, "ms"), jget_str(st, "reason", ""));
	}
}

/* "test.cvd version 6 (14 signatures, legacy)" per database. */
static void print_databases(struct json_object *dbs, const char *indent)
{
	for (size_t i = 0; dbs && i < json_object_array_length(dbs); i++) {
		struct json_object *d = json_object_array_get_idx(dbs, i), *v;
		char ver[32] = "";

		if (json_object_object_get_ex(d, "version", &v))
			snprintf(ver, sizeof(ver), " version %d", json_object_get_int(v));
		printf("%s%s%s: %lld signatures, %s%s%s\n", indent, jget_str(d, "file", "?"), ver,
		       sc_jint(d, "signatures"), jget_str(d, "authentication", "?"),
		       json_object_object_get_ex(d, "origin", &v) ? ", from " : "",
		       json_object_object_get_ex(d, "origin", &v) ? json_object_get_string(v) : "");
	}
}

/* ---- the service ---- */

/* STATUS as JSON, or NULL when the service is not there. */
static struct json_object *service_status(const struct opts *o)
{
	struct json_object *st;
	char *reply;
	int fd = sc_try_connect(o);

	if (fd < 0)
		return NULL;
	close(fd);
	reply = sc_request(o, "zSTATUS");
	st = json_tokener_parse(reply);
	if (!st)
		sc_die(EXIT_USAGE, "unexpected STATUS reply from scanengined: %.200s", reply);
	free(reply);
	return st;
}

/* Have the service load generation gen and wait until it scans with it,
 * or gave up on it. Adds {"service": ...} to out (may be NULL). Returns 0
 * when the service runs gen or is not running, EXIT_FOUND otherwise. */
static int reload_service(const struct opts *o, unsigned int gen, struct json_object *out)
{
	struct json_object *svc = json_object_new_object(), *st;
	uint64_t t0 = util_now_ms();
	char reply[512];
	int ret = 0;

	st = service_status(o);
	if (!st) {
		json_object_object_add(svc, "running", json_object_new_boolean(false));
		if (!o->json)
			printf("scanengined is not running: generation %u is active and will be "
			       "loaded when it starts\n",
			       gen);
		goto out;
	}
	json_object_put(st);
	json_object_object_add(svc, "running", json_object_new_boolean(true));
	sc_command(o, "zRELOAD", reply, sizeof(reply));
	if (strncmp(reply, "RELOADING", 9) != 0) {
		if (!o->json)
			printf("scanengined refused RELOAD: %s\n", reply);
		json_object_object_add(svc, "error", json_object_new_string(reply));
		ret = EXIT_FOUND;
		goto out;
	}
	if (!o->json && isatty(STDERR_FILENO))
		fprintf(stderr, "waiting for scanengined to load generation %u ...\n", gen);
	for (;;) {
		struct json_object *g;
		long long engine = -1, current = -1;

		st = service_status(o);
		if (st && json_object_object_get_ex(st, "engine_generation", &g))
			engine = json_object_get_int64(g);
		if (st && json_object_object_get_ex(st, "definitions_generation", &g))
			current = json_object_get_int64(g);
		if (engine == (long long)gen) {
			json_object_object_add(svc, "engine_generation",
					       json_object_new_int64(engine));
			if (!o->json)
				printf("scanengined now scans with generation %u\n", gen);
			json_object_put(st);
			break;
		}
		/* the service gave up on it (quarantined, rolled back) */
		if (st && current >= 0 && current != (long long)gen) {
			json_object_object_add(svc, "engine_generation",
					       json_object_new_int64(engine));
			json_object_object_add(
				svc, "error",
				json_object_new_string("the service could not load the generation "
						       "and went back; see scanctl faults"));
			if (!o->json)
				printf("scanengined could not load generation %u and went back to "
				       "generation %lld: see scanctl faults\n",
				       gen, current);
			json_object_put(st);
			ret = EXIT_FOUND;
			break;
		}
		json_object_put(st);
		if (util_now_ms() - t0 > RELOAD_WAIT_MS) {
			json_object_object_add(svc, "error", json_object_new_string("timeout"));
			if (!o->json)
				printf("scanengined has not switched to generation %u after %d s "
				       "(still loading?): see scanctl status\n",
				       gen, RELOAD_WAIT_MS / 1000);
			ret = EXIT_FOUND;
			break;
		}
		usleep(200000);
	}
out:
	if (out)
		json_object_object_add(out, "service", svc);
	else
		json_object_put(svc);
	return ret;
}

/* ---- the store ---- */

static void store_path(const struct opts *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", o->cfg->state_dir, STORE_SUBDIR);
}

static struct defs_store *open_store(const struct opts *o)
{
	char path[PATH_MAX], err[256];
	struct defs_store *s;

	if (geteuid() != 0)
		sc_die(EXIT_USAGE, "the definitions store is root's: run as root");
	store_path(o, path, sizeof(path));
	s = defs_store_open(path, o->cfg->keep_generations, err);
	if (!s)
		sc_die(EXIT_USAGE, "%s", err);
	return s;
}

/* The account the validator runs as: the service's scan user. */
static void scan_identity(const struct opts *o, struct sandbox_identity *id)
{
	if (sandbox_lookup_user(o->cfg->user, id) < 0) {
		id->valid = false;
		if (geteuid() == 0)
			fprintf(stderr,
				"%s: warning: scan user %s is missing: validating as root\n", prog,
				o->cfg->user);
	}
}

static unsigned int parse_force(const char *arg, unsigned int force)
{
	char *copy = strdup(arg), *save = NULL;

	if (!copy)
		sc_die(EXIT_USAGE, "out of memory");
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int s = validate_stage_parse(t);

		if (s < 0)
			sc_die(EXIT_USAGE,
			       "--force: no stage '%s' (format, integrity, authenticity, "
			       "compatibility, unpack, test-load, canary)",
			       t);
		force |= 1u << s;
	}
	free(copy);
	if (geteuid() != 0)
		sc_die(EXIT_USAGE, "--force is for root only");
	return force;
}

/* Options shared by verify and install: --force; the files remain. */
static unsigned int parse_files(int *argc, char ***argv)
{
	static const struct option lopts[] = {
		{"force", required_argument, NULL, 'f'},
		{0},
	};
	unsigned int force = 0;
	int c;

	optind = 1;
	while ((c = getopt_long(*argc, *argv, "+f:", lopts, NULL)) != -1) {
		if (c != 'f') {
			defs_usage(stderr);
			exit(EXIT_USAGE);
		}
		force = parse_force(optarg, force);
	}
	*argc -= optind;
	*argv += optind;
	if (*argc < 1)
		sc_die(EXIT_USAGE, "no definitions file given");
	return force;
}

static char *actor(void)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "scanctl (uid %u)", (unsigned int)getuid());
	return buf;
}

static void progress_note(const struct opts *o)
{
	if (!o->json && isatty(STDERR_FILENO))
		fprintf(stderr, "validating ...\n");
}

static int cmd_verify(const struct opts *o, int argc, char **argv)
{
	struct install_req req = {.cfg = o->cfg, .origin = "verify", .progress_fd = -1};
	struct sandbox_identity id;
	char active[PATH_MAX], store[PATH_MAX], link[PATH_MAX + 16], err[INSTALL_ERR_LEN];
	struct json_object *result = NULL;
	const char *tmp = getenv("TMPDIR");
	int r;

	req.force = parse_files(&argc, &argv);
	req.files = (const char *const *)argv;
	req.nfiles = (size_t)argc;
	scan_identity(o, &id);
	req.id = &id;
	if (!o->json && isatty(STDERR_FILENO))
		req.progress_fd = STDERR_FILENO;
	/* over the active set, when this host has one */
	store_path(o, store, sizeof(store));
	snprintf(link, sizeof(link), "%s/current", store);
	progress_note(o);
	r = install_verify(&req, realpath(link, active) ? active : NULL, tmp, &result, err);
	if (!result)
		sc_die(EXIT_FOUND, "%s", err);
	if (o->json) {
		sc_print_json(result);
		return r ? EXIT_FOUND : 0;
	}
	print_stages(result);
	if (!r) {
		printf("\nverified: the set passes every stage\n");
	} else {
		printf("\nREFUSED at %s: %s\n", jget_str(result, "failed", "?"),
		       jget_str(result, "reason", "?"));
	}
	json_object_put(result);
	return r ? EXIT_FOUND : 0;
}

static int cmd_install(const struct opts *o, int argc, char **argv)
{
	struct install_req req = {.cfg = o->cfg,
				  .origin = "install",
				  .copy_inputs = true,
				  .progress_fd = -1,
				  .actor = actor()};
	struct install_outcome out;
	struct sandbox_identity id;
	struct defs_store *s;
	struct json_object *j;
	int r, ret;

	req.force = parse_files(&argc, &argv);
	req.files = (const char *const *)argv;
	req.nfiles = (size_t)argc;
	s = open_store(o);
	scan_identity(o, &id);
	req.id = &id;
	if (!o->json && isatty(STDERR_FILENO))
		req.progress_fd = STDERR_FILENO;
	progress_note(o);
	r = install_run(s, &req, &out);
	defs_store_close(s);
	j = json_object_new_object();
	json_object_object_add(j, "installed", json_object_new_boolean(r == 0));
	if (out.gen)
		json_object_object_add(j, "generation", json_object_new_int64(out.gen));
	if (r)
		json_object_object_add(j, "reason", json_object_new_string(out.reason));
	if (out.qpath[0])
		json_object_object_add(j, "quarantine", json_object_new_string(out.qpath));
	if (out.result)
		json_object_object_add(j, "validation", out.result);
	if (!o->json) {
		if (out.result)
			print_stages(out.result);
		if (r == 0)
			printf("\ninstalled: generation %u is active\n", out.gen);
		else if (r == -EBADMSG)
			printf("\nREFUSED: %s\nthe set is quarantined in %s; the active "
			       "definitions are unchanged\n",
			       out.reason, out.qpath[0] ? out.qpath : "(could not quarantine)");
		else
			printf("\nnot installed: %s\n", out.reason);
	}
	ret = r ? EXIT_FOUND : reload_service(o, out.gen, j);
	if (o->json)
		sc_print_json(j);
	else
		json_object_put(j);
	return ret;
}

static int cmd_list(const struct opts *o, int argc, char **argv)
{
	struct defs_store *s;
	struct json_object *list;

	(void)argv;
	if (argc > 1)
		sc_die(EXIT_USAGE, "defs list takes no arguments");
	s = open_store(o);
	list = defs_store_list_json(s);
	defs_store_close(s);
	if (!list)
		sc_die(EXIT_FOUND, "cannot list the definitions store: %s", strerror(errno));
	if (o->json) {
		sc_print_json(list);
		return 0;
	}
	if (!json_object_array_length(list))
		printf("the definitions store holds no generation\n");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *g = json_object_array_get_idx(list, i), *dbs = NULL, *f;
		bool cur = json_object_get_boolean(json_object_object_get(g, "current"));

		printf("%sgeneration %lld%s, created %s, %lld files, %lld bytes%s%s\n",
		       i ? "\n" : "", sc_jint(g, "generation"), cur ? " (ACTIVE)" : "",
		       jget_str(g, "created", "?"), sc_jint(g, "files"), sc_jint(g, "bytes"),
		       json_object_object_get_ex(g, "origin", &f) ? ", from " : "",
		       json_object_object_get_ex(g, "origin", &f) ? json_object_get_string(f) : "");
		if (json_object_object_get_ex(g, "forced", &f) && json_object_array_length(f))
			printf("  FORCED past: %s\n", json_object_to_json_string(f));
		if (json_object_object_get_ex(g, "databases", &dbs))
			print_databases(dbs, "  ");
	}
	json_object_put(list);
	return 0;
}

static int cmd_history(const struct opts *o, int argc, char **argv)
{
	struct defs_store *s;
	struct json_object *h;
	long long max = 0;
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+n:")) != -1) {
		if (c != 'n' || (max = atoll(optarg)) <= 0)
			sc_die(EXIT_USAGE, "usage: scanctl defs history [-n N]");
	}
	if (optind < argc)
		sc_die(EXIT_USAGE, "usage: scanctl defs history [-n N]");
	s = open_store(o);
	h = defs_store_history_json(s, (size_t)max);
	defs_store_close(s);
	if (!h)
		sc_die(EXIT_FOUND, "cannot read the history: %s", strerror(errno));
	if (o->json) {
		sc_print_json(h);
		return 0;
	}
	for (size_t i = 0; i < json_object_array_length(h); i++) {
		struct json_object *e = json_object_array_get_idx(h, i), *v;

		printf("%s  %-10s", jget_str(e, "time", "?"), jget_str(e, "event", "?"));
		if (json_object_object_get_ex(e, "generation", &v) && v)
			printf(" generation %d", json_object_get_int(v));
		if (json_object_object_get_ex(e, "from", &v))
			printf(" (from %d)", json_object_get_int(v));
		if (json_object_object_get_ex(e, "databases", &v) && json_object_array_length(v))
			printf(" %s", json_object_to_json_string(v));
		if (json_object_object_get_ex(e, "stage", &v))
			printf(" at %s: %s", json_object_get_string(v), jget_str(e, "reason", ""));
		if (json_object_object_get_ex(e, "force", &v))
			printf(" FORCED");
		if (json_object_object_get_ex(e, "actor", &v))
			printf(" by %s", json_object_get_string(v));
		putchar('\n');
	}
	json_object_put(h);
	return 0;
}

static int cmd_rollback(const struct opts *o, int argc, char **argv)
{
	unsigned int cur, target;
	struct defs_store *s;
	struct json_object *j, *d;
	char path[PATH_MAX];
	struct stat st;
	uint64_t v;
	int r, ret;

	if (argc > 2)
		sc_die(EXIT_USAGE, "usage: scanctl defs rollback [GENERATION]");
	s = open_store(o);
	cur = defs_store_current(s);
	if (argc == 2) {
		if (util_parse_u64(argv[1], &v) || !v || v > UINT32_MAX)
			sc_die(EXIT_USAGE, "not a generation number: %s", argv[1]);
		target = (unsigned int)v;
	} else {
		target = cur ? defs_store_previous(s, cur) : 0;
		if (!target)
			sc_die(EXIT_FOUND, "no generation before the active one (%u) is kept", cur);
	}
	if (defs_store_gen_path(s, target, path, sizeof(path)) < 0 || stat(path, &st) < 0)
		sc_die(EXIT_FOUND, "generation %u is not in the store (see scanctl defs list)",
		       target);
	if (target == cur)
		sc_die(EXIT_FOUND, "generation %u is already active", target);
	r = defs_store_activate(s, target);
	if (r)
		sc_die(EXIT_FOUND, "cannot activate generation %u: %s", target, strerror(-r));
	d = json_object_new_object();
	json_object_object_add(d, "from", json_object_new_int64(cur));
	json_object_object_add(d, "actor", json_object_new_string(actor()));
	defs_store_history_add(s, "rollback", target, d);
	defs_store_close(s);
	j = json_object_new_object();
	json_object_object_add(j, "generation", json_object_new_int64(target));
	json_object_object_add(j, "from", json_object_new_int64(cur));
	if (!o->json)
		printf("rolled back: generation %u is active (was %u)\n", target, cur);
	ret = reload_service(o, target, j);
	if (o->json)
		sc_print_json(j);
	else
		json_object_put(j);
	return ret;
}

static int cmd_build(const struct opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{"name", required_argument, NULL, 'n'},
		{"version", required_argument, NULL, 'v'},
		{"sign-cert", required_argument, NULL, 'C'},
		{"sign-key", required_argument, NULL, 'K'},
		{"chain", required_argument, NULL, 'H'},
		{"builder", required_argument, NULL, 'b'},
		{"output", required_argument, NULL, 'o'},
		{0},
	};
	struct build_opts b = {0};
	struct build_result res;
	char err[BUILD_ERR_LEN];
	uint64_t v;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+n:v:o:", lopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			b.name = optarg;
			break;
		case 'v':
			if (util_parse_u64(optarg, &v) || !v || v > UINT32_MAX)
				sc_die(EXIT_USAGE, "--version: not a version number: %s", optarg);
			b.version = (unsigned int)v;
			break;
		case 'C':
			b.sign_cert = optarg;
			break;
		case 'K':
			b.sign_key = optarg;
			break;
		case 'H':
			b.chain = optarg;
			break;
		case 'b':
			b.builder = optarg;
			break;
		case 'o':
			b.out = optarg;
			break;
		default:
			defs_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!b.name || !b.version || !b.out || optind >= argc)
		sc_die(EXIT_USAGE, "defs build needs --name, --version, -o OUT.cud and signature "
				   "files");
	b.files = (const char *const *)argv + optind;
	b.nfiles = (size_t)(argc - optind);
	r = build_cud(&b, &res, err);
	if (r)
		sc_die(EXIT_FOUND, "%s", err);
	if (o->json) {
		struct json_object *j = json_object_new_object();

		json_object_object_add(j, "output", json_object_new_string(b.out));
		json_object_object_add(j, "version", json_object_new_int64(b.version));
		json_object_object_add(j, "signatures", json_object_new_int64(res.sigs));
		json_object_object_add(j, "members", json_object_new_int64(res.members));
		json_object_object_add(j, "flevel", json_object_new_int64(res.flevel));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)res.bytes));
		json_object_object_add(j, "md5", json_object_new_string(res.md5));
		json_object_object_add(j, "signed", json_object_new_boolean(res.has_sign));
		sc_print_json(j);
	} else {
		printf("built %s: %s version %u, %u signatures from %u files, f-level %u, %llu "
		       "bytes%s\n",
		       b.out, b.name, b.version, res.sigs, res.members, res.flevel,
		       (unsigned long long)res.bytes, res.has_sign ? ", signed (.sign)" : "");
	}
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(const struct opts *o, int argc, char **argv);
} subcommands[] = {
	{"verify", cmd_verify},	  {"install", cmd_install},   {"list", cmd_list},
	{"history", cmd_history}, {"rollback", cmd_rollback}, {"build", cmd_build},
};

int scanctl_defs(const struct opts *o, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		defs_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	for (size_t i = 0; i < SE_ARRAY_SIZE(subcommands); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(o, argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown defs command '%s'\n", prog, argv[1]);
	defs_usage(stderr);
	return EXIT_USAGE;
}
