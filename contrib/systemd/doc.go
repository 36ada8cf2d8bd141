// Package systemd holds the tests of edged's systemd files: the unit
// (edged.service), its sysusers.d entry (edged.sysusers) and its tmpfiles.d
// entries (edged.tmpfiles). They run the systemd tools themselves when
// they are installed (systemd-analyze verify and security, systemd-sysusers
// and systemd-tmpfiles on a scratch root) and skip, saying so, when not.
//
// The package has no non-test code; run it with
//
//	go test ./contrib/systemd/
package systemd
