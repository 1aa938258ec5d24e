/* ignores: the ignore marks the verdict cache placed (onaccess.h), kept
 * by file handle so that they can be removed one by one when the
 * definitions change or the verdicts' time is up. The other way, a flush
 * of the group's inode marks, takes the directory marks of the watched
 * trees with it: they must be placed again, and opens in the trees go
 * unscanned in between (about 1.5 s for /usr and /etc). The flush is only
 * the fallback: for a mark on a mount none of the watched roots is on
 * (its handle cannot be opened), or when more marks were placed than are
 * kept here.
 *
 * open_by_handle_at needs a descriptor on the same mount: each
 * OnAccessIncludePath and OnAccessMountPath root directory and each mount
 * marked below an include path is known by path and mount ID, and opened
 * only while the marks are removed (a descriptor kept open would make an
 * umount of the mount fail with EBUSY). A root whose path names another
 * mount by then cannot reach its marks: they went with their mount, or
 * the flush reaches them. (The supervisor opens them itself: its own opens
 * are answered by the reader thread.) */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include "common/util.h"
#include "fanotify/onaccess_int.h"

#define MAX_KEPT OA_CACHE_SIZE

struct oa_handle {
	int mount_id;
	struct file_handle *fh;
};

static bool known_mount(const struct onaccess *oa, int mount_id)
{
	for (size_t i = 0; i < oa->nroots; i++)
		if (oa->roots[i].mount_id == mount_id)
			return true;
	return false;
}

/* A descriptor of path's directory and its mount ID, or -1. Not O_PATH:
 * open_by_handle_at refuses such a mount descriptor. */
static int open_root(const char *path, int *mount_id)
{
	struct {
		struct file_handle h;
		unsigned char b[MAX_HANDLE_SZ];
	} fh;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	fh.h.handle_bytes = MAX_HANDLE_SZ;
	if (fd >= 0 && name_to_handle_at(fd, "", &fh.h, mount_id, AT_EMPTY_PATH) < 0)
		util_close(&fd);
	return fd;
}

void oa_ignores_add_root(struct onaccess *oa, const char *path)
{
	int mid, fd;

	if (oa->nroots >= OA_MAX_ROOTS)
		return;
	fd = open_root(path, &mid);
	if (fd < 0)
		return;
	close(fd);
	if (known_mount(oa, mid))
		return;
	oa->roots[oa->nroots].path = strdup(path);
	if (!oa->roots[oa->nroots].path)
		return;
	oa->roots[oa->nroots].mount_id = mid;
	oa->nroots++;
}

void oa_ignores_init(struct onaccess *oa)
{
	for (size_t i = 0; i < oa->cfg->oa_include_path.n; i++)
		oa_ignores_add_root(oa, oa->cfg->oa_include_path.items[i]);
	for (size_t i = 0; i < oa->cfg->oa_mount_path.n; i++)
		oa_ignores_add_root(oa, oa->cfg->oa_mount_path.items[i]);
	for (size_t i = 0; i < oa->nmounts; i++)
		oa_ignores_add_root(oa, oa->mounts[i].path);
}

void oa_ignores_note(struct onaccess *oa, int fd)
{
	struct {
		struct file_handle h;
		unsigned char b[MAX_HANDLE_SZ];
	} fh;
	struct oa_handle *v;
	int mid;

	fh.h.handle_bytes = MAX_HANDLE_SZ;
	if (oa->nkept >= MAX_KEPT || name_to_handle_at(fd, "", &fh.h, &mid, AT_EMPTY_PATH) < 0 ||
	    !known_mount(oa, mid)) {
		oa->ignores_lost = true; /* only a flush reaches this one */
		return;
	}
	if (oa->nkept == oa->kept_cap) {
		size_t cap = oa->kept_cap ? oa->kept_cap * 2 : 256;

		v = realloc(oa->kept, cap * sizeof(*v));
		if (!v) {
			oa->ignores_lost = true;
			return;
		}
		oa->kept = v;
		oa->kept_cap = cap;
	}
	v = &oa->kept[oa->nkept];
	v->fh = malloc(sizeof(struct file_handle) + fh.h.handle_bytes);
	if (!v->fh) {
		oa->ignores_lost = true;
		return;
	}
	memcpy(v->fh, &fh.h, sizeof(struct file_handle) + fh.h.handle_bytes);
	v->mount_id = mid;
	oa->nkept++;
}

static void forget(struct onaccess *oa)
{
	for (size_t i = 0; i < oa->nkept; i++)
		free(oa->kept[i].fh);
	oa->nkept = 0;
	oa->ignores_lost = false;
}

int oa_ignores_remove_all(struct onaccess *oa, uint64_t mask, size_t *removed)
{
	int fds[OA_MAX_ROOTS];

	*removed = 0;
	if (oa->ignores_lost) {
		forget(oa);
		return -EAGAIN;
	}
	for (size_t i = 0; i < oa->nroots; i++) {
		int mid;

		fds[i] = open_root(oa->roots[i].path, &mid);
		if (fds[i] >= 0 && mid != oa->roots[i].mount_id)
			util_close(&fds[i]); /* another mount by now */
	}
	for (size_t i = 0; i < oa->nkept; i++) {
		int fd = -1;

		for (size_t j = 0; j < oa->nroots; j++)
			if (oa->roots[j].mount_id == oa->kept[i].mount_id)
				fd = fds[j];
		/* an inode evicted meanwhile took its mark along: ESTALE, ENOENT.
		 * Not O_PATH: fanotify_mark refuses such a descriptor (this
		 * open's own event is the supervisor's, answered by the reader
		 * thread at once). */
		if (fd >= 0)
			fd = open_by_handle_at(fd, oa->kept[i].fh,
					       O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fanotify_mark(oa->fan, FAN_MARK_REMOVE | FAN_MARK_IGNORE, mask, fd, NULL) == 0)
			(*removed)++;
		close(fd);
	}
	for (size_t i = 0; i < oa->nroots; i++)
		util_close(&fds[i]);
	forget(oa);
	return 0;
}

void oa_ignores_free(struct onaccess *oa)
{
	forget(oa);
	free(oa->kept);
	oa->kept = NULL;
	oa->kept_cap = 0;
	for (size_t i = 0; i < oa->nroots; i++)
		free(oa->roots[i].path);
	oa->nroots = 0;
}
