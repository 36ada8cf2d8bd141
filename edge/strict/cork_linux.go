package strict

import "syscall"

// setCork sets or clears TCP_CORK on rc's socket and reports whether it
// did. Clearing it sends what the cork held.
func setCork(rc syscall.RawConn, on bool) bool {
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	}); err != nil {
		return false
	}
	return serr == nil
}
