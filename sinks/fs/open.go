package fs

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
)

// Opener opens a warehouse of one URL scheme.
type Opener func(u *url.URL) (FS, error)

var (
	openersMu sync.Mutex
	openers   = map[string]Opener{
		"file": func(u *url.URL) (FS, error) {
			p := u.Path
			if u.Host != "" && u.Host != "localhost" { // file://./data/warehouse: a relative path
				p = u.Host + u.Path
			}
			if p == "" {
				return nil, fmt.Errorf("warehouse %s: no path", u)
			}
			return NewLocal(filepath.FromSlash(p))
		},
	}
)

// Register adds a backend for a URL scheme (hdfs, s3, …).
func Register(scheme string, o Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	openers[scheme] = o
}

// Open opens the warehouse at a URL: file://PATH, or a registered scheme. A plain path means file://.
func Open(raw string) (FS, error) {
	if !strings.Contains(raw, "://") {
		return NewLocal(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("warehouse %q: %w", raw, err)
	}
	openersMu.Lock()
	o := openers[u.Scheme]
	openersMu.Unlock()
	if o == nil {
		return nil, fmt.Errorf("warehouse %q: unsupported scheme %q (file:// or hdfs://)", raw, u.Scheme)
	}
	return o(u)
}
