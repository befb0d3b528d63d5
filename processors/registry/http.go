package registry

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/minipipe/minipipe/internal/avro"
	"github.com/minipipe/minipipe/internal/httpapi"
)

// The media types of Confluent's Schema Registry API.
const (
	ContentTypeV1      = "application/vnd.schemaregistry.v1+json"
	contentTypeDefault = "application/vnd.schemaregistry+json"
	contentTypeJSON    = "application/json"
	maxBodyBytes       = 8 << 20
)

var offers = []string{ContentTypeV1, contentTypeDefault, contentTypeJSON}

var requestTypes = map[string]bool{ContentTypeV1: true, contentTypeDefault: true, contentTypeJSON: true, "application/octet-stream": true}

// Handler serves the Schema Registry API.
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	h := &api{r: r, mux: mux}
	routes := []struct {
		pattern string
		fn      func(*call) (int, any, error)
	}{
		{"GET /{$}", func(*call) (int, any, error) { return 200, struct{}{}, nil }},
		{"GET /schemas/types", func(*call) (int, any, error) { return 200, []string{"AVRO"}, nil }},
		{"GET /schemas", h.listSchemas},
		{"GET /schemas/ids/{id}", h.schemaByID},
		{"GET /schemas/ids/{id}/schema", h.rawSchemaByID},
		{"GET /schemas/ids/{id}/versions", h.idVersions},
		{"GET /schemas/ids/{id}/subjects", h.idSubjects},
		{"GET /subjects", h.listSubjects},
		{"GET /subjects/{subject}/versions", h.listVersions},
		{"GET /subjects/{subject}/versions/{version}", h.getVersion},
		{"GET /subjects/{subject}/versions/{version}/schema", h.getVersionSchema},
		{"GET /subjects/{subject}/versions/{version}/referencedby", h.referencedBy},
		{"POST /subjects/{subject}/versions", h.register},
		{"POST /subjects/{subject}", h.lookup},
		{"DELETE /subjects/{subject}", h.deleteSubject},
		{"DELETE /subjects/{subject}/versions/{version}", h.deleteVersion},
		{"POST /compatibility/subjects/{subject}/versions/{version}", h.compatibility},
		{"POST /compatibility/subjects/{subject}/versions", h.compatibility},
		{"GET /config", h.getConfig},
		{"PUT /config", h.putConfig},
		{"DELETE /config", h.deleteConfig},
		{"GET /config/{subject}", h.getConfig},
		{"PUT /config/{subject}", h.putConfig},
		{"DELETE /config/{subject}", h.deleteConfig},
		{"GET /mode", h.getMode},
		{"PUT /mode", h.putMode},
		{"GET /mode/{subject}", h.getMode},
		{"PUT /mode/{subject}", h.putMode},
		{"DELETE /mode/{subject}", h.deleteMode},
	}
	for _, rt := range routes {
		mux.Handle(rt.pattern, h.wrap(rt.fn))
	}
	mux.HandleFunc("/", h.fallback)
	return mux
}

type api struct {
	r   *Registry
	mux *http.ServeMux
}

type call struct {
	w    http.ResponseWriter
	req  *http.Request
	body []byte
	ctx  context.Context
}

func (c *call) path(name string) string { return c.req.PathValue(name) }

func (c *call) flag(name string) bool {
	v, err := strconv.ParseBool(c.req.URL.Query().Get(name))
	return err == nil && v
}

func (h *api) wrap(fn func(*call) (int, any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ct, ok := httpapi.Negotiate(req.Header.Get("Accept"), offers)
		if !ok {
			httpapi.WriteError(w, ContentTypeV1, httpapi.ErrNotAcceptable)
			return
		}
		c := &call{w: w, req: req, ctx: req.Context()}
		if req.Method == http.MethodPost || req.Method == http.MethodPut {
			if t := req.Header.Get("Content-Type"); t != "" {
				m, ok := httpapi.ParseMediaType(t)
				if !ok || !requestTypes[m.String()] {
					httpapi.WriteError(w, ct, httpapi.ErrUnsupportedMediaType)
					return
				}
			}
			body, herr := httpapi.ReadBody(req, maxBodyBytes)
			if herr != nil {
				httpapi.WriteError(w, ct, herr)
				return
			}
			c.body = body
		}
		status, out, err := fn(c)
		if err != nil {
			var he *httpapi.Error
			if e, ok := err.(*httpapi.Error); ok {
				he = e
			} else {
				re := AsError(err)
				he = &httpapi.Error{Status: re.Status, Code: re.Code, Message: re.Message}
			}
			httpapi.WriteError(w, ct, he)
			return
		}
		if raw, ok := out.(rawBody); ok {
			httpapi.WriteRaw(w, status, ct, raw)
			return
		}
		httpapi.WriteJSON(w, status, ct, out)
	})
}

type rawBody []byte

// fallback answers unknown paths with 404 and known paths with another method with 405, in JSON.
func (h *api) fallback(w http.ResponseWriter, req *http.Request) {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == req.Method {
			continue
		}
		r2 := req.Clone(req.Context())
		r2.Method = m
		if _, pattern := h.mux.Handler(r2); pattern != "/" && pattern != "" {
			httpapi.WriteError(w, ContentTypeV1, httpapi.ErrMethodNotAllowed)
			return
		}
	}
	httpapi.WriteError(w, ContentTypeV1, httpapi.ErrNotFound)
}

func (h *api) ready(c *call) error { return h.r.waitReady(c.ctx) }

// parseVersion accepts 1…2^31-1, "latest" and -1 (latest); -1 is returned for the latest.
func parseVersion(s string) (int, error) {
	if s == "latest" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v == 0 || v < -1 || v > math.MaxInt32 {
		return 0, errInvalidVersion(s)
	}
	return int(v), nil
}

func parseID(s string) (int, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > math.MaxInt32 {
		return 0, errSchemaNotFound(s)
	}
	return int(v), nil
}

// schemaBody is the response shape of a schema by id.
type schemaBody struct {
	Schema     string      `json:"schema"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	MaxID      *int        `json:"maxId,omitempty"`
}

// versionBody is the response shape of a subject version.
type versionBody struct {
	Subject    string      `json:"subject"`
	Version    int         `json:"version"`
	ID         int         `json:"id"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Schema     string      `json:"schema"`
	Deleted    bool        `json:"deleted,omitempty"`
}

func (h *api) liveSchema(id int, deleted bool) (*SchemaRecord, error) {
	rec, err := h.r.store.SchemaByID(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, errSchemaNotFound(strconv.Itoa(id))
	}
	uses, err := h.r.store.Uses(id, false)
	if err != nil {
		return nil, err
	}
	if len(uses) == 0 {
		return nil, errSchemaNotFound(strconv.Itoa(id)) // every version using it was permanently deleted
	}
	return rec, nil
}

// pathSchema is the live schema of the request path's {id}, once the registry view is ready.
func (h *api) pathSchema(c *call) (int, *SchemaRecord, error) {
	if err := h.ready(c); err != nil {
		return 0, nil, err
	}
	id, err := parseID(c.path("id"))
	if err != nil {
		return 0, nil, err
	}
	rec, err := h.liveSchema(id, true)
	return id, rec, err
}

func (h *api) schemaByID(c *call) (int, any, error) {
	_, rec, err := h.pathSchema(c)
	if err != nil {
		return 0, nil, err
	}
	out := schemaBody{Schema: rec.Schema, References: rec.References}
	if c.flag("fetchMaxId") {
		m, err := h.r.store.MaxID()
		if err != nil {
			return 0, nil, err
		}
		out.MaxID = &m
	}
	return 200, out, nil
}

func (h *api) rawSchemaByID(c *call) (int, any, error) {
	_, rec, err := h.pathSchema(c)
	if err != nil {
		return 0, nil, err
	}
	return 200, rawBody(rec.Schema), nil
}

type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

func (h *api) idUses(c *call) ([]VersionRecord, error) {
	id, _, err := h.pathSchema(c)
	if err != nil {
		return nil, err
	}
	uses, err := h.r.store.Uses(id, !c.flag("deleted"))
	if err != nil {
		return nil, err
	}
	if sub := c.req.URL.Query().Get("subject"); sub != "" {
		kept := uses[:0]
		for _, u := range uses {
			if u.Subject == sub {
				kept = append(kept, u)
			}
		}
		uses = kept
	}
	return uses, nil
}

func (h *api) idVersions(c *call) (int, any, error) {
	uses, err := h.idUses(c)
	if err != nil {
		return 0, nil, err
	}
	out := []subjectVersion{}
	for _, u := range uses {
		out = append(out, subjectVersion{u.Subject, u.Version})
	}
	return 200, out, nil
}

func (h *api) idSubjects(c *call) (int, any, error) {
	uses, err := h.idUses(c)
	if err != nil {
		return 0, nil, err
	}
	seen := map[string]bool{}
	out := []string{}
	for _, u := range uses {
		if !seen[u.Subject] {
			seen[u.Subject] = true
			out = append(out, u.Subject)
		}
	}
	sort.Strings(out)
	return 200, out, nil
}

func (h *api) listSubjects(c *call) (int, any, error) {
	if err := h.ready(c); err != nil {
		return 0, nil, err
	}
	deletedOnly := c.flag("deletedOnly")
	all, err := h.r.store.Subjects(c.flag("deleted") || deletedOnly)
	if err != nil {
		return 0, nil, err
	}
	var live map[string]bool
	if deletedOnly {
		ls, err := h.r.store.Subjects(false)
		if err != nil {
			return 0, nil, err
		}
		live = map[string]bool{}
		for _, s := range ls {
			live[s] = true
		}
	}
	prefix := c.req.URL.Query().Get("subjectPrefix")
	out := []string{}
	for _, s := range all {
		if !strings.HasPrefix(s, prefix) || (deletedOnly && live[s]) {
			continue
		}
		out = append(out, s)
	}
	return 200, out, nil
}

func (h *api) listVersions(c *call) (int, any, error) {
	if err := h.ready(c); err != nil {
		return 0, nil, err
	}
	subject := c.path("subject")
	vs, err := h.r.store.Versions(subject)
	if err != nil {
		return 0, nil, err
	}
	deleted, deletedOnly := c.flag("deleted"), c.flag("deletedOnly")
	out := []int{}
	for _, v := range vs {
		if (v.Deleted && (deleted || deletedOnly)) || (!v.Deleted && !deletedOnly) {
			out = append(out, v.Version)
		}
	}
	if len(out) == 0 && !deletedOnly {
		return 0, nil, errSubjectNotFound(subject)
	}
	return 200, out, nil
}

// version resolves a subject version from the path, with Confluent's error codes.
func (h *api) version(c *call) (*VersionRecord, *SchemaRecord, error) {
	if err := h.ready(c); err != nil {
		return nil, nil, err
	}
	subject := c.path("subject")
	ver, err := parseVersion(c.path("version"))
	if err != nil {
		return nil, nil, err
	}
	deleted := c.flag("deleted")
	vs, err := h.r.store.Versions(subject)
	if err != nil {
		return nil, nil, err
	}
	exists := false
	for _, v := range vs {
		if deleted || !v.Deleted {
			exists = true
		}
	}
	if !exists {
		return nil, nil, errSubjectNotFound(subject)
	}
	v, err := h.r.store.Version(subject, ver, deleted)
	if err != nil {
		return nil, nil, err
	}
	if v == nil {
		return nil, nil, errVersionNotFound(c.path("version"))
	}
	rec, err := h.r.store.SchemaByID(v.ID)
	if err != nil {
		return nil, nil, err
	}
	if rec == nil {
		return nil, nil, errStore(fmt.Errorf("schema %d of %s version %d is missing", v.ID, subject, v.Version))
	}
	return v, rec, nil
}

func (h *api) getVersion(c *call) (int, any, error) {
	v, rec, err := h.version(c)
	if err != nil {
		return 0, nil, err
	}
	return 200, versionBody{Subject: v.Subject, Version: v.Version, ID: v.ID, References: rec.References, Schema: rec.Schema}, nil
}

func (h *api) getVersionSchema(c *call) (int, any, error) {
	_, rec, err := h.version(c)
	if err != nil {
		return 0, nil, err
	}
	return 200, rawBody(rec.Schema), nil
}

func (h *api) referencedBy(c *call) (int, any, error) {
	v, _, err := h.version(c)
	if err != nil {
		return 0, nil, err
	}
	refs, err := h.r.store.ReferencedBy(v.Subject, v.Version)
	if err != nil {
		return 0, nil, err
	}
	out := []int{}
	for _, ref := range refs {
		bv, err := h.r.store.Version(ref.Subject, ref.Version, true)
		if err != nil {
			return 0, nil, err
		}
		if bv != nil {
			out = append(out, bv.ID)
		}
	}
	return 200, out, nil
}

func (h *api) decode(c *call, v any) error {
	if herr := httpapi.DecodeJSON(c.body, v); herr != nil {
		return herr
	}
	return nil
}

func (h *api) register(c *call) (int, any, error) {
	var req RegisterRequest
	if err := h.decode(c, &req); err != nil {
		return 0, nil, err
	}
	out, err := h.r.Register(c.ctx, c.path("subject"), req, c.flag("normalize"))
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		ID int `json:"id"`
	}{out.ID}, nil
}

func (h *api) lookup(c *call) (int, any, error) {
	if err := h.ready(c); err != nil {
		return 0, nil, err
	}
	var req RegisterRequest
	if err := h.decode(c, &req); err != nil {
		return 0, nil, err
	}
	subject := c.path("subject")
	vs, err := h.r.store.Versions(subject)
	if err != nil {
		return 0, nil, err
	}
	deleted := c.flag("deleted")
	exists := false
	for _, v := range vs {
		if deleted || !v.Deleted {
			exists = true
		}
	}
	if !exists {
		return 0, nil, errSubjectNotFound(subject)
	}
	_, cfgNormalize, err := h.r.store.EffectiveLevel(subject)
	if err != nil {
		return 0, nil, err
	}
	p, err := h.r.Prepare(req.Schema, req.SchemaType, req.References, c.flag("normalize") || cfgNormalize, false)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.r.lookupPrepared(subject, p, deleted)
	if err != nil {
		return 0, nil, err
	}
	if v == nil {
		return 0, nil, errSchemaNotFound("")
	}
	rec, err := h.r.store.SchemaByID(v.ID)
	if err != nil || rec == nil {
		return 0, nil, errSchemaNotFound("")
	}
	return 200, versionBody{Subject: subject, Version: v.Version, ID: v.ID, References: rec.References, Schema: rec.Schema, Deleted: v.Deleted}, nil
}

func (h *api) deleteSubject(c *call) (int, any, error) {
	out, err := h.r.DeleteSubject(c.ctx, c.path("subject"), c.flag("permanent"))
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}

func (h *api) deleteVersion(c *call) (int, any, error) {
	ver, err := parseVersion(c.path("version"))
	if err != nil {
		return 0, nil, err
	}
	out, err := h.r.DeleteVersion(c.ctx, c.path("subject"), ver, c.flag("permanent"))
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}

func (h *api) compatibility(c *call) (int, any, error) {
	if err := h.ready(c); err != nil {
		return 0, nil, err
	}
	subject := c.path("subject")
	var req RegisterRequest
	if err := h.decode(c, &req); err != nil {
		return 0, nil, err
	}
	var only *VersionRecord
	versionStr := c.path("version")
	vs, err := h.r.store.Versions(subject)
	if err != nil {
		return 0, nil, err
	}
	if versionStr != "" {
		ver, err := parseVersion(versionStr)
		if err != nil {
			return 0, nil, err
		}
		if ver != -1 {
			live := false
			for _, v := range vs {
				live = live || !v.Deleted
			}
			if !live {
				return 0, nil, errSubjectNotFound(subject)
			}
			only, err = h.r.store.Version(subject, ver, false)
			if err != nil {
				return 0, nil, err
			}
			if only == nil {
				return 0, nil, errVersionNotFound(versionStr)
			}
		}
	}
	level, cfgNormalize, err := h.r.store.EffectiveLevel(subject)
	if err != nil {
		return 0, nil, err
	}
	p, err := h.r.Prepare(req.Schema, req.SchemaType, req.References, c.flag("normalize") || cfgNormalize, true)
	if err != nil {
		return 0, nil, err
	}
	if only != nil && level.Transitive() {
		only = nil // Confluent checks a transitive level against every version whatever the path says
	}
	msgs, err := h.r.checkAgainst(level, p.Schema, vs, only)
	if err != nil {
		return 0, nil, err
	}
	if c.flag("verbose") {
		if msgs == nil {
			msgs = []string{}
		}
		return 200, struct {
			IsCompatible bool     `json:"is_compatible"`
			Messages     []string `json:"messages"`
		}{len(msgs) == 0, msgs}, nil
	}
	return 200, struct {
		IsCompatible bool `json:"is_compatible"`
	}{len(msgs) == 0}, nil
}

type configBody struct {
	CompatibilityLevel string `json:"compatibilityLevel"`
	Normalize          *bool  `json:"normalize,omitempty"`
}

func (h *api) getConfig(c *call) (int, any, error) {
	if err := h.ready(c); err != nil {
		return 0, nil, err
	}
	subject := c.path("subject")
	if subject != "" {
		cfg, err := h.r.store.Config(subject)
		if err != nil {
			return 0, nil, err
		}
		if cfg == nil && !c.flag("defaultToGlobal") {
			return 0, nil, errSubjectLevelConfigNotConfigured(subject)
		}
		if cfg != nil && cfg.Compatibility != "" {
			return 200, configBody{cfg.Compatibility, cfg.Normalize}, nil
		}
	}
	level, _, err := h.r.store.EffectiveLevel("")
	if err != nil {
		return 0, nil, err
	}
	var normalize *bool
	if g, err := h.r.store.Config(""); err == nil && g != nil {
		normalize = g.Normalize
	}
	return 200, configBody{string(level), normalize}, nil
}

type configUpdate struct {
	Compatibility string `json:"compatibility,omitempty"`
	Normalize     *bool  `json:"normalize,omitempty"`
}

func (h *api) putConfig(c *call) (int, any, error) {
	var req configUpdate
	if err := h.decode(c, &req); err != nil {
		return 0, nil, err
	}
	if req.Compatibility == "" && req.Normalize == nil {
		return 0, nil, errInvalidCompatibility("")
	}
	if req.Compatibility != "" {
		l, ok := avro.ParseLevel(req.Compatibility)
		if !ok {
			return 0, nil, errInvalidCompatibility(req.Compatibility)
		}
		req.Compatibility = string(l)
	}
	subject := c.path("subject")
	if subject != "" && !validSubject(subject) {
		return 0, nil, errInvalidSubject(subject)
	}
	if err := h.r.SetConfig(c.ctx, subject, ConfigRecord(req)); err != nil {
		return 0, nil, err
	}
	return 200, req, nil
}

func (h *api) deleteConfig(c *call) (int, any, error) {
	old, err := h.r.DeleteConfig(c.ctx, c.path("subject"))
	if err != nil {
		return 0, nil, err
	}
	return 200, configBody{old.Compatibility, old.Normalize}, nil
}

type modeBody struct {
	Mode string `json:"mode"`
}

func (h *api) getMode(c *call) (int, any, error) {
	if err := h.ready(c); err != nil {
		return 0, nil, err
	}
	subject := c.path("subject")
	if subject != "" {
		m, err := h.r.store.Mode(subject)
		if err != nil {
			return 0, nil, err
		}
		if m == "" && !c.flag("defaultToGlobal") {
			return 0, nil, errSubjectLevelModeNotConfigured(subject)
		}
		if m != "" {
			return 200, modeBody{m}, nil
		}
	}
	m, err := h.r.store.EffectiveMode("")
	if err != nil {
		return 0, nil, err
	}
	return 200, modeBody{m}, nil
}

func (h *api) putMode(c *call) (int, any, error) {
	var req modeBody
	if err := h.decode(c, &req); err != nil {
		return 0, nil, err
	}
	subject := c.path("subject")
	if subject != "" && !validSubject(subject) {
		return 0, nil, errInvalidSubject(subject)
	}
	if err := h.r.SetMode(c.ctx, subject, req.Mode, c.flag("force")); err != nil {
		return 0, nil, err
	}
	return 200, modeBody{strings.ToUpper(req.Mode)}, nil
}

func (h *api) deleteMode(c *call) (int, any, error) {
	m, err := h.r.DeleteMode(c.ctx, c.path("subject"))
	if err != nil {
		return 0, nil, err
	}
	return 200, modeBody{m}, nil
}

// listSchemas is GET /schemas: the schemas of every live subject version (latestOnly: the latest of each).
func (h *api) listSchemas(c *call) (int, any, error) {
	if err := h.ready(c); err != nil {
		return 0, nil, err
	}
	q := c.req.URL.Query()
	prefix := q.Get("subjectPrefix")
	deleted, latestOnly := c.flag("deleted"), c.flag("latestOnly")
	subjects, err := h.r.store.Subjects(deleted)
	if err != nil {
		return 0, nil, err
	}
	out := []versionBody{}
	for _, s := range subjects {
		if !strings.HasPrefix(s, prefix) {
			continue
		}
		vs, err := h.r.store.Versions(s)
		if err != nil {
			return 0, nil, err
		}
		var picked []VersionRecord
		for _, v := range vs {
			if deleted || !v.Deleted {
				picked = append(picked, v)
			}
		}
		if latestOnly && len(picked) > 0 {
			picked = picked[len(picked)-1:]
		}
		for _, v := range picked {
			rec, err := h.r.store.SchemaByID(v.ID)
			if err != nil || rec == nil {
				continue
			}
			out = append(out, versionBody{Subject: s, Version: v.Version, ID: v.ID, References: rec.References, Schema: rec.Schema})
		}
	}
	return 200, out, nil
}
