/* media.h: what vdi-sqlcmd backs up and how it lays it out on the virtual devices.
 * A database (or its log) is an image file in the data directory, generated from its name
 * when missing so that every run of a test sees the same bytes. On the devices the image
 * is striped in chunks behind a one-block media header per device, which lets a restore
 * find each stripe whatever order the devices are listed in. */
#ifndef VDI_SQLCMD_MEDIA_H
#define VDI_SQLCMD_MEDIA_H

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

constexpr uint32_t media_page = 8192;       /* SQL Server's page: messages count pages */
constexpr uint32_t media_header_size = 512; /* the header's bytes at the start of a stripe */
constexpr size_t media_max_name = 256;      /* database name bytes kept in the header */
/* Each device's stream ends on a multiple of this (the largest BLOCKSIZE), zero-padded, so
 * that a restore reading whole blocks of any size ends exactly at the stream's end. */
constexpr uint32_t media_stream_align = 65536;
/* The largest image vdi-sqlcmd generates (--db-size) or restores: 4 GiB. */
constexpr uint64_t media_max_image = uint64_t{1} << 32;

struct media_header {
    uint32_t log = 0;         /* 1: a log backup */
    uint32_t stripe = 0;      /* this device's place in the stripe set, from 0 */
    uint32_t stripes = 0;     /* devices in the backup */
    uint32_t data_offset = 0; /* where the data starts on each device: the backup's block */
    uint32_t chunk = 0;       /* stripe unit: chunk i is on stripe i % stripes; a multiple of
                                 data_offset, the image's last chunk padded to a block */
    uint64_t image_size = 0;
    uint64_t checksum = 0; /* media_checksum of the image */
    std::string database;
};

/* The image file of a database (or its log) and the file a restore writes. */
std::string media_image_path(const std::string &dir, const std::string &db, bool log);
std::string media_restored_path(const std::string &dir, const std::string &db, bool log);

/* Reads the image, generating it first when the file does not exist: gen_size bytes, or a
 * size derived from the name when gen_size is 0. "" on success, else what went wrong. */
std::string media_load_image(const std::string &path, const std::string &db, bool log,
                             uint64_t gen_size, std::vector<uint8_t> *out);
std::string media_read_file(const std::string &path, std::vector<uint8_t> *out, bool *missing);
/* Writes to PATH.tmp.PID and renames it to path. midway, when given, runs once half the
 * bytes are written (the chaos knob --die-at writing). */
std::string media_write_file(const std::string &path, const std::vector<uint8_t> &data,
                             const std::function<void()> &midway = {});

/* A signal that ends the process calls this first: it removes the temporary file
 * media_write_file is writing, if any (async-signal-safe). */
void media_remove_partial_on_signal();

/* Removes DIR's NAME.{mdf,ldf}.tmp.PID files of this user whose process no longer exists
 * (what a vdi-sqlcmd killed by SIGKILL while writing leaves); their names, for a message. */
std::vector<std::string> media_remove_stale_partials(const std::string &dir);

/* Image bytes media_checksum has read so far in this process (a measure of the work done,
 * reported with VDI_SQLCMD_REPORT_WORK=1). */
uint64_t media_checksum_bytes();

uint64_t media_checksum(const uint8_t *p, size_t n);

void media_encode(const media_header &h, uint8_t out[media_header_size]);
/* false when the block is not a vdi-sqlcmd media header (or is damaged). */
bool media_decode(const uint8_t in[media_header_size], media_header *h);

/* Bytes of the image that stripe s of n holds with chunk size c. */
uint64_t media_stripe_bytes(uint64_t image_size, uint32_t chunk, uint32_t s, uint32_t n);

/* Where the stream of the stripe h describes ends: the header block, the stripe's data
 * rounded up to whole blocks, zeros up to a multiple of media_stream_align. */
uint64_t media_stream_end(const media_header &h);

#endif /* VDI_SQLCMD_MEDIA_H */
