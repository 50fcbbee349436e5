// Replays saved fuzz inputs through the fuzz targets' bodies (fuzz/targets.hpp): every crash
// the fuzzers found (tests/data/regressions/<target>/, one file per finding, named after it)
// and the seed corpora (fuzz/corpus/<target>/). Each input must end in success or an
// altclip::Error. Under scripts/sanitize.sh these also run with ASan+UBSan and LSan.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "../fuzz/targets.hpp"
#include "parity.hpp"

using altclip_test::data_path;
using altclip_test::read_bytes;
using Catch::Matchers::Contains;

namespace {

std::vector<std::string> files_in(const std::string& dir) {
    std::vector<std::string> out;
    if (!std::filesystem::is_directory(dir)) return out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.is_regular_file()) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

template <class Target>
void replay(const std::string& target, Target run) {
    std::vector<std::string> inputs = files_in(data_path("regressions/" + target));
    const auto seeds = files_in(std::string(ALTCLIP_SOURCE_DIR) + "/fuzz/corpus/" + target);
    inputs.insert(inputs.end(), seeds.begin(), seeds.end());
    REQUIRE(!seeds.empty());
    for (const auto& path : inputs) {
        INFO(path);
        const std::string b = read_bytes(path);
        CHECK_NOTHROW(run(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
    }
}

}  // namespace

TEST_CASE("fuzz regressions: model files", "[fuzz]") { replay("model_file", altclip_fuzz::model_file); }
TEST_CASE("fuzz regressions: images", "[fuzz]") { replay("image", altclip_fuzz::image); }
TEST_CASE("fuzz regressions: texts", "[fuzz]") { replay("tokenizer", altclip_fuzz::tokenizer); }
TEST_CASE("fuzz regressions: JSON", "[fuzz]") { replay("json", altclip_fuzz::json); }

TEST_CASE("fuzz regression: a SentencePiece blob with a zero-length piece is a FormatError", "[fuzz]") {
    // fuzz_model_file: libsentencepiece's trie builder threw Darts::Details::Exception out of
    // the AltCLIPProcessor constructor ("failed to insert key: zero-length key").
    const auto file = altclip::ModelFile::from_bytes(
        read_bytes(data_path("regressions/model_file/spm_zero_length_piece.altclip")), "crash.altclip");
    CHECK_THROWS_AS(altclip::AltCLIPProcessor(*file), altclip::FormatError);
    CHECK_THROWS_WITH(altclip::AltCLIPProcessor(*file),
                      Contains("the SentencePiece model") && Contains("could not be parsed") &&
                          Contains("zero-length key"));
}
