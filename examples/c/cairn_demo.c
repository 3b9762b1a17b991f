/*
 * A cairn C ABI consumer: initialises a repository, backs up a directory, a file
 * descriptor and a callback stream, lists snapshots, restores, dumps through a callback,
 * checks, forgets and prunes, and exercises the error paths. Exits 0 when every step did
 * what it should.
 *
 *   cairn_demo REPO_DIR SOURCE_DIR RESTORE_DIR STREAM_FILE
 *
 * Build: gcc -I crates/ffi/include examples/c/cairn_demo.c -L target/debug -lcairn_ffi
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"

#define PASSWORD "demo password"
/* A cheap key derivation: this is a test, not a production repository. */
#define INIT_OPTIONS "{\"kdf_memory_kib\": 19456, \"kdf_time_cost\": 2, \"pack_size_mib\": 1}"

static int failures = 0;

static void expect(int ok, const char *what) {
    if (!ok) {
        const char *err = cairn_last_error();
        fprintf(stderr, "FAIL: %s (%s)\n", what, err ? err : "no error message");
        failures++;
    }
}

/* Streams a fixed pattern: 3 MiB of bytes, in whatever sizes the library asks for. */
struct pattern { size_t left; unsigned char next; };

static ptrdiff_t read_pattern(void *user, uint8_t *buf, size_t len) {
    struct pattern *p = user;
    size_t n = len < p->left ? len : p->left;
    for (size_t i = 0; i < n; i++) buf[i] = p->next++;
    p->left -= n;
    return (ptrdiff_t)n;
}

/* Collects dumped bytes and compares them to the pattern. */
struct sink { size_t seen; unsigned char next; int mismatch; };

static int32_t write_check(void *user, const uint8_t *buf, size_t len) {
    struct sink *s = user;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != s->next++) s->mismatch = 1;
    }
    s->seen += len;
    return 0;
}

static void on_progress(const char *json, void *user) {
    int *calls = user;
    (*calls)++;
    (void)json;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s REPO SOURCE RESTORE STREAM_FILE\n", argv[0]);
        return 2;
    }
    const char *repo_dir = argv[1], *source = argv[2], *restore_dir = argv[3];
    char *out = NULL;

    expect(cairn_abi_version() == CAIRN_ABI_VERSION, "ABI version matches the header");
    expect(strlen(cairn_version()) > 0, "version string");

    cairn_repo *repo = NULL;
    expect(cairn_repo_init(repo_dir, PASSWORD, INIT_OPTIONS, &repo) == CAIRN_STATUS_OK, "init");
    cairn_repo *again = NULL;
    expect(cairn_repo_init(repo_dir, PASSWORD, INIT_OPTIONS, &again) ==
               CAIRN_STATUS_ALREADY_INITIALIZED, "second init refused");
    expect(cairn_last_error() != NULL, "error message after a failure");

    /* A directory. */
    const char *paths[] = {source};
    int progress_calls = 0;
    cairn_cancel *cancel = cairn_cancel_new();
    expect(cairn_backup_paths(repo, paths, 1, "{\"host\": \"demo\", \"tags\": [\"c\"]}",
                              on_progress, &progress_calls, cancel, &out) == CAIRN_STATUS_OK,
           "backup directory");
    expect(out && strstr(out, "\"snapshot_id\""), "backup result names the snapshot");
    cairn_string_free(out);
    out = NULL;
    expect(progress_calls > 0, "progress callback called");

    /* A file descriptor (a database dump would come through a pipe). */
    int fd = open(argv[4], O_RDONLY);
    expect(fd >= 0, "open stream file");
    expect(cairn_backup_fd(repo, fd, "dump.sql", "{\"host\": \"demo\"}", NULL, NULL, NULL,
                           NULL) == CAIRN_STATUS_OK, "backup file descriptor");
    expect(fcntl(fd, F_GETFD) != -1, "descriptor still open afterwards");
    close(fd);

    /* A read callback. */
    struct pattern pattern = {3 << 20, 0};
    expect(cairn_backup_reader(repo, read_pattern, &pattern, "pattern.bin", "{\"host\": \"demo\"}",
                               NULL, NULL, NULL, NULL) == CAIRN_STATUS_OK,
           "backup read callback");

    /* List. */
    expect(cairn_snapshots(repo, "{\"hosts\": [\"demo\"]}", &out) == CAIRN_STATUS_OK, "snapshots");
    int count = 0;
    for (const char *p = out; p && (p = strstr(p, "\"short_id\"")); p++) count++;
    expect(count == 3, "three snapshots listed");
    cairn_string_free(out);
    out = NULL;

    /* Dump the callback stream back and compare. */
    struct sink sink = {0, 0, 0};
    uint64_t dumped = 0;
    expect(cairn_dump(repo, "latest", "pattern.bin", write_check, &sink, &dumped) ==
               CAIRN_STATUS_OK, "dump");
    expect(dumped == (3u << 20) && sink.seen == dumped && !sink.mismatch, "dumped bytes match");

    /* Restore the directory snapshot (the first one). */
    expect(cairn_snapshots(repo, "{\"tags\": [\"c\"]}", &out) == CAIRN_STATUS_OK, "find tagged");
    char id[65] = {0};
    const char *at = out ? strstr(out, "\"id\":\"") : NULL;
    expect(at != NULL, "snapshot id in JSON");
    if (at) memcpy(id, at + 6, 64);
    cairn_string_free(out);
    out = NULL;
    expect(cairn_restore(repo, id, restore_dir, "{\"verify\": true}", NULL, NULL, NULL, &out) ==
               CAIRN_STATUS_OK, "restore");
    expect(out && strstr(out, "\"errors\":[]"), "restore without errors");
    cairn_string_free(out);
    out = NULL;

    /* Check, forget, prune. */
    expect(cairn_check(repo, "{\"read_data\": true}", &out) == CAIRN_STATUS_OK, "check");
    cairn_string_free(out);
    out = NULL;
    expect(cairn_forget(repo, "{\"keep_last\": 1, \"group_by\": \"host\"}", &out) == CAIRN_STATUS_OK,
           "forget");
    cairn_string_free(out);
    out = NULL;
    expect(cairn_prune(repo, NULL, &out) == CAIRN_STATUS_OK, "prune");
    cairn_string_free(out);
    out = NULL;

    /* Misuse is an error, not a crash. */
    expect(cairn_backup_paths(NULL, paths, 1, NULL, NULL, NULL, NULL, NULL) ==
               CAIRN_STATUS_INVALID_ARGUMENT, "null handle");
    expect(cairn_backup_paths(repo, paths, 1, "{\"hots\": 1}", NULL, NULL, NULL, NULL) ==
               CAIRN_STATUS_INVALID_ARGUMENT, "misspelt option");
    expect(cairn_snapshots(repo, NULL, NULL) == CAIRN_STATUS_OK, "null out parameter allowed");
    const char bad_utf8[] = {(char)0xff, 0};
    expect(cairn_restore(repo, bad_utf8, restore_dir, NULL, NULL, NULL, NULL, NULL) ==
               CAIRN_STATUS_INVALID_ARGUMENT, "invalid UTF-8");

    /* A cancelled backup stops and writes no snapshot. */
    cairn_cancel_trigger(cancel);
    expect(cairn_backup_paths(repo, paths, 1, NULL, NULL, NULL, cancel, NULL) ==
               CAIRN_STATUS_CANCELLED, "cancelled backup");
    cairn_cancel_free(cancel);
    expect(cairn_repo_close(repo) == CAIRN_STATUS_OK, "close");

    cairn_repo *wrong = NULL;
    expect(cairn_repo_open(repo_dir, "not the password", NULL, &wrong) ==
               CAIRN_STATUS_WRONG_PASSWORD && wrong == NULL, "wrong password");

    if (failures == 0) printf("cairn C demo: all steps passed\n");
    return failures == 0 ? 0 : 1;
}
