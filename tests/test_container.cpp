#include <catch2/catch.hpp>
#include <altclip/container.hpp>
TEST_CASE("container placeholder") { REQUIRE_THROWS_AS(altclip::Container("/nonexistent"), altclip::IoError); }
