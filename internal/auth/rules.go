package auth

import (
	"net/http"
	"path"
	"strings"
)

// The rules of minipipe's listeners. They go by method and path only, and err on the strict side: a
// request whose route is unclear needs admin. The router matches decoded path segments ("/%64ebug" is
// "/debug") while a subject may hold an encoded slash ("a%2Fb"), so each rule is judged on the path both
// decoded and as sent, cleaned as the router cleans it; when the two disagree, the request needs admin.

func judged(rule func(method, path string) (Role, bool)) Rule {
	return func(r *http.Request) (Role, bool) {
		raw, dec := r.URL.EscapedPath(), r.URL.Path
		if raw == "" {
			raw = "/"
		}
		if dec == "" {
			dec = "/"
		}
		n1, o1 := rule(r.Method, path.Clean(raw))
		n2, o2 := rule(r.Method, path.Clean(dec))
		if n1 != n2 || o1 != o2 {
			return Admin, false
		}
		return n1, o1
	}
}

func readOnly(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// RegistryRule is the Schema Registry API's: reads, schema lookups under a subject and compatibility checks
// need reader; registering and compatibility levels registry-writer; deletes and modes admin.
var RegistryRule = judged(registryRule)

func registryRule(method, p string) (Role, bool) {
	switch {
	case readOnly(method):
		return Reader, false
	case method == http.MethodPost && strings.HasPrefix(p, "/compatibility/"):
		return Reader, false
	case method == http.MethodPost && strings.HasPrefix(p, "/subjects/") && !strings.Contains(p[len("/subjects/"):], "/"):
		return Reader, false // POST /subjects/{subject}: is this schema registered?
	case method == http.MethodPost && strings.HasPrefix(p, "/subjects/") && strings.HasSuffix(p, "/versions"):
		return RegistryWriter, false
	case method == http.MethodPut && (p == "/config" || strings.HasPrefix(p, "/config/")):
		return RegistryWriter, false
	}
	return Admin, false
}

// RESTRule is the REST Proxy API's: reads need reader, produce requests producer, the rest admin.
var RESTRule = judged(func(method, p string) (Role, bool) {
	switch {
	case readOnly(method):
		return Reader, false
	case method == http.MethodPost && strings.HasPrefix(p, "/topics/"):
		return Producer, false
	}
	return Admin, false
})

// OpsRule is the --http-addr listener's: /healthz and /readyz are open (probes carry no credentials),
// profiling needs admin, every other read (/metrics, /topology, the console's pages) reader. In the
// console, running SQL (read-only) and saving queries and dashboards need reader (changing or deleting
// another user's needs admin: the console checks), the Schema
// Registry API below /console/api/registry/ what RegistryRule says, re-driving dead letters admin.
var OpsRule = judged(func(method, p string) (Role, bool) {
	const registry = "/console/api/registry"
	switch {
	case readOnly(method) && (p == "/healthz" || p == "/readyz"):
		return "", true
	case p == "/debug" || strings.HasPrefix(p, "/debug/"):
		return Admin, false
	case p == registry || strings.HasPrefix(p, registry+"/"):
		rest := strings.TrimPrefix(p, registry)
		if rest == "" {
			rest = "/"
		}
		return registryRule(method, rest)
	case readOnly(method):
		return Reader, false
	case method == http.MethodPost && p == "/console/api/sql":
		return Reader, false
	case (method == http.MethodPost || method == http.MethodPut || method == http.MethodDelete) &&
		(p == "/console/api/queries" || strings.HasPrefix(p, "/console/api/queries/") ||
			p == "/console/api/dashboards" || strings.HasPrefix(p, "/console/api/dashboards/")):
		return Reader, false // the console lets only their author or an admin change what they saved
	}
	return Admin, false
})
