// image_search: index a photo folder once, then search it by text in any language or by
// example image. The index is one SQLite file (schema: docs/image_search.md).
//
//   image_search index --model FILE --db INDEX DIR... [--threads N] [--batch B]
//   image_search query --db INDEX --model FILE [TEXT]... [--image PATH]... [--not TEXT]...
//                      [--top-k K] [--json] [--html OUT.html] [--threads N] [--timings]
//
// Indexing is incremental (new or changed files by path, size and modification time; a moved
// file is found again by its content hash), commits each batch in its own transaction (an
// interruption, even SIGKILL or a power cut, leaves every committed image in a valid index),
// and overlaps decoding with the model (altclip::ImageEmbedder). Names from the file system
// are bytes: they are stored as BLOBs and escaped wherever they are shown.
#include <fcntl.h>
#include <sqlite3.h>
#include <stb/stb_image_write.h>  // implementation in libstb, which altclip already links
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include <altclip/altclip.hpp>

#include "cli.hpp"

namespace {

const char* kProgram = "image_search";
const char* kUsage =
    "usage: image_search index --model FILE --db INDEX DIR... [--threads N] [--batch B]\n"
    "       image_search query --db INDEX --model FILE [TEXT]... [--image PATH]... [--not TEXT]...\n"
    "                          [--top-k K] [--json] [--html OUT.html] [--threads N] [--timings]\n"
    "index: embeds every image under the folders into INDEX (an SQLite file); a second run only\n"
    "       embeds new or changed files and forgets deleted ones. Ctrl-C stops after the current batch.\n"
    "query: ranks the indexed images by similarity to the texts (any language) and example images,\n"
    "       minus the --not texts. --top-k K (default 10); --json prints {\"results\": [{\"path\", \"score\"}]};\n"
    "       --html writes a page of thumbnails; --timings prints where the time went on stderr.\n"
    "--threads N: threads for the model and the query's scan (default: all cores). --batch B: images per\n"
    "model call (default 8).\n";

constexpr int kApplicationId = 0x41435349;  // "ACSI": altclip search index
constexpr int kSchemaVersion = 1;

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) {
    g_interrupted.store(true);
    std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C stops at once (the index stays valid)
    std::signal(SIGTERM, SIG_DFL);
}

[[noreturn]] void fail(const std::string& msg, int code = 1) { cli::fail(kProgram, msg, code); }

// ---------------------------------------------------------------------------------------
// Showing names that are bytes

/// Length of the UTF-8 sequence at s[i] (1-4), or 0 if the bytes there are not valid UTF-8.
std::size_t utf8_length(const std::string& s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return 1;
    const std::size_t n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    std::uint32_t cp = c & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
        const auto d = static_cast<unsigned char>(s[i + k]);
        if ((d >> 6) != 2) return 0;
        cp = (cp << 6) | (d & 0x3F);
    }
    const std::uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

bool valid_utf8(const std::string& s) {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

/// A name made safe for a terminal: control characters and bytes that are not UTF-8 are
/// shown as \n, \t or \xNN (and a backslash as \\), so a file name cannot move the cursor,
/// change colours or fake another line.
std::string printable(const std::string& s) {
    std::string out;
    std::size_t i = 0;
    static const char* hex = "0123456789abcdef";
    auto escape_byte = [&](unsigned char c) {
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 15];
    };
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c == '\\') out += "\\\\";
            else if (c == '\n') out += "\\n";
            else if (c == '\t') out += "\\t";
            else if (c < 0x20 || c == 0x7F) escape_byte(c);
            else out += static_cast<char>(c);
            ++i;
            continue;
        }
        const std::size_t n = utf8_length(s, i);
        // C1 controls (U+0080..U+009F: 0xC2 0x80..0x9F) are terminal escapes too.
        const bool c1 = n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0;
        if (n > 1 && !c1) {
            out.append(s, i, n);
            i += n;
        } else {
            escape_byte(c);
            ++i;
        }
    }
    return out;
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : printable(s)) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

/// file:// URL of an absolute path, every byte outside [A-Za-z0-9/._~-] percent-encoded.
std::string file_url(const std::string& path) {
    static const char* hex = "0123456789ABCDEF";
    std::string out = "file://";
    for (char ch : path) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '/' || c == '.' || c == '_' || c == '~' || c == '-') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::string hex_bytes(const std::string& s) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// SQLite

class Db {
public:
    Db(const std::string& path, bool read_only) : path_(path) {
        const int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
            const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
            sqlite3_close(db_);
            db_ = nullptr;
            throw altclip::IoError(path + ": cannot open the index (" + msg + ")");
        }
        sqlite3_busy_timeout(db_, 10000);
    }
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;
    ~Db() { sqlite3_close(db_); }

    sqlite3* get() const { return db_; }
    const std::string& path() const { return path_; }

    [[noreturn]] void error(const std::string& what) const {
        const int code = sqlite3_errcode(db_);
        std::string msg = path_ + ": " + what + " (" + sqlite3_errmsg(db_) + ")";
        if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
            throw altclip::FormatError(msg + "; this file is not an image_search index (made by `image_search index`)");
        }
        throw altclip::IoError(msg);
    }
    void exec(const std::string& sql) const {
        char* err = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            sqlite3_free(err);
            error("'" + sql.substr(0, 40) + "' failed");
        }
    }

private:
    std::string path_;
    sqlite3* db_ = nullptr;
};

class Stmt {
public:
    Stmt(const Db& db, const char* sql) : db_(db) {
        if (sqlite3_prepare_v2(db.get(), sql, -1, &s_, nullptr) != SQLITE_OK) db.error("cannot read the index");
    }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    ~Stmt() { sqlite3_finalize(s_); }

    Stmt& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
    Stmt& bind(int i, const std::string& text) { return check(sqlite3_bind_text(s_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT)); }
    Stmt& bind_blob(int i, const void* p, std::size_t n) { return check(sqlite3_bind_blob(s_, i, p, static_cast<int>(n), SQLITE_TRANSIENT)); }
    Stmt& bind_blob(int i, const std::string& bytes) { return bind_blob(i, bytes.data(), bytes.size()); }
    /// true while there is a row.
    bool step() {
        const int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        db_.error("cannot read or write the index");
    }
    void run() {
        step();
        reset();
    }
    void reset() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    std::int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
    std::string bytes(int col) const {
        const void* p = sqlite3_column_blob(s_, col);
        const int n = sqlite3_column_bytes(s_, col);
        return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
    }
    const void* blob(int col, int& n) const {
        const void* p = sqlite3_column_blob(s_, col);
        n = sqlite3_column_bytes(s_, col);
        return p;
    }

private:
    Stmt& check(int rc) {
        if (rc != SQLITE_OK) db_.error("cannot bind a value");
        return *this;
    }
    const Db& db_;
    sqlite3_stmt* s_ = nullptr;
};

std::string rebuild_hint(const std::string& db, const std::string& model) {
    return "search it with the model that made it, or build an index for this model: image_search index --model " +
           model + " --db NEW_INDEX DIR... (or delete " + db + " and index again)";
}

/// Checks that `db` is an image_search index (before anything is written to it) and reads its meta.
std::map<std::string, std::string> read_meta(const Db& db) {
    std::int64_t app = 0, version = 0;
    {
        Stmt s(db, "PRAGMA application_id");
        if (s.step()) app = s.i64(0);
    }
    {
        Stmt s(db, "PRAGMA user_version");
        if (s.step()) version = s.i64(0);
    }
    if (app != kApplicationId) {
        throw altclip::FormatError(db.path() + ": not an image_search index (an SQLite file of another "
                                   "program, or not SQLite); give the file made by `image_search index`, or a new name");
    }
    if (version != kSchemaVersion) {
        throw altclip::FormatError(db.path() + ": index schema version " + std::to_string(version) +
                                   ", this program reads version " + std::to_string(kSchemaVersion) +
                                   "; rebuild it with `image_search index`");
    }
    std::map<std::string, std::string> meta;
    Stmt s(db, "SELECT key, value FROM meta");
    while (s.step()) meta[s.bytes(0)] = s.bytes(1);
    for (const char* k : {"model_id", "model_dtype", "embedding_dim"}) {
        if (!meta.count(k)) throw altclip::FormatError(db.path() + ": the index has no '" + k + "' in its meta table; rebuild it");
    }
    return meta;
}

void check_model(const Db& db, const std::map<std::string, std::string>& meta, const altclip::ModelIdentity& id,
                 const std::string& model_path) {
    if (meta.at("model_id") == id.id && meta.at("model_dtype") == id.dtype &&
        meta.at("embedding_dim") == std::to_string(id.embedding_dim)) {
        return;
    }
    const auto file = meta.count("model_file") ? meta.at("model_file") : std::string("?");
    throw altclip::InvalidArgument(db.path() + " was made by model " + meta.at("model_id") + " (" +
                                   meta.at("model_dtype") + ", " + meta.at("embedding_dim") + "-d embeddings, file " +
                                   file + "), but " + model_path + " is " + id.describe() +
                                   ": embeddings of different models cannot be compared; " + rebuild_hint(db.path(), model_path));
}

void add_generation(const Db& db);

void create_schema(const Db& db, const altclip::ModelIdentity& id, const std::string& model_path) {
    db.exec("BEGIN IMMEDIATE");
    db.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    db.exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
    db.exec(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE images (id INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE, size INTEGER NOT NULL,"
        " mtime_ns INTEGER NOT NULL, hash INTEGER NOT NULL, embedding BLOB NOT NULL, thumbnail BLOB);"
        "CREATE INDEX images_by_content ON images (size, hash);"
        "CREATE TABLE failures (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
        " reason TEXT NOT NULL);"
        // The embeddings again as half floats, packed for the scan: block b holds the rows with id in
        // [b * 4096, (b + 1) * 4096). The triggers mark a block dirty in the same transaction
        // as any change to its rows; a query reads dirty blocks from `images` instead.
        "CREATE TABLE scan_blocks (block INTEGER PRIMARY KEY, count INTEGER NOT NULL, ids BLOB NOT NULL,"
        " vectors BLOB NOT NULL);"
        "CREATE TABLE dirty_blocks (block INTEGER PRIMARY KEY);"
        // (NOT EXISTS rather than OR IGNORE: an upsert's conflict policy overrides a trigger's.)
        "CREATE TRIGGER images_insert AFTER INSERT ON images BEGIN"
        " INSERT INTO dirty_blocks SELECT NEW.id / 4096"
        "  WHERE NOT EXISTS (SELECT 1 FROM dirty_blocks WHERE block = NEW.id / 4096); END;"
        "CREATE TRIGGER images_update AFTER UPDATE OF id, embedding ON images BEGIN"
        " INSERT INTO dirty_blocks SELECT OLD.id / 4096"
        "  WHERE NOT EXISTS (SELECT 1 FROM dirty_blocks WHERE block = OLD.id / 4096);"
        " INSERT INTO dirty_blocks SELECT NEW.id / 4096"
        "  WHERE NOT EXISTS (SELECT 1 FROM dirty_blocks WHERE block = NEW.id / 4096); END;"
        "CREATE TRIGGER images_delete AFTER DELETE ON images BEGIN"
        " INSERT INTO dirty_blocks SELECT OLD.id / 4096"
        "  WHERE NOT EXISTS (SELECT 1 FROM dirty_blocks WHERE block = OLD.id / 4096); END;");
    Stmt ins(db, "INSERT INTO meta (key, value) VALUES (?, ?)");
    const std::vector<std::pair<std::string, std::string>> rows = {
        {"format", "altclip image_search index"},
        {"model_id", id.id},
        {"model_dtype", id.dtype},
        {"embedding_dim", std::to_string(id.embedding_dim)},
        {"embedding_format", "float32 little-endian, L2-normalised"},
        {"model_file", std::filesystem::absolute(model_path).lexically_normal().string()},
    };
    for (const auto& [k, v] : rows) ins.bind(1, k).bind(2, valid_utf8(v) ? v : printable(v)).run();
    add_generation(db);
    db.exec("COMMIT");
}

constexpr std::int64_t kBlockRows = 4096;

/// A query scans the packed blocks on several threads, each with its own connection and read
/// transaction. Those must see the same snapshot; SQLite (as Debian builds it) has no
/// sqlite3_snapshot_open, so every change to the rows a query reads bumps meta's
/// 'generation' in the same transaction (these triggers, kept in the index, fire for every
/// writer), and a connection whose read transaction sees another generation takes no part.
/// Indexes made before the counter get it from their next `image_search index` run; until
/// then a query scans them on one thread.
void add_generation(const Db& db) {
    std::string sql = "INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0');";
    for (const char* table : {"images", "scan_blocks"}) {
        for (const char* event : {"INSERT", "UPDATE", "DELETE"}) {
            sql += std::string("CREATE TRIGGER IF NOT EXISTS generation_") + table + "_" + event + " AFTER " + event +
                   " ON " + table + " BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'; END;";
        }
    }
    db.exec(sql);
}

/// The generation this connection's read transaction sees ("" for an index without one).
/// Called first in a transaction, it also fixes the transaction's snapshot.
std::string read_generation(const Db& db) {
    Stmt s(db, "SELECT value FROM meta WHERE key = 'generation'");
    return s.step() ? s.bytes(0) : std::string();
}

/// An open BLOB (table.column at rowid) for reading in pieces; closed when it goes.
class Blob {
public:
    Blob(const Db& db, const char* table, const char* column, std::int64_t rowid) : db_(db), what_(std::string(table) + " " + std::to_string(rowid)) {
        if (sqlite3_blob_open(db.get(), "main", table, column, rowid, 0, &b_) != SQLITE_OK) {
            sqlite3_blob_close(b_);
            b_ = nullptr;
            db.error("cannot read " + what_);
        }
    }
    Blob(const Blob&) = delete;
    Blob& operator=(const Blob&) = delete;
    ~Blob() { sqlite3_blob_close(b_); }
    std::size_t bytes() const { return static_cast<std::size_t>(sqlite3_blob_bytes(b_)); }
    void read(void* out, std::size_t n, std::size_t offset) const {
        if (n > 0 && sqlite3_blob_read(b_, out, static_cast<int>(n), static_cast<int>(offset)) != SQLITE_OK) {
            db_.error("cannot read " + what_);
        }
    }

private:
    const Db& db_;
    std::string what_;
    sqlite3_blob* b_ = nullptr;
};

/// Reads one whole BLOB (table.column at rowid) into `out` (resized to hold it, rounded up to
/// whole elements; its memory is reused). Returns the BLOB's size in bytes.
template <typename T>
std::size_t read_blob(const Db& db, const char* table, const char* column, std::int64_t rowid, std::vector<T>& out) {
    sqlite3_blob* b = nullptr;
    if (sqlite3_blob_open(db.get(), "main", table, column, rowid, 0, &b) != SQLITE_OK) {
        sqlite3_blob_close(b);
        db.error(std::string("cannot read ") + table + " " + std::to_string(rowid));
    }
    const auto bytes = static_cast<std::size_t>(sqlite3_blob_bytes(b));
    out.resize((bytes + sizeof(T) - 1) / sizeof(T));
    const int rc = bytes == 0 ? SQLITE_OK : sqlite3_blob_read(b, out.data(), static_cast<int>(bytes), 0);
    sqlite3_blob_close(b);
    if (rc != SQLITE_OK) db.error(std::string("cannot read ") + table + " " + std::to_string(rowid));
    return bytes;
}

/// Repacks every dirty block of scan_blocks from `images`, one transaction per block.
void flush_blocks(const Db& db) {
    std::vector<std::int64_t> dirty;
    {
        Stmt s(db, "SELECT block FROM dirty_blocks ORDER BY block");
        while (s.step()) dirty.push_back(s.i64(0));
    }
    Stmt rows(db, "SELECT id, embedding FROM images WHERE id >= ? AND id < ? ORDER BY id");
    Stmt put(db, "INSERT OR REPLACE INTO scan_blocks (block, count, ids, vectors) VALUES (?, ?, ?, ?)");
    Stmt drop(db, "DELETE FROM scan_blocks WHERE block = ?");
    Stmt clean(db, "DELETE FROM dirty_blocks WHERE block = ?");
    std::string ids, vectors;
    for (std::int64_t b : dirty) {
        db.exec("BEGIN IMMEDIATE");
        ids.clear();
        vectors.clear();
        rows.bind(1, b * kBlockRows).bind(2, (b + 1) * kBlockRows);
        std::int64_t count = 0;
        while (rows.step()) {
            const std::int64_t id = rows.i64(0);
            ids.append(reinterpret_cast<const char*>(&id), sizeof id);  // x86-64 and ARM: little-endian
            int len = 0;
            const auto* e = static_cast<const char*>(rows.blob(1, len));  // any alignment
            for (int i = 0; e && i < len / 4; ++i) {
                float v = 0;
                std::memcpy(&v, e + 4 * i, sizeof v);
                const std::uint16_t h = altclip::float_to_half(v);
                vectors.append(reinterpret_cast<const char*>(&h), sizeof h);
            }
            ++count;
        }
        rows.reset();
        if (count == 0) drop.bind(1, b).run();
        else put.bind(1, b).bind(2, count).bind_blob(3, ids).bind_blob(4, vectors).run();
        clean.bind(1, b).run();
        db.exec("COMMIT");
    }
}

// ---------------------------------------------------------------------------------------
// Progress

class Progress {
public:
    explicit Progress(std::size_t total) : total_(total), tty_(isatty(STDOUT_FILENO) == 1), start_(clock::now()), last_(start_) {}

    void update(std::size_t done, bool final = false) {
        const auto now = clock::now();
        const double since = std::chrono::duration<double>(now - last_).count();
        if (!final && since < (tty_ ? 0.25 : 10.0)) return;
        last_ = now;
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
        char line[160];
        if (rate > 0 && done < total_) {
            const long left = static_cast<long>(static_cast<double>(total_ - done) / rate);
            std::snprintf(line, sizeof line, "embedded %zu of %zu images, %.1f images/s, %ld:%02ld:%02ld left", done,
                          total_, rate, left / 3600, left / 60 % 60, left % 60);
        } else {
            std::snprintf(line, sizeof line, "embedded %zu of %zu images, %.1f images/s", done, total_, rate);
        }
        if (tty_) {
            std::cout << "\r" << line << "\033[K" << (final ? "\n" : "") << std::flush;
        } else if (!final) {  // the summary follows the last line
            std::cout << line << "\n" << std::flush;
        }
    }
    double rate(std::size_t done) const {
        const double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
        return elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    }

private:
    using clock = std::chrono::steady_clock;
    std::size_t total_;
    bool tty_;
    clock::time_point start_, last_;
};

// ---------------------------------------------------------------------------------------
// Thumbnails

/// A small JPEG of the image (quality 80), or "" if it cannot be encoded.
std::string thumbnail_jpeg(const altclip::Image& thumb) {
    std::string jpg;
    auto sink = [](void* ctx, void* data, int size) {
        static_cast<std::string*>(ctx)->append(static_cast<char*>(data), static_cast<std::size_t>(size));
    };
    if (!stbi_write_jpg_to_func(sink, &jpg, thumb.width, thumb.height, 3, thumb.rgb.data(), 80)) return "";
    return jpg;
}

constexpr int kThumbnailSide = 128;

// ---------------------------------------------------------------------------------------
// index

struct Entry {
    std::int64_t id = 0;
    std::int64_t size = 0, mtime_ns = 0, hash = 0;
};

bool under(const std::string& path, const std::string& dir) {
    if (dir.empty()) return false;
    if (dir.back() == '/') return path.compare(0, dir.size(), dir) == 0;
    return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

/// After writing: the WAL moved into the file (a checkpoint, as far as readers allow) and
/// the file's pages dropped from the page cache. Just written, they sit there in small
/// folios that every query would map 4 KB at a time; read back by the next query
/// (advise_huge_pages) they come in 2 MB folios. Advice only: a checkpoint kept from
/// finishing by a reader, or an OS without posix_fadvise, changes nothing but speed.
void drop_from_page_cache(const Db& db) {
    db.exec("PRAGMA wal_checkpoint(PASSIVE)");  // never waits for a query that is reading
    const int fd = ::open(db.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
#ifdef POSIX_FADV_DONTNEED
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
#endif
    ::close(fd);
}

int run_index(const cli::Args& args, const std::vector<std::string>& dirs) {
    const std::string model_path = args.one("model"), db_path = args.one("db");
    if (model_path.empty()) fail("index: --model FILE is required (a file made by tools/convert.py)\n" + std::string(kUsage), 2);
    if (db_path.empty()) fail("index: --db INDEX is required (the index file to create or update)\n" + std::string(kUsage), 2);
    if (dirs.empty()) fail("index: give at least one folder of images to index\n" + std::string(kUsage), 2);
    altclip::EmbedOptions eo;
    eo.thumbnail_side = kThumbnailSide;  // for --html pages: made from the image decoded anyway
    if (!args.one("batch").empty()) eo.batch_size = static_cast<int>(std::min(4096L, cli::parse_positive(kProgram, "batch", args.one("batch"))));

    // Walk first: a missing folder or a folder without files changes nothing.
    const auto found = altclip::find_files(dirs);
    std::vector<std::string> roots;
    for (const auto& d : dirs) roots.push_back(std::filesystem::absolute(d).lexically_normal().string());
    for (const auto& r : roots) {
        for (const auto& [dir, why] : found.unreadable) {
            if (dir == r || dir + "/" == r) fail("index: cannot read the folder " + printable(dir) + " (" + printable(why) + "); check its permissions");
        }
    }
    const std::string db_abs = std::filesystem::absolute(db_path).lexically_normal().string();
    std::vector<altclip::FileList::File> files;
    for (const auto& f : found.files) {
        // The index itself (and its -wal/-shm files) may sit in an indexed folder.
        if (f.path == db_abs || f.path == db_abs + "-wal" || f.path == db_abs + "-shm" || f.path == db_abs + "-journal") continue;
        files.push_back(f);
    }
    if (files.empty()) {
        std::string list;
        for (const auto& d : dirs) list += (list.empty() ? "" : ", ") + printable(d);
        fail("index: no files found in " + list + "; give folders that hold images");
    }

    const auto file = altclip::ModelFile::open(model_path);
    const auto identity = altclip::model_identity(*file);
    const altclip::AltCLIPModel model(file, cli::model_options(args, kProgram));
    const altclip::AltCLIPProcessor processor(*file);
    const altclip::ImageEmbedder embedder(model, processor.image_processor(), eo);

    std::error_code ec;
    const bool existed = std::filesystem::exists(db_path, ec);
    auto db_holder = std::make_unique<Db>(db_path, false);
    Db& db = *db_holder;
    if (existed) {
        check_model(db, read_meta(db), identity, model_path);  // nothing written before this
    }
    if (!existed) db.exec("PRAGMA page_size = 65536");  // big pages: the scan blocks read fast
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    if (!existed) create_schema(db, identity, model_path);
    else {
        db.exec("BEGIN IMMEDIATE");
        add_generation(db);  // an index made before the counter: from now on scanned on all threads
        db.exec("COMMIT");
    }
    auto remove_new_index = [&] {
        if (existed) return;
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db_path + suffix, ec);
    };

    std::unordered_map<std::string, Entry> indexed;
    {
        Stmt s(db, "SELECT id, path, size, mtime_ns, hash FROM images");
        while (s.step()) indexed[s.bytes(1)] = Entry{s.i64(0), s.i64(2), s.i64(3), s.i64(4)};
    }
    std::unordered_map<std::string, std::pair<Entry, std::string>> known_failures;
    {
        Stmt s(db, "SELECT path, size, mtime_ns, reason FROM failures");
        while (s.step()) known_failures[s.bytes(0)] = {Entry{0, s.i64(1), s.i64(2), 0}, s.bytes(3)};
    }

    // Classify what the walk found against the index.
    std::size_t unchanged = 0, moved = 0, removed = 0, added = 0, updated = 0;
    std::vector<std::pair<std::string, std::string>> failed;  // (path, reason)
    std::vector<std::size_t> todo;                            // into files
    std::set<std::string> seen;
    std::vector<std::size_t> fresh;  // new paths (not indexed)
    for (std::size_t i = 0; i < files.size(); ++i) {
        const auto& f = files[i];
        seen.insert(f.path);
        auto it = indexed.find(f.path);
        if (it != indexed.end()) {
            if (it->second.size == static_cast<std::int64_t>(f.size) && it->second.mtime_ns == f.mtime_ns) ++unchanged;
            else todo.push_back(i);
            continue;
        }
        auto kf = known_failures.find(f.path);
        if (kf != known_failures.end() && kf->second.first.size == static_cast<std::int64_t>(f.size) &&
            kf->second.first.mtime_ns == f.mtime_ns) {
            failed.emplace_back(f.path, kf->second.second);
            continue;
        }
        fresh.push_back(i);
    }
    // Entries under the walked folders whose file is gone (not under a folder we could not read).
    std::multimap<std::pair<std::int64_t, std::int64_t>, std::string> gone;  // (size, hash) -> path
    std::vector<std::string> gone_paths;
    for (const auto& [path, e] : indexed) {
        if (seen.count(path)) continue;
        bool in_roots = false, in_unreadable = false;
        for (const auto& r : roots) in_roots = in_roots || under(path, r);
        for (const auto& u : found.unreadable) in_unreadable = in_unreadable || under(path, u.first);
        if (in_roots && !in_unreadable) {
            gone.emplace(std::make_pair(e.size, e.hash), path);
            gone_paths.push_back(path);
        }
    }
    std::set<std::int64_t> gone_sizes;
    for (const auto& g : gone) gone_sizes.insert(g.first.first);
    {
        // Moves: a new path whose content equals a gone entry's keeps that entry's embedding.
        db.exec("BEGIN IMMEDIATE");
        Stmt move(db, "UPDATE images SET path = ?, mtime_ns = ? WHERE path = ?");
        for (std::size_t i : fresh) {
            const auto& f = files[i];
            bool was_moved = false;
            if (gone_sizes.count(static_cast<std::int64_t>(f.size))) {
                try {
                    const auto bytes = altclip::read_file_bytes(f.path);
                    const auto h = static_cast<std::int64_t>(altclip::content_hash64(bytes.data(), bytes.size()));
                    auto g = gone.find({static_cast<std::int64_t>(bytes.size()), h});
                    if (g != gone.end()) {
                        move.bind_blob(1, f.path).bind(2, f.mtime_ns).bind_blob(3, g->second).run();
                        gone.erase(g);
                        ++moved;
                        was_moved = true;
                    }
                } catch (const altclip::Error&) {
                    // unreadable now: the embedder reports it below
                }
            }
            if (!was_moved) todo.push_back(i);
        }
        Stmt del(db, "DELETE FROM images WHERE path = ?");
        for (const auto& g : gone) {
            del.bind_blob(1, g.second).run();
            ++removed;
        }
        Stmt delf(db, "DELETE FROM failures WHERE path = ?");
        for (const auto& [path, kf] : known_failures) {
            if (!seen.count(path)) delf.bind_blob(1, path).run();
        }
        db.exec("COMMIT");
    }
    std::sort(todo.begin(), todo.end());

    // Embed, one transaction per batch.
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::vector<std::string> paths;
    for (std::size_t i : todo) paths.push_back(files[i].path);
    Progress progress(paths.size());
    std::size_t done = 0;
    bool interrupted = false;
    if (!paths.empty()) {
        Stmt upsert(db,
                    "INSERT INTO images (path, size, mtime_ns, hash, embedding, thumbnail) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                    "hash = excluded.hash, embedding = excluded.embedding, thumbnail = excluded.thumbnail");
        Stmt unfail(db, "DELETE FROM failures WHERE path = ?");
        Stmt fail_row(db, "INSERT OR REPLACE INTO failures (path, size, mtime_ns, reason) VALUES (?, ?, ?, ?)");
        Stmt drop(db, "DELETE FROM images WHERE path = ?");
        embedder.embed_files(paths, [&](std::vector<altclip::ImageEmbedding>& batch) {
            db.exec("BEGIN IMMEDIATE");
            for (auto& e : batch) {
                const auto& f = files[todo[e.index]];
                const bool was_indexed = indexed.count(f.path) != 0;
                if (e.ok) {
                    upsert.bind_blob(1, f.path)
                        .bind(2, static_cast<std::int64_t>(e.size))
                        .bind(3, f.mtime_ns)
                        .bind(4, static_cast<std::int64_t>(e.content_hash))
                        .bind_blob(5, e.embedding.data(), e.embedding.size() * sizeof(float))
                        .bind_blob(6, thumbnail_jpeg(e.thumbnail))
                        .run();
                    unfail.bind_blob(1, f.path).run();
                    ++(was_indexed ? updated : added);
                } else {
                    std::string reason = e.error;
                    if (reason.compare(0, f.path.size() + 2, f.path + ": ") == 0) reason = reason.substr(f.path.size() + 2);
                    reason = printable(reason);
                    fail_row.bind_blob(1, f.path).bind(2, static_cast<std::int64_t>(f.size)).bind(3, f.mtime_ns).bind(4, reason).run();
                    if (was_indexed) {
                        drop.bind_blob(1, f.path).run();
                        ++removed;
                    }
                    failed.emplace_back(f.path, reason);
                }
            }
            db.exec("COMMIT");
            done += batch.size();
            progress.update(done);
            if (g_interrupted.load()) {
                interrupted = true;
                return false;
            }
            return true;
        });
        progress.update(done, true);
    }
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    flush_blocks(db);

    std::int64_t total = 0;
    {
        Stmt s(db, "SELECT count(*) FROM images");
        if (s.step()) total = s.i64(0);
    }
    if (added + updated + moved + removed > 0) drop_from_page_cache(db);
    std::sort(failed.begin(), failed.end());
    if (unchanged + moved + added + updated == 0 && !interrupted) {
        db_holder.reset();  // closed before a new, empty index is removed
        remove_new_index();
        std::string list;
        for (const auto& d : dirs) list += (list.empty() ? "" : ", ") + printable(d);
        std::string why;
        for (std::size_t i = 0; i < failed.size() && i < 5; ++i) why += "\n  " + printable(failed[i].first) + ": " + failed[i].second;
        if (failed.size() > 5) why += "\n  ...";
        fail("index: no images found in " + list + " (" + std::to_string(failed.size()) +
             " files, none of them a decodable image); nothing was indexed:" + why);
    }
    if (!failed.empty()) {
        std::cout << "could not index " << failed.size() << " file" << (failed.size() == 1 ? "" : "s") << ":\n";
        for (const auto& [path, reason] : failed) {
            std::cout << "  " << printable(path) << ": " << reason << "\n";  // reasons are stored printable
        }
    }
    for (const auto& [dir, why] : found.unreadable) {
        std::cout << "skipped unreadable folder " << printable(dir) << ": " << printable(why) << "\n";
    }
    char rate[64] = "";
    if (done > 0) std::snprintf(rate, sizeof rate, " (%.1f images/s)", progress.rate(done));
    std::cout << "added " << added << ", updated " << updated << ", moved " << moved << ", removed " << removed
              << ", unchanged " << unchanged << ", failed " << failed.size() << rate << "; the index holds " << total
              << " image" << (total == 1 ? "" : "s") << "\n";
    if (interrupted) {
        std::cout << "interrupted: " << (paths.size() - done) << " images not embedded yet; run the same command again to continue\n";
        return 130;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------
// query

std::string base64(const std::string& in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const unsigned v = static_cast<unsigned char>(in[i]) << 16 | static_cast<unsigned char>(in[i + 1]) << 8 |
                           static_cast<unsigned char>(in[i + 2]);
        out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
    }
    if (i < in.size()) {
        const unsigned v = static_cast<unsigned char>(in[i]) << 16 |
                           (i + 1 < in.size() ? static_cast<unsigned char>(in[i + 1]) << 8 : 0u);
        out += {t[v >> 18], t[(v >> 12) & 63], i + 1 < in.size() ? t[(v >> 6) & 63] : '=', '='};
    }
    return out;
}

/// A JPEG data URI of the stored thumbnail, else one made from the file now ("" if the file
/// cannot be shown any more).
std::string thumbnail_uri(const std::string& stored, const std::string& path) {
    std::string jpg = stored;
    if (jpg.empty()) {
        try {
            jpg = thumbnail_jpeg(altclip::make_thumbnail(altclip::load_image(path), kThumbnailSide));
        } catch (const altclip::Error&) {
            return "";
        }
    }
    return jpg.empty() ? "" : "data:image/jpeg;base64," + base64(jpg);
}

struct Result {
    std::string path;
    float score = 0;
    std::string thumbnail;  // JPEG stored in the index, or empty
};

std::string html_page(const std::vector<Result>& results, const std::string& title) {
    std::vector<std::string> uris(results.size());
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t i; (i = next.fetch_add(1)) < results.size();) uris[i] = thumbnail_uri(results[i].thumbnail, results[i].path);
    };
    std::vector<std::thread> pool;
    const unsigned n = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
    for (unsigned t = 1; t < n; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();

    std::ostringstream o;
    o << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" << html_escape(title) << "</title>\n"
      << "<style>body{font-family:sans-serif;margin:16px;background:#fafafa}"
         ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}"
         "figure{margin:0;background:#fff;border:1px solid #ddd;padding:6px;text-align:center}"
         "img{max-width:128px;max-height:128px;display:block;margin:0 auto}"
         ".missing{width:128px;height:96px;margin:0 auto;background:#eee;color:#888;line-height:96px}"
         "figcaption{font-size:11px;word-break:break-all;margin-top:4px}.score{font-weight:bold}</style>\n"
      << "</head><body>\n<h1>" << html_escape(title) << "</h1>\n<div class=\"grid\">\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
        char score[32];
        std::snprintf(score, sizeof score, "%.4f", results[i].score);
        o << "<figure><a href=\"" << html_escape(file_url(results[i].path)) << "\">";
        if (uris[i].empty()) o << "<div class=\"missing\">no preview</div>";
        else o << "<img src=\"" << uris[i] << "\" alt=\"\" loading=\"lazy\">";
        o << "</a><figcaption><span class=\"score\">" << (i + 1) << ". " << score << "</span><br>"
          << html_escape(results[i].path) << "</figcaption></figure>\n";
    }
    o << "</div>\n</body></html>\n";
    return o.str();
}

/// Writes `text` to `path` through a temporary file renamed into place (no partial page).
void write_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp-" + std::to_string(getpid());
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f || !f.write(text.data(), static_cast<std::streamsize>(text.size())) || !f.flush()) {
            std::error_code ec;
            std::filesystem::remove(tmp, ec);
            throw altclip::IoError(path + ": cannot write the page (check the folder exists and is writable)");
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        throw altclip::IoError(path + ": cannot write the page (" + ec.message() + ")");
    }
}

/// Asks for 2 MB pages on SQLite's memory mapping of the index file `path` (found in
/// /proc/self/maps; SQLite maps it when a transaction first reads). Advice only, as for the
/// model file: what is read from disk through the mapping then comes into the page cache in
/// 2 MB folios, which later queries map 2 MB at a time. Read back by 4 KB faults, the scan
/// blocks of 100,000 images (150 MB) took ~30 ms to scan; in 2 MB folios, ~17 ms.
void advise_huge_pages(const std::string& path) {
#ifdef MADV_HUGEPAGE
    std::error_code ec;
    const std::string want = std::filesystem::canonical(path, ec).string();
    if (ec) return;
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        // "lo-hi perms offset dev inode   path": the path is the rest after five fields
        std::istringstream in(line);
        std::string range, perms, offset, dev, inode;
        if (!(in >> range >> perms >> offset >> dev >> inode)) continue;
        std::string name;
        std::getline(in >> std::ws, name);
        if (name != want) continue;
        const auto dash = range.find('-');
        if (dash == std::string::npos) continue;
        const unsigned long long lo = std::strtoull(range.c_str(), nullptr, 16),
                                 hi = std::strtoull(range.c_str() + dash + 1, nullptr, 16);
        if (lo < hi) (void)::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
    }
#else
    (void)path;
#endif
}

/// Every indexed image's score against `query`: ids[i], scores[i], in id order.
struct Scan {
    std::vector<std::int64_t> ids;
    std::vector<float> scores;
    int threads = 1;  // threads that scanned packed blocks
};

/// A packed block, or a dirty one (read row by row from `images`), and its scores.
struct ScanUnit {
    std::int64_t block = 0, count = 0;  // count: a packed block's rows
    bool packed = true;
    bool done = false;
    std::vector<std::int64_t> ids;
    std::vector<float> scores;
};

const char* const kMapBlocks = "PRAGMA mmap_size = 17179869184";  // blocks read straight from the mapped file

/// Scores packed block `u` through connection `db`. The block is read in pieces of about
/// 64 KiB into `piece`, a buffer that stays in the core's cache while it is scored, so each
/// stored byte crosses the memory bus once (a whole block copied out first would cross it
/// three times).
void score_packed(const Db& db, ScanUnit& u, const std::vector<float>& query, std::size_t dim, altclip::Isa isa,
                  std::vector<std::uint16_t>& piece) {
    auto damaged = [&] {
        return altclip::FormatError(db.path() + ": scan block " + std::to_string(u.block) +
                                    " has the wrong size; the index is damaged, rebuild it with image_search index");
    };
    const auto n = static_cast<std::size_t>(u.count);
    if (read_blob(db, "scan_blocks", "ids", u.block, u.ids) != n * sizeof(std::int64_t)) throw damaged();
    Blob vectors(db, "scan_blocks", "vectors", u.block);
    if (vectors.bytes() != n * dim * sizeof(std::uint16_t)) throw damaged();
    const std::size_t piece_rows = std::max<std::size_t>(1, (std::size_t{64} << 10) / (dim * sizeof(std::uint16_t)));
    piece.resize(piece_rows * dim);
    u.scores.resize(n);
    for (std::size_t r = 0; r < n; r += piece_rows) {
        const std::size_t m = std::min(piece_rows, n - r);
        vectors.read(piece.data(), m * dim * sizeof(std::uint16_t), r * dim * sizeof(std::uint16_t));
        altclip::score_rows(piece.data(), m, dim, query, u.scores.data() + r, isa);
    }
    u.done = true;
}

/// Scores dirty block `u` (rows changed since it was packed) from the float32 embeddings.
void score_dirty(const Db& db, Stmt& rows, ScanUnit& u, const std::vector<float>& query, std::size_t dim, altclip::Isa isa) {
    const std::size_t row_bytes = dim * sizeof(float);
    std::vector<float> matrix;
    rows.bind(1, u.block * kBlockRows).bind(2, (u.block + 1) * kBlockRows);
    while (rows.step()) {
        int len = 0;
        const void* p = rows.blob(1, len);
        if (static_cast<std::size_t>(len) != row_bytes || !p) {
            throw altclip::FormatError(db.path() + ": image entry " + std::to_string(rows.i64(0)) + " holds " +
                                       std::to_string(len) + " bytes, not a " + std::to_string(dim) +
                                       "-d embedding; the index is damaged, rebuild it with image_search index");
        }
        matrix.resize(matrix.size() + dim);
        std::memcpy(matrix.data() + matrix.size() - dim, p, row_bytes);
        u.ids.push_back(rows.i64(0));
    }
    rows.reset();
    u.scores.resize(u.ids.size());
    altclip::score_rows(matrix.data(), u.ids.size(), dim, query, u.scores.data(), isa);
    u.done = true;
}

/// Scores every indexed image against `query`, inside the read transaction `db` has begun:
/// the packed blocks, and from `images` the rows of blocks changed since they were packed (an
/// index run that was interrupted). Up to `threads` threads read and score packed blocks,
/// the others through connections of their own that see the same generation (add_generation).
Scan scan(const Db& db, const std::vector<float>& query, std::size_t dim, altclip::Isa isa, int threads) {
    const std::string generation = read_generation(db);  // the first read: fixes the snapshot
    advise_huge_pages(db.path());                         // SQLite has mapped the file by now
    std::vector<std::int64_t> dirty;
    {
        Stmt d(db, "SELECT block FROM dirty_blocks ORDER BY block");
        while (d.step()) dirty.push_back(d.i64(0));
    }
    std::vector<ScanUnit> units;  // in block order, so ties keep the lower id first
    std::int64_t packed = 0, total = 0;
    {
        Stmt b(db, "SELECT block, count FROM scan_blocks ORDER BY block");
        while (b.step()) {
            if (std::binary_search(dirty.begin(), dirty.end(), b.i64(0))) continue;
            units.push_back({b.i64(0), b.i64(1), true, false, {}, {}});
            packed += b.i64(1);
        }
        // (count(*) walks the small images_by_content index; the rows of dirty blocks are
        // counted by id range: an expression of id would walk every row of the table, i.e.
        // read the whole file, two to three times the bytes of the scan itself.)
        Stmt count(db, "SELECT count(*) FROM images");
        if (count.step()) total = count.i64(0);
        std::int64_t in_dirty = 0;
        Stmt range(db, "SELECT count(*) FROM images WHERE id >= ? AND id < ?");
        for (std::int64_t block : dirty) {
            range.bind(1, block * kBlockRows).bind(2, (block + 1) * kBlockRows);
            if (range.step()) in_dirty += range.i64(0);
            range.reset();
        }
        if (packed + in_dirty != total) {  // not consistent: scan every row
            units.clear();
            dirty.clear();
            Stmt all(db, "SELECT DISTINCT id / 4096 FROM images ORDER BY 1");
            while (all.step()) dirty.push_back(all.i64(0));
        }
    }
    for (std::int64_t block : dirty) units.push_back({block, 0, false, false, {}, {}});
    std::sort(units.begin(), units.end(), [](const ScanUnit& a, const ScanUnit& b) { return a.block < b.block; });
    std::vector<std::size_t> packed_units;
    for (std::size_t i = 0; i < units.size(); ++i) {
        if (units[i].packed) packed_units.push_back(i);
    }

    // Packed blocks go to whichever thread asks next. A helper thread that cannot take part
    // (no generation in this index, another snapshot, no connection) leaves its share to
    // this thread, which after the join scores every block not done: a block's damage is
    // then reported from here.
    std::atomic<std::size_t> next{0};
    std::atomic<int> joined{1};
    auto take_packed = [&](const Db& conn, std::vector<std::uint16_t>& piece) {
        for (std::size_t i; (i = next.fetch_add(1)) < packed_units.size();) score_packed(conn, units[packed_units[i]], query, dim, isa, piece);
    };
    std::vector<std::thread> helpers;
    // Joins the helpers however this function leaves (an error in this thread's blocks must
    // not destroy running threads): no more blocks handed out, then wait for them.
    struct JoinAll {
        std::vector<std::thread>& threads;
        std::atomic<std::size_t>& next;
        std::size_t end;
        ~JoinAll() {
            next.store(end);
            for (auto& t : threads) {
                if (t.joinable()) t.join();
            }
        }
    } join_all{helpers, next, packed_units.size()};
    const int wanted = generation.empty() ? 1 : std::max(1, std::min<int>(threads, static_cast<int>(packed_units.size())));
    for (int t = 1; t < wanted; ++t) {
        helpers.emplace_back([&] {
            try {
                Db conn(db.path(), true);
                conn.exec(kMapBlocks);
                conn.exec("BEGIN");
                if (read_generation(conn) != generation) return;  // an indexer committed in between
                advise_huge_pages(conn.path());                    // this connection's own mapping
                joined.fetch_add(1);
                std::vector<std::uint16_t> piece;
                take_packed(conn, piece);
                conn.exec("COMMIT");
            } catch (const std::exception&) {
                // this thread's blocks are scored again below, by the main thread
            }
        });
    }
    std::vector<std::uint16_t> piece;
    Stmt rows(db, "SELECT id, embedding FROM images WHERE id >= ? AND id < ? ORDER BY id");
    for (auto& u : units) {
        if (!u.packed) score_dirty(db, rows, u, query, dim, isa);
    }
    take_packed(db, piece);
    for (auto& h : helpers) h.join();  // (the normal way out; join_all covers the others)

    Scan out;
    out.threads = joined.load();
    out.ids.reserve(static_cast<std::size_t>(total));
    out.scores.reserve(static_cast<std::size_t>(total));
    for (auto& u : units) {
        if (!u.done) {  // a helper's block, left unfinished by an error: scored here
            u.ids.clear();
            score_packed(db, u, query, dim, isa, piece);
        }
        out.ids.insert(out.ids.end(), u.ids.begin(), u.ids.end());
        out.scores.insert(out.scores.end(), u.scores.begin(), u.scores.end());
    }
    return out;
}

int run_query(const cli::Args& args, const std::vector<std::string>& texts) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const std::string model_path = args.one("model"), db_path = args.one("db");
    const auto& images = args.all("image");
    const auto& negatives = args.all("not");
    if (db_path.empty()) fail("query: --db INDEX is required (made by `image_search index`)\n" + std::string(kUsage), 2);
    if (model_path.empty()) fail("query: --model FILE is required (the model the index was made with)\n" + std::string(kUsage), 2);
    if (texts.empty() && images.empty()) fail("query: nothing to search for; give a TEXT or an --image PATH\n" + std::string(kUsage), 2);
    for (const auto& t : texts) if (t.empty()) fail("query: a query text is empty; give it some words", 2);
    for (const auto& t : negatives) if (t.empty()) fail("query: a --not text is empty; give it some words", 2);
    const long top_k = args.one("top-k").empty() ? 10 : cli::parse_positive(kProgram, "top-k", args.one("top-k"));

    if (!std::filesystem::exists(db_path)) {
        throw altclip::IoError(db_path + ": no such index; create it with image_search index --model FILE --db " +
                               db_path + " DIR...");
    }
    Db db(db_path, true);
    const auto meta = read_meta(db);
    const auto file = altclip::ModelFile::open(model_path);
    check_model(db, meta, altclip::model_identity(*file), model_path);
    // The tokenizer (its vocabulary parsed from the file) is built on another thread while
    // the model checks its tensors and starts its threads: a query pays for the slower one.
    auto made = std::async(std::launch::async, [&file] { return altclip::AltCLIPProcessor(*file); });
    const altclip::AltCLIPModel model(file, cli::model_options(args, kProgram));
    const altclip::AltCLIPProcessor processor = made.get();
    const auto t_load = clock::now();

    const std::int64_t dim = model.config().projection_dim;
    altclip::Tensor positive({0, dim}), negative({0, dim});
    auto append = [dim](altclip::Tensor& all, const altclip::Tensor& more) {
        all.data.insert(all.data.end(), more.data.begin(), more.data.end());
        all.shape = {static_cast<std::int64_t>(all.data.size()) / dim, dim};
    };
    if (!texts.empty()) append(positive, model.get_text_features(processor(texts)));
    if (!images.empty()) append(positive, model.get_image_features(processor.load_images(images)));
    if (!negatives.empty()) append(negative, model.get_text_features(processor(negatives)));
    const auto query = altclip::combine_query(positive, &negative);
    const auto t_embed = clock::now();

    // One read transaction: every statement below sees the same snapshot, even while an
    // indexer commits (WAL lets both run). The scan's other threads check they see it too.
    db.exec(kMapBlocks);
    db.exec("BEGIN");
    Scan scanned_rows = scan(db, query, static_cast<std::size_t>(dim), model.isa(), model.num_threads());
    std::vector<std::int64_t> ids = std::move(scanned_rows.ids);
    std::vector<float> scores = std::move(scanned_rows.scores);
    const int scan_threads = scanned_rows.threads;
    const auto t_read = clock::now();
    // The scores of packed rows are off by at most `eps` (half floats): every row that could
    // be in the true top k scores at least the k-th best score minus 2 eps. Those are scored
    // again from their float32 embeddings, so the result is the exact top k.
    std::vector<altclip::Hit> hits;
    std::size_t scanned = 0;
    if (!ids.empty()) {
        const std::size_t k = std::min(static_cast<std::size_t>(top_k), ids.size());
        std::vector<float> sorted = scores;
        std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k - 1), sorted.end(), std::greater<float>());
        const double floor = sorted[k - 1] - 2 * altclip::half_dot_error(static_cast<std::size_t>(dim));
        std::vector<std::int64_t> candidates;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (scores[i] >= floor) candidates.push_back(ids[i]);
        }
        std::vector<float> exact(candidates.size()), row(static_cast<std::size_t>(dim));
        Stmt get(db, "SELECT embedding FROM images WHERE id = ?");
        for (std::size_t c = 0; c < candidates.size(); ++c) {
            get.bind(1, candidates[c]);
            int len = 0;
            const void* p = get.step() ? get.blob(0, len) : nullptr;
            if (!p || len != static_cast<int>(row.size() * sizeof(float))) throw altclip::FormatError(db_path + ": image entry " + std::to_string(candidates[c]) + " is damaged; rebuild the index");
            std::memcpy(row.data(), p, row.size() * sizeof(float));
            get.reset();
            altclip::score_rows(row.data(), 1, static_cast<std::size_t>(dim), query, &exact[c], model.isa());
        }
        hits = altclip::top_k_scores(exact, k);  // candidates are in scan (id) order: ties keep the lower id
        scanned = ids.size();
        ids = std::move(candidates);
    }
    const auto t_scan = clock::now();

    std::vector<Result> results;
    {
        Stmt path(db, "SELECT path, thumbnail FROM images WHERE id = ?");
        for (const auto& h : hits) {
            path.bind(1, ids[h.index]);
            if (path.step()) results.push_back({path.bytes(0), h.score, path.bytes(1)});
            path.reset();
        }
    }
    if (!args.one("html").empty()) {
        std::string title = "image_search:";
        for (const auto& t : texts) title += " \"" + t + "\"";
        for (const auto& i : images) title += " like " + i;
        for (const auto& n : negatives) title += " not \"" + n + "\"";
        write_atomically(args.one("html"), html_page(results, title));
    }
    if (args.has("json")) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& r : results) {
            nlohmann::json j = {{"path", r.path}, {"score", r.score}};
            if (!valid_utf8(r.path)) j["path_hex"] = hex_bytes(r.path);  // "path" then has U+FFFD in place of bad bytes
            out.push_back(std::move(j));
        }
        std::cout << nlohmann::json{{"results", std::move(out)}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        for (const auto& r : results) {
            char score[32];
            std::snprintf(score, sizeof score, "%.4f", r.score);
            std::cout << score << "  " << printable(r.path) << "\n";
        }
    }
    if (args.has("timings")) {
        auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
        std::fprintf(stderr, "timings: open+model load %.1f ms, query embedding %.1f ms, read and score %zu vectors %.1f ms "
                     "on %d thread%s, exact top k of %zu candidates %.1f ms\n",
                     ms(t0, t_load), ms(t_load, t_embed), scanned, ms(t_embed, t_read), scan_threads, scan_threads == 1 ? "" : "s", ids.size(),
                     ms(t_read, t_scan));
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || (std::string(argv[1]) != "index" && std::string(argv[1]) != "query")) {
        if (argc >= 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
            std::cout << kUsage;
            return 0;
        }
        fail("give a command, index or query\n" + std::string(kUsage), 2);
    }
    const std::string command = argv[1];
    const bool index = command == "index";
    const std::set<std::string> options = index ? std::set<std::string>{"model", "db", "threads", "batch"}
                                                : std::set<std::string>{"model", "db", "threads", "image", "not", "top-k", "html"};
    const std::set<std::string> flags = index ? std::set<std::string>{"exact"} : std::set<std::string>{"exact", "json", "timings"};
    // Words that are not options are the folders (index) or query texts (query).
    std::vector<std::string> positional;
    std::vector<char*> rest = {argv[0]};
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--", 0) == 0 || a == "-h") {
            rest.push_back(argv[i]);
            if (options.count(a.substr(2)) && i + 1 < argc) rest.push_back(argv[++i]);
        } else {
            positional.push_back(a);
        }
    }
    const auto args = cli::parse(static_cast<int>(rest.size()), rest.data(), kProgram, options, flags, kUsage);
    try {
        return index ? run_index(args, positional) : run_query(args, positional);
    } catch (const altclip::Error& e) {
        fail(command + ": " + printable(e.what()), 1);
    } catch (const std::exception& e) {
        fail(command + ": " + printable(e.what()), 1);
    }
}
