package iceberg

import "time"

// SetExpiry changes the automatic expiry's thresholds for a test; the returned func restores them.
func SetExpiry(above, retain int, age time.Duration) func() {
	a, r, g := expireAbove, retainSnapshots, expireAge
	expireAbove, retainSnapshots, expireAge = above, retain, age
	return func() { expireAbove, retainSnapshots, expireAge = a, r, g }
}

// SetBeforeCommit runs f between building a batch's snapshot and committing it; the returned func removes it.
func SetBeforeCommit(f func()) func() {
	beforeCommit = f
	return func() { beforeCommit = nil }
}
