package auth

import (
	"net/http"
	"path"
	"strings"
)

// The rules of minipipe's listeners. They go by method and path only, cleaned as the router cleans it, and
// err on the strict side: a request whose route is unclear needs admin.

func cleanPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if p == "" {
		return "/"
	}
	return path.Clean(p)
}

func readOnly(r *http.Request) bool { return r.Method == http.MethodGet || r.Method == http.MethodHead }

// RegistryRule is the Schema Registry API's: reads, schema lookups under a subject and compatibility checks
// need reader; registering and compatibility levels registry-writer; deletes and modes admin.
func RegistryRule(r *http.Request) (Role, bool) {
	p := cleanPath(r)
	switch {
	case readOnly(r):
		return Reader, false
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/compatibility/"):
		return Reader, false
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/subjects/") && !strings.Contains(p[len("/subjects/"):], "/"):
		return Reader, false // POST /subjects/{subject}: is this schema registered?
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/subjects/") && strings.HasSuffix(p, "/versions"):
		return RegistryWriter, false
	case r.Method == http.MethodPut && (p == "/config" || strings.HasPrefix(p, "/config/")):
		return RegistryWriter, false
	}
	return Admin, false
}

// RESTRule is the REST Proxy API's: reads need reader, produce requests producer, the rest admin.
func RESTRule(r *http.Request) (Role, bool) {
	p := cleanPath(r)
	switch {
	case readOnly(r):
		return Reader, false
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/topics/"):
		return Producer, false
	}
	return Admin, false
}

// OpsRule is the --http-addr listener's: /healthz and /readyz are open (probes carry no credentials),
// profiling needs admin, every other read (/metrics, /topology, the console's pages) reader.
func OpsRule(r *http.Request) (Role, bool) {
	p := cleanPath(r)
	switch {
	case readOnly(r) && (p == "/healthz" || p == "/readyz"):
		return "", true
	case strings.HasPrefix(p, "/debug/"):
		return Admin, false
	case readOnly(r):
		return Reader, false
	}
	return Admin, false
}
