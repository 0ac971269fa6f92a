/*
 * test_archive.c - the archive format and the key file, through
 * backup/backup_int.h.
 *
 * Round trip: streams of every shape (empty, one byte, compressible,
 * incompressible, larger than a chunk, larger than many of zstd's
 * multi-threaded jobs) come back byte for byte with the hashes the writer
 * reported, and the manifest too. Then the archive is
 * damaged on purpose: every byte of the header and the trailer, the
 * boundaries of every stream and a sample of everything else is flipped
 * in turn, and reading the whole archive must fail each time; truncation
 * at any length and a wrong key fail with their own errors. The key file
 * cases: created 0600, refused when group or others may read it, never
 * replaced without force.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/backup_int.h"

#define NSTREAMS 7

struct fixture {
	char dir[64];
	char path[128];
	char keypath[128];
	struct backup_key *key;
	unsigned char *data[NSTREAMS];
	size_t len[NSTREAMS];
	struct archive_stream_info info[NSTREAMS];
	const char *manifest;
	uint64_t size;
};

static struct fixture F;

static void fill(void)
{
	/* The last two are whole multiples of zstd's block and output
	 * buffer sizes: the frame ends exactly as an output buffer fills. */
	static const size_t lens[NSTREAMS] = {0,	  1,	      700 * 1024,
					      300 * 1024, 5000,	      128 * 1024,
					      512 * 1024};

	for (int i = 0; i < NSTREAMS; i++) {
		F.len[i] = lens[i];
		F.data[i] = malloc(lens[i] + 1);
		assert_non_null(F.data[i]);
	}
	F.data[1][0] = 'x';
	/* Compressible text. */
	for (size_t i = 0; i < F.len[2]; i++)
		F.data[2][i] = (unsigned char)("storekeep backups "[i % 18]);
	/* Incompressible: bigger than one chunk after compression. */
	randombytes_buf(F.data[3], F.len[3]);
	for (size_t i = 0; i < F.len[4]; i++)
		F.data[4][i] = (unsigned char)(i * 7);
	randombytes_buf(F.data[5], F.len[5]);
	for (size_t i = 0; i < F.len[6]; i++)
		F.data[6][i] = (unsigned char)(i % 4096 < 100 ? i : 0);
}

static void write_archive(void)
{
	struct archive_header h;
	struct archive_writer *w;
	struct stat st;
	int fd;

	memset(&h, 0, sizeof(h));
	h.created_ms = 1767225600123LL;
	strcpy(h.id, "nightly-20260101T000000Z-abcd");
	strcpy(h.job, "nightly");
	fd = open(F.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(archive_writer_new(fd, F.key, &h, &w), 0);
	for (uint32_t i = 0; i < NSTREAMS; i++) {
		assert_int_equal(archive_stream_begin(w, i), 0);
		/* In uneven pieces, as sources write. */
		for (size_t off = 0; off < F.len[i];) {
			size_t n = F.len[i] - off < 7777 ? F.len[i] - off : 7777;

			assert_int_equal(archive_stream_write(w, F.data[i] + off, n), 0);
			off += n;
		}
		assert_int_equal(archive_stream_end(w, &F.info[i]), 0);
		assert_int_equal(F.info[i].size, F.len[i]);
	}
	F.manifest = "{\"format\":1,\"entries\":[]}";
	assert_int_equal(archive_writer_finish(w, F.manifest, strlen(F.manifest)), 0);
	archive_writer_free(w);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	assert_int_equal(stat(F.path, &st), 0);
	F.size = (uint64_t)st.st_size;
}

static int setup(void **state)
{
	char err[256];

	(void)state;
	memset(&F, 0, sizeof(F));
	strcpy(F.dir, "/tmp/sk-test-archive-XXXXXX");
	assert_non_null(mkdtemp(F.dir));
	snprintf(F.path, sizeof(F.path), "%s/a.skb", F.dir);
	snprintf(F.keypath, sizeof(F.keypath), "%s/key", F.dir);
	assert_int_equal(backup_key_create(F.keypath, 0, err, sizeof(err)), 0);
	assert_int_equal(backup_key_load(F.keypath, &F.key, err, sizeof(err)), 0);
	fill();
	write_archive();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	backup_key_free(F.key);
	for (int i = 0; i < NSTREAMS; i++)
		free(F.data[i]);
	repo_rm_tree(F.dir);
	return 0;
}

struct cmp_sink {
	const unsigned char *want;
	size_t len;
	size_t off;
};

static int cmp_cb(void *ud, const void *p, size_t n)
{
	struct cmp_sink *s = ud;

	if (s->off + n > s->len || memcmp(s->want + s->off, p, n) != 0)
		return -EILSEQ;
	s->off += n;
	return 0;
}

static int discard_cb(void *ud, const void *p, size_t n)
{
	(void)ud;
	(void)p;
	(void)n;
	return 0;
}

/* Reads everything; 0 when all of it checks out, else the first error
 * (err says what). */
static int read_all(const struct backup_key *key, char *err, size_t errlen)
{
	struct archive_reader *r;
	unsigned char hash[BK_HASH_BYTES];
	uint64_t size;
	char *json;
	size_t len;
	int rc;

	rc = archive_reader_open(F.path, key, &r, err, errlen);
	if (rc < 0)
		return rc;
	rc = archive_reader_manifest(r, &json, &len, err, errlen);
	if (rc == 0) {
		if (len != strlen(F.manifest) || memcmp(json, F.manifest, len) != 0)
			rc = -EILSEQ;
		free(json);
	}
	for (uint32_t i = 0; i < NSTREAMS && rc == 0; i++) {
		rc = archive_reader_stream(r, i, F.info[i].offset, F.info[i].stored,
					   discard_cb, NULL, hash, &size, err,
					   errlen);
		if (rc == 0 && (size != F.info[i].size ||
				memcmp(hash, F.info[i].hash, sizeof(hash)) != 0))
			rc = -EILSEQ;
	}
	archive_reader_free(r);
	return rc;
}

static void test_round_trip(void **state)
{
	struct archive_reader *r;
	struct archive_header h;
	unsigned char hash[BK_HASH_BYTES], want[BK_HASH_BYTES];
	char err[256], *json;
	uint64_t size;
	size_t len;

	(void)state;
	assert_int_equal(archive_read_header(F.path, &h, err, sizeof(err)), 0);
	assert_string_equal(h.id, "nightly-20260101T000000Z-abcd");
	assert_string_equal(h.job, "nightly");
	assert_int_equal(h.created_ms, 1767225600123LL);
	assert_int_equal(h.version, ARCHIVE_VERSION);

	assert_int_equal(archive_reader_open(F.path, F.key, &r, err, sizeof(err)), 0);
	assert_int_equal(archive_reader_manifest(r, &json, &len, err, sizeof(err)), 0);
	assert_string_equal(json, F.manifest);
	free(json);
	/* The streams tile the data area exactly. */
	assert_int_equal(F.info[0].offset, archive_reader_data_start(r));
	for (int i = 1; i < NSTREAMS; i++)
		assert_int_equal(F.info[i].offset,
				 F.info[i - 1].offset + F.info[i - 1].stored);
	assert_int_equal(F.info[NSTREAMS - 1].offset + F.info[NSTREAMS - 1].stored,
			 archive_reader_manifest_offset(r));
	for (uint32_t i = 0; i < NSTREAMS; i++) {
		struct cmp_sink s = {F.data[i], F.len[i], 0};

		assert_int_equal(archive_reader_stream(r, i, F.info[i].offset,
						       F.info[i].stored, cmp_cb, &s,
						       hash, &size, err, sizeof(err)),
				 0);
		assert_int_equal(s.off, F.len[i]);
		crypto_generichash(want, sizeof(want), F.data[i], F.len[i], NULL, 0);
		assert_memory_equal(hash, want, sizeof(want));
		assert_memory_equal(F.info[i].hash, want, sizeof(want));
	}
	/* Compression did its work on the text and not on the noise. */
	assert_true(F.info[2].stored < F.len[2] / 20);
	assert_true(F.info[3].stored > F.len[3]);
	/* A stream read under another index (moved or swapped) fails. */
	assert_int_equal(archive_reader_stream(r, 3, F.info[2].offset,
					       F.info[2].stored, discard_cb, NULL,
					       hash, &size, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "failed authentication"));
	archive_reader_free(r);
}

/* Fixed bug: a stream whose zstd frame ended exactly as the reader's
 * output buffer filled was reported as "compressed data incomplete" (a
 * SQLite file of a multiple of 128 KiB hit it). */
static void test_frame_ending_as_output_buffer_fills(void **state)
{
	struct archive_reader *r;
	unsigned char hash[BK_HASH_BYTES];
	char err[256];
	uint64_t size;

	(void)state;
	assert_int_equal(archive_reader_open(F.path, F.key, &r, err, sizeof(err)), 0);
	for (uint32_t i = 5; i < 7; i++) {
		struct cmp_sink s = {F.data[i], F.len[i], 0};

		if (archive_reader_stream(r, i, F.info[i].offset, F.info[i].stored,
					  cmp_cb, &s, hash, &size, err,
					  sizeof(err)) != 0)
			fail_msg("stream %u (%zu bytes): %s", i, F.len[i], err);
		assert_int_equal(size, F.len[i]);
	}
	archive_reader_free(r);
}

/* A stream much larger than one of zstd's multi-threaded jobs (2 MiB),
 * so that several workers compress parts of its one frame, followed by a
 * small one: both come back byte for byte, and the streams still tile
 * the archive. */
static void test_large_stream_round_trip(void **state)
{
	const size_t len = 32u * 1024 * 1024, small = 1000;
	struct archive_stream_info info[2];
	struct archive_reader *r;
	struct archive_header h;
	struct archive_writer *w;
	unsigned char *data = malloc(len), hash[BK_HASH_BYTES];
	unsigned char want[BK_HASH_BYTES];
	char path[160], err[256], *json;
	const char *man = "{}";
	uint64_t size;
	size_t jlen;
	int fd;

	(void)state;
	assert_non_null(data);
	/* Shop-like rows: text that compresses, with random bytes in it. */
	for (size_t off = 0, row = 0; off < len; row++) {
		char line[96];
		int n = snprintf(line, sizeof(line),
				 "order %zu,customer %zu,paid,EUR,%zu,ref=", row,
				 row * 7919 % 100003, row % 9973);

		for (int i = 0; i < n && off < len; i++)
			data[off++] = (unsigned char)line[i];
		if (off + 8 <= len) {
			randombytes_buf(data + off, 8);
			off += 8;
		}
	}
	memset(&h, 0, sizeof(h));
	strcpy(h.id, "big-20260101T000000Z-0001");
	strcpy(h.job, "big");
	snprintf(path, sizeof(path), "%s/big.skb", F.dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(archive_writer_new(fd, F.key, &h, &w), 0);
	assert_int_equal(archive_stream_begin(w, 0), 0);
	for (size_t off = 0, i = 0; off < len; i++) {
		size_t n = i % 2 ? 1024 * 1024 : 77777;

		n = n < len - off ? n : len - off;
		assert_int_equal(archive_stream_write(w, data + off, n), 0);
		off += n;
	}
	assert_int_equal(archive_stream_end(w, &info[0]), 0);
	assert_int_equal(archive_stream_begin(w, 1), 0);
	assert_int_equal(archive_stream_write(w, data, small), 0);
	assert_int_equal(archive_stream_end(w, &info[1]), 0);
	assert_int_equal(archive_writer_finish(w, man, strlen(man)), 0);
	archive_writer_free(w);
	close(fd);

	assert_int_equal(info[0].size, len);
	assert_true(info[0].stored < len / 2);
	assert_int_equal(archive_reader_open(path, F.key, &r, err, sizeof(err)), 0);
	assert_int_equal(info[0].offset, archive_reader_data_start(r));
	assert_int_equal(info[1].offset, info[0].offset + info[0].stored);
	assert_int_equal(info[1].offset + info[1].stored,
			 archive_reader_manifest_offset(r));
	for (uint32_t i = 0; i < 2; i++) {
		size_t n = i == 0 ? len : small;
		struct cmp_sink s = {data, n, 0};

		if (archive_reader_stream(r, i, info[i].offset, info[i].stored,
					  cmp_cb, &s, hash, &size, err,
					  sizeof(err)) != 0)
			fail_msg("stream %u: %s", i, err);
		assert_int_equal(s.off, n);
		crypto_generichash(want, sizeof(want), data, n, NULL, 0);
		assert_memory_equal(hash, want, sizeof(want));
		assert_memory_equal(info[i].hash, want, sizeof(want));
	}
	assert_int_equal(archive_reader_manifest(r, &json, &jlen, err, sizeof(err)), 0);
	assert_string_equal(json, man);
	free(json);
	archive_reader_free(r);
	unlink(path);
	free(data);
}

static void flip(uint64_t pos)
{
	unsigned char b;
	int fd = open(F.path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)pos), 1);
	b ^= 0x20;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)pos), 1);
	close(fd);
}

static void test_every_flipped_byte_is_noticed(void **state)
{
	char err[256];
	uint64_t checked = 0;

	(void)state;
	assert_int_equal(read_all(F.key, err, sizeof(err)), 0);
	for (uint64_t pos = 0; pos < F.size; pos++) {
		int edge = pos < 256 || pos + 64 >= F.size;

		/* Every byte near a stream's start or end, one in 499 of the
		 * rest. */
		for (int i = 0; i < NSTREAMS && !edge; i++) {
			uint64_t s = F.info[i].offset, e = s + F.info[i].stored;

			edge = (pos >= s && pos < s + 64) || (pos + 64 >= e && pos < e);
		}
		if (!edge && pos % 499 != 0)
			continue;
		flip(pos);
		if (read_all(F.key, err, sizeof(err)) == 0)
			fail_msg("a flipped byte at %llu went unnoticed",
				 (unsigned long long)pos);
		flip(pos);
		checked++;
	}
	assert_true(checked > 800);
	assert_int_equal(read_all(F.key, err, sizeof(err)), 0);
}

static void test_flip_in_a_stream_names_its_chunk(void **state)
{
	struct archive_reader *r;
	unsigned char hash[BK_HASH_BYTES];
	uint64_t pos = F.info[2].offset + F.info[2].stored / 2, size;
	char err[256];

	(void)state;
	flip(pos);
	assert_int_equal(archive_reader_open(F.path, F.key, &r, err, sizeof(err)), 0);
	assert_int_equal(archive_reader_stream(r, 2, F.info[2].offset,
					       F.info[2].stored, discard_cb, NULL,
					       hash, &size, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "failed authentication"));
	/* The other streams are still readable. */
	assert_int_equal(archive_reader_stream(r, 4, F.info[4].offset,
					       F.info[4].stored, discard_cb, NULL,
					       hash, &size, err, sizeof(err)),
			 0);
	archive_reader_free(r);
	flip(pos);
}

static void test_truncation_is_noticed(void **state)
{
	static const uint64_t cut[] = {0, 5, 40, 100, 1000, 300000, 1};
	char err[256], copy[160];
	int rc;

	(void)state;
	snprintf(copy, sizeof(copy), "%s.orig", F.path);
	assert_int_equal(link(F.path, copy), 0);
	unlink(F.path);
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		uint64_t len = i + 1 == sizeof(cut) / sizeof(cut[0]) ? F.size - 1 : cut[i];
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "head -c %llu %s > %s",
			 (unsigned long long)len, copy, F.path);
		assert_int_equal(system(cmd), 0);
		rc = read_all(F.key, err, sizeof(err));
		assert_int_equal(rc, -EBADMSG);
		assert_true(strstr(err, "truncated") != NULL);
	}
	/* Also cut at the very end of the last stream, so that what is left
	 * looks like a tidy end of data. */
	{
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "head -c %llu %s > %s",
			 (unsigned long long)(F.info[NSTREAMS - 1].offset +
					      F.info[NSTREAMS - 1].stored),
			 copy, F.path);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(read_all(F.key, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "truncated"));
	}
	unlink(F.path);
	assert_int_equal(rename(copy, F.path), 0);
	assert_int_equal(read_all(F.key, err, sizeof(err)), 0);
}

static void test_version_field(void **state)
{
	struct archive_header h;
	unsigned char b[128], v1[4];
	char err[256];
	uint32_t len;
	int fd = open(F.path, O_RDWR);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
	memcpy(v1, b + 8, 4);
	len = (uint32_t)b[12] | (uint32_t)b[13] << 8;
	/* A real newer version (its checksum right): "use a newer one". */
	b[8] = 2;
	crypto_generichash(b + len - 8, 8, b, len - 8, NULL, 0);
	assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
	assert_int_equal(archive_read_header(F.path, &h, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "newer storekeep"));
	/* A damaged version field is damage, not a newer version. */
	memcpy(b + 8, v1, 4);
	crypto_generichash(b + len - 8, 8, b, len - 8, NULL, 0);
	b[10] ^= 0x10;
	assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
	assert_int_equal(archive_read_header(F.path, &h, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "damaged"));
	/* Back to the original. */
	b[10] ^= 0x10;
	assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
	close(fd);
	assert_int_equal(read_all(F.key, err, sizeof(err)), 0);
}

static void test_wrong_key_is_named(void **state)
{
	struct backup_key *other;
	char err[256], path[160];

	(void)state;
	snprintf(path, sizeof(path), "%s/other.key", F.dir);
	assert_int_equal(backup_key_create(path, 0, err, sizeof(err)), 0);
	assert_int_equal(backup_key_load(path, &other, err, sizeof(err)), 0);
	assert_int_equal(read_all(other, err, sizeof(err)), -EKEYREJECTED);
	assert_non_null(strstr(err, "wrong key"));
	backup_key_free(other);
}

static void test_key_file_rules(void **state)
{
	struct backup_key *k;
	char err[512], path[160], id1[17], id2[17];
	struct stat st;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/k2", F.dir);
	assert_int_equal(backup_key_create(path, 0, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(backup_key_load(path, &k, err, sizeof(err)), 0);
	backup_key_id(k, id1);
	backup_key_free(k);

	/* Never replaced without force. */
	assert_int_equal(backup_key_create(path, 0, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "--force"));
	assert_int_equal(backup_key_load(path, &k, err, sizeof(err)), 0);
	backup_key_id(k, id2);
	backup_key_free(k);
	assert_string_equal(id1, id2);

	/* Readable by group or others: refused, with the fix in the message. */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(backup_key_load(path, &k, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(backup_key_load(path, &k, err, sizeof(err)), -EPERM);
	assert_int_equal(chmod(path, 0600), 0);

	/* Forced: a new key. */
	assert_int_equal(backup_key_create(path, 1, err, sizeof(err)), 0);
	assert_int_equal(backup_key_load(path, &k, err, sizeof(err)), 0);
	backup_key_id(k, id2);
	backup_key_free(k);
	assert_string_not_equal(id1, id2);

	/* Not a key. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("sk-backup-key-1:1234\n", f);
	fclose(f);
	assert_int_equal(backup_key_load(path, &k, err, sizeof(err)), -EINVAL);
	snprintf(path, sizeof(path), "%s/missing", F.dir);
	assert_int_equal(backup_key_load(path, &k, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "backup init"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_frame_ending_as_output_buffer_fills),
		cmocka_unit_test(test_large_stream_round_trip),
		cmocka_unit_test(test_every_flipped_byte_is_noticed),
		cmocka_unit_test(test_flip_in_a_stream_names_its_chunk),
		cmocka_unit_test(test_truncation_is_noticed),
		cmocka_unit_test(test_version_field),
		cmocka_unit_test(test_wrong_key_is_named),
		cmocka_unit_test(test_key_file_rules),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
