// Package archtest holds no code: its test keeps the package dependency
// rules of docs/architecture.md true by running `go list -deps`.
package archtest
