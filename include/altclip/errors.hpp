// altclip: typed exceptions. The library never prints and never exits; every failure
// is one of these, with a message that names the file, tensor or input and says what to do.
#pragma once

#include <new>
#include <stdexcept>
#include <string>

namespace altclip {

/// Base of every exception the library throws.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A file could not be opened, mapped or read (permissions, missing path, I/O failure).
class IoError : public Error {
public:
    using Error::Error;
};

/// A model or reference file is corrupt, truncated, of another version, or does not
/// match its config (missing, unexpected or wrongly shaped tensors).
class FormatError : public Error {
public:
    using Error::Error;
};

/// A config value is missing, of the wrong type, or not supported.
class ConfigError : public Error {
public:
    using Error::Error;
};

/// An image could not be decoded, is empty, or is too large.
class ImageError : public Error {
public:
    using Error::Error;
};

/// A text could not be tokenized (invalid UTF-8, too long, empty batch, ...).
class TextError : public Error {
public:
    using Error::Error;
};

/// An argument is invalid (empty batch, wrong tensor shape passed in, bad option).
class InvalidArgument : public Error {
public:
    using Error::Error;
};

/// The system could not give what a call needs: memory for a batch, or the threads asked
/// for in ModelOptions::num_threads. Smaller batches or fewer threads may succeed.
class ResourceError : public Error {
public:
    using Error::Error;
};

namespace detail {

/// The ResourceError for a std::bad_alloc in `call` (e.g. "AltCLIPVisionModel::forward")
/// working on `input` (e.g. "a batch of 8 images of 224x224").
inline ResourceError out_of_memory(const std::string& call, const std::string& input) {
    return ResourceError(call + ": out of memory for " + input + "; pass smaller batches, or free memory");
}

}  // namespace detail

}  // namespace altclip
