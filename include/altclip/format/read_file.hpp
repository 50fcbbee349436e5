// Reading a whole (small) file into memory without standard streams: libstdc++'s filebuf
// throws std::ios_failure when read() fails (a directory: EISDIR), an endless device
// (/dev/zero) would be read until memory runs out, and opening a FIFO blocks until a
// writer comes. Here only a regular file of at most `max_bytes` is read, and every failure
// is an IoError naming the path and saying what to do.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../errors.hpp"

namespace altclip::detail {

/// What a path that is not a regular file is, for messages ("a directory", "a FIFO", ...).
inline const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}

/// Opens `path` for reading without blocking (a FIFO without a writer would block) and
/// checks that it is a regular file. Returns the descriptor (the caller closes it) and
/// fills `st`. `what` names the file's role ("image file", "model file"), `hint` says what
/// to give instead.
inline int open_regular_file(const std::string& path, const std::string& what, const std::string& hint,
                             struct stat& st) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        const int e = errno;
        throw IoError(path + ": cannot open the " + what + ": " + std::strerror(e) + ". " + hint);
    }
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        throw IoError(path + ": cannot stat the " + what + ": " + std::strerror(e) + ". " + hint);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        const bool stream = S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode);
        throw IoError(path + ": is " + file_kind(st.st_mode) + ", not a regular file" +
                      (stream ? " (save what it streams to a file first)" : "") + ". " + hint);
    }
    return fd;
}

/// Closes a descriptor when it goes out of scope.
struct FdCloser {
    int fd = -1;
    ~FdCloser() {
        if (fd >= 0) ::close(fd);
    }
};

/// The bytes of the regular file `path`, at most `max_bytes` (a larger file, or one that
/// grows past it while read, is an IoError). Throws IoError, or ResourceError when the
/// memory for the bytes cannot be had.
inline std::string read_regular_file(const std::string& path, std::size_t max_bytes, const std::string& what,
                                     const std::string& hint) {
    struct stat st {};
    const FdCloser fd{open_regular_file(path, what, hint, st)};
    const auto too_large = [&](const std::string& size) {
        return IoError(path + ": the " + what + " is " + size + " bytes, above the limit of " +
                       std::to_string(max_bytes) + " bytes. " + hint);
    };
    const auto stat_size = static_cast<std::uint64_t>(st.st_size > 0 ? st.st_size : 0);
    if (stat_size > max_bytes) throw too_large(std::to_string(stat_size));
    std::string bytes;
    try {
        // One byte more than the stated size, so that end of file is seen without growing;
        // files under /proc state size 0 and still have content: those grow as they are read.
        bytes.resize(static_cast<std::size_t>(stat_size) + (stat_size > 0 ? 1 : 4096));
        std::size_t have = 0;
        for (;;) {
            if (have == bytes.size()) {
                if (have > max_bytes) throw too_large("over " + std::to_string(max_bytes));
                bytes.resize(std::min(max_bytes + 1, 2 * have));
            }
            const ssize_t n = ::read(fd.fd, &bytes[have], bytes.size() - have);
            if (n < 0) {
                if (errno == EINTR) continue;
                const int e = errno;
                throw IoError(path + ": error reading the " + what + ": " + std::strerror(e) + ". " + hint);
            }
            if (n == 0) break;
            have += static_cast<std::size_t>(n);
        }
        if (have > max_bytes) throw too_large("over " + std::to_string(max_bytes));
        bytes.resize(have);
    } catch (const std::bad_alloc&) {
        throw ResourceError(path + ": out of memory reading the " + what + " (" + std::to_string(stat_size) +
                            " bytes stated); free memory or give a smaller file");
    }
    return bytes;
}

}  // namespace altclip::detail
