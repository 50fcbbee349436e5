// libFuzzer entry point for altclip_fuzz::model_file (fuzz/targets.hpp; docs/reliability.md).
#include <cstddef>
#include <cstdint>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    altclip_fuzz::model_file(data, size);
    return 0;
}
