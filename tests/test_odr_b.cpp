#include <catch2/catch.hpp>

#include <altclip/altclip.hpp>

const void* odr_layer_norm_address_a();

TEST_CASE("the headers can be included from two translation units", "[odr]") {
    CHECK(odr_layer_norm_address_a() == reinterpret_cast<const void*>(&altclip::kernels::layer_norm));
}
