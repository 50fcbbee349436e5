// Stands in for nlohmann/json.hpp in the tower_only_headers test (tests/tower_only/tower_only.cpp):
// a tower header that includes it fails that test. The library reads JSON with its own reader
// (include/altclip/format/json.hpp).
#error "a tower header includes nlohmann/json.hpp: the library must compile without nlohmann_json"
