#pragma once
// JSON values from a user's file, as an error message may quote them. dump() of such a value is
// unsafe there: it recurses as deep as the file nests (a 400 KB file of brackets overflows the
// stack) and runs as long as the file is.
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace kvlab {

// Scalars, and lists or objects of scalars, as compact ASCII JSON cut to 80 characters
// ("[4096, 128]", "\"gelu\""); anything nested by its kind and size ("a list of 3 items").
// Never recurses into the value and never contains a newline.
std::string json_excerpt(const nlohmann::json& v);

}  // namespace kvlab
