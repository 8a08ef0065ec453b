/*
 * store_heap.c: the check of a results file's global heap collections,
 * made before HDF5 is asked for variable-length data.
 *
 * Variable-length strings (the attributes and /config) live in global heap
 * collections, which HDF5 reads without a checksum and trusts: one flipped
 * byte in an object's size field made `randlora info` loop forever or
 * crash inside libhdf5 (H5HG_read, issue 13). Object headers carry
 * checksums, global heaps do not, so the collections are checked here, once
 * per open store, before the first variable-length read.
 *
 * A collection (HDF5 file format, "Global Heap Collection", version 1):
 *     "GCOL", version 1, 3 reserved bytes, collection size (8 bytes, LE,
 *     the whole collection, at least 4096), then objects, each
 *     heap object index (2), reference count (2), reserved (4), size (8),
 *     the data padded to a multiple of 8;
 *     index 0 is the free space, last, its size counting its own header and
 *     running exactly to the end of the collection.
 * The file is scanned for the 8 bytes "GCOL" 01 00 00 00 (a chance match
 * inside raw data has odds of 2^-64 per offset); each match must be a whole
 * collection inside the file whose objects tile it as above, else the file
 * is refused (RL_ERR_FORMAT naming the file and the collection's offset).
 * The scan reads the file once, in blocks of 1 MiB (or the file's size).
 */
#include <hdf5.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/store_impl.h"

#define GCOL_HDR       16
#define GCOL_OBJ_HDR   16
#define GCOL_MIN_SIZE  4096
/* a collection holds one string at most READ_MAX_STRING bytes long, or many
 * small ones in 4096 bytes */
#define GCOL_MAX_SIZE  (READ_MAX_STRING + GCOL_MIN_SIZE)
#define SCAN_BLOCK     ((size_t)1 << 20)

static const unsigned char gcol_magic[8] = { 'G', 'C', 'O', 'L', 1, 0, 0, 0 };

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Do the objects of collection c (size bytes, header included) tile it?
 * NULL when they do, else what is wrong. */
static const char *collection_problem(const unsigned char *c, uint64_t size)
{
    uint64_t p = GCOL_HDR;

    while (size - p >= GCOL_OBJ_HDR) {
        unsigned idx = (unsigned)c[p] | (unsigned)c[p + 1] << 8;
        uint64_t n = le64(c + p + 8);

        if (idx == 0)            /* the free space: the rest, header included */
            return n == size - p ? NULL : "free space does not end the collection";
        if (n > size - p - GCOL_OBJ_HDR)
            return "an object runs past the collection";
        uint64_t padded = (n + 7) & ~(uint64_t)7;
        if (padded > size - p - GCOL_OBJ_HDR)
            return "an object runs past the collection";
        p += GCOL_OBJ_HDR + padded;
    }
    return NULL;                 /* full, or fewer bytes left than a header */
}

/* the collection at offset off of fp (file size fsize) */
static int check_collection(FILE *fp, const char *path, uint64_t off, uint64_t fsize)
{
    unsigned char hdr[GCOL_HDR];
    const char *why = NULL;
    uint64_t size;

    if (fseeko(fp, (off_t)off, SEEK_SET) != 0 || fread(hdr, 1, GCOL_HDR, fp) != GCOL_HDR)
        why = "truncated";
    else if ((size = le64(hdr + 8)) < GCOL_MIN_SIZE || size > GCOL_MAX_SIZE)
        why = "impossible collection size";
    else if (size > fsize - off)
        why = "runs past the end of the file";
    else {
        unsigned char *c = xmalloc((size_t)size);

        if (fseeko(fp, (off_t)off, SEEK_SET) != 0 || fread(c, 1, (size_t)size, fp) != (size_t)size)
            why = "truncated";
        else
            why = collection_problem(c, size);
        free(c);
    }
    if (why)
        return rl_error_set(RL_ERR_FORMAT, "%s: corrupt global heap (variable-length strings) at byte %llu: %s",
                            path, (unsigned long long)off, why);
    return RL_OK;
}

/* Scan the file at `path` for collections and check each. */
static int check_file(const char *path, const char *shown)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf;
    uint64_t fsize, base = 0;
    size_t keep = 0;
    int rc = RL_OK;

    if (!fp)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", shown, strerror(errno));
    if (fseeko(fp, 0, SEEK_END) != 0 || ftello(fp) < 0) {
        fclose(fp);
        return rl_error_set(RL_ERR_IO, "%s: cannot seek: %s", shown, strerror(errno));
    }
    fsize = (uint64_t)ftello(fp);
    size_t block = fsize < SCAN_BLOCK ? (size_t)fsize + 1 : SCAN_BLOCK;
    buf = xmalloc(block + sizeof gcol_magic);
    /* buf holds [base, base + keep + got): the last 7 bytes of the previous
     * block, then the next block, so a match across blocks is seen */
    while (rc == RL_OK && base + keep < fsize) {
        if (fseeko(fp, (off_t)(base + keep), SEEK_SET) != 0) {
            rc = rl_error_set(RL_ERR_IO, "%s: cannot seek: %s", shown, strerror(errno));
            break;
        }
        size_t got = fread(buf + keep, 1, block, fp);
        if (got == 0) {
            rc = rl_error_set(RL_ERR_IO, "%s: read error", shown);
            break;
        }
        size_t have = keep + got;
        for (size_t i = 0; rc == RL_OK && i + sizeof gcol_magic <= have; i++) {
            const unsigned char *m = memchr(buf + i, 'G', have - i);

            if (!m)
                break;
            i = (size_t)(m - buf);
            if (i + sizeof gcol_magic <= have && !memcmp(m, gcol_magic, sizeof gcol_magic))
                rc = check_collection(fp, shown, base + i, fsize);
        }
        keep = have < sizeof gcol_magic - 1 ? have : sizeof gcol_magic - 1;
        memmove(buf, buf + have - keep, keep);
        base += have - keep;
    }
    free(buf);
    fclose(fp);
    return rc;
}

int store_i_check_heaps(struct store *s)
{
    char name[4096];
    ssize_t n;

    if (s->heaps_checked)
        return RL_OK;
    /* the file HDF5 has open (a working copy of s->path, say) */
    n = H5Fget_name(s->file, name, sizeof name);
    if (n < 0 || (size_t)n >= sizeof name) {
        H5Eclear2(H5E_DEFAULT);
        return rl_error_set(RL_ERR, "%s: cannot get the open file's name", s->path);
    }
    int rc = check_file(name, s->path);
    if (rc == RL_OK)
        s->heaps_checked = true;
    return rc;
}
