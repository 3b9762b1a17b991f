/*
 * The C ABI's guards, from C with POSIX threads (run by tests/consumers.rs, also under
 * valgrind memcheck, which would report a use after free):
 *   - cairn_repo_close while another thread's backup runs returns CAIRN_STATUS_BUSY and
 *     leaves the handle usable; once the backup returned, close succeeds; a second close and
 *     a call on the closed handle return CAIRN_STATUS_INVALID_ARGUMENT;
 *   - a cairn call from inside a callback returns CAIRN_STATUS_REENTRANT;
 *   - cairn_last_error_copy's string stays valid across later calls.
 *
 *   guards REPO_DIR
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"

static int failures = 0;

static void expect(int ok, const char *what) {
    if (!ok) {
        char *err = cairn_last_error_copy();
        fprintf(stderr, "FAIL: %s (%s)\n", what, err ? err : "no error message");
        cairn_string_free(err);
        failures++;
    }
}

/* The read callback blocks on its first call until main says go, so main can act while the
 * backup is running. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started, proceed;
    size_t left;
    cairn_repo *repo;
    cairn_status nested; /* what a cairn call from inside the callback returned */
    char *nested_error;
};

static ptrdiff_t read_gated(void *user, uint8_t *buf, size_t len) {
    struct gate *g = user;
    pthread_mutex_lock(&g->lock);
    if (!g->started) {
        g->nested = cairn_snapshots(g->repo, NULL, NULL);
        g->nested_error = cairn_last_error_copy();
        g->started = 1;
        pthread_cond_broadcast(&g->cond);
        while (!g->proceed) pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    size_t n = len < g->left ? len : g->left;
    memset(buf, 'g', n);
    g->left -= n;
    return (ptrdiff_t)n;
}

struct backup_run { struct gate *gate; cairn_status status; };

static void *run_backup(void *arg) {
    struct backup_run *run = arg;
    run->status = cairn_backup_reader(run->gate->repo, read_gated, run->gate, "gated.bin", NULL,
                                      NULL, NULL, NULL, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s REPO_DIR\n", argv[0]);
        return 2;
    }
    cairn_repo *repo = NULL;
    expect(cairn_repo_init(argv[1], "pw", "{\"kdf_memory_kib\": 19456, \"kdf_time_cost\": 2}",
                           &repo) == CAIRN_STATUS_OK, "init");

    /* An owned copy of an error outlives the calls that follow it. */
    cairn_repo *missing = NULL;
    expect(cairn_repo_open("/nonexistent/cairn-guards", "pw", NULL, &missing) != CAIRN_STATUS_OK,
           "open a missing repository fails");
    char *copy = cairn_last_error_copy();
    expect(copy && strstr(copy, "cairn-guards"), "the copy names the path");
    char saved[4096];
    snprintf(saved, sizeof saved, "%s", copy ? copy : "");

    struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 1 << 20,
                        repo, CAIRN_STATUS_OK, NULL};
    struct backup_run run = {&gate, CAIRN_STATUS_FAILED};
    pthread_t thread;
    pthread_create(&thread, NULL, run_backup, &run);
    pthread_mutex_lock(&gate.lock);
    while (!gate.started) pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);

    /* The backup is inside its read callback. */
    expect(cairn_repo_close(repo) == CAIRN_STATUS_BUSY, "close while a backup runs is BUSY");
    char *busy = cairn_last_error_copy();
    expect(busy && strstr(busy, "still running"), "BUSY says why");
    cairn_string_free(busy);
    expect(cairn_snapshots(repo, NULL, NULL) == CAIRN_STATUS_OK, "the handle stays usable");
    expect(copy && strcmp(copy, saved) == 0, "the copy is unchanged after later calls");
    cairn_string_free(copy);

    pthread_mutex_lock(&gate.lock);
    gate.proceed = 1;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
    pthread_join(thread, NULL);
    expect(run.status == CAIRN_STATUS_OK, "the backup finished");
    expect(gate.nested == CAIRN_STATUS_REENTRANT, "a call from inside the callback is REENTRANT");
    expect(gate.nested_error && strstr(gate.nested_error, "inside a read callback"),
           "REENTRANT says why");
    cairn_string_free(gate.nested_error);

    expect(cairn_repo_close(repo) == CAIRN_STATUS_OK, "close once the backup returned");
    expect(cairn_repo_close(repo) == CAIRN_STATUS_INVALID_ARGUMENT, "second close refused");
    expect(cairn_snapshots(repo, NULL, NULL) == CAIRN_STATUS_INVALID_ARGUMENT,
           "a closed handle is refused");
    expect(cairn_repo_close(NULL) == CAIRN_STATUS_OK, "closing null is a no-op");

    if (failures == 0) printf("cairn C guards: all steps passed\n");
    return failures == 0 ? 0 : 1;
}
