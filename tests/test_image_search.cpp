// examples/image_search, run as a user runs it: incremental indexing of real test photos
// (add, change, delete, move), the index equal to a fresh one, query rankings equal to
// `embed --normalize`, a real SIGKILL / SIGINT partway, bad input, and the HTML page
// rendered by headless Chromium.
#ifdef ALTCLIP_HAVE_IMAGE_SEARCH
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <altclip/altclip.hpp>

#include "parity.hpp"
#include "temp_dir.hpp"

using altclip_test::data_path;
using altclip_test::TempDir;
using altclip_test::read_bytes;
namespace fs = std::filesystem;

namespace {

const std::string kModel = data_path("models/tiny.altclip");


struct Run {
    int status = -1;  // exit code, or 128 + signal
    std::string out, err;
};

/// Starts `program args...` with stdout and stderr to files; returns its pid.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    return pid;
}

Run finish(pid_t pid, const fs::path& out, const fs::path& err) {
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    Run r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = read_bytes(out.string());
    r.err = read_bytes(err.string());
    return r;
}

Run run(const fs::path& tmp, std::vector<std::string> argv) {
    const fs::path out = tmp / "stdout.txt", err = tmp / "stderr.txt";
    return finish(spawn(argv, out, err), out, err);
}

std::string program(const std::string& name) { return std::string(ALTCLIP_BINARY_DIR) + "/examples/" + name; }

Run search(const fs::path& tmp, std::vector<std::string> args) {
    args.insert(args.begin(), program("image_search"));
    return run(tmp, args);
}

Run index(const fs::path& tmp, const fs::path& db, const std::vector<std::string>& dirs, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"index", "--model", kModel, "--db", db.string()};
    a.insert(a.end(), dirs.begin(), dirs.end());
    a.insert(a.end(), extra.begin(), extra.end());
    return search(tmp, a);
}

/// The counts of the summary line "added A, updated U, moved M, removed R, unchanged N, failed F".
std::map<std::string, int> counts(const std::string& out) {
    std::map<std::string, int> c;
    const std::regex re("added (\\d+), updated (\\d+), moved (\\d+), removed (\\d+), unchanged (\\d+), failed (\\d+)");
    std::smatch m;
    REQUIRE(std::regex_search(out, m, re));
    const char* names[] = {"added", "updated", "moved", "removed", "unchanged", "failed"};
    for (int i = 0; i < 6; ++i) c[names[i]] = std::stoi(m[i + 1]);
    return c;
}

struct Row {
    std::int64_t size = 0, hash = 0;
    std::vector<float> embedding;
};

/// path -> entry, read with SQLite directly (read-only).
std::map<std::string, Row> read_index(const fs::path& db) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, "SELECT path, size, hash, embedding FROM images", -1, &s, nullptr) == SQLITE_OK);
    std::map<std::string, Row> rows;
    while (sqlite3_step(s) == SQLITE_ROW) {
        Row r;
        const std::string path(static_cast<const char*>(sqlite3_column_blob(s, 0)), static_cast<std::size_t>(sqlite3_column_bytes(s, 0)));
        r.size = sqlite3_column_int64(s, 1);
        r.hash = sqlite3_column_int64(s, 2);
        r.embedding.resize(static_cast<std::size_t>(sqlite3_column_bytes(s, 3)) / 4);
        if (!r.embedding.empty()) std::memcpy(r.embedding.data(), sqlite3_column_blob(s, 3), r.embedding.size() * 4);  // any alignment
        rows[path] = std::move(r);
    }
    sqlite3_finalize(s);
    REQUIRE(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) == "ok");
    sqlite3_finalize(s);
    sqlite3_close(h);
    return rows;
}

void sql(const fs::path& db, const std::string& statements) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(h, statements.c_str(), nullptr, nullptr, &err);
    INFO((err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(h);
    REQUIRE(rc == SQLITE_OK);
}

std::int64_t sql_int(const fs::path& db, const std::string& query) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, query.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const std::int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}

void copy(const std::string& from, const fs::path& to) {
    fs::create_directories(to.parent_path());
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

/// A folder of real test photos (several formats), an undecodable file and an empty one.
void make_photos(const fs::path& dir) {
    for (const char* name : {"chelsea.png", "rocket.jpg", "camera.png", "palette_color.png", "rgb_64x48.jpg",
                             "grey_40x30.jpg", "rgba_29x31.png", "palette_31x19.gif"}) {
        copy(data_path(std::string("images/") + name), dir / name);
    }
    copy(data_path("images/rgb_37x23.bmp"), dir / "sub" / "rgb_37x23.bmp");
    copy(data_path("images/interlaced_35x27.png"), dir / "sub" / "deeper" / "interlaced.png");
    std::ofstream(dir / "notes.txt") << "not an image";
    std::ofstream(dir / "sub" / "empty.jpg");
}

void check_same_index(const std::map<std::string, Row>& a, const std::map<std::string, Row>& b) {
    REQUIRE(a.size() == b.size());
    for (const auto& [path, row] : a) {
        INFO(path);
        REQUIRE(b.count(path));
        const auto& other = b.at(path);
        CHECK(row.size == other.size);
        CHECK(row.hash == other.hash);
        REQUIRE(row.embedding.size() == other.embedding.size());
        for (std::size_t i = 0; i < row.embedding.size(); ++i) CHECK(std::fabs(row.embedding[i] - other.embedding[i]) < 1e-5);
    }
}

}  // namespace

TEST_CASE("image_search index is incremental and equals a fresh index of the final folder", "[image_search]") {
    TempDir t("altclip_search");
    const fs::path photos = t.path / "photos", db = t.path / "index.db";
    make_photos(photos);

    auto r = index(t.path, db, {photos.string()}, {"--batch", "3"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    auto c = counts(r.out);
    CHECK(c["added"] == 10);
    CHECK(c["failed"] == 2);
    CHECK(c["unchanged"] == 0);
    // Both bad files are listed with their reason; neither stopped the run.
    CHECK_THAT(r.out, Catch::Matchers::Contains((photos / "notes.txt").string() + ": not a decodable image"));
    CHECK_THAT(r.out, Catch::Matchers::Contains((photos / "sub" / "empty.jpg").string() + ": empty image file"));
    CHECK(read_index(db).size() == 10);

    r = index(t.path, db, {photos.string()});
    c = counts(r.out);
    CHECK(r.status == 0);
    CHECK(c == std::map<std::string, int>{{"added", 0}, {"updated", 0}, {"moved", 0}, {"removed", 0}, {"unchanged", 10}, {"failed", 2}});

    // Add, change (other content: a JPEG under a .png name, judged by content), delete, move.
    copy(data_path("images/rgb_41x80.png"), photos / "sub" / "new.png");
    copy(data_path("images/grey_40x30.jpg"), photos / "camera.png");
    fs::remove(photos / "sub" / "rgb_37x23.bmp");
    fs::create_directories(photos / "trip");
    fs::rename(photos / "rocket.jpg", photos / "trip" / "launch.jpg");
    r = index(t.path, db, {photos.string()});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    c = counts(r.out);
    CHECK(c == std::map<std::string, int>{{"added", 1}, {"updated", 1}, {"moved", 1}, {"removed", 1}, {"unchanged", 7}, {"failed", 2}});

    const fs::path fresh = t.path / "fresh.db";
    r = index(t.path, fresh, {photos.string()}, {"--batch", "5"});
    REQUIRE(r.status == 0);
    CHECK(counts(r.out)["added"] == 10);
    check_same_index(read_index(db), read_index(fresh));
}

TEST_CASE("image_search query ranks as the dot products of embed --normalize outputs", "[image_search]") {
    TempDir t("altclip_search");
    const fs::path photos = t.path / "photos", db = t.path / "index.db";
    make_photos(photos);
    REQUIRE(index(t.path, db, {photos.string()}).status == 0);
    const auto rows = read_index(db);

    std::vector<std::string> embed = {program("embed"), "--model", kModel, "--normalize", "--text", "a photo of a cat"};
    std::vector<std::string> paths;
    for (const auto& [path, row] : rows) {
        paths.push_back(path);
        embed.push_back("--image");
        embed.push_back(path);
    }
    const auto e = run(t.path, embed);
    REQUIRE(e.status == 0);
    const auto ej = nlohmann::json::parse(e.out);
    const auto text = ej["text_embeds"][0].get<std::vector<float>>();
    std::vector<std::pair<double, std::string>> expected;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        const auto img = ej["image_embeds"][i].get<std::vector<float>>();
        double s = 0;
        for (std::size_t j = 0; j < img.size(); ++j) s += double(img[j]) * text[j];
        expected.emplace_back(s, paths[i]);
    }
    std::sort(expected.begin(), expected.end(), [](const auto& a, const auto& b) { return a.first > b.first; });

    auto q = search(t.path, {"query", "--db", db.string(), "--model", kModel, "a photo of a cat", "--top-k", "100", "--json"});
    INFO(q.err);
    REQUIRE(q.status == 0);
    const auto results = nlohmann::json::parse(q.out)["results"];
    REQUIRE(results.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CHECK(results[i]["path"] == expected[i].second);
        CHECK(std::fabs(results[i]["score"].get<double>() - expected[i].first) < 1e-5);
    }

    // The scan reads packed blocks (complete after a run) and, for rows changed since (an
    // interrupted run, or rows written by another program), the rows themselves: both give
    // the same results, across several blocks.
    CHECK(sql_int(db, "SELECT count(*) FROM dirty_blocks") == 0);
    CHECK(sql_int(db, "SELECT sum(count) FROM scan_blocks") == 10);
    sql(db, "INSERT INTO images (id, path, size, mtime_ns, hash, embedding) SELECT id + 5000, CAST('/elsewhere/' || id AS BLOB),"
            " size, mtime_ns, hash, embedding FROM images WHERE id <= 3;"
            "INSERT INTO images (id, path, size, mtime_ns, hash, embedding) SELECT id + 9000, CAST('/farther/' || id AS BLOB),"
            " size, mtime_ns, hash, embedding FROM images WHERE id <= 2;");
    CHECK(sql_int(db, "SELECT count(*) FROM dirty_blocks") == 2);
    const std::vector<std::string> all = {"query", "--db", db.string(), "--model", kModel, "a photo of a cat", "--top-k", "100", "--json"};
    const auto dirty = search(t.path, all);
    REQUIRE(index(t.path, db, {photos.string()}).status == 0);  // packs them; keeps rows outside its folders
    CHECK(sql_int(db, "SELECT count(*) FROM dirty_blocks") == 0);
    CHECK(sql_int(db, "SELECT count(*) FROM scan_blocks") == 3);
    const auto packed = search(t.path, all);
    REQUIRE(dirty.status == 0);
    CHECK(nlohmann::json::parse(dirty.out)["results"].size() == 15);
    CHECK(dirty.out == packed.out);

    // --top-k cuts the list; the plain output has one "score  path" line per result.
    q = search(t.path, {"query", "--db", db.string(), "--model", kModel, "a photo of a cat", "--top-k", "3"});
    REQUIRE(q.status == 0);
    CHECK(std::count(q.out.begin(), q.out.end(), '\n') == 3);
    CHECK_THAT(q.out, Catch::Matchers::Contains(expected[0].second));

    // An indexed image as the example finds itself first, at a score of 1; a query in
    // another language and one with --not work too.
    q = search(t.path, {"query", "--db", db.string(), "--model", kModel, "--image", (photos / "chelsea.png").string(), "--json"});
    REQUIRE(q.status == 0);
    const auto self = nlohmann::json::parse(q.out)["results"][0];
    CHECK(self["path"] == (photos / "chelsea.png").string());
    CHECK(self["score"].get<double>() > 0.99999);
    q = search(t.path, {"query", "--db", db.string(), "--model", kModel, "一只猫的照片", "--image", (photos / "chelsea.png").string(),
                        "--not", "a dog", "--json"});
    CHECK(q.status == 0);
    CHECK(nlohmann::json::parse(q.out)["results"].size() == 10);

    // Many rows in several blocks, scanned as half floats: the top 100 is still the exact
    // ranking of the stored float32 embeddings (every candidate is scored again).
    {
        std::mt19937 rng(3);
        std::normal_distribution<float> g;
        sqlite3* h = nullptr;
        REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
        sqlite3_stmt* ins = nullptr;
        REQUIRE(sqlite3_prepare_v2(h, "INSERT INTO images (path, size, mtime_ns, hash, embedding) VALUES (?, 1, 0, 0, ?)", -1, &ins, nullptr) == SQLITE_OK);
        sqlite3_exec(h, "BEGIN", nullptr, nullptr, nullptr);
        for (int i = 0; i < 9000; ++i) {
            // Near the text's direction, so that many scores crowd the top.
            std::vector<float> v(text.size());
            double n = 0;
            for (std::size_t j = 0; j < v.size(); ++j) n += double(v[j] = text[j] + 0.05f * g(rng)) * v[j];
            for (auto& x : v) x = static_cast<float>(x / std::sqrt(n));
            const std::string path = "/random/" + std::to_string(i);
            sqlite3_bind_blob(ins, 1, path.data(), static_cast<int>(path.size()), SQLITE_TRANSIENT);
            sqlite3_bind_blob(ins, 2, v.data(), static_cast<int>(v.size() * 4), SQLITE_TRANSIENT);
            REQUIRE(sqlite3_step(ins) == SQLITE_DONE);
            sqlite3_reset(ins);
        }
        sqlite3_exec(h, "COMMIT", nullptr, nullptr, nullptr);
        sqlite3_finalize(ins);
        sqlite3_close(h);
        REQUIRE(index(t.path, db, {photos.string()}).status == 0);
        CHECK(sql_int(db, "SELECT count(*) FROM dirty_blocks") == 0);
        std::vector<std::pair<double, std::string>> truth;
        for (const auto& [path, row] : read_index(db)) {
            double d = 0;
            for (std::size_t j = 0; j < row.embedding.size(); ++j) d += double(row.embedding[j]) * text[j];
            truth.emplace_back(d, path);
        }
        std::sort(truth.begin(), truth.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        auto top = search(t.path, {"query", "--db", db.string(), "--model", kModel, "a photo of a cat", "--top-k", "100", "--json", "--timings"});
        REQUIRE(top.status == 0);
        INFO(top.err);
        const auto got = nlohmann::json::parse(top.out)["results"];
        REQUIRE(got.size() == 100);
        for (std::size_t i = 0; i < 100; ++i) {
            CHECK(std::fabs(got[i]["score"].get<double>() - truth[i].first) < 1e-5);
            if (std::fabs(truth[i].first - truth[std::min<std::size_t>(i + 1, 99)].first) > 1e-5 &&
                (i == 0 || std::fabs(truth[i].first - truth[i - 1].first) > 1e-5)) {
                CHECK(got[i]["path"] == truth[i].second);  // (rows within float noise of a neighbour may swap)
            }
        }

        // The packed blocks scanned by two threads (each with its own connection, checked to
        // see the same generation of the index) or by one give the same output, byte for byte.
        CHECK(sql_int(db, "SELECT count(*) FROM scan_blocks") >= 3);
        auto with = [&](const char* threads) {
            return search(t.path, {"query", "--db", db.string(), "--model", kModel, "a photo of a cat", "--top-k", "100",
                                   "--json", "--timings", "--threads", threads});
        };
        const auto one = with("1"), two = with("2");
        REQUIRE(one.status == 0);
        REQUIRE(two.status == 0);
        CHECK_THAT(one.err, Catch::Matchers::Contains("on 1 thread,"));
        CHECK_THAT(two.err, Catch::Matchers::Contains("on 2 threads,"));
        CHECK(one.out == two.out);
        CHECK(two.out == top.out);

        // Every write moves the generation on (the triggers live in the index, so any writer's
        // do). An index without the counter (made before it) is scanned on one thread, with
        // the same results, until the next index run adds it.
        const auto before = sql_int(db, "SELECT value FROM meta WHERE key = 'generation'");
        sql(db, "UPDATE images SET mtime_ns = mtime_ns + 1 WHERE id = 1");
        CHECK(sql_int(db, "SELECT value FROM meta WHERE key = 'generation'") == before + 1);
        sql(db, "DELETE FROM meta WHERE key = 'generation';"
                "DROP TRIGGER generation_images_INSERT; DROP TRIGGER generation_images_UPDATE;"
                "DROP TRIGGER generation_images_DELETE; DROP TRIGGER generation_scan_blocks_INSERT;"
                "DROP TRIGGER generation_scan_blocks_UPDATE; DROP TRIGGER generation_scan_blocks_DELETE;");
        const auto old_index = with("2");
        REQUIRE(old_index.status == 0);
        CHECK_THAT(old_index.err, Catch::Matchers::Contains("on 1 thread,"));
        CHECK(old_index.out == one.out);
        REQUIRE(index(t.path, db, {photos.string()}).status == 0);
        CHECK(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'generation_%'") == 6);
        const auto upgraded = with("2");
        CHECK_THAT(upgraded.err, Catch::Matchers::Contains("on 2 threads,"));
        CHECK(upgraded.out == one.out);

        // A damaged block, scanned on two threads: a clear error and exit status 1 (the main
        // thread joins the other before it reports), whichever thread meets the block.
        for (const char* block : {"0", "2"}) {
            sql(db, std::string("UPDATE scan_blocks SET vectors = x'0000' WHERE block = ") + block);
            const auto damaged = with("2");
            CHECK(damaged.status == 1);
            CHECK_THAT(damaged.err, Catch::Matchers::Contains("scan block " + std::string(block) + " has the wrong size"));
            sql(db, std::string("INSERT INTO dirty_blocks VALUES (") + block + ")");  // repacked by the next run
            REQUIRE(index(t.path, db, {photos.string()}).status == 0);
            CHECK(with("2").out == one.out);
        }
    }
}

TEST_CASE("image_search index survives a real SIGKILL and SIGINT partway and then finishes the job", "[image_search]") {
    TempDir t("altclip_search");
    const fs::path photos = t.path / "photos", db = t.path / "index.db";
    fs::create_directories(photos);
    const int n = 300;
    copy(data_path("images/rocket.jpg"), photos / "rocket.jpg");
    for (int i = 1; i < n; ++i) fs::create_hard_link(photos / "rocket.jpg", photos / ("copy" + std::to_string(i) + ".jpg"));

    const std::vector<std::string> argv = {program("image_search"), "index", "--model", kModel, "--db", db.string(),
                                           photos.string(), "--batch", "1", "--threads", "1"};
    auto count_rows = [&]() -> int {
        if (!fs::exists(db)) return 0;
        sqlite3* h = nullptr;
        int rows = 0;
        if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
            sqlite3_busy_timeout(h, 1000);
            sqlite3_stmt* s = nullptr;
            if (sqlite3_prepare_v2(h, "SELECT count(*) FROM images", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
                rows = sqlite3_column_int(s, 0);
            }
            sqlite3_finalize(s);
        }
        sqlite3_close(h);
        return rows;
    };
    auto interrupt_partway = [&](int sig) {
        const fs::path out = t.path / "out.txt", err = t.path / "err.txt";
        const pid_t pid = spawn(argv, out, err);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        const int start = count_rows();
        while (count_rows() < start + 20 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        kill(pid, sig);
        return finish(pid, out, err);
    };

    auto killed = interrupt_partway(SIGKILL);
    CHECK(killed.status == 128 + SIGKILL);
    auto rows = read_index(db);  // opens, passes integrity_check
    const std::size_t after_kill = rows.size();
    INFO("entries after SIGKILL: " << after_kill);
    CHECK(after_kill >= 20);
    CHECK(after_kill < static_cast<std::size_t>(n));
    for (const auto& [path, row] : rows) {  // complete entries only
        REQUIRE(row.embedding.size() == 16);
        double norm = 0;
        for (float v : row.embedding) norm += double(v) * v;
        CHECK(std::fabs(norm - 1) < 1e-5);
    }
    // The index answers queries as it is, every complete entry included.
    const auto q = search(t.path, {"query", "--db", db.string(), "--model", kModel, "a rocket", "--top-k", "1000", "--json"});
    REQUIRE(q.status == 0);
    CHECK(nlohmann::json::parse(q.out)["results"].size() == after_kill);

    auto stopped = interrupt_partway(SIGINT);
    INFO(stopped.out << stopped.err);
    CHECK(stopped.status == 130);
    CHECK_THAT(stopped.out, Catch::Matchers::Contains("interrupted"));
    const std::size_t after_int = read_index(db).size();
    CHECK(after_int > after_kill);
    CHECK(counts(stopped.out)["added"] == static_cast<int>(after_int - after_kill));

    const auto r = index(t.path, db, {photos.string()});
    REQUIRE(r.status == 0);
    auto c = counts(r.out);
    CHECK(c["added"] == n - static_cast<int>(after_int));  // every image embedded once
    CHECK(c["unchanged"] == static_cast<int>(after_int));
    CHECK(read_index(db).size() == static_cast<std::size_t>(n));
}

TEST_CASE("image_search refuses bad input with a clear error, no output and no damage", "[image_search]") {
    TempDir t("altclip_search");
    const fs::path photos = t.path / "photos", db = t.path / "index.db";
    make_photos(photos);
    REQUIRE(index(t.path, db, {photos.string()}).status == 0);
    const std::string before = read_bytes(db.string());

    const fs::path empty = t.path / "empty", junk = t.path / "junk", notdb = t.path / "notes.db", otherdb = t.path / "other.db";
    fs::create_directories(empty);
    fs::create_directories(junk);
    std::ofstream(junk / "a.txt") << "text";
    std::ofstream(junk / "b.jpg");
    std::ofstream(notdb) << "this is not a database";
    {
        sqlite3* h = nullptr;
        REQUIRE(sqlite3_open(otherdb.c_str(), &h) == SQLITE_OK);
        REQUIRE(sqlite3_exec(h, "CREATE TABLE images (x); INSERT INTO images VALUES (1);", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(h);
    }
    const std::string notdb_before = read_bytes(notdb.string()), otherdb_before = read_bytes(otherdb.string());
    const std::string q8 = data_path("models/tiny-q8.altclip");
    const std::string D = db.string();

    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    const std::vector<Case> cases = {
        {{"index", "--model", kModel, "--db", (t.path / "new1.db").string(), (t.path / "missing").string()}, "no such folder"},
        {{"index", "--model", kModel, "--db", (t.path / "new2.db").string(), empty.string()}, "no files found"},
        {{"index", "--model", kModel, "--db", (t.path / "new3.db").string(), junk.string()}, "no images found"},
        {{"index", "--model", kModel, "--db", (t.path / "new4.db").string(), (photos / "chelsea.png").string()}, "not a folder"},
        {{"index", "--model", kModel, "--db", notdb.string(), photos.string()}, "not an image_search index"},
        {{"index", "--model", kModel, "--db", otherdb.string(), photos.string()}, "not an image_search index"},
        {{"index", "--model", q8, "--db", D, photos.string()}, "image_search index --model"},
        {{"index", "--model", kModel, "--db", D}, "give at least one folder"},
        {{"index", "--model", kModel, "--db", D, photos.string(), "--batch", "0"}, "--batch"},
        {{"query", "--model", kModel, "--db", D}, "nothing to search for"},
        {{"query", "--model", kModel, "--db", D, ""}, "empty"},
        {{"query", "--model", kModel, "--db", D, "cat", "--top-k", "0"}, "--top-k"},
        {{"query", "--model", q8, "--db", D, "cat"}, "was made by model"},
        {{"query", "--model", kModel, "--db", notdb.string(), "cat"}, "not an image_search index"},
        {{"query", "--model", kModel, "--db", otherdb.string(), "cat"}, "not an image_search index"},
        {{"query", "--model", kModel, "--db", (t.path / "missing.db").string(), "cat"}, "no such index"},
        {{"query", "--model", kModel, "--db", D, "cat", "--image", (photos / "notes.txt").string()}, "notes.txt"},
        {{"query", "--model", kModel, "--db", D, "cat", "--html", (t.path / "no" / "such" / "dir.html").string()}, "cannot write"},
        {{"search", "--model", kModel}, "give a command"},
    };
    for (const auto& c : cases) {
        const auto r = search(t.path, c.args);
        std::string cmd;
        for (const auto& a : c.args) cmd += " " + a;
        INFO("image_search" << cmd << "\n-> " << r.err);
        CHECK(r.status != 0);
        CHECK(r.out.empty());
        CHECK_THAT(r.err, Catch::Matchers::Contains(c.message));
    }
    for (const char* n : {"new1.db", "new2.db", "new3.db", "new4.db"}) CHECK_FALSE(fs::exists(t.path / n));
    CHECK(read_bytes(notdb.string()) == notdb_before);
    CHECK(read_bytes(otherdb.string()) == otherdb_before);
    CHECK(read_bytes(db.string()) == before);
    CHECK(read_index(db).size() == 10);
}

TEST_CASE("image_search escapes file names in its outputs and its HTML page renders in Chromium", "[image_search][html]") {
    TempDir t("altclip_search");
    const fs::path photos = t.path / "photos", db = t.path / "index.db";
    make_photos(photos);
    const std::string odd = "<b>cat & \"friends\" 'x'\n\x1b[31m\xff.png";  // markup, quotes, newline, ESC, non-UTF-8
    copy(data_path("images/chelsea.png"), photos / odd);
    REQUIRE(index(t.path, db, {photos.string()}).status == 0);
    const fs::path html = t.path / "results.html";
    const auto q = search(t.path, {"query", "--db", db.string(), "--model", kModel, "--image", data_path("images/chelsea.png"),
                                   "--top-k", "5", "--html", html.string()});
    INFO(q.err);
    REQUIRE(q.status == 0);
    // Terminal: one line per result, no raw control characters or invalid UTF-8.
    CHECK(std::count(q.out.begin(), q.out.end(), '\n') == 5);
    CHECK(q.out.find('\x1b') == std::string::npos);
    CHECK(q.out.find('\xff') == std::string::npos);
    CHECK_THAT(q.out, Catch::Matchers::Contains("<b>cat & \"friends\" 'x'\\n\\x1b[31m\\xff.png"));
    // JSON: valid, with the exact bytes in path_hex.
    const auto j = search(t.path, {"query", "--db", db.string(), "--model", kModel, "--image", data_path("images/chelsea.png"), "--json"});
    REQUIRE(j.status == 0);
    bool found = false;
    const auto parsed = nlohmann::json::parse(j.out);
    for (const auto& r : parsed["results"]) {
        if (r.contains("path_hex")) {
            found = true;
            std::string bytes;
            const std::string hex = r["path_hex"];
            for (std::size_t i = 0; i < hex.size(); i += 2) bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
            CHECK(bytes == (photos / odd).string());
        }
    }
    CHECK(found);
    // HTML: the name is escaped, never markup.
    // The thumbnails were made at index time (small JPEGs in the index).
    CHECK(sql_int(db, "SELECT count(*) FROM images WHERE thumbnail IS NOT NULL AND length(thumbnail) BETWEEN 200 AND 20000") == 11);
    const std::string page = read_bytes(html.string());
    CHECK(page.find("<b>cat") == std::string::npos);
    CHECK_THAT(page, Catch::Matchers::Contains("&lt;b&gt;cat &amp; &quot;friends&quot; &#39;x&#39;\\n\\x1b[31m\\xff.png"));
    CHECK(std::count(page.begin(), page.end(), '\n') < 40);
    CHECK_THAT(page, Catch::Matchers::Contains("data:image/jpeg;base64,"));

    if (std::system("command -v chromium >/dev/null 2>&1") != 0) {
        WARN("chromium not found: the page is not rendered (scripts/setup.sh --dev installs it)");
        return;
    }
    const fs::path shot = t.path / "shot.png";
    const auto c = run(t.path, {"/bin/sh", "-c", "exec chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot=" +
                                                     shot.string() + " --window-size=900,700 file://" + html.string()});
    INFO(c.err);
    REQUIRE(fs::exists(shot));
    const auto bytes = read_bytes(shot.string());
    const auto img = altclip::decode_image(bytes.data(), bytes.size(), shot.string());
    // Not blank: many pixels far from the page's near-white background, some of them coloured
    // (the cat's thumbnail), not only the black text.
    std::size_t dark = 0, coloured = 0;
    for (std::size_t i = 0; i < img.rgb.size(); i += 3) {
        const int r = img.rgb[i], g = img.rgb[i + 1], b = img.rgb[i + 2];
        if (r + g + b < 600) ++dark;
        if (std::max({r, g, b}) - std::min({r, g, b}) > 40) ++coloured;
    }
    const std::size_t pixels = img.rgb.size() / 3;
    INFO("dark " << dark << ", coloured " << coloured << " of " << pixels);
    CHECK(dark > pixels / 20);
    CHECK(coloured > pixels / 100);
}
#endif  // ALTCLIP_HAVE_IMAGE_SEARCH
