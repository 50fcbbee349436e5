// The library's JSON values (altclip/format/json.hpp) as nlohmann::json, for tests that read
// reference metadata with nlohmann's conveniences, and for comparing the two readers
// (tests/test_json.cpp). Only the tests use nlohmann_json; the library does not.
#pragma once

#include <nlohmann/json.hpp>

#include <altclip/format/json.hpp>

namespace altclip_test {

inline nlohmann::json to_nlohmann(const altclip::json::Value& v) {
    using altclip::json::Type;
    switch (v.type()) {
        case Type::null: return nullptr;
        case Type::boolean: return v.as_bool();
        case Type::number:
            if (v.is_unsigned()) return v.as_uint64();
            if (v.is_integer()) return v.as_int64();
            return v.as_double();
        case Type::string: return v.as_string();
        case Type::array: {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& e : v.elements()) out.push_back(to_nlohmann(e));
            return out;
        }
        case Type::object: {
            nlohmann::json out = nlohmann::json::object();
            for (const auto& [key, value] : v.members()) out[key] = to_nlohmann(value);
            return out;
        }
    }
    return nullptr;
}

}  // namespace altclip_test
