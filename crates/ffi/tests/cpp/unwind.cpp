// A C++ exception escaping a cairn callback (run by tests/consumers.rs). cairn declares its
// callback types "C-unwind" and aborts the process, with a message naming the callback, when
// one does not return normally: the exception must neither reach this program's catch nor
// unwind silently through the engine.
//
//   unwind REPO_DIR read|write
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "cairn.h"

static std::ptrdiff_t read_throws(void *, std::uint8_t *, std::size_t) {
    throw std::runtime_error("read failed in C++");
}

static std::ptrdiff_t read_some(void *user, std::uint8_t *buf, std::size_t len) {
    std::size_t *left = static_cast<std::size_t *>(user);
    std::size_t n = len < *left ? len : *left;
    std::memset(buf, 'c', n);
    *left -= n;
    return static_cast<std::ptrdiff_t>(n);
}

static std::int32_t write_throws(void *, const std::uint8_t *, std::size_t) {
    throw std::runtime_error("write failed in C++");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s REPO_DIR read|write\n", argv[0]);
        return 2;
    }
    cairn_repo *repo = nullptr;
    if (cairn_repo_init(argv[1], "pw", "{\"kdf_memory_kib\": 19456, \"kdf_time_cost\": 2}",
                        &repo) != CAIRN_STATUS_OK) {
        std::fprintf(stderr, "init failed: %s\n", cairn_last_error());
        return 1;
    }
    try {
        if (std::strcmp(argv[2], "read") == 0) {
            cairn_backup_reader(repo, read_throws, nullptr, "x.bin", nullptr, nullptr, nullptr,
                                nullptr, nullptr);
        } else {
            std::size_t left = 10000;
            if (cairn_backup_reader(repo, read_some, &left, "x.bin", nullptr, nullptr, nullptr,
                                    nullptr, nullptr) != CAIRN_STATUS_OK) {
                std::fprintf(stderr, "backup failed: %s\n", cairn_last_error());
                return 1;
            }
            // The write callback runs on this very thread, inside the call: the catch below
            // is on the stack, and still must not be reached.
            cairn_dump(repo, "latest", "x.bin", write_throws, nullptr, nullptr);
        }
    } catch (const std::exception &e) {
        std::printf("the exception reached the caller: %s\n", e.what());
        return 0;
    }
    std::printf("the call returned\n");
    return 0;
}
