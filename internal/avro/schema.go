// Package avro holds minipipe's model of Avro schemas: parsing with the validation rules of the Avro
// specification (and of Avro Java, which Confluent's Schema Registry runs), the canonical text Confluent uses
// for schema identity, the reader/writer compatibility rules of schema resolution, and a codec over
// github.com/linkedin/goavro/v2 for Avro's JSON and binary encodings.
package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// Type is the kind of an Avro schema.
type Type int

// The Avro schema kinds.
const (
	Null Type = iota
	Boolean
	Int
	Long
	Float
	Double
	Bytes
	String
	Record
	Enum
	Array
	Map
	Union
	Fixed
)

var typeNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "enum", "array", "map", "union", "fixed"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", int(t))
}

var primitiveByName = map[string]Type{
	"null": Null, "boolean": Boolean, "int": Int, "long": Long, "float": Float, "double": Double, "bytes": Bytes, "string": String,
}

// IsNamed reports whether schemas of this type carry a name (record, enum, fixed).
func (t Type) IsNamed() bool { return t == Record || t == Enum || t == Fixed }

// Prop is a schema or field attribute outside the reserved ones (logicalType, precision, connect.name, …),
// kept in the order it appeared, with its JSON value as written.
type Prop struct {
	Key   string
	Value json.RawMessage
}

// Schema is a parsed Avro schema. Named types referenced more than once (including recursively) are the
// same *Schema, so the graph may contain cycles.
type Schema struct {
	Type Type

	// Named types (record, enum, fixed).
	Name      string   // unqualified name
	Namespace string   // "" when none
	Doc       string   // record, enum, fixed
	HasDoc    bool     // doc given (even if empty)
	Aliases   []string // full names
	IsError   bool     // record declared as "error"

	Fields      []*Field // record
	Symbols     []string // enum
	EnumDefault string   // enum
	HasEnumDef  bool
	Size        int // fixed

	Items    *Schema   // array
	Values   *Schema   // map
	Branches []*Schema // union

	// LogicalType is the validated logical type ("" when none or when invalid: an invalid logical type is
	// ignored, as the specification asks, but its attribute stays among Props).
	LogicalType string
	Precision   int // decimal
	Scale       int // decimal

	Props []Prop

	// external marks a named type that was defined by a schema reference rather than in this schema text.
	external bool
	// fieldIdx finds the fields of a large record by name.
	fieldIdx map[string]int
}

// Field is a record field.
type Field struct {
	Name       string
	Type       *Schema
	Doc        string
	HasDoc     bool
	Default    json.RawMessage // compact JSON; nil when the field has no default
	Order      string          // "" (ascending), "descending" or "ignore"
	Aliases    []string
	Props      []Prop
	Index      int
	HasDefault bool
}

// FullName is Namespace.Name, or Name without a namespace.
func (s *Schema) FullName() string {
	if s.Namespace == "" {
		return s.Name
	}
	return s.Namespace + "." + s.Name
}

// TypeName is the name a union branch of this schema is known by in Avro's JSON encoding: the full name of a
// named type, otherwise the type's name.
func (s *Schema) TypeName() string {
	if s.Type.IsNamed() {
		return s.FullName()
	}
	return s.Type.String()
}

// Prop returns the raw value of a custom attribute, or nil.
func (s *Schema) Prop(key string) json.RawMessage {
	for _, p := range s.Props {
		if p.Key == key {
			return p.Value
		}
	}
	return nil
}

// FieldByName returns the record field with that name, or nil.
func (s *Schema) FieldByName(name string) *Field {
	for _, f := range s.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Nullable reports whether s is a union with a null branch; NonNull returns its other branch when there is
// exactly one (["null", T] or [T, "null"]).
func (s *Schema) Nullable() bool {
	if s.Type != Union {
		return s.Type == Null
	}
	for _, b := range s.Branches {
		if b.Type == Null {
			return true
		}
	}
	return false
}

// NonNull returns T for a union ["null", T] or [T, "null"], s itself for a non-union, and nil otherwise.
func (s *Schema) NonNull() *Schema {
	if s.Type != Union {
		return s
	}
	var t *Schema
	for _, b := range s.Branches {
		if b.Type == Null {
			continue
		}
		if t != nil {
			return nil
		}
		t = b
	}
	return t
}

// ParseError is an invalid schema; its message says what is wrong and where.
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return e.Msg }

func perr(format string, args ...any) error { return &ParseError{Msg: fmt.Sprintf(format, args...)} }

// IsParseError reports whether err is (or wraps) an invalid-schema error.
func IsParseError(err error) bool {
	var pe *ParseError
	return errors.As(err, &pe)
}

// ParseOptions tune parsing.
type ParseOptions struct {
	// ValidateDefaults rejects field defaults that do not match the field's type (and, for unions, the first
	// branch), as Avro Java and current Confluent do for new registrations. Stored schemas are re-read without
	// it.
	ValidateDefaults bool
	// Named holds named types defined elsewhere (schema references), by full name.
	Named map[string]*Schema
}

// Parse parses an Avro schema from its JSON text with default validation on.
func Parse(text string) (*Schema, error) {
	return ParseWith(text, ParseOptions{ValidateDefaults: true})
}

// MaxDepth bounds the nesting of a schema so that hostile input cannot exhaust the stack.
const MaxDepth = 256

// ParseWith parses an Avro schema from its JSON text.
func ParseWith(text string, opts ParseOptions) (*Schema, error) {
	// Objects keep their attribute order: it matters for the canonical form.
	root, err := decodeOrdered([]byte(text))
	if err != nil {
		return nil, perr("invalid JSON: %v", err)
	}
	p := &parser{named: map[string]*Schema{}, opts: opts}
	for k, v := range opts.Named {
		p.named[k] = v
	}
	s, err := p.parse(root, "", 0)
	if err != nil {
		return nil, err
	}
	return s, nil
}

type parser struct {
	named map[string]*Schema
	opts  ParseOptions
}

var nameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func validName(n string) bool { return nameRe.MatchString(n) }

func validNamespace(ns string) bool {
	if ns == "" {
		return true
	}
	for _, part := range strings.Split(ns, ".") {
		if !validName(part) {
			return false
		}
	}
	return true
}

// resolveName splits a possibly dotted name into namespace and name, using the given namespace (or the
// enclosing one) when the name has no dots.
func resolveName(name, namespace, enclosing string) (string, string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	if namespace != "" {
		return namespace, name
	}
	return enclosing, name
}

func fullName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "." + name
}

func (p *parser) lookup(name, enclosing string) *Schema {
	if !strings.Contains(name, ".") && enclosing != "" {
		if s, ok := p.named[enclosing+"."+name]; ok {
			return s
		}
	}
	return p.named[name]
}

var schemaReserved = map[string]bool{"type": true, "name": true, "namespace": true, "doc": true, "aliases": true,
	"fields": true, "symbols": true, "size": true, "items": true, "values": true, "default": true}

var fieldReserved = map[string]bool{"name": true, "type": true, "doc": true, "default": true, "order": true, "aliases": true}

func (p *parser) parse(n *jnode, enclosing string, depth int) (*Schema, error) {
	if depth > MaxDepth {
		return nil, perr("schema nested deeper than %d levels", MaxDepth)
	}
	switch n.kind {
	case jString:
		if t, ok := primitiveByName[n.str]; ok {
			return &Schema{Type: t}, nil
		}
		if s := p.lookup(n.str, enclosing); s != nil {
			return s, nil
		}
		return nil, perr("undefined name: %q", n.str)
	case jArray:
		return p.parseUnion(n, enclosing, depth)
	case jObject:
		return p.parseObject(n, enclosing, depth)
	default:
		return nil, perr("a schema must be a JSON string, object or array, got %s", n.text())
	}
}

func (p *parser) parseUnion(n *jnode, enclosing string, depth int) (*Schema, error) {
	u := &Schema{Type: Union}
	seen := map[string]bool{}
	for _, item := range n.arr {
		b, err := p.parse(item, enclosing, depth+1)
		if err != nil {
			return nil, err
		}
		if b.Type == Union {
			return nil, perr("unions may not immediately contain other unions")
		}
		key := b.TypeName()
		if seen[key] {
			return nil, perr("duplicate in union: %s", key)
		}
		seen[key] = true
		u.Branches = append(u.Branches, b)
	}
	return u, nil
}

func (p *parser) parseObject(n *jnode, enclosing string, depth int) (*Schema, error) {
	tn := n.get("type")
	if tn == nil {
		return nil, perr("no type: %s", truncate(n.text()))
	}
	if tn.kind != jString {
		// Avro Java insists on a type name here; nested schemas belong in a field's "type".
		return nil, perr("\"type\" must be a string in %s", truncate(n.text()))
	}
	typ := tn.str
	switch typ {
	case "record", "error", "enum", "fixed":
		return p.parseNamed(n, typ, enclosing, depth)
	case "array":
		items := n.get("items")
		if items == nil {
			return nil, perr("array has no items type")
		}
		it, err := p.parse(items, enclosing, depth+1)
		if err != nil {
			return nil, err
		}
		s := &Schema{Type: Array, Items: it}
		s.Props = collectProps(n, schemaReserved)
		return s, nil
	case "map":
		values := n.get("values")
		if values == nil {
			return nil, perr("map has no values type")
		}
		vt, err := p.parse(values, enclosing, depth+1)
		if err != nil {
			return nil, err
		}
		s := &Schema{Type: Map, Values: vt}
		s.Props = collectProps(n, schemaReserved)
		return s, nil
	}
	if t, ok := primitiveByName[typ]; ok {
		s := &Schema{Type: t, Props: collectProps(n, schemaReserved)}
		p.logical(s)
		return s, nil
	}
	// {"type": "SomeNamedType"}: a reference to a named type, possibly with extra attributes, which Avro
	// Java ignores.
	if s := p.lookup(typ, enclosing); s != nil {
		return s, nil
	}
	return nil, perr("undefined name: %q", typ)
}

func (p *parser) parseNamed(n *jnode, typ, enclosing string, depth int) (*Schema, error) {
	nameN := n.get("name")
	if nameN == nil || nameN.kind != jString {
		return nil, perr("%s has no name: %s", typ, truncate(n.text()))
	}
	nsGiven := ""
	if nsN := n.get("namespace"); nsN != nil {
		if nsN.kind != jString && nsN.kind != jNull {
			return nil, perr("namespace of %s must be a string", nameN.str)
		}
		nsGiven = nsN.str
	}
	ns, name := resolveName(nameN.str, nsGiven, enclosing)
	if nsN := n.get("namespace"); nsN != nil && nsN.kind == jString && nsN.str == "" && !strings.Contains(nameN.str, ".") {
		ns = "" // an explicit empty namespace means the null namespace
	}
	if !validName(name) {
		return nil, perr("illegal name: %q", nameN.str)
	}
	if !validNamespace(ns) {
		return nil, perr("illegal namespace: %q", ns)
	}
	if _, prim := primitiveByName[name]; prim && ns == "" {
		return nil, perr("schemas may not be named after primitives: %s", name)
	}
	s := &Schema{Name: name, Namespace: ns}
	full := s.FullName()
	if _, dup := p.named[full]; dup {
		return nil, perr("can't redefine: %s", full)
	}
	if d := n.get("doc"); d != nil {
		if d.kind != jString {
			return nil, perr("doc of %s must be a string", full)
		}
		s.Doc, s.HasDoc = d.str, true
	}
	aliases, err := parseAliases(n.get("aliases"), ns)
	if err != nil {
		return nil, perr("%s: %v", full, err)
	}
	s.Aliases = aliases
	switch typ {
	case "record", "error":
		s.Type, s.IsError = Record, typ == "error"
		p.named[full] = s // defined before its fields, so fields may refer to it recursively
		fieldsN := n.get("fields")
		if fieldsN == nil || fieldsN.kind != jArray {
			return nil, perr("record %s has no fields array", full)
		}
		seen := map[string]bool{}
		for i, fn := range fieldsN.arr {
			f, err := p.parseField(fn, ns, full, depth)
			if err != nil {
				return nil, err
			}
			if seen[f.Name] {
				return nil, perr("duplicate field %s in record %s", f.Name, full)
			}
			seen[f.Name] = true
			f.Index = i
			s.Fields = append(s.Fields, f)
		}
		if len(s.Fields) > 8 {
			s.fieldIdx = make(map[string]int, len(s.Fields))
			for i, f := range s.Fields {
				s.fieldIdx[f.Name] = i
			}
		}
	case "enum":
		s.Type = Enum
		symN := n.get("symbols")
		if symN == nil || symN.kind != jArray {
			return nil, perr("enum %s has no symbols array", full)
		}
		seen := map[string]bool{}
		for _, sn := range symN.arr {
			if sn.kind != jString || !validName(sn.str) {
				return nil, perr("illegal enum symbol in %s: %s", full, sn.text())
			}
			if seen[sn.str] {
				return nil, perr("duplicate enum symbol %s in %s", sn.str, full)
			}
			seen[sn.str] = true
			s.Symbols = append(s.Symbols, sn.str)
		}
		if d := n.get("default"); d != nil {
			if d.kind != jString || !seen[d.str] {
				return nil, perr("the default of enum %s must be one of its symbols, got %s", full, d.text())
			}
			s.EnumDefault, s.HasEnumDef = d.str, true
		}
		p.named[full] = s
	case "fixed":
		s.Type = Fixed
		sz := n.get("size")
		if sz == nil || sz.kind != jNumber {
			return nil, perr("fixed %s has no size", full)
		}
		v, ok := sz.int64()
		if !ok || v < 0 || v > math.MaxInt32 {
			return nil, perr("invalid size for fixed %s: %s", full, sz.text())
		}
		s.Size = int(v)
		p.named[full] = s
	}
	s.Props = collectProps(n, schemaReserved)
	p.logical(s)
	return s, nil
}

func parseAliases(n *jnode, ns string) ([]string, error) {
	if n == nil || n.kind == jNull {
		return nil, nil
	}
	if n.kind != jArray {
		return nil, fmt.Errorf("aliases must be an array of names")
	}
	var out []string
	for _, a := range n.arr {
		if a.kind != jString {
			return nil, fmt.Errorf("aliases must be an array of names")
		}
		ans, aname := resolveName(a.str, "", ns)
		if !validName(aname) || !validNamespace(ans) {
			return nil, fmt.Errorf("illegal alias %q", a.str)
		}
		out = append(out, fullName(ans, aname))
	}
	return out, nil
}

func (p *parser) parseField(n *jnode, ns, record string, depth int) (*Field, error) {
	if n.kind != jObject {
		return nil, perr("field of %s must be an object, got %s", record, truncate(n.text()))
	}
	nameN := n.get("name")
	if nameN == nil || nameN.kind != jString {
		return nil, perr("field of %s has no name: %s", record, truncate(n.text()))
	}
	if !validName(nameN.str) {
		return nil, perr("illegal field name %q in %s", nameN.str, record)
	}
	tn := n.get("type")
	if tn == nil {
		return nil, perr("field %s of %s has no type", nameN.str, record)
	}
	t, err := p.parse(tn, ns, depth+1)
	if err != nil {
		return nil, err
	}
	f := &Field{Name: nameN.str, Type: t}
	if d := n.get("doc"); d != nil {
		if d.kind != jString {
			return nil, perr("doc of field %s must be a string", f.Name)
		}
		f.Doc, f.HasDoc = d.str, true
	}
	if d := n.get("default"); d != nil {
		f.Default, f.HasDefault = d.compact(), true
		if p.opts.ValidateDefaults {
			if err := validateDefault(t, d, 0); err != nil {
				return nil, perr("invalid default for field %s of %s: %s not a %s: %v", f.Name, record, truncate(d.text()), describe(t), err)
			}
		}
	}
	if o := n.get("order"); o != nil {
		if o.kind != jString {
			return nil, perr("order of field %s must be a string", f.Name)
		}
		switch strings.ToLower(o.str) {
		case "ascending":
		case "descending", "ignore":
			f.Order = strings.ToLower(o.str)
		default:
			return nil, perr("illegal order %q for field %s", o.str, f.Name)
		}
	}
	if a := n.get("aliases"); a != nil && a.kind != jNull {
		if a.kind != jArray {
			return nil, perr("aliases of field %s must be an array", f.Name)
		}
		for _, x := range a.arr {
			if x.kind != jString {
				return nil, perr("aliases of field %s must be strings", f.Name)
			}
			f.Aliases = append(f.Aliases, x.str)
		}
	}
	f.Props = collectProps(n, fieldReserved)
	return f, nil
}

func describe(s *Schema) string {
	if s.Type == Union {
		parts := make([]string, len(s.Branches))
		for i, b := range s.Branches {
			parts[i] = b.TypeName()
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return s.TypeName()
}

func collectProps(n *jnode, reserved map[string]bool) []Prop {
	var out []Prop
	for i, k := range n.keys {
		if reserved[k] {
			continue
		}
		out = append(out, Prop{Key: k, Value: n.vals[i].compact()})
	}
	return out
}

// logical validates the logicalType attribute of s and records it when valid.
func (p *parser) logical(s *Schema) {
	raw := s.Prop("logicalType")
	if raw == nil {
		return
	}
	var lt string
	if json.Unmarshal(raw, &lt) != nil {
		return
	}
	switch lt {
	case "decimal":
		if s.Type != Bytes && s.Type != Fixed {
			return
		}
		prec, ok1 := propInt(s, "precision")
		scale, ok2 := propInt(s, "scale")
		if !ok2 {
			scale, ok2 = 0, s.Prop("scale") == nil
		}
		if !ok1 || !ok2 || prec <= 0 || scale < 0 || scale > prec {
			return
		}
		if s.Type == Fixed && s.Size < 64 {
			maxDigits := int(math.Floor(math.Log10(2) * float64(8*s.Size-1)))
			if prec > maxDigits {
				return
			}
		}
		s.LogicalType, s.Precision, s.Scale = lt, prec, scale
	case "uuid":
		if s.Type == String || (s.Type == Fixed && s.Size == 16) {
			s.LogicalType = lt
		}
	case "date", "time-millis":
		if s.Type == Int {
			s.LogicalType = lt
		}
	case "time-micros", "timestamp-millis", "timestamp-micros", "timestamp-nanos",
		"local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos":
		if s.Type == Long {
			s.LogicalType = lt
		}
	case "duration":
		if s.Type == Fixed && s.Size == 12 {
			s.LogicalType = lt
		}
	}
}

func propInt(s *Schema, key string) (int, bool) {
	raw := s.Prop(key)
	if raw == nil {
		return 0, false
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&n) != nil {
		return 0, false
	}
	v, err := n.Int64()
	if err != nil || v > math.MaxInt32 || v < math.MinInt32 {
		return 0, false
	}
	return int(v), true
}

// validateDefault checks a default value against a schema following Avro's rules: a union's default matches
// its first branch.
func validateDefault(s *Schema, d *jnode, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("default nested too deeply")
	}
	switch s.Type {
	case Null:
		if d.kind != jNull {
			return fmt.Errorf("expected null")
		}
	case Boolean:
		if d.kind != jBool {
			return fmt.Errorf("expected a boolean")
		}
	case Int:
		v, ok := d.int64()
		if d.kind != jNumber || !ok || v < math.MinInt32 || v > math.MaxInt32 {
			return fmt.Errorf("expected an int")
		}
	case Long:
		if _, ok := d.int64(); d.kind != jNumber || !ok {
			return fmt.Errorf("expected a long")
		}
	case Float, Double:
		if d.kind != jNumber {
			return fmt.Errorf("expected a number")
		}
	case Bytes, String:
		if d.kind != jString {
			return fmt.Errorf("expected a string")
		}
	case Fixed:
		if d.kind != jString {
			return fmt.Errorf("expected a string")
		}
		if n := len([]rune(d.str)); n != s.Size {
			return fmt.Errorf("expected %d bytes, got %d", s.Size, n)
		}
	case Enum:
		if d.kind != jString {
			return fmt.Errorf("expected a symbol")
		}
		for _, sym := range s.Symbols {
			if sym == d.str {
				return nil
			}
		}
		return fmt.Errorf("%q is not a symbol of %s", d.str, s.FullName())
	case Array:
		if d.kind != jArray {
			return fmt.Errorf("expected an array")
		}
		for _, it := range d.arr {
			if err := validateDefault(s.Items, it, depth+1); err != nil {
				return err
			}
		}
	case Map:
		if d.kind != jObject {
			return fmt.Errorf("expected an object")
		}
		for _, v := range d.vals {
			if err := validateDefault(s.Values, v, depth+1); err != nil {
				return err
			}
		}
	case Union:
		if len(s.Branches) == 0 {
			return fmt.Errorf("an empty union has no values")
		}
		return validateDefault(s.Branches[0], d, depth+1)
	case Record:
		if d.kind != jObject {
			return fmt.Errorf("expected an object")
		}
		for _, f := range s.Fields {
			v := d.get(f.Name)
			if v == nil {
				if f.HasDefault {
					continue
				}
				return fmt.Errorf("field %s missing", f.Name)
			}
			if err := validateDefault(f.Type, v, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// External marks a named type as defined outside the schema text that uses it (a schema reference): the
// canonical form then writes it by name only. It returns s.
func External(s *Schema) *Schema {
	s.external = true
	return s
}
