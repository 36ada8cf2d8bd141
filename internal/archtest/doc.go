// Package archtest holds no code; its tests keep house rules true:
//
//   - the package table of docs/architecture.md ("Packages and who may
//     import whom"), checked on the import graph from `go list -deps`
//     (table_test.go, with table_check_test.go showing every kind of row
//     can fail);
//   - no non-test function longer than 100 lines (funclen_test.go).
package archtest
