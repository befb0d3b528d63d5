// Package auth authenticates and authorizes the users of minipipe's HTTP APIs: a users file (one user a line:
// name, a bcrypt or argon2id hash of the password, roles), HTTP Basic authentication checked against it, the
// roles every request needs, failed logins limited per client address, and the principal of a request for
// the audit trail.
package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Role is what a user may do.
type Role string

// The roles. Admin may do everything; the others only what they name.
const (
	Reader         Role = "reader"          // GET and HEAD of every API, /metrics
	Producer       Role = "producer"        // REST Proxy produce
	RegistryWriter Role = "registry-writer" // register schemas, set compatibility levels
	Admin          Role = "admin"           // deletes, registry modes, profiling, console administration
)

// Roles are every role, in order.
var Roles = []Role{Reader, Producer, RegistryWriter, Admin}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (reader, producer, registry-writer, admin)", s)
}

// User is one line of a users file.
type User struct {
	Name  string
	Hash  string // bcrypt ($2a$, $2b$, $2y$) or argon2id ($argon2id$v=19$m=…,t=…,p=…$salt$key)
	Roles []Role
}

// Has says whether the user has the role (admin has every role).
func (u *User) Has(r Role) bool {
	for _, have := range u.Roles {
		if have == r || have == Admin {
			return true
		}
	}
	return false
}

// ValidName says whether s can name a user: 1–128 of [A-Za-z0-9._@+-].
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@+-", c) >= 0) {
			return false
		}
	}
	return true
}

// maxFileBytes bounds a users file.
const maxFileBytes = 4 << 20

// ParseFile reads a users file: one user a line, `NAME:HASH:ROLE[,ROLE…]`; blank lines and lines starting
// with '#' are skipped. Errors name the line, never its hash.
func ParseFile(b []byte) ([]User, error) {
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("users file larger than %d bytes", maxFileBytes)
	}
	var users []User
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		i := strings.LastIndexByte(rest, ':')
		if !ok || i < 0 {
			return nil, fmt.Errorf("line %d: want NAME:HASH:ROLES", n)
		}
		hash, roles := rest[:i], rest[i+1:]
		if !ValidName(name) {
			return nil, fmt.Errorf("line %d: user name %q: use 1–128 of A–Z a–z 0–9 . _ @ + -", n, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("line %d: user %s appears twice", n, name)
		}
		seen[name] = true
		if err := checkHash(hash); err != nil {
			return nil, fmt.Errorf("line %d (user %s): %w", n, name, err)
		}
		u := User{Name: name, Hash: hash}
		for _, r := range strings.Split(roles, ",") {
			role, err := ParseRole(strings.TrimSpace(r))
			if err != nil {
				return nil, fmt.Errorf("line %d (user %s): %w", n, name, err)
			}
			u.Roles = append(u.Roles, role)
		}
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	return users, nil
}

// FormatFile writes users as a users file, sorted by name.
func FormatFile(users []User) []byte {
	sorted := append([]User(nil), users...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var b bytes.Buffer
	b.WriteString("# minipipe users: NAME:HASH:ROLES (reader, producer, registry-writer, admin). Edit with `minipipe user`.\n")
	for _, u := range sorted {
		roles := make([]string, len(u.Roles))
		for i, r := range u.Roles {
			roles[i] = string(r)
		}
		fmt.Fprintf(&b, "%s:%s:%s\n", u.Name, u.Hash, strings.Join(roles, ","))
	}
	return b.Bytes()
}

// The argon2id parameters of new hashes (OWASP's first recommendation: 19 MiB, two passes, one lane).
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// Limits on the parameters of hashes read from a file: a hash is verified on a failed login, so a file must
// not make one cost more than this.
const (
	maxArgonMemory  = 64 * 1024 // KiB
	maxArgonTime    = 4
	maxArgonThreads = 4
	maxBcryptCost   = 12
)

// HashPassword hashes a password with argon2id in the PHC string format.
func HashPassword(password []byte) (string, error) {
	if len(password) == 0 {
		return "", errors.New("the password is empty")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(password, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

type argonHash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func parseArgon(h string) (*argonHash, error) {
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errors.New("not an argon2id hash ($argon2id$v=19$m=…,t=…,p=…$salt$key)")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("argon2id version %q: only v=%d is supported", parts[2], argon2.Version)
	}
	var a argonHash
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("argon2id parameter %q", kv)
		}
		switch k {
		case "m":
			a.memory = uint32(n)
		case "t":
			a.time = uint32(n)
		case "p":
			if n > maxArgonThreads {
				return nil, fmt.Errorf("argon2id parallelism %d: at most %d", n, maxArgonThreads)
			}
			a.threads = uint8(n)
		default:
			return nil, fmt.Errorf("argon2id parameter %q", k)
		}
	}
	if a.memory < 8 || a.memory > maxArgonMemory || a.time < 1 || a.time > maxArgonTime || a.threads < 1 || a.memory < 8*uint32(a.threads) {
		return nil, fmt.Errorf("argon2id parameters m=%d,t=%d,p=%d: want m 8–%d KiB (at least 8 per lane), t 1–%d, p ≥ 1",
			a.memory, a.time, a.threads, maxArgonMemory, maxArgonTime)
	}
	var err error
	if a.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(a.salt) < 8 {
		return nil, errors.New("argon2id salt: want at least 8 bytes, base64 without padding")
	}
	if a.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(a.key) < 16 || len(a.key) > 64 {
		return nil, errors.New("argon2id key: want 16–64 bytes, base64 without padding")
	}
	return &a, nil
}

// checkHash says whether h is a hash minipipe can verify, at a bounded cost.
func checkHash(h string) error {
	switch {
	case strings.HasPrefix(h, "$argon2id$"):
		_, err := parseArgon(h)
		return err
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		cost, err := bcrypt.Cost([]byte(h))
		if err != nil {
			return fmt.Errorf("bcrypt hash: %w", err)
		}
		if cost > maxBcryptCost {
			return fmt.Errorf("bcrypt cost %d: at most %d", cost, maxBcryptCost)
		}
		return nil
	}
	return errors.New("the password hash is neither bcrypt ($2a$, $2b$, $2y$) nor argon2id ($argon2id$)")
}

// hashCost orders hashes by what verifying them costs (argon2id: memory × passes; bcrypt: 2^cost rounds
// scaled alike); -1 for a hash that cannot be read.
func hashCost(h string) int {
	if a, err := parseArgon(h); err == nil {
		return int(a.memory) * int(a.time)
	}
	if c, err := bcrypt.Cost([]byte(h)); err == nil {
		return (1 << c) * 8 // bcrypt cost 12 ≈ argon2id 19 MiB × 2 on this scale
	}
	return -1
}

// verify checks a password against a hash in constant time.
func verify(hash string, password []byte) bool {
	if strings.HasPrefix(hash, "$argon2id$") {
		a, err := parseArgon(hash)
		if err != nil {
			return false
		}
		key := argon2.IDKey(password, a.salt, a.time, a.memory, a.threads, uint32(len(a.key)))
		return subtle.ConstantTimeCompare(key, a.key) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), password) == nil
}
