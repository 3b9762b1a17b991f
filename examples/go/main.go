// A node-agent-style cairn consumer in Go (cgo): backs up the directory given on the command
// line into a repository, restores the snapshot into another directory, checks the
// repository, drills the snapshot and checks the recovery point, and reads the errors of
// many concurrent failing calls. Build flags come from the environment:
//
//	CGO_CFLAGS=-I<repo>/crates/ffi/include CGO_LDFLAGS="-L<repo>/target/debug -lcairn_ffi" \
//	  go run ./examples/go REPO SOURCE_DIR RESTORE_DIR
package main

/*
#include <stdlib.h>
#include "cairn.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// call runs one cairn call and turns a failure into a Go error carrying cairn's message.
//
// cairn keeps the message per OS thread, but a goroutine may move to another OS thread
// between two cgo calls, and another goroutine may make a cairn call on the thread it left.
// So the call and the reading of its message happen with the goroutine locked to its
// thread, and the message is taken as an owned copy (cairn_last_error_copy, freed here):
// reading cairn_last_error() after the fact could return another call's message, or memory
// that call already freed.
func call(op string, f func() C.cairn_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	status := f()
	if status == C.CAIRN_STATUS_OK {
		return nil
	}
	msg := "no message"
	if text := C.cairn_last_error_copy(); text != nil {
		msg = C.GoString(text)
		C.cairn_string_free(text)
	}
	return fmt.Errorf("%s: status %d: %s", op, int(status), msg)
}

// takeString copies a string cairn returned and frees it.
func takeString(s *C.char) string {
	defer C.cairn_string_free(s)
	return C.GoString(s)
}

func run(repoDir, source, target string) error {
	if C.cairn_abi_version() != C.CAIRN_ABI_VERSION {
		return fmt.Errorf("libcairn ABI %d, header %d", C.cairn_abi_version(), C.CAIRN_ABI_VERSION)
	}
	cURL, cPassword := C.CString(repoDir), C.CString("go password")
	defer C.free(unsafe.Pointer(cURL))
	defer C.free(unsafe.Pointer(cPassword))
	cOptions := C.CString(`{"kdf_memory_kib": 19456, "kdf_time_cost": 2}`)
	defer C.free(unsafe.Pointer(cOptions))

	var repo *C.cairn_repo
	if err := call("init", func() C.cairn_status {
		return C.cairn_repo_init(cURL, cPassword, cOptions, &repo)
	}); err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			C.cairn_repo_close(repo)
		}
	}()

	cSource := C.CString(source)
	defer C.free(unsafe.Pointer(cSource))
	paths := []*C.char{cSource}
	cBackup := C.CString(`{"host": "node-1", "tags": ["pvc"]}`)
	defer C.free(unsafe.Pointer(cBackup))
	var out *C.char
	if err := call("backup", func() C.cairn_status {
		return C.cairn_backup_paths(repo, (**C.char)(unsafe.Pointer(&paths[0])), 1, cBackup, nil, nil, nil, &out)
	}); err != nil {
		return err
	}
	var result struct {
		SnapshotID string `json:"snapshot_id"`
	}
	if err := json.Unmarshal([]byte(takeString(out)), &result); err != nil {
		return err
	}
	fmt.Println("snapshot", result.SnapshotID[:8])

	cID, cTarget := C.CString(result.SnapshotID), C.CString(target)
	defer C.free(unsafe.Pointer(cID))
	defer C.free(unsafe.Pointer(cTarget))
	if err := call("restore", func() C.cairn_status {
		return C.cairn_restore(repo, cID, cTarget, nil, nil, nil, nil, &out)
	}); err != nil {
		return err
	}
	fmt.Println("restored", takeString(out))
	if err := call("check", func() C.cairn_status { return C.cairn_check(repo, nil, &out) }); err != nil {
		return err
	}
	C.cairn_string_free(out)

	// The sidecar's DR signal: drill the snapshot, then ask whether the RPO holds.
	cDrill := C.CString(`{"command": "test -n \"$(ls -A)\"", "timeout": "5min"}`)
	defer C.free(unsafe.Pointer(cDrill))
	if err := call("drill", func() C.cairn_status { return C.cairn_drill(repo, cDrill, &out) }); err != nil {
		return err
	}
	C.cairn_string_free(out)
	cRpo := C.CString(`{"max_age": "26h", "max_verified_age": "8d"}`)
	defer C.free(unsafe.Pointer(cRpo))
	if err := call("rpo", func() C.cairn_status { return C.cairn_rpo(repo, cRpo, &out) }); err != nil {
		return err
	}
	var rpo struct {
		OK     bool `json:"ok"`
		Groups []struct {
			Newest struct {
				AgeSeconds uint64 `json:"age_seconds"`
			} `json:"newest"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(takeString(out)), &rpo); err != nil {
		return err
	}
	if !rpo.OK || len(rpo.Groups) != 1 {
		return fmt.Errorf("rpo: unexpected report %+v", rpo)
	}
	fmt.Println("rpo ok, newest snapshot", rpo.Groups[0].Newest.AgeSeconds, "s old")

	if err := concurrentErrors(repoDir); err != nil {
		return err
	}
	closed = true
	if err := call("close", func() C.cairn_status { return C.cairn_repo_close(repo) }); err != nil {
		return err
	}
	// The handle is gone: a second close is an error, not a crash.
	if err := call("close again", func() C.cairn_status { return C.cairn_repo_close(repo) }); err == nil ||
		!strings.Contains(err.Error(), "not an open cairn_repo") {
		return fmt.Errorf("second close: expected an error, got %v", err)
	}
	return nil
}

// concurrentErrors has many goroutines fail at once, each opening a repository that does not
// exist under a name of its own: every error must name that goroutine's path, never
// another's. Reading C.cairn_last_error() without pinning the thread fails this within a
// few hundred calls (seen on every run when this step was written).
func concurrentErrors(base string) error {
	const goroutines, rounds = 32, 200
	cPassword := C.CString("go password")
	defer C.free(unsafe.Pointer(cPassword))
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				// "-end" keeps one path from being a prefix of another (g1-r2, g1-r20).
				path := fmt.Sprintf("%s-missing-g%d-r%d-end", base, g, r)
				cPath := C.CString(path)
				var repo *C.cairn_repo
				err := call("open", func() C.cairn_status { return C.cairn_repo_open(cPath, cPassword, nil, &repo) })
				C.free(unsafe.Pointer(cPath))
				if err == nil || !strings.Contains(err.Error(), path) {
					errs <- fmt.Errorf("goroutine %d round %d: expected an error naming %s, got %v", g, r, path, err)
					return
				}
				runtime.Gosched()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Println("errors of", goroutines*rounds, "concurrent failing calls each named their own path")
	return nil
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: cairn-go REPO SOURCE_DIR RESTORE_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("cairn Go demo: all steps passed")
}
