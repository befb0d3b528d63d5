package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Authenticator checks HTTP Basic credentials against a users file, which it re-reads when it changes.
//
// Hashes are slow on purpose, so a user's successful login is remembered (by an HMAC of name and password
// under a key of this process, for ten minutes, and only while the users file is unchanged): a client sending
// its credentials with every request pays the hash once. Failed logins cost a hash each; they are limited per
// client address, and at most as many hashes as cores run at once.
type Authenticator struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	reloadMu sync.Mutex // one Reload at a time: a slow one must not overwrite a newer file's users
	mu       sync.RWMutex
	users    map[string]*User
	gen      uint64
	sum      [32]byte // of the file as last read

	cacheKey [32]byte
	cacheMu  sync.Mutex
	cache    map[[32]byte]cached
	limiter  *limiter
	hashing  chan struct{}
	dummy    string // verified for unknown users, so that the time taken does not tell who exists
}

type cached struct {
	gen     uint64
	expires time.Time
}

const (
	cacheTTL     = 10 * time.Minute
	cacheEntries = 10000
)

// Option configures an Authenticator.
type Option func(*Authenticator)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(a *Authenticator) { a.log = l } }

// WithFailureLimit allows burst failed logins per client address, then one per every; past it a client gets
// 429 until its allowance refills (default 10, then one every 6 s).
func WithFailureLimit(burst int, every time.Duration) Option {
	return func(a *Authenticator) { a.limiter = newLimiter(burst, every) }
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(a *Authenticator) { a.now = now } }

// Open reads a users file. A file that cannot be read or parsed is an error.
func Open(path string, opts ...Option) (*Authenticator, error) {
	a := &Authenticator{path: path, log: slog.Default(), now: time.Now, cache: map[[32]byte]cached{},
		hashing: make(chan struct{}, runtime.GOMAXPROCS(0))}
	for _, o := range opts {
		o(a)
	}
	if a.limiter == nil {
		a.limiter = newLimiter(10, 6*time.Second)
	}
	if _, err := rand.Read(a.cacheKey[:]); err != nil {
		return nil, err
	}
	dummy, err := HashPassword([]byte("no such user"))
	if err != nil {
		return nil, err
	}
	a.dummy = dummy
	if _, err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Path is the users file.
func (a *Authenticator) Path() string { return a.path }

// Users is the number of users.
func (a *Authenticator) Users() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.users)
}

// Reload reads the users file again; it reports whether it changed. On an error the users stay as they were.
func (a *Authenticator) Reload() (bool, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	b, err := os.ReadFile(filepath.Clean(a.path))
	if err != nil {
		return false, fmt.Errorf("users file: %w", err)
	}
	sum := sha256.Sum256(b)
	a.mu.RLock()
	same := a.users != nil && sum == a.sum
	a.mu.RUnlock()
	if same {
		return false, nil
	}
	list, err := ParseFile(b)
	if err != nil {
		return false, fmt.Errorf("users file %s: %w", a.path, err)
	}
	users := make(map[string]*User, len(list))
	dummy, most := "", -1
	for i := range list {
		users[list[i].Name] = &list[i]
		if c := hashCost(list[i].Hash); c > most {
			dummy, most = list[i].Hash, c
		}
	}
	// Group read is how Kubernetes hands a Secret to a pod's fsGroup (mode 0440); others or group write is not.
	if st, err := os.Stat(a.path); err == nil && st.Mode().Perm()&0o027 != 0 {
		a.log.Warn("the users file can be read by other users of this machine (or written by its group): chmod 600 it", "file", a.path, "mode", st.Mode().Perm().String())
	}
	a.mu.Lock()
	a.users, a.sum = users, sum
	if dummy != "" {
		a.dummy = dummy // an unknown user costs what the costliest known one does
	}
	a.gen++
	a.mu.Unlock()
	a.cacheMu.Lock()
	clear(a.cache)
	a.cacheMu.Unlock()
	return true, nil
}

// Watch re-reads the users file every interval until ctx ends, logging changes and errors (a file that
// became invalid leaves the users as they were).
func (a *Authenticator) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := a.Reload()
		switch {
		case err != nil && !failing:
			a.log.Error("the users file cannot be read; the users stay as they were", "error", err)
			failing = true
		case err == nil && changed:
			a.log.Info("users file reloaded", "file", a.path, "users", a.Users())
			failing = false
		case err == nil:
			failing = false
		}
	}
}

// Errors of Authenticate.
var (
	ErrNoCredentials = errors.New("authentication required")
	ErrBadLogin      = errors.New("wrong user name or password")
	ErrTooMany       = errors.New("too many failed logins from this address; try again later")
)

// Authenticate checks a name and password from the client at addr (an IP address).
func (a *Authenticator) Authenticate(ctx context.Context, addr, name, password string) (*User, error) {
	mac := hmac.New(sha256.New, a.cacheKey[:])
	mac.Write([]byte(name))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var key [32]byte
	mac.Sum(key[:0])

	a.mu.RLock()
	u, gen, dummy := a.users[name], a.gen, a.dummy
	a.mu.RUnlock()
	now := a.now()
	a.cacheMu.Lock()
	c, hit := a.cache[key]
	a.cacheMu.Unlock()
	if hit && c.gen == gen && now.Before(c.expires) && u != nil {
		return u, nil
	}
	// A try that is not remembered takes a token first, given back if it succeeds: requests in flight at
	// once cannot each pass a check made before the others failed.
	if !a.limiter.take(addr, now) {
		return nil, ErrTooMany
	}
	select {
	case a.hashing <- struct{}{}:
	case <-ctx.Done():
		a.limiter.refund(addr)
		return nil, ctx.Err()
	}
	ok := false
	if u != nil {
		ok = verify(u.Hash, []byte(password))
	} else {
		verify(dummy, []byte(password))
	}
	<-a.hashing
	if !ok {
		return nil, ErrBadLogin
	}
	a.limiter.refund(addr)
	a.cacheMu.Lock()
	if len(a.cache) >= cacheEntries {
		clear(a.cache)
	}
	a.cache[key] = cached{gen: gen, expires: now.Add(cacheTTL)}
	a.cacheMu.Unlock()
	return u, nil
}

// ParseBasic reads an Authorization header of the Basic scheme (RFC 7617): the scheme name in any case,
// then base64 (standard alphabet, padded) of "name:password". The password may hold colons; the name may
// not.
func ParseBasic(header string) (name, password string, ok bool) {
	const prefix = "basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) || len(header) > 8<<10 {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	name, password, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	return name, password, true
}

// principalKey is the context key of the authenticated user's name.
type principalKey struct{}

// WithPrincipal returns ctx carrying the name of the user a request came from.
func WithPrincipal(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, principalKey{}, name)
}

// Principal is the name of the user a request came from, or "" when the API is not protected.
func Principal(ctx context.Context) string {
	s, _ := ctx.Value(principalKey{}).(string)
	return s
}

type rolesKey struct{}

// withRoles returns ctx carrying the roles of the user a request came from.
func withRoles(ctx context.Context, roles []Role) context.Context {
	return context.WithValue(ctx, rolesKey{}, roles)
}

// HasRole reports whether the user a request came from has role r (admin has every role); true when the
// API is not protected
// (no users file: everyone may do everything).
func HasRole(ctx context.Context, r Role) bool {
	roles, ok := ctx.Value(rolesKey{}).([]Role)
	if !ok {
		return Principal(ctx) == ""
	}
	for _, have := range roles {
		if have == r || have == Admin {
			return true
		}
	}
	return false
}

// A Rule says which role a request needs; open is true for requests anyone may make (health checks).
type Rule func(r *http.Request) (need Role, open bool)

// Protect wraps an API's handler: every request that its rule does not leave open must carry the
// credentials of a user with the role it needs. Unauthenticated: 401 with WWW-Authenticate and
// {"error_code":40101}; without the role: 403 and 40301; too many failed logins: 429 and 42901, in
// Confluent's error envelope. A nil Authenticator protects nothing.
func Protect(a *Authenticator, rule Rule, next http.Handler) http.Handler {
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need, open := rule(r)
		if open {
			next.ServeHTTP(w, r)
			return
		}
		name, password, ok := ParseBasic(r.Header.Get("Authorization"))
		if !ok {
			unauthorized(w, ErrNoCredentials)
			return
		}
		u, err := a.Authenticate(r.Context(), ClientAddr(r), name, password)
		switch {
		case errors.Is(err, ErrTooMany):
			w.Header().Set("Retry-After", strconv.Itoa(int(a.limiter.every.Seconds()+0.5)))
			writeError(w, http.StatusTooManyRequests, 42901, err.Error())
			return
		case err != nil:
			if errors.Is(err, ErrBadLogin) {
				if len(name) > 64 {
					name = name[:64] + "…"
				}
				a.log.Warn("failed login", "user", name, "client", ClientAddr(r), "method", r.Method, "path", r.URL.Path)
			}
			unauthorized(w, err)
			return
		}
		if !u.Has(need) {
			writeError(w, http.StatusForbidden, 40301, fmt.Sprintf("user %s may not %s %s: it needs the %s role", u.Name, r.Method, r.URL.Path, need))
			return
		}
		next.ServeHTTP(w, r.WithContext(withRoles(WithPrincipal(r.Context(), u.Name), u.Roles)))
	})
}

func unauthorized(w http.ResponseWriter, err error) {
	w.Header().Set("WWW-Authenticate", `Basic realm="minipipe", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, 40101, "Unauthorized: "+err.Error())
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	body := fmt.Sprintf(`{"error_code":%d,"message":%s}`, code, strconv.Quote(msg))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// ClientAddr is the IP address a request came from (the connection's peer: forwarding headers are not
// trusted).
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiter counts failed logins per client address in token buckets.
type limiter struct {
	burst float64
	every time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

const maxBuckets = 100000

func newLimiter(burst int, every time.Duration) *limiter {
	return &limiter{burst: float64(burst), every: every, buckets: map[string]*bucket{}}
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if now.After(b.at) {
		b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.every))
		b.at = now
	}
}

// limitKey is the bucket of a client address: an IPv4 address, or an IPv6 address's /64 (what one host
// commonly holds).
func limitKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil || ip.To4() != nil {
		return addr
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// overflow is the bucket shared by new addresses once the table is full: an attacker with many addresses
// gets no fresh allowance by adding more.
const overflow = "(overflow)"

// take takes a token from addr's bucket: false when there is none left.
func (l *limiter) take(addr string, now time.Time) bool {
	addr = limitKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			for k, v := range l.buckets { // drop the buckets that have refilled
				l.refill(v, now)
				if v.tokens >= l.burst && k != overflow {
					delete(l.buckets, k)
				}
			}
		}
		if len(l.buckets) >= maxBuckets {
			addr = overflow
			b = l.buckets[addr]
		}
		if b == nil {
			b = &bucket{tokens: l.burst, at: now}
			l.buckets[addr] = b
		}
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives back the token of a try that succeeded.
func (l *limiter) refund(addr string) {
	addr = limitKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[addr]
	if b == nil {
		b = l.buckets[overflow]
	}
	if b != nil {
		b.tokens = min(l.burst, b.tokens+1)
	}
}
