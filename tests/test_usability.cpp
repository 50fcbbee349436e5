// Issue #15, what a new user hit: every failure leaves the API as an altclip::Error (never a
// std::ios_failure, std::system_error, std::out_of_range or a crash), for every path the API
// and the programs accept (directories, FIFOs, endless devices, unreadable and huge files);
// thread counts the system cannot give; the probabilities API; the programs' --help and
// their escaping of names from outside; and what the README tells a user of the library.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <altclip/altclip.hpp>

#include "parity.hpp"
#include "json_nlohmann.hpp"

using altclip_test::data_path;
using altclip_test::quote;
using altclip_test::run;
using Catch::Matchers::Contains;

namespace {

namespace fs = std::filesystem;

/// A fresh folder under the system's temp folder, removed at the end of the test.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "altclip_usability_XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
        for (const auto& e : fs::directory_iterator(path, ec)) fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

/// Runs fn on another thread and waits at most `seconds`: a call that blocks (e.g. opening a
/// FIFO nobody writes to) fails the test instead of hanging the suite. The blocked thread is
/// left behind (it ends with the process).
bool finishes_within(std::function<void()> fn, int seconds) {
    struct State {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
    };
    auto state = std::make_shared<State>();
    std::thread([state, fn = std::move(fn)] {
        fn();
        std::lock_guard<std::mutex> lock(state->m);
        state->done = true;
        state->cv.notify_all();
    }).detach();
    std::unique_lock<std::mutex> lock(state->m);
    return state->cv.wait_for(lock, std::chrono::seconds(seconds), [&] { return state->done; });
}

/// What a call threw: "" if nothing, else the kind and the message.
struct Outcome {
    std::string kind;  // "", "altclip::IoError", ..., "altclip::Error", "std::exception: ...", "unknown"
    std::string message;
};

Outcome outcome_of(const std::function<void()>& fn) {
    Outcome o;
    try {
        fn();
    } catch (const altclip::IoError& e) {
        o = {"IoError", e.what()};
    } catch (const altclip::ResourceError& e) {
        o = {"ResourceError", e.what()};
    } catch (const altclip::InvalidArgument& e) {
        o = {"InvalidArgument", e.what()};
    } catch (const altclip::Error& e) {
        o = {"Error", e.what()};
    } catch (const std::exception& e) {
        o = {std::string("std::exception (not an altclip::Error)"), e.what()};
    } catch (...) {
        o = {"unknown (not an altclip::Error)", ""};
    }
    return o;
}

bool is_altclip_error(const Outcome& o) {
    return o.kind == "IoError" || o.kind == "ResourceError" || o.kind == "InvalidArgument" || o.kind == "Error";
}

/// A path the API accepts, and what it should say about it.
struct BadPath {
    std::string what;
    std::string path;
    std::string io_message;  // for paths refused before reading: IoError containing this; "" = any altclip::Error
};

/// Directories, FIFOs, devices, unreadable, endless and huge files: every one a path a user
/// can pass by mistake.
std::vector<BadPath> bad_paths(const TempDir& dir) {
    std::vector<BadPath> paths;
    paths.push_back({"a directory", dir.path.string(), "directory"});
    paths.push_back({"a directory with a trailing slash", dir.path.string() + "/", "directory"});
    const std::string fifo = dir / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    paths.push_back({"a FIFO nobody writes to", fifo, "FIFO"});
    paths.push_back({"an endless device", "/dev/zero", "character device"});
    paths.push_back({"an empty device", "/dev/null", "character device"});
    paths.push_back({"a missing file", dir / "missing.png", "No such file"});
    paths.push_back({"a path through a file", data_path("images/chelsea.png") + "/x", "Not a directory"});
    paths.push_back({"an empty path", "", "No such file"});
    const std::string loop = dir / "loop";
    REQUIRE(::symlink(loop.c_str(), loop.c_str()) == 0);
    paths.push_back({"a symlink loop", loop, "symbolic links"});
    // A regular file whose read fails (EIO): /proc/self/mem at offset 0.
    paths.push_back({"a file whose read fails", "/proc/self/mem", ""});
    // A regular file that reports size 0 and has content.
    paths.push_back({"a /proc file", "/proc/self/status", ""});
    const std::string unreadable = dir / "unreadable.png";
    { std::ofstream(unreadable) << "x"; }
    REQUIRE(::chmod(unreadable.c_str(), 0) == 0);
    paths.push_back({"an unreadable file", unreadable, ::geteuid() == 0 ? "" : "Permission denied"});  // root reads it
    // 3 GiB of holes: over every size limit, without using the disk.
    const std::string huge = dir / "huge.bin";
    {
        const int fd = ::open(huge.c_str(), O_CREAT | O_WRONLY, 0600);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, off_t(3) << 30) == 0);
        ::close(fd);
    }
    paths.push_back({"a 3 GiB file", huge, ""});
    return paths;
}

/// Every public function that takes a path.
std::vector<std::pair<std::string, std::function<void(const std::string&)>>> path_takers() {
    return {
        {"load_image", [](const std::string& p) { altclip::load_image(p); }},
        {"XLMRobertaTokenizer::from_file", [](const std::string& p) { altclip::XLMRobertaTokenizer::from_file(p); }},
        {"ModelFile::open", [](const std::string& p) { altclip::ModelFile::open(p); }},
        {"Container", [](const std::string& p) { altclip::Container c(p); }},
        {"AltCLIPModel::from_file", [](const std::string& p) { altclip::AltCLIPModel::from_file(p); }},
        {"AltCLIPTextModel::from_file", [](const std::string& p) { altclip::AltCLIPTextModel::from_file(p); }},
        {"AltCLIPVisionModel::from_file", [](const std::string& p) { altclip::AltCLIPVisionModel::from_file(p); }},
        {"AltCLIPProcessor::from_file", [](const std::string& p) { altclip::AltCLIPProcessor::from_file(p); }},
        {"AltCLIPProcessor::load_images", [](const std::string& p) {
             static const auto file = altclip::ModelFile::open(data_path("models/tiny.altclip"));
             altclip::AltCLIPProcessor(*file).load_images({data_path("images/chelsea.png"), p});
         }},
    };
}

/// A program's exit code, stdout and stderr.
struct Run {
    int code = -1;
    std::string out, err;
};

Run run_program(const std::string& program, const std::string& args, const TempDir& dir) {
    const std::string err_file = dir / "stderr.txt";
    int status = 0;
    Run r;
    r.out = run("timeout 120 " + std::string(ALTCLIP_BINARY_DIR) + "/examples/" + program + " " + args + " 2>" +
                    quote(err_file) + " </dev/null",
                status);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::ifstream f(err_file, std::ios::binary);
    r.err.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return r;
}

std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace

// --------------------------------------------------------------------------------------
// Paths

TEST_CASE("load_image of a directory is an IoError naming it, not a std::ios_failure", "[usability][io]") {
    TempDir dir;
    const auto o = outcome_of([&] { altclip::load_image(dir.path.string()); });
    CHECK(o.kind == "IoError");
    CHECK_THAT(o.message, Contains(dir.path.string()) && Contains("directory"));
}

TEST_CASE("XLMRobertaTokenizer::from_file of a directory is an IoError naming it", "[usability][io]") {
    TempDir dir;
    const auto o = outcome_of([&] { altclip::XLMRobertaTokenizer::from_file(dir.path.string()); });
    CHECK(o.kind == "IoError");
    CHECK_THAT(o.message, Contains(dir.path.string()) && Contains("directory"));
}

TEST_CASE("ModelFile::open of a FIFO fails at once instead of waiting for a writer", "[usability][io]") {
    TempDir dir;
    const std::string fifo = dir / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto o = std::make_shared<Outcome>();
    REQUIRE(finishes_within([o, fifo] { *o = outcome_of([&] { altclip::ModelFile::open(fifo); }); }, 20));
    CHECK(o->kind == "IoError");
    CHECK_THAT(o->message, Contains(fifo) && Contains("FIFO"));
}

TEST_CASE("an image file above kMaxImageFileBytes is refused before it is read", "[usability][io]") {
    TempDir dir;
    const std::string huge = dir / "huge.png";
    const int fd = ::open(huge.c_str(), O_CREAT | O_WRONLY, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, off_t(3) << 30) == 0);
    ::close(fd);
    const auto o = outcome_of([&] { altclip::load_image(huge); });
    CHECK(o.kind == "IoError");
    CHECK_THAT(o.message, Contains(huge) && Contains("above the limit"));
}

TEST_CASE("fuzz: every path-taking function fails with an altclip::Error on every kind of bad path",
          "[usability][io][fuzz]") {
    TempDir dir;
    const auto paths = bad_paths(dir);
    for (const auto& [name, fn] : path_takers()) {
        for (const auto& bad : paths) {
            auto o = std::make_shared<Outcome>();
            const auto call = fn;
            const std::string path = bad.path;
            INFO(name << "(" << bad.what << ": '" << bad.path << "')");
            REQUIRE(finishes_within([o, call, path] { *o = outcome_of([&] { call(path); }); }, 60));
            INFO("threw " << o->kind << ": " << o->message);
            CHECK(is_altclip_error(*o));
            if (!bad.path.empty()) CHECK_THAT(o->message, Contains(bad.path));
            if (!bad.io_message.empty()) {
                CHECK(o->kind == "IoError");
                CHECK_THAT(o->message, Contains(bad.io_message));
            }
        }
    }
}

// --------------------------------------------------------------------------------------
// Threads and memory

namespace {
/// The outcome of loading each of the three model classes from `file` with `options`.
std::vector<Outcome> outcomes_of_loading(const std::shared_ptr<const altclip::ModelFile>& file,
                                         const altclip::ModelOptions& options) {
    return {outcome_of([&] { altclip::AltCLIPModel m(file, options); }),
            outcome_of([&] { altclip::AltCLIPTextModel m(file, options); }),
            outcome_of([&] { altclip::AltCLIPVisionModel m(file, options); })};
}
}  // namespace

TEST_CASE("a thread count out of range is an InvalidArgument, not an uncaught std::system_error",
          "[usability][threads]") {
    const auto file = altclip::ModelFile::open(data_path("models/tiny.altclip"));
    for (const int n : {100000, altclip::kMaxThreads + 1, -1}) {
        altclip::ModelOptions options;
        options.num_threads = n;
        INFO("num_threads " << n);
        auto outcomes = outcomes_of_loading(file, options);
        outcomes.push_back(outcome_of([&] { altclip::AltCLIPModel::from_file(data_path("models/tiny.altclip"), n); }));
        for (const auto& o : outcomes) {
            CHECK(o.kind == "InvalidArgument");
            CHECK_THAT(o.message, Contains("num_threads") && Contains(std::to_string(n)));
        }
    }
    altclip::ModelOptions two;
    two.num_threads = 2;
    CHECK(altclip::AltCLIPModel(file, two).num_threads() == 2);
}

TEST_CASE("the pool's spin: out of range an InvalidArgument; any spin, the same numbers", "[usability][threads]") {
    const auto file = altclip::ModelFile::open(data_path("models/tiny.altclip"));
    for (const int us : {-1, altclip::kMaxSpinMicroseconds + 1}) {
        altclip::ModelOptions options;
        options.spin_us = us;
        INFO("spin_us " << us);
        for (const auto& o : outcomes_of_loading(file, options)) {
            CHECK(o.kind == "InvalidArgument");
            CHECK_THAT(o.message, Contains("spin_us") && Contains(std::to_string(us)));
        }
    }
    const altclip::AltCLIPProcessor processor(*file);
    const auto tokens = processor(std::vector<std::string>{"a photo of a cat", "une photo d'un chien"});
    const auto pixels = processor.load_images({data_path("images/chelsea.png"), data_path("images/rocket.jpg")});
    altclip::ModelOptions spinning, sleeping;
    spinning.num_threads = sleeping.num_threads = 2;
    sleeping.spin_us = 0;
    const altclip::AltCLIPModel a(file, spinning), b(file, sleeping);
    const auto oa = a.forward(tokens, pixels), ob = b.forward(tokens, pixels);
    CHECK(oa.text_embeds.data == ob.text_embeds.data);
    CHECK(oa.image_embeds.data == ob.image_embeds.data);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALTCLIP_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ALTCLIP_TEST_SANITIZED 1
#endif
#endif

#ifndef ALTCLIP_TEST_SANITIZED
TEST_CASE("memory a batch cannot get is a ResourceError, not a std::bad_alloc", "[usability][memory]") {
    // In a child process limited to its current address space + 512 MB: a batch of 8 images
    // cropped to 10000x10000 needs 9.6 GB of pixel values.
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        std::ifstream("/proc/self/statm") >> pages;
        const rlim_t limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + (rlim_t(512) << 20);
        const rlimit rl{limit, limit};
        if (::setrlimit(RLIMIT_AS, &rl) != 0) ::_exit(3);
        altclip::CLIPImageProcessorConfig c;
        c.crop_height = c.crop_width = 10000;
        const altclip::CLIPImageProcessor processor(c);
        const std::vector<std::uint8_t> grey(64 * 64, 128);
        const std::vector<altclip::Image> images(8, altclip::image_from_pixels(grey.data(), 64, 64, 1));
        try {
            processor(images);
            ::_exit(1);
        } catch (const altclip::ResourceError& e) {
            ::_exit(std::string(e.what()).find("batch of 8 images") != std::string::npos ? 0 : 4);
        } catch (...) {
            ::_exit(2);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 1: no error, 2: not a ResourceError, 4: message without the batch
}
#endif

TEST_CASE("a crop size above kMaxImagePixels is a ConfigError when the processor is made", "[usability][memory]") {
    altclip::CLIPImageProcessorConfig c;
    c.crop_height = c.crop_width = 65536;
    CHECK_THROWS_AS(altclip::CLIPImageProcessor(c), altclip::ConfigError);
    const auto j = altclip::json::parse(R"({"crop_size": 65536})");
    CHECK_THROWS_AS(altclip::CLIPImageProcessor(altclip::CLIPImageProcessorConfig::from_json(j)), altclip::ConfigError);
}

TEST_CASE("a config value that is not UTF-8 is reported, not an exception of the JSON writer", "[usability]") {
    const auto j = altclip::json::Value::object({{"do_resize", std::string("\xFF\xFE")}});
    const auto o = outcome_of([&] { altclip::CLIPImageProcessorConfig::from_json(j); });
    CHECK(o.kind == "Error");  // a ConfigError
    CHECK_THAT(o.message, Contains("do_resize"));
}

// --------------------------------------------------------------------------------------
// Tensors and probabilities

TEST_CASE("tensors of the wrong rank are an InvalidArgument, not std::out_of_range or SIGFPE", "[usability][tensor]") {
    altclip::Tensor empty;
    CHECK_THROWS_AS(empty.dim(0), altclip::InvalidArgument);
    CHECK_THROWS_AS(altclip::l2_normalize_rows(empty), altclip::InvalidArgument);
    altclip::Tensor no_rows({0, 4});
    CHECK_THROWS_AS(altclip::l2_normalize_rows(no_rows), altclip::InvalidArgument);
    CHECK_THROWS_AS(altclip::softmax(altclip::Tensor({3})), altclip::InvalidArgument);
    CHECK_THROWS_AS(altclip::AltCLIPModel::logits(altclip::Tensor({2, 4}), altclip::Tensor({3, 5}), 1.0f),
                    altclip::InvalidArgument);
}

TEST_CASE("softmax gives each row's probabilities, stable for large logits", "[usability][tensor]") {
    const altclip::Tensor logits({2, 3}, {1.0f, 2.0f, 3.0f, 1000.0f, 1000.0f, -1000.0f});
    const auto p = altclip::softmax(logits);
    REQUIRE(p.shape == std::vector<std::int64_t>{2, 3});
    const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    CHECK(p.data[0] == Approx(std::exp(1.0) / z));
    CHECK(p.data[2] == Approx(std::exp(3.0) / z));
    CHECK(p.data[3] == Approx(0.5));
    CHECK(p.data[4] == Approx(0.5));
    CHECK(p.data[5] == 0.0f);
}

TEST_CASE("probs_per_image equals the reference's logits_per_image.softmax(dim=1)", "[usability][parity]") {
    const altclip::Container ref(data_path("models/real224.ref"));
    const auto meta = altclip_test::to_nlohmann(ref.header()["metadata"]["pipeline"]);
    std::vector<std::string> images;
    for (const auto& p : meta["images"]) images.push_back(data_path(p.get<std::string>()));
    const auto labels = meta["labels"].get<std::vector<std::string>>();
    const auto file = altclip::ModelFile::open(data_path("models/real224.altclip"));
    const altclip::AltCLIPModel model(file);
    const altclip::AltCLIPProcessor processor(*file);
    const auto probs = model.forward(processor(labels), processor.load_images(images)).probs_per_image();
    const auto want = ref.tensor("pipeline.probs").to_f32();
    REQUIRE(probs.data.size() == want.size());
    const auto d = altclip_test::compare(probs.data.data(), want);
    INFO("max abs diff " << d.max_abs);
    CHECK(d.max_abs < 1e-4);
}

// --------------------------------------------------------------------------------------
// The programs

#ifdef ALTCLIP_HAVE_EXAMPLES
TEST_CASE("the programs fail with a message on every kind of bad path, printing nothing on stdout",
          "[usability][examples][fuzz]") {
    TempDir dir;
    const std::string model = quote(data_path("models/tiny.altclip"));
    const std::string image = quote(data_path("images/chelsea.png"));
    const std::string fifo = dir / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    for (const std::string& bad : {dir.path.string(), fifo, std::string("/dev/zero")}) {
        const std::vector<std::pair<std::string, std::string>> calls = {
            {"zero_shot", "--model " + model + " --image " + quote(bad) + " --label a --label b"},
            {"zero_shot", "--model " + quote(bad) + " --image " + image + " --label a"},
            {"embed", "--model " + model + " --image " + quote(bad)},
            {"embed", "--model " + quote(bad) + " --text a"},
            {"classify", model + " " + quote(bad) + " a b"},
            {"classify", quote(bad) + " " + image + " a b"},
        };
        for (const auto& [program, args] : calls) {
            const auto r = run_program(program, args, dir);
            INFO(program << " " << args << "\n-> exit " << r.code << ", stderr: " << r.err);
            CHECK(r.code == 1);
            CHECK(r.out.empty());
            CHECK_THAT(r.err, Contains(bad));
            CHECK_THAT(r.err, !Contains("terminate called"));
        }
    }
}

TEST_CASE("the programs refuse 100000 threads with a message, not an abort", "[usability][examples][threads]") {
    TempDir dir;
    const std::string common = "--model " + quote(data_path("models/tiny.altclip")) + " --threads 100000";
    for (const auto& [program, args] :
         std::vector<std::pair<std::string, std::string>>{
             {"zero_shot", common + " --image " + quote(data_path("images/chelsea.png")) + " --label a"},
             {"embed", common + " --text a"}}) {
        const auto r = run_program(program, args, dir);
        INFO(program << " -> exit " << r.code << ", stderr: " << r.err);
        CHECK(r.code == 2);
        CHECK(r.out.empty());
        CHECK_THAT(r.err, Contains("--threads 100000") && Contains(std::to_string(altclip::kMaxThreads)));
    }
}

TEST_CASE("every program prints its usage on stdout for --help and exits 0", "[usability][examples]") {
    TempDir dir;
    for (const std::string program : {"zero_shot", "embed", "classify"}) {
        for (const std::string flag : {"--help", "-h"}) {
            const auto r = run_program(program, flag, dir);
            INFO(program << " " << flag << " -> exit " << r.code << ", stderr: " << r.err);
            CHECK(r.code == 0);
            CHECK(r.err.empty());
            CHECK(r.out.rfind("usage: " + program, 0) == 0);
        }
    }
    // What a user cannot guess: where the label goes in a template, when each list is printed.
    CHECK_THAT(run_program("zero_shot", "--help", dir).out, Contains("first {}") && Contains("without {}"));
    CHECK_THAT(run_program("embed", "--help", dir).out,
               Contains("image_embeds only when --image") && Contains("text_embeds only when --text"));
}

TEST_CASE("a template without {} is the template, a space and the label", "[usability][examples]") {
    TempDir dir;
    const std::string base = "--json --model " + quote(data_path("models/tiny.altclip")) + " --image " +
                             quote(data_path("images/chelsea.png")) + " --label cat --label dog";
    const auto without = run_program("zero_shot", base + " --template 'a photo of a'", dir);
    const auto with = run_program("zero_shot", base + " --template 'a photo of a {}'", dir);
    REQUIRE(without.code == 0);
    REQUIRE(with.code == 0);
    CHECK(without.out == with.out);
}

TEST_CASE("the programs escape names from outside on the terminal and in JSON", "[usability][examples]") {
    TempDir dir;
    const std::string model = quote(data_path("models/tiny.altclip"));
    // An escape sequence in a missing path: quoted as \x1B in the message, never sent raw.
    const std::string evil = "/nonexistent/\x1b[31mred.png";
    const auto r = run_program("zero_shot", "--model " + model + " --image " + quote(evil) + " --label a", dir);
    CHECK(r.code == 1);
    CHECK(r.err.find('\x1b') == std::string::npos);
    CHECK_THAT(r.err, Contains("\\x1B[31mred.png"));
    const auto c = run_program("classify", model + " " + quote(evil) + " a", dir);
    CHECK(c.code == 1);
    CHECK(c.err.find('\x1b') == std::string::npos);
    CHECK_THAT(c.err, Contains("\\x1B[31mred.png"));
    // ... and in a label, on stdout.
    const auto h = run_program("zero_shot", "--model " + model + " --image " + quote(data_path("images/chelsea.png")) +
                                                " --label " + quote("cat\x1b]0;owned\x07") + " --label dog",
                               dir);
    CHECK(h.code == 0);
    CHECK(h.out.find('\x1b') == std::string::npos);
    CHECK_THAT(h.out, Contains("cat\\x1B]0;owned\\x07"));
    // An image path that is not UTF-8: the JSON still parses (the bad byte becomes U+FFFD).
    const std::string latin1 = dir / "caf\xE9.png";
    fs::copy_file(data_path("images/chelsea.png"), latin1);
    const auto j = run_program("zero_shot", "--json --model " + model + " --image " + quote(latin1) + " --label a", dir);
    REQUIRE(j.code == 0);
    const auto parsed = nlohmann::json::parse(j.out);
    CHECK(parsed["results"][0]["image"] == (dir / "caf\xEF\xBF\xBD.png"));
}

TEST_CASE("classify prints each label's logit and probability, then the top label", "[usability][examples]") {
    TempDir dir;
    const altclip::Container ref(data_path("models/real224.ref"));
    const auto meta = altclip_test::to_nlohmann(ref.header()["metadata"]["pipeline"]);
    const auto labels = meta["labels"].get<std::vector<std::string>>();
    std::string args = quote(data_path("models/real224.altclip")) + " " +
                       quote(data_path(meta["images"][0].get<std::string>()));
    for (const auto& l : labels) args += " " + quote(l);
    const auto r = run_program("classify", args, dir);
    REQUIRE(r.code == 0);
    std::istringstream out(r.out);
    std::string line;
    std::vector<float> probs;
    for (std::size_t j = 0; j < labels.size() && std::getline(out, line); ++j) {
        std::istringstream fields(line);
        std::string label, logit, prob;
        std::getline(fields, label, '\t');
        std::getline(fields, logit, '\t');
        std::getline(fields, prob, '\t');
        CHECK(label == labels[j]);
        probs.push_back(std::stof(prob));
    }
    REQUIRE(probs.size() == labels.size());
    const auto all = ref.tensor("pipeline.probs").to_f32();
    for (std::size_t j = 0; j < labels.size(); ++j) CHECK(std::fabs(probs[j] - all[j]) < 1e-4);
    const auto best = static_cast<std::size_t>(std::max_element(probs.begin(), probs.end()) - probs.begin());
    REQUIRE(std::getline(out, line));
    CHECK(line == "top: " + labels[best]);
}
#endif

// --------------------------------------------------------------------------------------
// The README, for someone using the library in a program

TEST_CASE("the README says how to install, build fast, get probabilities, and what the programs print",
          "[usability][docs]") {
    const std::string readme = read_text(std::string(ALTCLIP_SOURCE_DIR) + "/README.md");
    REQUIRE(!readme.empty());
    // Install: the commands, the prefix, and how a consumer finds it.
    CHECK_THAT(readme, Contains("cmake --install build --prefix") && Contains("CMAKE_PREFIX_PATH") &&
                           Contains("-DALTCLIP_BUILD_TESTS=OFF"));
    // Speed: the build type and flags a consumer needs.
    CHECK_THAT(readme, Contains("CMAKE_BUILD_TYPE=Release") && Contains("-march=native"));
    // The C++ snippet goes on to the probabilities and the top label; classify is documented.
    CHECK_THAT(readme, Contains("probs_per_image()") && Contains("max_element") && Contains("altclip::softmax"));
    CHECK_THAT(readme, Contains("`classify MODEL IMAGE LABEL"));
    // embed's two lists, zero_shot's template.
    CHECK_THAT(readme, Contains("only when"));
    CHECK_THAT(readme, Contains("first `{}`"));
    // The snippet's calls are the ones examples/classify.cpp compiles and the tests run.
    const std::string classify = read_text(std::string(ALTCLIP_SOURCE_DIR) + "/examples/classify.cpp");
    for (const std::string call : {"out.probs_per_image()", "std::max_element(probs.data.begin(), probs.data.end())",
                                   "model.forward(processor(labels), processor.load_images("}) {
        CHECK_THAT(readme, Contains(call));
        CHECK_THAT(classify, Contains(call));
    }
}
