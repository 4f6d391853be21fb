/* media.cpp: image files (generated deterministically from the database name) and the
 * media header, encoded little-endian byte by byte so that the media format does not
 * depend on the host. */
#include "media.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

const char media_magic[16] = "VDISQLCMD-MEDIA";
/* 2: the streams are whole blocks, zero-padded to media_stream_align (1 ended each stream
 * on the image's last byte). 3: the image checksum takes eight bytes a step. */
constexpr uint32_t media_version = 3;

uint64_t fnv1a(const uint8_t *p, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t name_hash(const std::string &db, bool log) {
    std::string key = (log ? "log:" : "db:") + db;
    return fnv1a(reinterpret_cast<const uint8_t *>(key.data()), key.size());
}

/* A file name for any database name: bytes outside [A-Za-z0-9_-] become '_' (a hash of
 * the name keeps two names that map alike apart). */
std::string file_stem(const std::string &db) {
    std::string s;
    bool changed = false;
    for (char c : db) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        s.push_back(ok ? c : '_');
        changed |= !ok;
    }
    if (changed || s.size() > 100) {
        char tag[24];
        snprintf(tag, sizeof tag, "~%08x", static_cast<unsigned>(name_hash(db, false)));
        s = s.substr(0, 100) + tag;
    }
    return s;
}

void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = static_cast<uint8_t>(v >> (8 * i));
}

void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= static_cast<uint32_t>(p[i]) << (8 * i);
    return v;
}

uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= static_cast<uint64_t>(p[i]) << (8 * i);
    return v;
}

/* Header layout: magic 0..15, version 16, log 20, stripe 24, stripes 28, data_offset 32,
 * chunk 36, image_size 40, checksum 48, name length 56, name 60..315, header check 504. */
constexpr size_t name_at = 60;
constexpr size_t check_at = 504;

std::atomic<uint64_t> checksum_bytes{0};

/* The temporary file being written, for the signal handler: the path is complete before
 * partial_active is set, and partial_active is cleared before the path changes. */
char partial_path[4096];
volatile sig_atomic_t partial_active = 0;

const char partial_infix[] = ".tmp.";

} // namespace

std::string media_image_path(const std::string &dir, const std::string &db, bool log) {
    return dir + "/" + file_stem(db) + (log ? "_log.ldf" : ".mdf");
}

std::string media_restored_path(const std::string &dir, const std::string &db, bool log) {
    return dir + "/" + file_stem(db) + (log ? "_log.restored.ldf" : ".restored.mdf");
}

/* FNV-1a over little-endian 64-bit words, then the tail bytes: one multiply per eight
 * bytes (a byte-wise pass over a 200 MiB image took 0.2 s of a 0.6 s backup). */
uint64_t media_checksum(const uint8_t *p, size_t n) {
    checksum_bytes += n;
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        h ^= get64(p + i);
        h *= 0x100000001b3ull;
    }
    return fnv1a(p + i, n - i, h);
}

std::string media_read_file(const std::string &path, std::vector<uint8_t> *out, bool *missing) {
    *missing = false;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *missing = errno == ENOENT;
        return path + ": " + strerror(errno);
    }
    /* Appended a chunk at a time to a vector reserved from the file's size (and grown if
     * the file grows): resizing it first would zero every byte before the read wrote it,
     * one more pass over an image of up to 4 GiB (15 % of a 200 MiB backup's time). */
    struct stat st;
    out->clear();
    out->reserve(fstat(fd, &st) == 0 && st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0);
    std::vector<uint8_t> chunk(1u << 20);
    for (;;) {
        ssize_t n = read(fd, chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            std::string e = path + ": " + strerror(errno);
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        out->insert(out->end(), chunk.data(), chunk.data() + n);
    }
    close(fd);
    return "";
}

/* Written to a temporary name and renamed, so that a reader never sees half a file. */
uint64_t media_checksum_bytes() {
    return checksum_bytes.load();
}

void media_remove_partial_on_signal() {
    if (partial_active)
        unlink(partial_path);
}

std::string media_write_file(const std::string &path, const std::vector<uint8_t> &data,
                             const std::function<void()> &midway) {
    std::string tmp = path + partial_infix + std::to_string(static_cast<long>(getpid()));
    if (tmp.size() >= sizeof partial_path)
        return tmp + ": " + strerror(ENAMETOOLONG);
    memcpy(partial_path, tmp.c_str(), tmp.size() + 1);
    std::atomic_signal_fence(std::memory_order_seq_cst); /* the path, then the flag */
    partial_active = 1;
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    std::string e;
    size_t done = 0, half = data.size() / 2;
    bool halfway = !midway;
    while (fd >= 0 && done < data.size()) {
        size_t want = !halfway && done < half ? half - done : data.size() - done;
        ssize_t n = write(fd, data.data() + done, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = tmp + ": " + (n < 0 ? strerror(errno) : "short write");
            break;
        }
        done += static_cast<size_t>(n);
        if (!halfway && done >= half) {
            halfway = true;
            midway();
        }
    }
    if (fd < 0)
        e = tmp + ": " + strerror(errno);
    else if (close(fd) != 0 && e.empty())
        e = tmp + ": " + strerror(errno);
    if (e.empty() && rename(tmp.c_str(), path.c_str()) != 0)
        e = path + ": " + strerror(errno);
    if (!e.empty())
        unlink(tmp.c_str());
    partial_active = 0;
    return e;
}

std::vector<std::string> media_remove_stale_partials(const std::string &dir) {
    std::vector<std::string> removed;
    DIR *d = opendir(dir.c_str());
    if (!d)
        return removed;
    while (struct dirent *ent = readdir(d)) {
        std::string name = ent->d_name;
        size_t at = name.rfind(partial_infix);
        if (at == std::string::npos || at < 4)
            continue;
        std::string ext = name.substr(at - 4, 4), pid_text = name.substr(at + 5);
        if ((ext != ".mdf" && ext != ".ldf") || pid_text.empty() ||
            pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9)
            continue;
        long pid = strtol(pid_text.c_str(), nullptr, 10);
        std::string path = dir + "/" + name;
        struct stat st;
        if (pid <= 0 || pid == static_cast<long>(getpid()) || lstat(path.c_str(), &st) != 0 ||
            !S_ISREG(st.st_mode) || st.st_uid != geteuid())
            continue;
        if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)
            continue; /* alive (or not ours to ask): its file, still being written */
        if (unlink(path.c_str()) == 0)
            removed.push_back(name);
    }
    closedir(d);
    return removed;
}

std::string media_load_image(const std::string &path, const std::string &db, bool log,
                             uint64_t gen_size, std::vector<uint8_t> *out) {
    bool missing = false;
    std::string e = media_read_file(path, out, &missing);
    if (!missing)
        return e;
    uint64_t h = name_hash(db, log);
    /* Not a multiple of any transfer size, so that the last chunk is a short one. */
    uint64_t size = gen_size
                        ? gen_size
                        : static_cast<uint64_t>(media_page) * (log ? 8 + h % 24 : 64 + h % 192) +
                              (h >> 40) % 4096;
    out->assign(size, 0);
    uint64_t x = h | 1;
    uint8_t *p = out->data();
    for (uint64_t i = 0; i < size; i += 8) { /* xorshift64: a fixed sequence per name */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (size - i >= 8) {
            put64(p + i, x); /* each word's bytes little-endian, whatever the host */
        } else {
            for (uint64_t k = 0; i + k < size; k++)
                p[i + k] = static_cast<uint8_t>(x >> (8 * k));
        }
    }
    return media_write_file(path, *out);
}

void media_encode(const media_header &h, uint8_t out[media_header_size]) {
    memset(out, 0, media_header_size);
    memcpy(out, media_magic, sizeof media_magic);
    put32(out + 16, media_version);
    put32(out + 20, h.log);
    put32(out + 24, h.stripe);
    put32(out + 28, h.stripes);
    put32(out + 32, h.data_offset);
    put32(out + 36, h.chunk);
    put64(out + 40, h.image_size);
    put64(out + 48, h.checksum);
    size_t n = h.database.size() < media_max_name ? h.database.size() : media_max_name;
    put32(out + 56, static_cast<uint32_t>(n));
    memcpy(out + name_at, h.database.data(), n);
    put32(out + check_at, static_cast<uint32_t>(fnv1a(out, check_at)));
}

bool media_decode(const uint8_t in[media_header_size], media_header *h) {
    if (memcmp(in, media_magic, sizeof media_magic) != 0 || get32(in + 16) != media_version ||
        get32(in + check_at) != static_cast<uint32_t>(fnv1a(in, check_at)))
        return false;
    uint32_t n = get32(in + 56);
    if (n > media_max_name)
        return false;
    h->log = get32(in + 20);
    h->stripe = get32(in + 24);
    h->stripes = get32(in + 28);
    h->data_offset = get32(in + 32);
    h->chunk = get32(in + 36);
    h->image_size = get64(in + 40);
    h->checksum = get64(in + 48);
    h->database.assign(reinterpret_cast<const char *>(in + name_at), n);
    bool block_ok = h->data_offset >= media_header_size && h->data_offset <= media_stream_align &&
                    (h->data_offset & (h->data_offset - 1)) == 0;
    return h->stripes >= 1 && h->stripe < h->stripes && h->chunk > 0 && block_ok &&
           h->chunk % h->data_offset == 0;
}

uint64_t media_stripe_bytes(uint64_t image_size, uint32_t chunk, uint32_t s, uint32_t n) {
    uint64_t total = 0;
    for (uint64_t off = static_cast<uint64_t>(s) * chunk; off < image_size;
         off += static_cast<uint64_t>(n) * chunk)
        total += image_size - off < chunk ? image_size - off : chunk;
    return total;
}

uint64_t media_stream_end(const media_header &h) {
    uint64_t data = media_stripe_bytes(h.image_size, h.chunk, h.stripe, h.stripes);
    uint64_t end = h.data_offset + (data + h.data_offset - 1) / h.data_offset * h.data_offset;
    return (end + media_stream_align - 1) / media_stream_align * media_stream_align;
}
