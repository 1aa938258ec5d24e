/* fuzz_cvd: arbitrary bytes to the parsers of defs/cvd.c. The first byte
 * picks the parser: byte % 3 == 0 the container (header and payload MD5),
 * 1 a .info (container type (byte / 3) % 4), 2 a .sign; the rest is the
 * input. Besides never crashing, leaking or reading out of bounds: a
 * refusal must say why, and whatever parses must be written back by the
 * matching writer and read back the same. */
#include "defs/cvd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void refused(const char *err)
{
	if (!err[0] || !memchr(err, '\0', CVD_ERR_LEN))
		abort(); /* a refusal must say why */
}

static bool header_eq(const struct cvd_header *a, const struct cvd_header *b)
{
	return !strcmp(a->time, b->time) && a->version == b->version && a->sigs == b->sigs &&
	       a->flevel == b->flevel && a->has_md5 == b->has_md5 &&
	       (!a->has_md5 || !memcmp(a->md5, b->md5, CVD_MD5_LEN)) &&
	       a->has_dsig == b->has_dsig && (!a->has_dsig || !strcmp(a->dsig, b->dsig)) &&
	       !strcmp(a->builder, b->builder) && a->stime == b->stime;
}

static void fuzz_container(const char *p, size_t n)
{
	char err[CVD_ERR_LEN] = "", out[CVD_HEADER_LEN];
	struct cvd_header h, back;
	struct cvd_payload pl;

	if (cvd_parse_header(p, n, &h, err)) {
		refused(err);
		return;
	}
	if (cvd_format_header(&h, out, err) || cvd_parse_header(out, sizeof(out), &back, err) ||
	    !header_eq(&h, &back))
		abort(); /* what parses is written back and read the same */
	if (cvd_payload_md5(p, n, &h, &pl, err) == 0) {
		if (pl.length != n - CVD_HEADER_LEN)
			abort();
		if (cvd_check_md5(&h, &pl, err) && !err[0])
			abort();
	} else {
		refused(err);
	}
	for (int t = CVD_TYPE_CVD; t <= CVD_TYPE_CUD; t++)
		if (cvd_header_check_type(&h, (enum cvd_type)t, err))
			refused(err);
}

static void fuzz_info(const char *p, size_t n, enum cvd_type type)
{
	char err[CVD_ERR_LEN] = "";
	struct cvd_info info, back;
	size_t len;
	char *out;

	if (cvd_parse_info(p, n, type, &info, err)) {
		refused(err);
		if (info.entries)
			abort(); /* nothing to free after a refusal */
		return;
	}
	if (info.has_dsig && (info.signed_len >= n || memcmp(p + info.signed_len, "DSIG:", 5)))
		abort();
	if (cvd_format_info(&info, &out, &len, err))
		abort();
	if (cvd_parse_info(out, len, type, &back, err) || back.n_entries != info.n_entries ||
	    !header_eq(&info.hdr, &back.hdr) || back.has_dsig != info.has_dsig ||
	    strcmp(back.dsig, info.dsig) ||
	    memcmp(back.entries, info.entries, info.n_entries * sizeof(*info.entries)))
		abort();
	(void)cvd_info_find(&info, info.entries[0].name);
	(void)cvd_info_matches_header(&info, &back.hdr, err);
	cvd_info_free(&back);
	cvd_info_free(&info);
	free(out);
}

static void fuzz_sign(const char *p, size_t n)
{
	char err[CVD_ERR_LEN] = "";
	struct cvd_sign s, back;
	size_t len;
	char *out;

	if (cvd_parse_sign(p, n, &s, err)) {
		refused(err);
		if (s.entries)
			abort();
		return;
	}
	if (cvd_format_sign(&s, &out, &len, err) || cvd_parse_sign(out, len, &back, err) ||
	    back.n_entries != s.n_entries)
		abort();
	for (size_t i = 0; i < s.n_entries; i++) {
		const struct cvd_sign_entry *a = &s.entries[i], *b = &back.entries[i];

		if (a->min_flevel != b->min_flevel || a->has_max != b->has_max ||
		    (a->has_max && a->max_flevel != b->max_flevel) || a->der_len != b->der_len ||
		    memcmp(a->der, b->der, a->der_len))
			abort();
		if (cvd_sign_select(&s, a->min_flevel) == NULL)
			abort();
	}
	cvd_sign_free(&back);
	cvd_sign_free(&s);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1;
	switch (data[0] % 3) {
	case 0:
		fuzz_container(p, n);
		break;
	case 1:
		fuzz_info(p, n, (enum cvd_type)((data[0] / 3) % 4));
		break;
	default:
		fuzz_sign(p, n);
		break;
	}
	return 0;
}
