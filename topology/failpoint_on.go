//go:build failpoints

package topology

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Built only with -tags failpoints (the crash tests' binary, testkit.Binary): production binaries have no
// failpoints.

// failpoint kills the process at a named step of the commit protocol when MINIPIPE_FAILPOINT names it
// ("commit.intent", or "commit.intent:3" for its third occurrence): how the crash tests SIGKILL minipipe
// at every step.
func failpoint() func(string) {
	spec := os.Getenv("MINIPIPE_FAILPOINT")
	if spec == "" {
		return nil
	}
	name, nth := spec, 1
	if i := strings.LastIndexByte(spec, ':'); i > 0 {
		if n, err := strconv.Atoi(spec[i+1:]); err == nil {
			name, nth = spec[:i], n
		}
	}
	var mu sync.Mutex
	hits := 0
	return func(step string) {
		if step != name {
			return
		}
		mu.Lock()
		hits++
		h := hits
		mu.Unlock()
		if h == nth {
			fmt.Fprintf(os.Stderr, "FAILPOINT %s (occurrence %d): killing minipipe with SIGKILL\n", step, h)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
