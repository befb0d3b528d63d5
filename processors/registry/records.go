package registry

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The registry's state is a log of records in one compacted Kafka topic. Each record's key names what it
// describes; compaction keeps the latest value of every key, and a tombstone (nil value) removes it. Every
// minipipe instance applies the log to a local Pebble store through a goka view; one instance at a time
// (the owner of the single command partition) appends to it.
//
//	schema/<id>/<nonce>          a claim of a global id for a schema (never removed: ids stay stable); the
//	                             first claim of an id, and of a schema, wins (schema/<id>: written by
//	                             earlier versions, read alike)
//	subject/<subject>/<version>  a version of a subject: which schema id, soft-deleted or not
//	config, config/<subject>     compatibility level and normalize flag (global, per subject)
//	mode, mode/<subject>         READWRITE, READONLY, READONLY_OVERRIDE or IMPORT
//	reply/<request>              the outcome of a write request, for the instance that asked; tombstoned at once
//	audit/<time>/<request>       who made a change, when, and what it wrote (the audit trail; never overwritten,
//	                             ignored by the stores)
//
// Subjects are path-escaped inside keys and versions and ids are zero-padded, so that a prefix scan lists
// a subject's versions in order.
const (
	prefixSchema  = "schema/"
	prefixSubject = "subject/"
	keyConfig     = "config"
	prefixConfig  = "config/"
	keyMode       = "mode"
	prefixMode    = "mode/"
	prefixReply   = "reply/"
	prefixAudit   = "audit/"

	// Derived keys, kept only in the local store and rebuilt from the log.
	prefixFingerprint = "~fp/"   // ~fp/<fingerprint> -> id
	keyMaxID          = "~maxid" // highest id assigned
	prefixUse         = "~use/"  // ~use/<id>/<subject>/<version> -> "1" live, "0" soft-deleted
	prefixRefBy       = "~ref/"  // ~ref/<subject>/<version>/<by subject>/<by version> -> "": a reference to a version
)

// SchemaRecord is a schema by id.
type SchemaRecord struct {
	ID          int         `json:"id"`
	Schema      string      `json:"schema"`
	SchemaType  string      `json:"schemaType,omitempty"`
	References  []Reference `json:"references,omitempty"`
	Fingerprint string      `json:"fingerprint"`
}

// Reference is a Confluent schema reference: a named type taken from another subject's version.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// VersionRecord is one version of a subject.
type VersionRecord struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Deleted bool   `json:"deleted,omitempty"`
}

// ConfigRecord is a compatibility configuration.
type ConfigRecord struct {
	Compatibility string `json:"compatibilityLevel,omitempty"`
	Normalize     *bool  `json:"normalize,omitempty"`
}

// ModeRecord is a registry mode.
type ModeRecord struct {
	Mode string `json:"mode"`
}

// Reply is the outcome of a write request, addressed to the instance that asked.
type Reply struct {
	Status int    `json:"status"`
	Body   []byte `json:"body"`
}

func escSubject(s string) string { return url.PathEscape(s) }

func unescSubject(s string) (string, error) { return url.PathUnescape(s) }

func pad(n int) string { return fmt.Sprintf("%010d", n) }

func schemaKey(id int) string { return prefixSchema + pad(id) }

// claimKey is the key of a new claim of an id: unique, so that compaction keeps every claim.
func claimKey(id int, nonce string) string { return schemaKey(id) + "/" + nonce }

func subjectPrefix(subject string) string { return prefixSubject + escSubject(subject) + "/" }

func versionKey(subject string, version int) string { return subjectPrefix(subject) + pad(version) }

func configKey(subject string) string {
	if subject == "" {
		return keyConfig
	}
	return prefixConfig + escSubject(subject)
}

func modeKey(subject string) string {
	if subject == "" {
		return keyMode
	}
	return prefixMode + escSubject(subject)
}

func useKey(id int, subject string, version int) string {
	return prefixUse + pad(id) + "/" + escSubject(subject) + "/" + pad(version)
}

func refByPrefix(subject string, version int) string {
	return prefixRefBy + escSubject(subject) + "/" + pad(version) + "/"
}

func refByKey(ref Reference, bySubject string, byVersion int) string {
	return refByPrefix(ref.Subject, ref.Version) + escSubject(bySubject) + "/" + pad(byVersion)
}

// parseSubjectVersion splits "<escaped subject>/<version>" (the tail of a subject or use key).
func parseSubjectVersion(tail string) (string, int, error) {
	i := strings.LastIndexByte(tail, '/')
	if i < 0 {
		return "", 0, fmt.Errorf("malformed key tail %q", tail)
	}
	subject, err := unescSubject(tail[:i])
	if err != nil {
		return "", 0, err
	}
	v, err := strconv.Atoi(tail[i+1:])
	if err != nil {
		return "", 0, err
	}
	return subject, v, nil
}

// Command is a write request sent to the registry's owner through the command topic.
type Command struct {
	Request  string    `json:"request"`
	Deadline time.Time `json:"deadline"`
	Op       string    `json:"op"`
	Subject  string    `json:"subject,omitempty"`

	// register
	Schema     string      `json:"schema,omitempty"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Normalize  bool        `json:"normalize,omitempty"`
	ID         int         `json:"id,omitempty"`      // IMPORT mode
	Version    int         `json:"version,omitempty"` // IMPORT mode; delete_version

	// deletes
	Permanent bool `json:"permanent,omitempty"`
	Latest    bool `json:"latest,omitempty"`

	// config and mode
	Config *ConfigRecord `json:"config,omitempty"`
	Mode   string        `json:"mode,omitempty"`
	Force  bool          `json:"force,omitempty"`

	// Principal is the user who asked (empty when the API is not protected): it goes into the audit record.
	Principal string `json:"principal,omitempty"`
}

// AuditRecord is the audit trail's record of one registry change: who asked for what, when, and the
// records it wrote. Its key, audit/<time>/<request>, is never written again, so compaction keeps every one.
type AuditRecord struct {
	Time      time.Time       `json:"time"`
	Principal string          `json:"principal"`
	Op        string          `json:"op"`
	Subject   string          `json:"subject,omitempty"`
	Request   string          `json:"request"`
	Changes   []string        `json:"changes"`          // the keys written (subject/…/<version>, config/…, …)
	Result    json.RawMessage `json:"result,omitempty"` // the reply's body: the id, the version deleted, the level set
	// The command's arguments that say what was asked.
	Version       int    `json:"version,omitempty"`
	Permanent     bool   `json:"permanent,omitempty"`
	Compatibility string `json:"compatibility,omitempty"`
	Mode          string `json:"mode,omitempty"`
}

// Anonymous is the principal of a change made through an API without authentication.
const Anonymous = "anonymous"

// auditKey is the key of a change's audit record.
func auditKey(t time.Time, request string) string {
	return fmt.Sprintf("%s%020d/%s", prefixAudit, t.UnixNano(), request)
}

// Command operations.
const (
	opRegister      = "register"
	opDeleteSubject = "delete_subject"
	opDeleteVersion = "delete_version"
	opSetConfig     = "set_config"
	opDeleteConfig  = "delete_config"
	opSetMode       = "set_mode"
	opDeleteMode    = "delete_mode"
)
