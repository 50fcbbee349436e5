// libFuzzer entry point for altclip_fuzz::json (fuzz/targets.hpp; docs/reliability.md).
#include <cstddef>
#include <cstdint>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    altclip_fuzz::json(data, size);
    return 0;
}
