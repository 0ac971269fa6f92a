/*
 * archive.c - the archive file format, version 1 (docs/backup-format.md).
 *
 *   header    magic, version, key id, salt, time, id, job, checksum
 *   stream 0  the first file: secretstream header, then chunks
 *   stream 1  ...
 *   manifest  a stream like the others holding the manifest (JSON)
 *   trailer   end magic, where the manifest is, checksum
 *
 * A stream is one file's content compressed as one zstd frame, cut into
 * messages of at most CHUNK compressed bytes, each encrypted with
 * crypto_secretstream_xchacha20poly1305 under the archive's own key and
 * framed by its 32-bit length. The last message carries the FINAL tag, so
 * a stream cut short at a message boundary is noticed. The first message
 * of each stream is bound to the archive (BLAKE2b-256 of the header) and
 * to its position (the stream index) through the additional data, so
 * streams cannot be swapped or moved between archives unnoticed.
 *
 * The header and the trailer are plaintext (a backup can be listed and
 * pruned without the key) with a BLAKE2b checksum each, so that damage
 * there is reported as such. Every byte of a file is covered: the header
 * and trailer by their checksums, the streams (which tile the space in
 * between, as verify checks) by their authentication tags.
 *
 * Compression runs on zstd's own worker threads (one per CPU, at most
 * ZWORKERS_MAX) while the caller's thread hashes, encrypts and writes;
 * the result is still one frame per stream, and reading is unchanged.
 *
 * This file knows nothing of sources or repositories; it writes to and
 * reads from a file descriptor it is given.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "backup/backup_int.h"

#define MAGIC "SKBACKUP"
#define END_MAGIC "SKBKEND1"
#define CHUNK (256u * 1024)
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define SS_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define MSG_MAX (CHUNK + ABYTES)
#define TRAILER_LEN 32
#define HEADER_FIXED 48
#define HEADER_MAX 512
#define CHECKSUM_LEN 8
#define MANIFEST_MAX (1024u * 1024 * 1024)
#define ZLEVEL 3
/* At most this many zstd worker threads per writer (see compress_workers). */
#define ZWORKERS_MAX 4
/* Input per zstd worker job. With zstd's default at level 3 (8 MiB) a run
 * on 2 CPUs peaked at 84 MB resident; with 2 MiB at 36 MB, for archives
 * 0.5% larger and no slower (measured with bench/backup). */
#define ZJOB (2u * 1024 * 1024)

typedef crypto_secretstream_xchacha20poly1305_state ss_state;

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void checksum(const unsigned char *p, size_t n,
		     unsigned char out[CHECKSUM_LEN])
{
	crypto_generichash(out, CHECKSUM_LEN, p, n, NULL, 0);
}

/* The additional data of a stream's first message. */
static void first_ad(const unsigned char hdr_hash[32], uint32_t index,
		     unsigned char ad[36])
{
	memcpy(ad, hdr_hash, 32);
	put32(ad + 32, index);
}

/* Encodes h into out (HEADER_MAX bytes); returns the length. */
static size_t header_encode(const struct archive_header *h, unsigned char *out)
{
	size_t idlen = strlen(h->id), joblen = strlen(h->job), len;

	SK_ASSERT(idlen < BK_ID_MAX && joblen < BK_JOB_MAX);
	len = HEADER_FIXED + 1 + idlen + 1 + joblen + CHECKSUM_LEN;
	SK_ASSERT(len <= HEADER_MAX);
	memcpy(out, MAGIC, 8);
	put32(out + 8, h->version);
	put32(out + 12, (uint32_t)len);
	memcpy(out + 16, h->key_id, BK_KEY_ID_BYTES);
	memcpy(out + 24, h->salt, 16);
	put64(out + 40, (uint64_t)h->created_ms);
	out[48] = (unsigned char)idlen;
	memcpy(out + 49, h->id, idlen);
	out[49 + idlen] = (unsigned char)joblen;
	memcpy(out + 50 + idlen, h->job, joblen);
	checksum(out, len - CHECKSUM_LEN, out + len - CHECKSUM_LEN);
	return len;
}

static int pread_full(int fd, void *p, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ENODATA;
		got += (size_t)r;
	}
	return 0;
}

static int name_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x21 || ch > 0x7e || ch == '/')
			return 0;
	}
	return n > 0;
}

/*
 * Reads and checks the header of fd. On success fills h, *hlen and
 * hdr_hash (BLAKE2b-256 of the whole header).
 */
static int header_read(int fd, uint64_t size, struct archive_header *h,
		       uint32_t *hlen, unsigned char hdr_hash[32], char *err,
		       size_t errlen)
{
	unsigned char b[HEADER_MAX], sum[CHECKSUM_LEN];
	size_t n = size < HEADER_MAX ? (size_t)size : HEADER_MAX;
	uint32_t len;
	size_t idlen, joblen;
	int r;

	if (size < 16) {
		snprintf(err, errlen,
			 "the file is truncated (%llu bytes): it does not even hold a "
			 "header",
			 (unsigned long long)size);
		return -EBADMSG;
	}
	r = pread_full(fd, b, n, 0);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the header: %s", strerror(-r));
		return r;
	}
	if (memcmp(b, MAGIC, 8) != 0) {
		snprintf(err, errlen, "not a storekeep archive (no SKBACKUP magic)");
		return -EBADMSG;
	}
	h->version = get32(b + 8);
	len = get32(b + 12);
	if (len < HEADER_FIXED + 2 + CHECKSUM_LEN || len > HEADER_MAX) {
		if (h->version != ARCHIVE_VERSION)
			goto other;
		snprintf(err, errlen, "the header is damaged (length %u)", len);
		return -EBADMSG;
	}
	if (len > n) {
		snprintf(err, errlen,
			 "the file is truncated (%llu bytes): the header is not "
			 "complete",
			 (unsigned long long)size);
		return -EBADMSG;
	}
	/* The checksum comes before the version: a damaged version field
	 * must not pass for an archive of a newer storekeep. */
	checksum(b, len - CHECKSUM_LEN, sum);
	if (sodium_memcmp(sum, b + len - CHECKSUM_LEN, CHECKSUM_LEN) != 0) {
		if (h->version != ARCHIVE_VERSION)
			goto other;
		snprintf(err, errlen,
			 "the header is damaged (checksum mismatch in the first %u "
			 "bytes)",
			 len);
		return -EBADMSG;
	}
	if (h->version != ARCHIVE_VERSION) {
		snprintf(err, errlen,
			 "archive format version %u, but this storekeep reads version "
			 "%d: use a newer storekeep",
			 h->version, ARCHIVE_VERSION);
		return h->version > ARCHIVE_VERSION ? -ENOTSUP : -EBADMSG;
	}
	memcpy(h->key_id, b + 16, BK_KEY_ID_BYTES);
	memcpy(h->salt, b + 24, 16);
	h->created_ms = (int64_t)get64(b + 40);
	idlen = b[48];
	if (49 + idlen + 1 > len - CHECKSUM_LEN)
		goto bad;
	joblen = b[49 + idlen];
	if (50 + idlen + joblen != len - CHECKSUM_LEN || idlen >= BK_ID_MAX ||
	    joblen >= BK_JOB_MAX || !name_ok((char *)b + 49, idlen) ||
	    !name_ok((char *)b + 50 + idlen, joblen))
		goto bad;
	memcpy(h->id, b + 49, idlen);
	h->id[idlen] = '\0';
	memcpy(h->job, b + 50 + idlen, joblen);
	h->job[joblen] = '\0';
	*hlen = len;
	crypto_generichash(hdr_hash, 32, b, len, NULL, 0);
	return 0;
bad:
	snprintf(err, errlen, "the header is damaged (bad id or job name)");
	return -EBADMSG;
other:
	snprintf(err, errlen,
		 "the header is damaged, or was written by another storekeep (its "
		 "format version field reads %u)",
		 h->version);
	return -EBADMSG;
}

/* --- writer ------------------------------------------------------------------ */

/* Threads zstd compresses with, beside the caller's (which hashes,
 * encrypts and writes meanwhile): one per CPU, at most ZWORKERS_MAX, so
 * that a run on a big machine leaves the event loops most of it. */
static int compress_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > ZWORKERS_MAX ? ZWORKERS_MAX : (int)n;
}

struct archive_writer {
	int fd;
	uint64_t off;
	unsigned char key[BK_KEY_BYTES];
	unsigned char hdr_hash[32];
	ss_state ss;
	crypto_generichash_state hs;
	ZSTD_CCtx *zc;
	unsigned char *z; /* compressed bytes waiting for encryption */
	size_t zlen;
	unsigned char *c; /* length + ciphertext of one message */
	uint32_t index;
	int open;
	int first;
	int manifest_written;
	struct archive_stream_info cur;
};

static int put(struct archive_writer *w, const void *p, size_t n)
{
	int r = repo_write_all(w->fd, p, n);

	if (r == 0) {
		w->off += n;
		w->cur.stored += n;
	}
	return r;
}

/* Encrypts the waiting compressed bytes as one message with tag. */
static int emit(struct archive_writer *w, unsigned char tag)
{
	unsigned char ad[36];
	unsigned long long clen;

	first_ad(w->hdr_hash, w->index, ad);
	crypto_secretstream_xchacha20poly1305_push(
		&w->ss, w->c + 4, &clen, w->z, w->zlen, w->first ? ad : NULL,
		w->first ? sizeof(ad) : 0, tag);
	put32(w->c, (uint32_t)clen);
	w->first = 0;
	w->zlen = 0;
	return put(w, w->c, 4 + (size_t)clen);
}

int archive_writer_new(int fd, const struct backup_key *key,
		       struct archive_header *h, struct archive_writer **out)
{
	unsigned char hdr[HEADER_MAX];
	struct archive_writer *w;
	size_t len;
	int r;

	if (sodium_init() < 0)
		return -ENOSYS;
	w = calloc(1, sizeof(*w));
	SK_ASSERT(w != NULL);
	w->fd = fd;
	w->zc = ZSTD_createCCtx();
	w->z = malloc(CHUNK);
	w->c = malloc(4 + MSG_MAX);
	SK_ASSERT(w->zc && w->z && w->c);
	ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel, ZLEVEL);
	/* Still one zstd frame per stream, as the format says; a libzstd
	 * built without threads refuses this and compresses in the caller. */
	if (!ZSTD_isError(ZSTD_CCtx_setParameter(w->zc, ZSTD_c_nbWorkers,
						 compress_workers())))
		ZSTD_CCtx_setParameter(w->zc, ZSTD_c_jobSize, ZJOB);
	h->version = ARCHIVE_VERSION;
	memcpy(h->key_id, key->id, BK_KEY_ID_BYTES);
	randombytes_buf(h->salt, sizeof(h->salt));
	key_derive_archive(key, h->salt, w->key);
	len = header_encode(h, hdr);
	crypto_generichash(w->hdr_hash, 32, hdr, len, NULL, 0);
	r = put(w, hdr, len);
	if (r < 0) {
		archive_writer_free(w);
		return r;
	}
	*out = w;
	return 0;
}

uint64_t archive_writer_offset(const struct archive_writer *w)
{
	return w->off;
}

int archive_stream_begin(struct archive_writer *w, uint32_t index)
{
	unsigned char sshdr[SS_HEADER];

	SK_ASSERT(!w->open);
	memset(&w->cur, 0, sizeof(w->cur));
	w->cur.offset = w->off;
	w->index = index;
	w->first = 1;
	w->zlen = 0;
	crypto_secretstream_xchacha20poly1305_init_push(&w->ss, sshdr, w->key);
	crypto_generichash_init(&w->hs, NULL, 0, BK_HASH_BYTES);
	ZSTD_CCtx_reset(w->zc, ZSTD_reset_session_only);
	w->open = 1;
	return put(w, sshdr, sizeof(sshdr));
}

int archive_stream_write(struct archive_writer *w, const void *p, size_t n)
{
	ZSTD_inBuffer in = {p, n, 0};
	int r;

	SK_ASSERT(w->open);
	crypto_generichash_update(&w->hs, p, n);
	w->cur.size += n;
	while (in.pos < in.size) {
		ZSTD_outBuffer o = {w->z, CHUNK, w->zlen};
		size_t zr = ZSTD_compressStream2(w->zc, &o, &in, ZSTD_e_continue);

		if (ZSTD_isError(zr))
			return -EIO;
		w->zlen = o.pos;
		if (w->zlen == CHUNK) {
			r = emit(w, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int archive_stream_end(struct archive_writer *w,
		       struct archive_stream_info *info)
{
	int r;

	SK_ASSERT(w->open);
	for (;;) {
		ZSTD_inBuffer in = {NULL, 0, 0};
		ZSTD_outBuffer o = {w->z, CHUNK, w->zlen};
		size_t left = ZSTD_compressStream2(w->zc, &o, &in, ZSTD_e_end);

		if (ZSTD_isError(left))
			return -EIO;
		w->zlen = o.pos;
		if (left == 0)
			break;
		if (w->zlen == CHUNK) {
			r = emit(w, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
			if (r < 0)
				return r;
		}
	}
	r = emit(w, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
	if (r < 0)
		return r;
	crypto_generichash_final(&w->hs, w->cur.hash, BK_HASH_BYTES);
	w->open = 0;
	if (info)
		*info = w->cur;
	return 0;
}

int archive_writer_finish(struct archive_writer *w, const void *manifest,
			  size_t len)
{
	unsigned char t[TRAILER_LEN];
	uint64_t moff;
	int r;

	SK_ASSERT(!w->open && !w->manifest_written);
	moff = w->off;
	r = archive_stream_begin(w, ARCHIVE_STREAM_MANIFEST);
	if (r == 0)
		r = archive_stream_write(w, manifest, len);
	if (r == 0)
		r = archive_stream_end(w, NULL);
	if (r < 0)
		return r;
	memcpy(t, END_MAGIC, 8);
	put64(t + 8, moff);
	put64(t + 16, w->off - moff);
	checksum(t, 24, t + 24);
	w->manifest_written = 1;
	return put(w, t, sizeof(t));
}

void archive_writer_free(struct archive_writer *w)
{
	if (w == NULL)
		return;
	sodium_memzero(w->key, sizeof(w->key));
	sodium_memzero(&w->ss, sizeof(w->ss));
	ZSTD_freeCCtx(w->zc);
	free(w->z);
	free(w->c);
	free(w);
}

/* --- reader ------------------------------------------------------------------ */

struct archive_reader {
	int fd;
	uint64_t size;
	struct archive_header h;
	uint32_t hlen;
	unsigned char hdr_hash[32];
	unsigned char key[BK_KEY_BYTES];
	uint64_t moff, mlen;
	unsigned char *c;
	unsigned char *m;
	unsigned char *out;
	size_t outcap;
	ZSTD_DCtx *zd;
};

int archive_read_header(const char *path, struct archive_header *h,
			char *err, size_t errlen)
{
	unsigned char hh[32];
	struct stat st;
	uint32_t hlen;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot stat: %s", strerror(errno));
	} else {
		r = header_read(fd, (uint64_t)st.st_size, h, &hlen, hh, err,
				errlen);
	}
	close(fd);
	return r;
}

int archive_reader_open(const char *path, const struct backup_key *key,
			struct archive_reader **out, char *err, size_t errlen)
{
	struct archive_reader *r;
	unsigned char t[TRAILER_LEN], sum[CHECKSUM_LEN];
	struct stat st;
	int rc;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot be initialised");
		return -ENOSYS;
	}
	r = calloc(1, sizeof(*r));
	SK_ASSERT(r != NULL);
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (fstat(r->fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	r->size = (uint64_t)st.st_size;
	rc = header_read(r->fd, r->size, &r->h, &r->hlen, r->hdr_hash, err,
			 errlen);
	if (rc < 0)
		goto fail;
	if (sodium_memcmp(r->h.key_id, key->id, BK_KEY_ID_BYTES) != 0) {
		char want[17], have[17];

		key_id_hex(r->h.key_id, want);
		key_id_hex(key->id, have);
		snprintf(err, errlen,
			 "wrong key: the archive was encrypted with key %s, but the "
			 "key file holds key %s",
			 want, have);
		rc = -EKEYREJECTED;
		goto fail;
	}
	if (r->size < (uint64_t)r->hlen + TRAILER_LEN) {
		snprintf(err, errlen,
			 "the archive is truncated (%llu bytes): it ends before its "
			 "end marker",
			 (unsigned long long)r->size);
		rc = -EBADMSG;
		goto fail;
	}
	rc = pread_full(r->fd, t, sizeof(t), r->size - TRAILER_LEN);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read the end marker: %s",
			 strerror(-rc));
		goto fail;
	}
	if (memcmp(t, END_MAGIC, 8) != 0) {
		snprintf(err, errlen,
			 "the archive is truncated or its end is damaged: no end "
			 "marker in its last %d bytes (%llu bytes in all)",
			 TRAILER_LEN, (unsigned long long)r->size);
		rc = -EBADMSG;
		goto fail;
	}
	checksum(t, 24, sum);
	r->moff = get64(t + 8);
	r->mlen = get64(t + 16);
	if (sodium_memcmp(sum, t + 24, CHECKSUM_LEN) != 0 ||
	    r->moff < r->hlen || r->mlen > r->size ||
	    r->moff + r->mlen != r->size - TRAILER_LEN) {
		snprintf(err, errlen,
			 "the end marker (last %d bytes) is damaged or the archive "
			 "was truncated",
			 TRAILER_LEN);
		rc = -EBADMSG;
		goto fail;
	}
	key_derive_archive(key, r->h.salt, r->key);
	r->c = malloc(MSG_MAX);
	r->m = malloc(CHUNK);
	r->outcap = ZSTD_DStreamOutSize();
	r->out = malloc(r->outcap);
	r->zd = ZSTD_createDCtx();
	SK_ASSERT(r->c && r->m && r->out && r->zd);
	*out = r;
	return 0;
fail:
	archive_reader_free(r);
	return rc;
}

const struct archive_header *archive_reader_header(const struct archive_reader *r)
{
	return &r->h;
}

uint64_t archive_reader_data_start(const struct archive_reader *r)
{
	return r->hlen;
}

uint64_t archive_reader_manifest_offset(const struct archive_reader *r)
{
	return r->moff;
}

/* Hands the plaintext of one message to zstd and the output to sink. */
static int inflate_msg(struct archive_reader *r, size_t mlen,
		       crypto_generichash_state *hs, archive_sink_fn sink,
		       void *ud, uint64_t *size, size_t *zret)
{
	ZSTD_inBuffer in = {r->m, mlen, 0};
	int more;

	do {
		ZSTD_outBuffer o = {r->out, r->outcap, 0};
		size_t before = in.pos, ret;

		ret = ZSTD_decompressStream(r->zd, &o, &in);
		if (ZSTD_isError(ret)) {
			*zret = ret;
			return -EBADMSG;
		}
		/* A call that moved nothing (the output had been filled
		 * exactly at the frame's end) says nothing about the frame:
		 * it would report the start of a next one. */
		if (o.pos || in.pos != before)
			*zret = ret;
		if (o.pos) {
			int rc;

			crypto_generichash_update(hs, r->out, o.pos);
			*size += o.pos;
			rc = sink(ud, r->out, o.pos);
			if (rc < 0)
				return rc;
		}
		more = o.pos == o.size;
	} while (in.pos < in.size || more);
	return 0;
}

int archive_reader_stream(struct archive_reader *r, uint32_t index,
			  uint64_t off, uint64_t stored, archive_sink_fn sink,
			  void *ud, unsigned char hash[BK_HASH_BYTES],
			  uint64_t *size, char *err, size_t errlen)
{
	unsigned char sshdr[SS_HEADER], lenb[4], ad[36];
	crypto_generichash_state hs;
	ss_state ss;
	uint64_t end = off + stored, pos = off;
	size_t zret = 1;
	unsigned chunk = 0;
	int final = 0, rc;

	*size = 0;
	if (off < r->hlen || stored < SS_HEADER || end < off ||
	    end > r->size - TRAILER_LEN ||
	    (index != ARCHIVE_STREAM_MANIFEST && end > r->moff)) {
		snprintf(err, errlen,
			 "its place in the archive (bytes %llu..%llu) is outside the "
			 "data",
			 (unsigned long long)off, (unsigned long long)end);
		return -EBADMSG;
	}
	rc = pread_full(r->fd, sshdr, sizeof(sshdr), off);
	if (rc < 0)
		goto ioerr;
	if (crypto_secretstream_xchacha20poly1305_init_pull(&ss, sshdr, r->key) != 0) {
		snprintf(err, errlen, "its stream header at byte %llu is damaged",
			 (unsigned long long)off);
		return -EBADMSG;
	}
	crypto_generichash_init(&hs, NULL, 0, BK_HASH_BYTES);
	ZSTD_DCtx_reset(r->zd, ZSTD_reset_session_only);
	first_ad(r->hdr_hash, index, ad);
	pos = off + SS_HEADER;
	while (!final) {
		unsigned long long mlen;
		unsigned char tag;
		uint32_t clen;

		if (pos + 4 > end) {
			snprintf(err, errlen,
				 "its data ends at byte %llu before its last chunk "
				 "(cut short or damaged)",
				 (unsigned long long)pos);
			rc = -EBADMSG;
			goto out;
		}
		rc = pread_full(r->fd, lenb, 4, pos);
		if (rc < 0)
			goto ioerr;
		clen = get32(lenb);
		if (clen < ABYTES || clen > MSG_MAX || pos + 4 + clen > end) {
			snprintf(err, errlen,
				 "chunk %u at byte %llu is damaged (bad length %u)",
				 chunk, (unsigned long long)pos, clen);
			rc = -EBADMSG;
			goto out;
		}
		rc = pread_full(r->fd, r->c, clen, pos + 4);
		if (rc < 0)
			goto ioerr;
		if (crypto_secretstream_xchacha20poly1305_pull(
			    &ss, r->m, &mlen, &tag, r->c, clen,
			    chunk == 0 ? ad : NULL, chunk == 0 ? sizeof(ad) : 0) != 0) {
			snprintf(err, errlen,
				 "chunk %u at byte %llu failed authentication: the "
				 "archive was changed or damaged there",
				 chunk, (unsigned long long)pos);
			rc = -EBADMSG;
			goto out;
		}
		if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL)
			final = 1;
		else if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) {
			snprintf(err, errlen, "chunk %u has an unknown tag %u", chunk,
				 tag);
			rc = -EBADMSG;
			goto out;
		}
		rc = inflate_msg(r, (size_t)mlen, &hs, sink, ud, size, &zret);
		if (rc == -EBADMSG) {
			snprintf(err, errlen,
				 "chunk %u cannot be decompressed: %s", chunk,
				 ZSTD_getErrorName(zret));
			goto out;
		}
		if (rc < 0) {
			snprintf(err, errlen, "%s", strerror(-rc));
			goto out;
		}
		pos += 4 + clen;
		chunk++;
	}
	if (pos != end) {
		snprintf(err, errlen,
			 "%llu unexpected bytes after its last chunk",
			 (unsigned long long)(end - pos));
		rc = -EBADMSG;
		goto out;
	}
	if (zret != 0) {
		snprintf(err, errlen, "its compressed data is incomplete");
		rc = -EBADMSG;
		goto out;
	}
	crypto_generichash_final(&hs, hash, BK_HASH_BYTES);
	rc = 0;
out:
	sodium_memzero(&ss, sizeof(ss));
	return rc;
ioerr:
	snprintf(err, errlen, "read error at byte %llu: %s",
		 (unsigned long long)pos, rc == -ENODATA ? "unexpected end of file"
							 : strerror(-rc));
	sodium_memzero(&ss, sizeof(ss));
	return rc == -ENODATA ? -EBADMSG : rc;
}

static int manifest_sink(void *ud, const void *p, size_t n)
{
	struct buf *b = ud;

	if (b->len + n > MANIFEST_MAX)
		return -EFBIG;
	if (buf_reserve(b, n) < 0)
		return -ENOMEM;
	buf_append(b, p, n);
	return 0;
}

int archive_reader_manifest(struct archive_reader *r, char **json,
			    size_t *len, char *err, size_t errlen)
{
	unsigned char hash[BK_HASH_BYTES];
	char why[256];
	uint64_t size;
	struct buf b;
	int rc;

	buf_init(&b);
	rc = archive_reader_stream(r, ARCHIVE_STREAM_MANIFEST, r->moff, r->mlen,
				   manifest_sink, &b, hash, &size, why,
				   sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "the manifest is damaged: %s", why);
		buf_fini(&b);
		return rc;
	}
	*json = buf_steal(&b, len);
	return 0;
}

void archive_reader_free(struct archive_reader *r)
{
	if (r == NULL)
		return;
	if (r->fd >= 0)
		close(r->fd);
	sodium_memzero(r->key, sizeof(r->key));
	free(r->c);
	free(r->m);
	free(r->out);
	ZSTD_freeDCtx(r->zd);
	free(r);
}
