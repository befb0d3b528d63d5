package avro

import (
	"sort"
	"strconv"
)

// Canonical returns the schema as Avro Java's Schema.toString() prints it: compact JSON with Avro's own
// attribute order, namespaces written only where they change, and each named type defined at its first use.
// Confluent's Schema Registry identifies schemas by this text, so whitespace and attribute order do not
// matter while doc, aliases, defaults, order, logical types and custom attributes do. Named types that came
// from schema references are written by name.
func (s *Schema) Canonical() string {
	w := &writer{known: map[string]bool{}}
	w.schema(s)
	return string(w.b)
}

// Expanded is Canonical with the definitions of referenced named types written inline at their first use,
// a self-contained text for codecs that know nothing of references.
func (s *Schema) Expanded() string {
	w := &writer{known: map[string]bool{}, inlineExternal: true}
	w.schema(s)
	return string(w.b)
}

// Normalized returns the form Confluent's normalize option uses: full names everywhere, "name" before "type",
// aliases sorted and custom attributes sorted by key, so that schemas differing only in such details get one
// identity. Doc, defaults and logical types are kept.
func (s *Schema) Normalized() string {
	w := &writer{known: map[string]bool{}, normalize: true}
	w.schema(s)
	return string(w.b)
}

type writer struct {
	b              []byte
	space          string
	known          map[string]bool
	inlineExternal bool
	normalize      bool
}

func (w *writer) str(s string)      { w.b = appendJSONString(w.b, s) }
func (w *writer) raw(s string)      { w.b = append(w.b, s...) }
func (w *writer) key(k string)      { w.str(k); w.b = append(w.b, ':') }
func (w *writer) comma()            { w.b = append(w.b, ',') }
func (w *writer) field(k, v string) { w.comma(); w.key(k); w.str(v) }

// qualified is a name as Avro Java writes a reference to it: short within its own namespace.
func (w *writer) qualified(full, ns, name string) string {
	if w.normalize {
		return full
	}
	if ns == w.space {
		return name
	}
	return full
}

func (w *writer) props(props []Prop) {
	if w.normalize && len(props) > 1 {
		props = append([]Prop(nil), props...)
		sort.SliceStable(props, func(i, j int) bool { return props[i].Key < props[j].Key })
	}
	for _, p := range props {
		w.comma()
		w.key(p.Key)
		w.b = append(w.b, p.Value...)
	}
}

func (w *writer) aliases(aliases []string, ns string, short bool) {
	if len(aliases) == 0 {
		return
	}
	if w.normalize {
		aliases = append([]string(nil), aliases...)
		sort.Strings(aliases)
	}
	w.comma()
	w.key("aliases")
	w.b = append(w.b, '[')
	for i, a := range aliases {
		if i > 0 {
			w.comma()
		}
		if short && !w.normalize {
			// A type alias in the type's own namespace is written without it.
			ans, aname := resolveName(a, "", "")
			if ans == ns {
				a = aname
			}
		}
		w.str(a)
	}
	w.b = append(w.b, ']')
}

func (w *writer) schema(s *Schema) {
	switch s.Type {
	case Record, Enum, Fixed:
		full := s.FullName()
		if w.known[full] || (s.external && !w.inlineExternal) {
			w.str(w.qualified(full, s.Namespace, s.Name))
			return
		}
		w.known[full] = true
		w.named(s)
	case Array:
		w.raw(`{"type":"array","items":`)
		w.schema(s.Items)
		w.props(s.Props)
		w.b = append(w.b, '}')
	case Map:
		w.raw(`{"type":"map","values":`)
		w.schema(s.Values)
		w.props(s.Props)
		w.b = append(w.b, '}')
	case Union:
		w.b = append(w.b, '[')
		for i, br := range s.Branches {
			if i > 0 {
				w.comma()
			}
			w.schema(br)
		}
		w.b = append(w.b, ']')
	default:
		if len(s.Props) == 0 {
			w.str(s.Type.String())
			return
		}
		w.raw(`{"type":`)
		w.str(s.Type.String())
		w.props(s.Props)
		w.b = append(w.b, '}')
	}
}

func (w *writer) named(s *Schema) {
	typ := s.Type.String()
	if s.IsError {
		typ = "error"
	}
	w.b = append(w.b, '{')
	if w.normalize {
		w.key("name")
		w.str(s.FullName())
		w.field("type", typ)
	} else {
		w.key("type")
		w.str(typ)
		w.field("name", s.Name)
		if s.Namespace != w.space {
			w.field("namespace", s.Namespace)
		}
	}
	if s.HasDoc {
		w.field("doc", s.Doc)
	}
	switch s.Type {
	case Record:
		saved := w.space
		w.space = s.Namespace
		w.comma()
		w.key("fields")
		w.b = append(w.b, '[')
		for i, f := range s.Fields {
			if i > 0 {
				w.comma()
			}
			w.fieldJSON(f)
		}
		w.b = append(w.b, ']')
		w.space = saved
		w.props(s.Props)
		w.aliases(s.Aliases, s.Namespace, true)
	case Enum:
		w.comma()
		w.key("symbols")
		w.b = append(w.b, '[')
		for i, sym := range s.Symbols {
			if i > 0 {
				w.comma()
			}
			w.str(sym)
		}
		w.b = append(w.b, ']')
		if s.HasEnumDef {
			w.field("default", s.EnumDefault)
		}
		w.props(s.Props)
		w.aliases(s.Aliases, s.Namespace, true)
	case Fixed:
		w.comma()
		w.key("size")
		w.b = strconv.AppendInt(w.b, int64(s.Size), 10)
		w.props(s.Props)
		w.aliases(s.Aliases, s.Namespace, true)
	}
	w.b = append(w.b, '}')
}

func (w *writer) fieldJSON(f *Field) {
	w.b = append(w.b, '{')
	w.key("name")
	w.str(f.Name)
	w.comma()
	w.key("type")
	w.schema(f.Type)
	if f.HasDoc {
		w.field("doc", f.Doc)
	}
	if f.HasDefault {
		w.comma()
		w.key("default")
		w.b = append(w.b, f.Default...)
	}
	if f.Order != "" {
		w.field("order", f.Order)
	}
	w.aliases(f.Aliases, "", false)
	w.props(f.Props)
	w.b = append(w.b, '}')
}
