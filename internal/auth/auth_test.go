package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// writeUsers writes a users file of name → (password, roles) and returns its path.
func writeUsers(t *testing.T, path string, users map[string][2]string) string {
	t.Helper()
	var list []User
	for name, pr := range users {
		h, err := HashPassword([]byte(pr[0]))
		if err != nil {
			t.Fatal(err)
		}
		u := User{Name: name, Hash: h}
		for _, r := range strings.Split(pr[1], ",") {
			role, err := ParseRole(r)
			if err != nil {
				t.Fatal(err)
			}
			u.Roles = append(u.Roles, role)
		}
		list = append(list, u)
	}
	if path == "" {
		path = filepath.Join(t.TempDir(), "users")
	}
	if err := os.WriteFile(path, FormatFile(list), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func basic(name, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(name+":"+password))
}

func TestParseFile(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), 4)
	if err != nil {
		t.Fatal(err)
	}
	ar, _ := HashPassword([]byte("pw"))
	for _, tc := range []struct {
		name, file, err string
		users           int
	}{
		{"both hashes", "# comment\n\nalice:" + string(bc) + ":reader,producer\nbob:" + ar + ":admin\n", "", 2},
		{"no roles field", "alice:" + ar + "\n", "want NAME:HASH:ROLES", 0},
		{"unknown role", "alice:" + ar + ":root\n", `unknown role "root"`, 0},
		{"bad name", "al ice:" + ar + ":reader\n", "user name", 0},
		{"twice", "a:" + ar + ":reader\na:" + ar + ":admin\n", "appears twice", 0},
		{"plain text password", "alice:secret:reader\n", "neither bcrypt", 0},
		{"argon2id too costly", "alice:$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43) + ":reader\n", "argon2id parameters", 0},
		{"bcrypt too costly", "alice:" + strings.Replace(string(bc), "$04$", "$31$", 1) + ":reader\n", "bcrypt cost 31", 0},
		{"argon2 (not id)", "alice:$argon2i$v=19$m=65536,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43) + ":reader\n", "neither bcrypt", 0},
	} {
		users, err := ParseFile([]byte(tc.file))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			if err != nil && (strings.Contains(err.Error(), string(bc)) || strings.Contains(err.Error(), ar)) {
				t.Errorf("%s: the error shows the hash: %v", tc.name, err)
			}
			continue
		}
		if err != nil || len(users) != tc.users {
			t.Errorf("%s: %d users, %v", tc.name, len(users), err)
		}
	}
	// What FormatFile writes, ParseFile reads back.
	users, _ := ParseFile([]byte("bob:" + ar + ":admin\nalice:" + string(bc) + ":reader,producer\n"))
	again, err := ParseFile(FormatFile(users))
	if err != nil || len(again) != 2 || again[0].Name != "alice" || len(again[0].Roles) != 2 || again[1].Hash != ar {
		t.Fatalf("round trip: %+v %v", again, err)
	}
}

func TestVerify(t *testing.T) {
	ar, _ := HashPassword([]byte("correct horse"))
	bc, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), 4)
	for _, h := range []string{ar, string(bc)} {
		if !verify(h, []byte("correct horse")) || verify(h, []byte("correct horsf")) || verify(h, nil) {
			t.Errorf("%.12s…: verify is wrong", h)
		}
	}
	if _, err := HashPassword(nil); err == nil {
		t.Error("an empty password was hashed")
	}
	a1, _ := HashPassword([]byte("x"))
	a2, _ := HashPassword([]byte("x"))
	if a1 == a2 {
		t.Error("two hashes of one password are equal: no salt")
	}
}

func TestParseBasic(t *testing.T) {
	for _, tc := range []struct {
		header, name, password string
		ok                     bool
	}{
		{basic("alice", "pw"), "alice", "pw", true},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("alice:p:w:")), "alice", "p:w:", true},
		{"BASIC " + base64.StdEncoding.EncodeToString([]byte(":")), "", "", true},
		{"Basic  " + base64.StdEncoding.EncodeToString([]byte("a:b")) + " ", "a", "b", true},
		{"Bearer abc", "", "", false},
		{"Basic", "", "", false},
		{"Basic !!!", "", "", false},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("no colon")), "", "", false},
		{"Basic " + base64.RawStdEncoding.EncodeToString([]byte("a:bc")), "", "", false}, // unpadded
		{"Basic " + strings.Repeat("A", 9000), "", "", false},
	} {
		name, password, ok := ParseBasic(tc.header)
		if ok != tc.ok || name != tc.name || password != tc.password {
			t.Errorf("ParseBasic(%.40q) = %q, %q, %v", tc.header, name, password, ok)
		}
	}
}

func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{basic("alice", "pw"), "Basic", "basic Og==", "Basic " + strings.Repeat("QUJD", 100), "Bearer x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		name, password, ok := ParseBasic(header)
		if !ok {
			return
		}
		if strings.Contains(name, ":") {
			t.Fatalf("name %q holds a colon", name)
		}
		// A header it accepts says the same once written again.
		n2, p2, ok2 := ParseBasic(basic(name, password))
		if !ok2 || n2 != name || p2 != password {
			t.Fatalf("round trip of %q: %q %q %v", header, n2, p2, ok2)
		}
	})
}

func FuzzParseFile(f *testing.F) {
	ar, _ := HashPassword([]byte("pw"))
	f.Add([]byte("alice:" + ar + ":reader,producer\n# x\n"))
	f.Add([]byte("a:$2a$04$abcdefghijklmnopqrstuuJ5Qz2a0pD6Ru9vQ8VJ0mGf4u1gVw7y:admin"))
	f.Add([]byte("b:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA:reader"))
	f.Fuzz(func(t *testing.T, b []byte) {
		users, err := ParseFile(b)
		if err != nil {
			return
		}
		again, err := ParseFile(FormatFile(users))
		if err != nil || len(again) != len(users) {
			t.Fatalf("a parsed file does not parse again: %v", err)
		}
	})
}

func TestProtect(t *testing.T) {
	path := writeUsers(t, "", map[string][2]string{
		"reader": {"r-pw", "reader"}, "producer": {"p-pw", "producer"}, "admin": {"a-pw", "admin"}, "writer": {"w-pw", "registry-writer,reader"},
		"late": {"l-pw", "reader"},
	})
	now := time.Unix(1e9, 0)
	a, err := Open(path, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithFailureLimit(3, time.Minute), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	var principal string
	h := Protect(a, RegistryRule, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal = Principal(r.Context())
		w.WriteHeader(200)
	}))
	do := func(method, path, auth, from string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		r.RemoteAddr = from + ":5555"
		w := httptest.NewRecorder()
		principal = ""
		h.ServeHTTP(w, r)
		return w
	}
	for _, tc := range []struct {
		method, path, auth string
		status             int
		code               string
	}{
		{"GET", "/subjects", "", 401, `"error_code":40101`},
		{"GET", "/subjects", basic("reader", "wrong"), 401, `"error_code":40101`},
		{"GET", "/subjects", basic("nobody", "r-pw"), 401, `"error_code":40101`},
		{"GET", "/subjects", "Bearer xyz", 401, `"error_code":40101`},
		{"GET", "/subjects", basic("reader", "r-pw"), 200, ""},
		{"POST", "/subjects/s", basic("reader", "r-pw"), 200, ""},
		{"POST", "/compatibility/subjects/s/versions/latest", basic("reader", "r-pw"), 200, ""},
		{"POST", "/subjects/s/versions", basic("reader", "r-pw"), 403, `"error_code":40301`},
		{"POST", "/subjects/s/versions", basic("producer", "p-pw"), 403, `"error_code":40301`},
		{"POST", "/subjects/s/versions", basic("writer", "w-pw"), 200, ""},
		{"PUT", "/config/s", basic("writer", "w-pw"), 200, ""},
		{"PUT", "/mode", basic("writer", "w-pw"), 403, `"error_code":40301`},
		{"DELETE", "/subjects/s", basic("writer", "w-pw"), 403, `"error_code":40301`},
		{"DELETE", "/subjects/s", basic("admin", "a-pw"), 200, ""},
		{"PUT", "/mode", basic("admin", "a-pw"), 200, ""},
	} {
		w := do(tc.method, tc.path, tc.auth, "10.0.0.1")
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.code) {
			t.Errorf("%s %s (%.20s): %d %s", tc.method, tc.path, tc.auth, w.Code, w.Body)
		}
		if w.Code == 401 && w.Header().Get("WWW-Authenticate") != `Basic realm="minipipe", charset="UTF-8"` {
			t.Errorf("401 without WWW-Authenticate: %v", w.Header())
		}
		if w.Code == 200 && principal == "" {
			t.Errorf("%s %s: no principal", tc.method, tc.path)
		}
		if strings.Contains(w.Body.String(), "pw") {
			t.Errorf("a password in the body: %s", w.Body)
		}
	}

	// Failed logins are limited per address: three wrong passwords (two above, from 10.0.0.1, plus one), then
	// 429 even with the right one; another address is not affected; a remembered login still passes.
	if w := do("GET", "/subjects", basic("admin", "nope"), "10.0.0.1"); w.Code != 401 {
		t.Fatalf("third failure: %d", w.Code)
	}
	if w := do("GET", "/subjects", basic("late", "l-pw"), "10.0.0.1"); w.Code != 429 || !strings.Contains(w.Body.String(), "42901") || w.Header().Get("Retry-After") == "" {
		t.Fatalf("after three failures: %d %s %v", w.Code, w.Body, w.Header())
	}
	if w := do("GET", "/subjects", basic("reader", "r-pw"), "10.0.0.1"); w.Code != 200 {
		t.Fatalf("a remembered login while limited: %d", w.Code)
	}
	if w := do("GET", "/subjects", basic("late", "l-pw"), "10.0.0.2"); w.Code != 200 {
		t.Fatalf("another address: %d", w.Code)
	}
	if w := do("GET", "/subjects", basic("late", "bad"), "10.0.0.1"); w.Code != 429 {
		t.Fatalf("still limited: %d", w.Code)
	}
	now = now.Add(time.Minute)
	if w := do("GET", "/subjects", basic("writer", "w-pw"), "10.0.0.1"); w.Code != 200 {
		t.Fatalf("a minute later: %d", w.Code)
	}

	// A changed file: a removed user is refused at once (even remembered), a new one admitted, roles follow.
	writeUsers(t, path, map[string][2]string{"admin": {"a-pw", "admin"}, "writer": {"w-pw", "reader"}, "new": {"n-pw", "producer"}})
	if changed, err := a.Reload(); !changed || err != nil {
		t.Fatalf("reload: %v %v", changed, err)
	}
	if w := do("GET", "/subjects", basic("reader", "r-pw"), "10.0.0.3"); w.Code != 401 {
		t.Errorf("a removed user: %d", w.Code)
	}
	if w := do("POST", "/subjects/s/versions", basic("writer", "w-pw"), "10.0.0.3"); w.Code != 403 {
		t.Errorf("a role taken away: %d", w.Code)
	}
	// A broken file leaves the users as they were.
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(); err == nil {
		t.Error("a broken file reloaded")
	}
	if w := do("DELETE", "/subjects/s", basic("admin", "a-pw"), "10.0.0.3"); w.Code != 200 {
		t.Errorf("after a broken file: %d", w.Code)
	}
}

func TestWatch(t *testing.T) {
	path := writeUsers(t, "", map[string][2]string{"a": {"pw", "reader"}})
	a, err := Open(path, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Watch(ctx, 20*time.Millisecond)
	writeUsers(t, path, map[string][2]string{"a": {"pw", "reader"}, "b": {"pw", "admin"}})
	deadline := time.Now().Add(5 * time.Second)
	for a.Users() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the changed file was not read")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := a.Authenticate(ctx, "1.2.3.4", "b", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "1.2.3.4", "b", "bad"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("bad password: %v", err)
	}
}

// TestLimiterUnderConcurrency: failed logins sent all at once from one address get no more tries than the
// allowance (a check made before any of them failed must not let them all through).
func TestLimiterUnderConcurrency(t *testing.T) {
	path := writeUsers(t, "", map[string][2]string{"a": {"pw", "reader"}})
	a, err := Open(path, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithFailureLimit(3, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 40)
	for i := 0; i < 40; i++ {
		go func() {
			_, err := a.Authenticate(context.Background(), "10.9.9.9", "a", "wrong")
			results <- err
		}()
	}
	tried := 0
	for i := 0; i < 40; i++ {
		switch err := <-results; {
		case errors.Is(err, ErrBadLogin):
			tried++
		case !errors.Is(err, ErrTooMany):
			t.Fatalf("unexpected %v", err)
		}
	}
	if tried > 3 {
		t.Fatalf("%d wrong passwords were tried, the allowance is 3", tried)
	}
	// Success gives its token back: a right password after two wrong ones leaves one try, not zero.
	b, _ := Open(path, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithFailureLimit(3, time.Hour))
	for _, pw := range []string{"x", "y", "pw"} {
		_, _ = b.Authenticate(context.Background(), "10.9.9.8", "a", pw)
	}
	if _, err := b.Authenticate(context.Background(), "10.9.9.8", "a", "z"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("the third wrong try: %v", err)
	}
	if _, err := b.Authenticate(context.Background(), "10.9.9.8", "a", "z"); !errors.Is(err, ErrTooMany) {
		t.Fatalf("the fourth wrong try: %v", err)
	}
}

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		rule         Rule
		method, path string
		need         Role
		open         bool
	}{
		{OpsRule, "GET", "/healthz", "", true},
		{OpsRule, "GET", "/readyz", "", true},
		{OpsRule, "GET", "/metrics", Reader, false},
		{OpsRule, "GET", "/debug/pprof/profile", Admin, false},
		{OpsRule, "GET", "/x/../debug/pprof/", Admin, false},
		{OpsRule, "POST", "/healthz", Admin, false},
		{OpsRule, "GET", "/console/", Reader, false},
		{OpsRule, "GET", "/console/api/deadletters/t", Reader, false},
		{OpsRule, "POST", "/console/api/sql", Reader, false},
		{OpsRule, "POST", "/console/api/queries", Reader, false},
		{OpsRule, "PUT", "/console/api/dashboards/abc", Reader, false},
		{OpsRule, "DELETE", "/console/api/queries/abc", Reader, false},
		{OpsRule, "POST", "/console/api/deadletters/t/redrive", Admin, false},
		{OpsRule, "POST", "/console/api/deadletters/t%2Fredrive", Admin, false},
		{OpsRule, "GET", "/console/api/registry/subjects", Reader, false},
		{OpsRule, "POST", "/console/api/registry/compatibility/subjects/s/versions/latest", Reader, false},
		{OpsRule, "POST", "/console/api/registry/subjects/s/versions", RegistryWriter, false},
		{OpsRule, "PUT", "/console/api/registry/config/s", RegistryWriter, false},
		{OpsRule, "DELETE", "/console/api/registry/subjects/s", Admin, false},
		{OpsRule, "POST", "/console/api/%72egistry/subjects/s/versions", Admin, false},
		{OpsRule, "POST", "/console/api/sql/../queries", Reader, false},
		{OpsRule, "POST", "/console/api/registry/../queries", Reader, false},
		{RESTRule, "GET", "/topics", Reader, false},
		{RESTRule, "POST", "/topics/t", Producer, false},
		{RESTRule, "POST", "/topics/t/partitions/0", Producer, false},
		{RESTRule, "DELETE", "/topics/t", Admin, false},
		{RESTRule, "POST", "/consumers/g", Admin, false},
		{RegistryRule, "GET", "/subjects/s/versions/1", Reader, false},
		{RegistryRule, "POST", "/subjects/s", Reader, false},
		{RegistryRule, "POST", "/subjects/a%2Fb", Admin, false}, // decoded, it would be another route: the stricter
		{RegistryRule, "POST", "/%73ubjects/x/versions", Admin, false},
		{OpsRule, "GET", "/%64ebug/pprof/heap", Admin, false},
		{OpsRule, "GET", "/%68ealthz", Admin, false},
		{RegistryRule, "POST", "/subjects/a%2Fb/versions", RegistryWriter, false},
		{RegistryRule, "POST", "/subjects/s/versions/", RegistryWriter, false},
		{RegistryRule, "POST", "/subjects/s/versions/..", Reader, false}, // the router redirects it to the lookup
		{RegistryRule, "POST", "/compatibility/subjects/s/versions", Reader, false},
		{RegistryRule, "PUT", "/config", RegistryWriter, false},
		{RegistryRule, "DELETE", "/config/s", Admin, false},
		{RegistryRule, "PUT", "/mode/s", Admin, false},
		{RegistryRule, "PATCH", "/subjects/s", Admin, false},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		need, open := tc.rule(r)
		if need != tc.need || open != tc.open {
			t.Errorf("%s %s: %q %v, want %q %v", tc.method, tc.path, need, open, tc.need, tc.open)
		}
	}
}
