/* digest: SHA-256 of a file's content (OpenSSL), shared by the
 * definitions store (manifests, fingerprints) and the poison table. */
#ifndef SE_COMMON_DIGEST_H
#define SE_COMMON_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_SHA256_LEN 32

/* digest_sha256_fd: SHA-256 of everything behind fd, read with pread from
 * offset 0 in 64 KiB blocks (the fd's offset is not moved: it may be shared,
 * e.g. a client's FILDES). At most max_bytes (0: no limit; a larger file is
 * -EFBIG, refused before reading when fstat already tells). *size (may be
 * NULL) gets the bytes hashed. out is written only on success. Returns 0 or
 * -errno (-EIO/-ENOMEM for OpenSSL failures). */
int digest_sha256_fd(int fd, uint64_t max_bytes, unsigned char out[DIGEST_SHA256_LEN],
		     uint64_t *size);

/* digest_hex: len bytes of md as lower-case hex into hex[2 * len + 1]. */
void digest_hex(const unsigned char *md, size_t len, char *hex);

#endif
