package avro

import (
	"fmt"
	"sort"
	"strings"
)

// Incompatibility is one reason a reader schema cannot read data written with a writer schema, following
// Avro's schema resolution rules (apache/avro SchemaCompatibility).
type Incompatibility struct {
	Type     string // NAME_MISMATCH, FIXED_SIZE_MISMATCH, MISSING_ENUM_SYMBOLS, READER_FIELD_MISSING_DEFAULT_VALUE, TYPE_MISMATCH, MISSING_UNION_BRANCH
	Location string // path in the reader schema, like /fields/1/type
	Detail   string // Avro's message: "reader type: STRING not compatible with writer type: INT", …
}

// The incompatibility types, as Avro Java and Confluent name them.
const (
	NameMismatch                   = "NAME_MISMATCH"
	FixedSizeMismatch              = "FIXED_SIZE_MISMATCH"
	MissingEnumSymbols             = "MISSING_ENUM_SYMBOLS"
	ReaderFieldMissingDefaultValue = "READER_FIELD_MISSING_DEFAULT_VALUE"
	TypeMismatch                   = "TYPE_MISMATCH"
	MissingUnionBranch             = "MISSING_UNION_BRANCH"
)

// Describe renders the incompatibility the way Confluent's verbose compatibility messages do; readerIsNew
// says whether the reader is the schema being registered (BACKWARD) or an existing one (FORWARD).
func (in Incompatibility) Describe(readerIsNew bool) string {
	reader, writer := "new", "old"
	if !readerIsNew {
		reader, writer = "old", "new"
	}
	var desc string
	switch in.Type {
	case ReaderFieldMissingDefaultValue:
		desc = fmt.Sprintf("The field '%s' at path '%s' in the %s schema has no default value and is missing in the %s schema", in.Detail, in.Location, reader, writer)
	case NameMismatch:
		desc = fmt.Sprintf("The name of the schema has changed (path '%s')", in.Location)
	case FixedSizeMismatch:
		desc = fmt.Sprintf("The size of FIXED type field at path '%s' in the %s schema does not match with the %s schema", in.Location, reader, writer)
	case MissingEnumSymbols:
		desc = fmt.Sprintf("The %s schema is missing enum symbols '%s' at path '%s' in the %s schema", reader, in.Detail, in.Location, writer)
	case MissingUnionBranch:
		desc = fmt.Sprintf("The %s schema is missing a type inside a union field at path '%s' in the %s schema", reader, in.Location, writer)
	default:
		desc = fmt.Sprintf("The type (path '%s') of a field in the %s schema does not match with the %s schema", in.Location, reader, writer)
	}
	return fmt.Sprintf("{errorType:'%s', description:'%s', additionalInfo:'%s'}", in.Type, desc, in.Detail)
}

// CheckCompatibility returns every reason why reader cannot read what writer wrote; none means compatible.
func CheckCompatibility(reader, writer *Schema) []Incompatibility {
	c := &checker{memo: map[[2]*Schema]*verdict{}}
	return c.check(reader, writer, []string{""})
}

// Compatible reports whether reader can read data written with writer.
func Compatible(reader, writer *Schema) bool { return len(CheckCompatibility(reader, writer)) == 0 }

// checker memoizes a verdict per (reader, writer) pair, as Avro Java does; a pair met again while it is
// still being examined (a recursive type) is taken as compatible.
type checker struct {
	memo map[[2]*Schema]*verdict
}

type verdict struct {
	done bool
	ins  []Incompatibility
}

func incompat(typ string, loc []string, detail string) []Incompatibility {
	l := strings.Join(loc, "/")
	if l == "" {
		l = "/"
	}
	return []Incompatibility{{Type: typ, Location: l, Detail: detail}}
}

func push(loc []string, parts ...string) []string {
	out := make([]string, 0, len(loc)+len(parts))
	return append(append(out, loc...), parts...)
}

func upper(t Type) string { return strings.ToUpper(t.String()) }

func (c *checker) check(reader, writer *Schema, loc []string) []Incompatibility {
	key := [2]*Schema{reader, writer}
	if v, ok := c.memo[key]; ok {
		return v.ins // in progress (nil: compatible so far) or done
	}
	v := &verdict{}
	c.memo[key] = v
	v.ins = c.compute(reader, writer, loc)
	v.done = true
	return v.ins
}

func (c *checker) compute(reader, writer *Schema, loc []string) []Incompatibility {
	if reader.Type == writer.Type {
		switch reader.Type {
		case Array:
			return c.check(reader.Items, writer.Items, push(loc, "items"))
		case Map:
			return c.check(reader.Values, writer.Values, push(loc, "values"))
		case Fixed:
			if out := c.names(reader, writer, loc); out != nil {
				return out
			}
			if reader.Size != writer.Size {
				return incompat(FixedSizeMismatch, push(loc, "size"), fmt.Sprintf("expected: %d, found: %d", writer.Size, reader.Size))
			}
			return nil
		case Enum:
			if out := c.names(reader, writer, loc); out != nil {
				return out
			}
			return enumSymbols(reader, writer, loc)
		case Record:
			if out := c.names(reader, writer, loc); out != nil {
				return out
			}
			return c.fields(reader, writer, loc)
		case Union:
			return c.writerUnion(reader, writer, loc)
		default:
			return nil
		}
	}

	if writer.Type == Union {
		return c.writerUnion(reader, writer, loc)
	}

	switch reader.Type {
	case Long:
		if writer.Type == Int {
			return nil
		}
	case Float:
		if writer.Type == Int || writer.Type == Long {
			return nil
		}
	case Double:
		if writer.Type == Int || writer.Type == Long || writer.Type == Float {
			return nil
		}
	case Bytes:
		if writer.Type == String {
			return nil
		}
	case String:
		if writer.Type == Bytes {
			return nil
		}
	case Union:
		for _, rb := range reader.Branches {
			if len(c.check(rb, writer, loc)) == 0 {
				return nil
			}
		}
		return incompat(MissingUnionBranch, loc, "reader union lacking writer type: "+upper(writer.Type))
	}
	return incompat(TypeMismatch, loc, fmt.Sprintf("reader type: %s not compatible with writer type: %s", upper(reader.Type), upper(writer.Type)))
}

// writerUnion: every branch the writer may have used must be readable.
func (c *checker) writerUnion(reader, writer *Schema, loc []string) []Incompatibility {
	var out []Incompatibility
	for i, wb := range writer.Branches {
		out = append(out, c.check(reader, wb, push(loc, fmt.Sprint(i)))...)
	}
	return out
}

// names checks that named types match: the same unqualified name, or the writer's full name among the
// reader's aliases.
func (c *checker) names(reader, writer *Schema, loc []string) []Incompatibility {
	if reader.Name == writer.Name {
		return nil
	}
	for _, a := range reader.Aliases {
		if a == writer.FullName() {
			return nil
		}
	}
	return incompat(NameMismatch, push(loc, "name"), "expected: "+writer.FullName())
}

// enumSymbols: writer symbols unknown to the reader are an error unless the reader enum has a default.
func enumSymbols(reader, writer *Schema, loc []string) []Incompatibility {
	if reader.HasEnumDef {
		return nil
	}
	have := map[string]bool{}
	for _, s := range reader.Symbols {
		have[s] = true
	}
	var missing []string
	for _, s := range writer.Symbols {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return incompat(MissingEnumSymbols, push(loc, "symbols"), "["+strings.Join(missing, ", ")+"]")
}

// fields: each reader field needs a writer field (by name or reader alias) of a readable type, or a
// default; writer-only fields are skipped.
func (c *checker) fields(reader, writer *Schema, loc []string) []Incompatibility {
	var out []Incompatibility
	for i, rf := range reader.Fields {
		wf := writerField(writer, rf)
		if wf == nil {
			if !rf.HasDefault {
				out = append(out, incompat(ReaderFieldMissingDefaultValue, push(loc, "fields", fmt.Sprint(i)), rf.Name)...)
			}
			continue
		}
		out = append(out, c.check(rf.Type, wf.Type, push(loc, "fields", fmt.Sprint(i), "type"))...)
	}
	return out
}

// writerField finds the writer's field for a reader field: by name, then by the reader field's aliases.
func writerField(writer *Schema, rf *Field) *Field {
	if f := writer.FieldByName(rf.Name); f != nil {
		return f
	}
	for _, a := range rf.Aliases {
		if f := writer.FieldByName(a); f != nil {
			return f
		}
	}
	return nil
}

// Level is a Schema Registry compatibility level.
type Level string

// The seven compatibility levels.
const (
	None               Level = "NONE"
	Backward           Level = "BACKWARD"
	BackwardTransitive Level = "BACKWARD_TRANSITIVE"
	Forward            Level = "FORWARD"
	ForwardTransitive  Level = "FORWARD_TRANSITIVE"
	Full               Level = "FULL"
	FullTransitive     Level = "FULL_TRANSITIVE"
)

// Levels lists every level.
var Levels = []Level{None, Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive}

// ParseLevel accepts a level name in any case.
func ParseLevel(s string) (Level, bool) {
	u := Level(strings.ToUpper(strings.TrimSpace(s)))
	for _, l := range Levels {
		if u == l {
			return l, true
		}
	}
	return "", false
}

// Transitive reports whether the level checks against every earlier version rather than the latest.
func (l Level) Transitive() bool { return strings.HasSuffix(string(l), "_TRANSITIVE") }

// CheckLevel checks a new schema against existing ones (oldest first) at a compatibility level and returns
// the messages Confluent's verbose mode gives; none means compatible. Non-transitive levels look only at the
// latest existing schema.
func CheckLevel(level Level, candidate *Schema, existing []*Schema) []string {
	if level == None || len(existing) == 0 {
		return nil
	}
	targets := existing
	if !level.Transitive() {
		targets = existing[len(existing)-1:]
	}
	var msgs []string
	// Latest first, as Confluent reports them.
	for i := len(targets) - 1; i >= 0; i-- {
		old := targets[i]
		var found []string
		if level == Backward || level == BackwardTransitive || level == Full || level == FullTransitive {
			for _, in := range CheckCompatibility(candidate, old) {
				found = append(found, in.Describe(true))
			}
		}
		if level == Forward || level == ForwardTransitive || level == Full || level == FullTransitive {
			for _, in := range CheckCompatibility(old, candidate) {
				found = append(found, in.Describe(false))
			}
		}
		msgs = append(msgs, found...)
	}
	return msgs
}
