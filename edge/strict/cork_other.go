//go:build !linux

package strict

import "syscall"

// setCork does nothing where TCP_CORK is not available: a held response
// head is then sent on its own before a ReadFrom body.
func setCork(syscall.RawConn, bool) bool { return false }
