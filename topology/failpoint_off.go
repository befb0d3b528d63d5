//go:build !failpoints

package topology

// failpoint is nil in production binaries: the crash tests build minipipe with -tags failpoints
// (failpoint_on.go).
func failpoint() func(string) { return nil }
