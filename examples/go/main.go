// A node-agent-style cairn consumer in Go (cgo): backs up the directory given on the command
// line into a repository, restores the snapshot into another directory, checks the
// repository, drills the snapshot and checks the recovery point. Build flags come from the environment (see README):
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
	"unsafe"
)

// cairnError turns a status into a Go error carrying cairn's message.
func cairnError(op string, status C.cairn_status) error {
	if status == C.CAIRN_STATUS_OK {
		return nil
	}
	msg := "no message"
	if text := C.cairn_last_error(); text != nil {
		msg = C.GoString(text)
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
	if err := cairnError("init", C.cairn_repo_init(cURL, cPassword, cOptions, &repo)); err != nil {
		return err
	}
	defer C.cairn_repo_close(repo)

	cSource := C.CString(source)
	defer C.free(unsafe.Pointer(cSource))
	paths := []*C.char{cSource}
	cBackup := C.CString(`{"host": "node-1", "tags": ["pvc"]}`)
	defer C.free(unsafe.Pointer(cBackup))
	var out *C.char
	status := C.cairn_backup_paths(repo, (**C.char)(unsafe.Pointer(&paths[0])), 1, cBackup, nil, nil, nil, &out)
	if err := cairnError("backup", status); err != nil {
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
	if err := cairnError("restore", C.cairn_restore(repo, cID, cTarget, nil, nil, nil, nil, &out)); err != nil {
		return err
	}
	fmt.Println("restored", takeString(out))
	if err := cairnError("check", C.cairn_check(repo, nil, &out)); err != nil {
		return err
	}
	C.cairn_string_free(out)

	// The sidecar's DR signal: drill the snapshot, then ask whether the RPO holds.
	cDrill := C.CString(`{"command": "test -n \"$(ls -A)\"", "timeout": "5min"}`)
	defer C.free(unsafe.Pointer(cDrill))
	if err := cairnError("drill", C.cairn_drill(repo, cDrill, &out)); err != nil {
		return err
	}
	C.cairn_string_free(out)
	cRpo := C.CString(`{"max_age": "26h", "max_verified_age": "8d"}`)
	defer C.free(unsafe.Pointer(cRpo))
	if err := cairnError("rpo", C.cairn_rpo(repo, cRpo, &out)); err != nil {
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
