/*
 * key.c - the backup key file.
 *
 * A key file holds 32 random bytes, as 64 hex digits on a line of its own
 * after the prefix "sk-backup-key-1:", with comment lines (starting with
 * '#') that tell the operator what the file is. Everything derived from
 * the key uses keyed BLAKE2b (crypto_generichash):
 *
 *   key id      = BLAKE2b-64 (key, "storekeep key id v1")
 *   archive key = BLAKE2b-256(key, "storekeep archive v1" || salt)
 *
 * The key id is public: it is written into every archive header, so that
 * a wrong key is reported as such instead of as damage.
 *
 * Invariants: a key is only ever held in sodium_malloc'd memory (guarded,
 * locked, wiped on free), and every stack buffer that held key material is
 * wiped with sodium_memzero before it goes out of scope. The key file is
 * created with mode 0600 and never replaced without force; a key file that
 * group or others may access is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup_int.h"

#define KEY_PREFIX "sk-backup-key-1:"
#define KEY_FILE_MAX 4096

static const char id_context[] = "storekeep key id v1";
static const char archive_context[] = "storekeep archive v1";

static int crypto_ready(void)
{
	/* sodium_init() is idempotent and thread-safe; it returns 1 when it
	 * had already run. */
	return sodium_init() < 0 ? -ENOSYS : 0;
}

static void compute_id(struct backup_key *k)
{
	crypto_generichash(k->id, sizeof(k->id),
			   (const unsigned char *)id_context,
			   sizeof(id_context) - 1, k->k, sizeof(k->k));
}

void key_id_hex(const unsigned char id[BK_KEY_ID_BYTES], char out[17])
{
	bk_hex(id, BK_KEY_ID_BYTES, out);
}

void backup_key_id(const struct backup_key *k, char out[17])
{
	key_id_hex(k->id, out);
}

void key_derive_archive(const struct backup_key *k,
			const unsigned char salt[16],
			unsigned char out[BK_KEY_BYTES])
{
	unsigned char msg[sizeof(archive_context) - 1 + 16];

	memcpy(msg, archive_context, sizeof(archive_context) - 1);
	memcpy(msg + sizeof(archive_context) - 1, salt, 16);
	crypto_generichash(out, BK_KEY_BYTES, msg, sizeof(msg), k->k,
			   sizeof(k->k));
}

static struct backup_key *key_alloc(void)
{
	struct backup_key *k = sodium_malloc(sizeof(*k));

	SK_ASSERT(k != NULL);
	return k;
}

void backup_key_free(struct backup_key *k)
{
	if (k != NULL)
		sodium_free(k); /* wipes */
}

int backup_key_create(const char *path, int force, char *err, size_t errlen)
{
	char tmp[PATH_MAX], hex[2 * BK_KEY_BYTES + 1], id[17];
	struct backup_key *k = NULL;
	struct buf text;
	char *dir = NULL, *slash;
	int fd = -1, r;

	buf_init(&text);
	if (crypto_ready() < 0) {
		snprintf(err, errlen, "libsodium cannot be initialised");
		return -ENOSYS;
	}
	if (!force && access(path, F_OK) == 0) {
		snprintf(err, errlen,
			 "key file %s already exists; a new key would leave every "
			 "archive made with it unreadable. Use --force to replace it "
			 "(keep a copy of the old one first)",
			 path);
		return -EEXIST;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		snprintf(err, errlen, "key file path %s is too long", path);
		return -ENAMETOOLONG;
	}
	k = key_alloc();
	randombytes_buf(k->k, sizeof(k->k));
	compute_id(k);
	sodium_bin2hex(hex, sizeof(hex), k->k, sizeof(k->k));
	backup_key_id(k, id);
	buf_printf(&text,
		   "# storekeep backup key (key id %s)\n"
		   "# Every archive is encrypted with this key: without it no "
		   "backup can be\n"
		   "# restored. Keep a copy somewhere safe, off this machine.\n"
		   "%s%s\n",
		   id, KEY_PREFIX, hex);
	sodium_memzero(hex, sizeof(hex));

	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, 0600) < 0 || repo_write_all(fd, text.data, text.len) < 0 ||
	    fsync(fd) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	/* Without force, link() fails if a key appeared meanwhile: an
	 * existing key is never replaced by accident. */
	if (force)
		r = rename(tmp, path);
	else
		r = link(tmp, path);
	if (r < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot create key file %s: %s", path,
			 strerror(errno));
		goto fail;
	}
	unlink(tmp);
	dir = strdup(path);
	SK_ASSERT(dir != NULL);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	(void)repo_fsync_dir(dir);
	free(dir);
	sodium_memzero(text.data, text.len);
	buf_fini(&text);
	backup_key_free(k);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	if (text.data)
		sodium_memzero(text.data, text.cap);
	buf_fini(&text);
	backup_key_free(k);
	return r;
}

int backup_key_load(const char *path, struct backup_key **out, char *err,
		    size_t errlen)
{
	struct backup_key *k = NULL;
	struct stat st;
	char *text = NULL, *line, *next;
	size_t binlen = 0;
	ssize_t n;
	int fd, r, found = 0;

	if (crypto_ready() < 0) {
		snprintf(err, errlen, "libsodium cannot be initialised");
		return -ENOSYS;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		if (errno == ENOENT)
			snprintf(err, errlen,
				 "key file %s does not exist (create one with "
				 "`storekeep backup init`)",
				 path);
		else
			snprintf(err, errlen, "key file %s: %s", path,
				 strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key file %s: not a regular file", path);
		r = -EINVAL;
		goto fail;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "key file %s is accessible by group or others (mode "
			 "%04o): refusing to use it; run chmod 600 %s",
			 path, (unsigned)(st.st_mode & 07777), path);
		r = -EPERM;
		goto fail;
	}
	if (st.st_size > KEY_FILE_MAX) {
		snprintf(err, errlen, "key file %s: too large to be a key", path);
		r = -EINVAL;
		goto fail;
	}
	text = sodium_malloc(KEY_FILE_MAX + 1);
	SK_ASSERT(text != NULL);
	n = read(fd, text, KEY_FILE_MAX);
	if (n < 0) {
		r = -errno;
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		goto fail;
	}
	text[n] = '\0';
	k = key_alloc();
	for (line = text; line && *line; line = next) {
		char *hex;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strncmp(line, KEY_PREFIX, strlen(KEY_PREFIX)) != 0 || found)
			break;
		hex = line + strlen(KEY_PREFIX);
		if (strlen(hex) > 0 && hex[strlen(hex) - 1] == '\r')
			hex[strlen(hex) - 1] = '\0';
		if (strlen(hex) != 2 * BK_KEY_BYTES ||
		    sodium_hex2bin(k->k, sizeof(k->k), hex, strlen(hex), NULL,
				   &binlen, NULL) != 0 ||
		    binlen != BK_KEY_BYTES)
			break;
		found = 1;
	}
	if (!found || (line && *line)) {
		snprintf(err, errlen,
			 "key file %s does not hold a storekeep backup key (a line "
			 "\"%s\" followed by 64 hex digits)",
			 path, KEY_PREFIX);
		r = -EINVAL;
		goto fail;
	}
	compute_id(k);
	sodium_free(text);
	close(fd);
	*out = k;
	return 0;
fail:
	if (text)
		sodium_free(text);
	backup_key_free(k);
	close(fd);
	return r;
}
