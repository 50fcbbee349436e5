// A read-only memory mapping of a whole file (POSIX). Move-only RAII.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../errors.hpp"
#include "read_file.hpp"

namespace altclip::detail {

class MappedFile {
public:
    MappedFile() = default;
    explicit MappedFile(const std::string& path) : path_(path) {
        // Not blocking (a FIFO without a writer), and only a regular file: a directory, FIFO
        // or device (/dev/zero) has no size to map.
        struct stat st {};
        const int fd = open_regular_file(path, "model file",
                                         "Check the path; model files are made by tools/convert.py.", st);
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ > 0) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                int e = errno;
                ::close(fd);
                throw IoError(path + ": cannot map " + std::to_string(size_) +
                              " bytes: " + std::strerror(e) + ". A 64-bit process with address space "
                              "to spare maps any model file; check ulimit -v.");
            }
            data_ = static_cast<const unsigned char*>(p);
#ifdef MADV_HUGEPAGE
            // Advice only (an error changes nothing): what is read from disk for this mapping
            // comes into the page cache in 2 MB folios where the file system allows it, and
            // every process that maps the file later maps those 2 MB at a time. A fresh
            // process that faulted a 600 MB text tower in 4 KB pages spent ~45 ms on the
            // faults and ~25 ms unmapping them at exit (bench/search_bench.py).
            (void)::madvise(p, size_, MADV_HUGEPAGE);
#endif
        }
        ::close(fd);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    MappedFile(MappedFile&& o) noexcept { swap(o); }
    MappedFile& operator=(MappedFile&& o) noexcept {
        if (this != &o) {
            MappedFile tmp(std::move(o));
            swap(tmp);
        }
        return *this;
    }
    ~MappedFile() {
        if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
    }

    const unsigned char* data() const { return data_; }
    std::size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    void swap(MappedFile& o) noexcept {
        std::swap(path_, o.path_);
        std::swap(data_, o.data_);
        std::swap(size_, o.size_);
    }
    std::string path_;
    const unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
};

/// Releases pages of a model file's weights that a model has copied into a layout of its own
/// at load (oneDNN's, the AMX tiles'): release(p, bytes) drops the pages wholly inside
/// [p, p + bytes) when they belong to a read-only, private file mapping (a model file opened
/// from disk), so the matrix is not counted twice in the process's memory; a later read of
/// them faults them in again from the file. Anywhere else (a model file held in memory)
/// nothing is done: there MADV_DONTNEED would zero the data. For one loading thread.
class FilePages {
public:
    void release(const void* p, std::size_t bytes) {
        const long page_size = ::sysconf(_SC_PAGESIZE);
        if (page_size <= 0 || bytes == 0) return;
        const auto page = static_cast<std::uintptr_t>(page_size);
        const auto a = reinterpret_cast<std::uintptr_t>(p);
        const auto begin = (a + page - 1) / page * page, end = (a + bytes) / page * page;
        if (end <= begin) return;
        if (!(begin >= mapping_.first && end <= mapping_.second)) mapping_ = file_mapping_around(begin);
        if (begin >= mapping_.first && end <= mapping_.second)
            ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
    }

private:
    /// The read-only, private, file-backed mapping holding address a (/proc/self/maps), or an
    /// empty range.
    static std::pair<std::uintptr_t, std::uintptr_t> file_mapping_around(std::uintptr_t a) {
        std::FILE* f = std::fopen("/proc/self/maps", "r");
        if (f == nullptr) return {0, 0};
        std::pair<std::uintptr_t, std::uintptr_t> found{0, 0};
        char line[4096];
        while (std::fgets(line, sizeof line, f) != nullptr) {
            unsigned long lo = 0, hi = 0, offset = 0, inode = 0;
            char perms[8] = {}, dev[32] = {};
            if (std::sscanf(line, "%lx-%lx %7s %lx %31s %lu", &lo, &hi, perms, &offset, dev, &inode) != 6) continue;
            if (a < lo || a >= hi) continue;
            if (inode != 0 && perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p') found = {lo, hi};
            break;
        }
        std::fclose(f);
        return found;
    }

    std::pair<std::uintptr_t, std::uintptr_t> mapping_{0, 0};  // the last file mapping found
};

}  // namespace altclip::detail
