/* digest: SHA-256 of a file's content (see digest.h). */
#include "common/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_BLOCK (64 * 1024)

int digest_sha256_fd(int fd, uint64_t max_bytes, unsigned char out[DIGEST_SHA256_LEN],
		     uint64_t *size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	unsigned char *buf = NULL;
	uint64_t off = 0;
	struct stat st;
	ssize_t n;
	int ret;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (max_bytes && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes)
		return -EFBIG;
	/* on the heap: callers may run on small stacks */
	buf = malloc(READ_BLOCK);
	ctx = EVP_MD_CTX_new();
	if (!buf || !ctx) {
		ret = -ENOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		ret = -EIO;
		goto out;
	}
	for (;;) {
		n = pread(fd, buf, READ_BLOCK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		off += (uint64_t)n;
		/* the limit holds for files whose size fstat does not tell */
		if (max_bytes && off > max_bytes) {
			ret = -EFBIG;
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			ret = -EIO;
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != DIGEST_SHA256_LEN) {
		ret = -EIO;
		goto out;
	}
	memcpy(out, md, DIGEST_SHA256_LEN);
	if (size)
		*size = off;
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return ret;
}

void digest_hex(const unsigned char *md, size_t len, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[2 * len] = '\0';
}
